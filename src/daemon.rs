//! `outreach run`: open and migrate the store, bind the HTTP server, tell
//! systemd we are ready, and run until SIGTERM/Ctrl-C.
//!
//! Shutdown is one `watch` channel: every background loop selects on it, and
//! the HTTP server drains its connections when it flips.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::info;

use crate::config::{Config, Log, LogFormat};
use crate::{http, systemd};

/// Terminal: plain text with time. Under systemd (`JOURNAL_STREAM` set): no
/// timestamps (journald adds its own) and no colours. `json` if configured.
/// `RUST_LOG` overrides the configured level.
pub fn init_logging(log: &Log) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    let under_journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Auto if under_journal => builder.without_time().with_target(false).try_init(),
        _ => builder.try_init(),
    };
}

pub async fn run(config: Config) -> Result<()> {
    let store = crate::commands::open_store(&config).await?;
    let listen = &config.settings.http.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "{}: http.listen: cannot listen on {listen}",
            config.path.display()
        )
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let state = http::AppState::new(store.clone(), config.clone());
    info!(
        address = %listener.local_addr()?,
        database = store.backend_name(),
        config = %config.path.display(),
        "outreach is running"
    );
    systemd::ready();
    let server = tokio::spawn(http::serve(listener, state, stop_rx.clone()));

    wait_for_stop_signal().await;
    info!("stopping: finishing in-flight work");
    systemd::stopping();
    let _ = stop_tx.send(true);
    server.await.context("HTTP server task panicked")??;
    store.close().await;
    info!("stopped");
    Ok(())
}

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).expect("installing a SIGTERM handler cannot fail on Unix");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
