//! `outreach run`: open and migrate the store, bind the HTTP server, start
//! the scheduler loop and one delivery worker per SMTP connection, tell
//! systemd we are ready, and run until the caller's shutdown resolves
//! (`outreach run` gives [`crate::bootstrap::stop_signals`]: SIGTERM, Ctrl-C).
//!
//! Inside, shutdown is one `watch` channel: every loop selects on it. On
//! shutdown we stop claiming, let workers finish and record their batch,
//! drain HTTP, and return. SIGHUP reloads the config here, not in the
//! caller: a reload is part of running, not of stopping. A new [`App`] is
//! built and swapped in only if it loaded completely; otherwise the error is
//! logged and the old one keeps running.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::Utc;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::app::{App, Shared};
use crate::config::Config;
use crate::deliver::{self, Delivery};
use crate::domain::RuleKind;
use crate::journal::{self, Journal};
use crate::mailer::MailerSettings;
use crate::store::BackendKind;
use crate::timings;
use crate::{http, systemd};

/// Everything time-driven (schedules, approvals, leases, digests) runs at least this often.
const TICK: Duration = Duration::from_secs(5);
/// A planning that failed (the database refused a write) is tried again
/// after this long, not only when its lease runs out.
const PLAN_RETRY: chrono::Duration = chrono::Duration::seconds(10);

/// Runs the daemon until `shutdown` resolves, then stops cleanly.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<()> {
    for warning in &config.resolved.warnings {
        warn!("{warning}");
    }
    let store = crate::bootstrap::open_store(&config).await?;
    // Unique per start, also when a restarted daemon gets the same pid: its
    // predecessor's claims must never look like its own.
    let instance = format!(
        "{}-{}-{:04x}",
        hostname(),
        std::process::id(),
        rand::random::<u16>()
    );
    let app = App::build(config.clone(), store.clone(), instance).await?;
    let journal = Arc::new(recover_after_restart(&app).await?);
    let listen = &config.settings.http.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| {
        format!(
            "{}: http.listen: cannot listen on {listen}",
            config.path.display()
        )
    })?;
    let shared = Shared::new(app);
    let delivery = Arc::new(Delivery::with_journal(journal.clone()));
    let (stop_tx, stop_rx) = watch::channel(false);
    info!(address = %listener.local_addr()?, database = %store.backend_kind(), config = %config.path.display(), "outreach is running");

    let state = http::AppState::new(shared.clone(), delivery.clone());
    let server = tokio::spawn(http::serve(listener, state, stop_rx.clone()));
    let mut workers = Vec::new();
    let (results, recorder) = deliver::spawn_recorder(shared.clone(), Some(journal.clone()));
    for _ in 0..config.settings.mail.workers() {
        workers.push(tokio::spawn(deliver::worker(
            shared.clone(),
            delivery.clone(),
            results.clone(),
            stop_rx.clone(),
        )));
    }
    // The recorder ends once the workers, holding the other senders, are done.
    drop(results);
    let bounces = tokio::spawn(crate::bounces::imap::run(shared.clone(), stop_rx.clone()));
    check_smtp_session(&shared.current(), delivery.clone());
    // A command (`runs start`, `pause`, …) wakes the scheduler at once.
    let changes = Arc::new(tokio::sync::Notify::new());
    let watcher = tokio::spawn({
        let (store, changes, stop) = (store.clone(), changes.clone(), stop_rx.clone());
        async move { store.watch_changes(&changes, stop).await }
    });
    let scheduler = tokio::spawn(scheduler_loop(
        shared.clone(),
        delivery.clone(),
        changes,
        stop_rx.clone(),
    ));
    systemd::ready();

    reload_until(shutdown, &shared, &delivery, &config.path).await;
    info!("stopping: finishing in-flight sends");
    systemd::stopping();
    let _ = stop_tx.send(true);
    for worker in workers {
        worker.await.context("a delivery worker panicked")?;
    }
    recorder.await.context("the results recorder panicked")?;
    // Every result is committed: this daemon's journal has nothing left to say.
    journal.close();
    scheduler.await.context("the scheduler panicked")?;
    bounces
        .await
        .context("the bounce mailbox poller panicked")?;
    watcher.await.context("the change watcher panicked")?;
    server.await.context("the HTTP server panicked")??;
    store.close().await;
    info!("stopped");
    Ok(())
}

