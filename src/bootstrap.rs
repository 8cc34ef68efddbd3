//! What every command needs before it does its work, the daemon included:
//! logging, the store (connected and migrated), the working set of a
//! one-shot command, and the signals that stop the daemon.
//!
//! It sits below both `commands` and `daemon`, so neither reaches into the
//! other for these: `commands` starts the daemon, never the other way round.

use std::future::Future;
use std::io::IsTerminal;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::app::App;
use crate::config::{Config, Log, LogFormat};
use crate::store::Store;

/// Terminal: plain text with time. Under systemd (`JOURNAL_STREAM` set): no
/// timestamps (journald adds its own), no colours, and each line starts
/// with its syslog priority (`<4>` for a warning), which journald takes as
/// the entry's level: `journalctl -p warning` shows warnings and errors.
/// `json` if configured. `RUST_LOG` overrides the configured level.
pub fn init_logging(log: &Log) {
    use tracing_subscriber::EnvFilter;
    // sqlx reports PostgreSQL notices (e.g. "relation already exists, skipping" from
    // migrations) at info; they are noise for an admin.
    // The IMAP client traces the wire (the LOGIN command with its password,
    // whole emails): never, whatever the level.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx=warn", log.level)))
        .add_directive("async_imap=off".parse().expect("a valid directive"));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Auto if under_journal => builder
            .event_format(JournalLevel(
                tracing_subscriber::fmt::format()
                    .without_time()
                    .with_target(false),
            ))
            .try_init(),
        _ => builder.try_init(),
    };
}

/// Puts the syslog priority of the event's level before a line for journald
/// (sd-daemon(3)'s prefixes), then the line as `inner` writes it.
struct JournalLevel<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalLevel<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// Connects and migrates: every command works on an up-to-date schema.
pub async fn open_store(config: &Config) -> Result<Store> {
    let db = &config.settings.database;
    let password = match &config.resolved.database_password {
        Some(secret) => Some(
            secret
                .expose_str()
                .context("database.password_file is not UTF-8")?,
        ),
        None => None,
    };
    let store = Store::connect_with_password(&db.url, db.connections(), password)
        .await
        .with_context(|| format!("{}: database.url", config.path.display()))?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}

/// The working set of a command that acts like the daemon would (e.g.
/// `tasks digest`), under its own instance id.
pub async fn command_app(config: Config, store: Store) -> Result<App> {
    App::build(config, store, format!("cli-{}", std::process::id())).await
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C): the daemon's shutdown.
/// The handlers are installed here, at once, not when the future is first
/// polled: a signal that comes while the daemon starts must stop it too,
/// not kill it half-way.
pub fn stop_signals() -> Result<impl Future<Output = ()> + Send + 'static> {
    let mut term = signal(SignalKind::terminate()).context("cannot install a SIGTERM handler")?;
    let mut interrupt =
        signal(SignalKind::interrupt()).context("cannot install a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