/// After a crash, before anything is claimed: the send journals of stopped
/// daemons are reconciled (see `journal`), then this daemon's journal is
/// opened. SQLite has one daemon, so whatever it had claimed beyond what a
/// journal settled is now `unknown` and its half-planned runs are resumed
/// at once. On PostgreSQL other daemons may be alive; leases expire on
/// their own.
async fn recover_after_restart(app: &App) -> Result<Journal> {
    let dir = journal::dir(app.settings(), &app.store);
    let database = journal::database_id(&app.store).await?;
    journal::reconcile(&app.store, &dir, &database).await?;
    let journal = Journal::open(&dir, &app.instance, &database)?;
    if app.store.backend_kind() == BackendKind::Sqlite {
        let n = app
            .store
            .expire_claims(Utc::now() + timings::get().lease * 2, None)
            .await?;
        if n > 0 {
            warn!(
                messages = n,
                "messages were being sent when the daemon stopped; marked unknown (see `outreach runs retry-unknown`)"
            );
        }
        app.store.release_planning_leases().await?;
    }
    Ok(journal)
}

/// One pass of everything time-driven. Tests call this directly.
pub async fn tick(app: &App, delivery: &Delivery, now: chrono::DateTime<Utc>) -> Result<()> {
    crate::schedule::create_due_runs(app, now).await?;
    plan_pending(app, delivery, now).await?;
    crate::approval::expire_overdue(app, now).await?;
    crate::control::apply(app, delivery, now).await?;
    let expired = app.store.expire_claims(now, Some(&app.instance)).await?;
    if expired > 0 {
        warn!(
            messages = expired,
            "claims of a daemon that stopped mid-send expired; marked unknown"
        );
    }
    for run in app.store.finish_drained_runs(now).await? {
        info!(run, "run finished");
    }
    crate::tasks::housekeeping(app, now).await?;
    crate::signup::housekeeping(app, now).await?;
    // Worth a warning, not a failed pass: the watchdog must not restart a
    // daemon that sends fine because old files could not be deleted.
    if let Err(e) = crate::retention::daily(app, now).await {
        warn!(error = %format!("{e:#}"), "retention pass failed; tried again tomorrow");
    }
    delivery.wake.notify_waiters();
    Ok(())
}

/// Plans every run waiting in `planning` (scheduled, started by hand, triggered).
async fn plan_pending(app: &App, delivery: &Delivery, now: chrono::DateTime<Utc>) -> Result<()> {
    while let Some(run) = app
        .store
        .claim_run_for_planning(
            &app.instance,
            now,
            now + timings::get().lease,
            now + timings::get().lease - PLAN_RETRY,
        )
        .await?
    {
        let result = match run.rule_kind {
            RuleKind::Checkin => crate::tasks::call_list::fill(app, &run, now)
                .await
                .map(|_| ()),
            RuleKind::Campaign => crate::plan::plan_campaign(app, &run, now).await.map(|_| ()),
        };
        if let Err(e) = result {
            error!(run = run.id, rule = %run.rule_id, error = %format!("{e:#}"), "planning failed; will retry");
            return Err(e);
        }
        delivery.wake.notify_waiters();
    }
    Ok(())
}

/// Runs a [`tick`] every [`TICK`], at the next occurrence if sooner, and
/// at once when a command announced a change (see `store::changes`): a run
/// started or approved, a pause, a stop, an absence.
async fn scheduler_loop(
    shared: Shared,
    delivery: Arc<Delivery>,
    changes: Arc<tokio::sync::Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let app = shared.current();
        let now = Utc::now();
        match tick(&app, &delivery, now).await {
            // The watchdog is fed from the loop that does the work: a hung step starves it.
            Ok(()) => systemd::watchdog(),
            Err(e) => warn!(error = %format!("{e:#}"), "scheduler step failed; retrying"),
        }
        let sleep = crate::schedule::next_wake(&app, now)
            .map(|t| (t - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(TICK)
            .min(TICK);
        tokio::select! {
            _ = tokio::time::sleep(sleep) => {}
            // An approval or a resume needs no tick: the workers look at once.
            _ = changes.notified() => delivery.wake.notify_waiters(),
            _ = stop.changed() => break,
        }
    }
    info!("scheduler stopped");
}

/// Opens and closes one SMTP session, so that `/healthz` and the log tell
/// of a wrong password or an untrusted certificate at once, not only when
/// the first message waits.
fn check_smtp_session(app: &App, delivery: Arc<Delivery>) {
    if app.settings().mail.transport != crate::config::Transport::Smtp {
        return;
    }
    let settings = MailerSettings::from_config(&app.config);
    tokio::spawn(async move {
        let result = settings.probe_smtp().await;
        match &result {
            Ok(()) => info!("SMTP session check passed (connection, TLS, login)"),
            Err(failure) => {
                warn!(reason = %failure, "SMTP session check failed; messages will wait")
            }
        }
        delivery.note_session(result);
    });
}

/// Waits for `shutdown`; handles SIGHUP (reload) meanwhile.
async fn reload_until(
    shutdown: impl Future<Output = ()>,
    shared: &Shared,
    delivery: &Arc<Delivery>,
    path: &Path,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup =
        signal(SignalKind::hangup()).expect("installing a SIGHUP handler cannot fail on Unix");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = hup.recv() => reload(shared, delivery, path).await,
        }
    }
}

async fn reload(shared: &Shared, delivery: &Arc<Delivery>, path: &Path) {
    systemd::reloading();
    let current = shared.current();
    let result = async {
        let config = Config::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if config.settings.database.url != current.settings().database.url {
            anyhow::bail!(
                "{}: database.url cannot change on reload; restart the service",
                path.display()
            );
        }
        App::build(config, current.store.clone(), current.instance.clone()).await
    }
    .await;
    match result {
        Ok(app) => {
            let later = needs_restart(current.settings(), app.settings());
            let transport_changed = current.config.resolved.mailer != app.config.resolved.mailer;
            if transport_changed {
                check_smtp_session(&app, delivery.clone());
            }
            shared.replace(app);
            info!(config = %path.display(), "configuration reloaded");
            if !later.is_empty() {
                warn!(keys = %later.join(", "), "these changes take effect only after a restart");
            }
        }
        Err(e) => {
            error!(error = %format!("{e:#}"), "reload refused; the previous configuration keeps running")
        }
    }
    systemd::ready();
}

/// Settings a reload takes but a running daemon cannot apply: the socket,
/// the number of delivery workers and the database pool are made at start.
fn needs_restart(
    old: &crate::config::Settings,
    new: &crate::config::Settings,
) -> Vec<&'static str> {
    [
        ("http.listen", old.http.listen != new.http.listen),
        (
            "http.max_connections",
            old.http.max_connections != new.http.max_connections,
        ),
        (
            "http.header_timeout, http.idle_timeout, http.shutdown_timeout",
            (
                &old.http.header_timeout,
                &old.http.idle_timeout,
                &old.http.shutdown_timeout,
            ) != (
                &new.http.header_timeout,
                &new.http.idle_timeout,
                &new.http.shutdown_timeout,
            ),
        ),
        (
            "mail.smtp.connections",
            old.mail.workers() != new.mail.workers(),
        ),
        (
            "database.max_connections",
            old.database.connections() != new.database.connections(),
        ),
    ]
    .into_iter()
    .filter_map(|(key, changed)| changed.then_some(key))
    .collect()
}

/// This machine's name, for instance ids (`/proc` may be hidden by the unit's sandbox).
fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".into())
}
