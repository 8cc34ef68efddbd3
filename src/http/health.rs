//! `/healthz` and the storage lines of `outreach status`: can the daemon do
//! its work right now — reach and write the database, write the outbox
//! folder or reach the SMTP server, with room left on the disks it writes.
//!
//! Probes that arrive together share one check ([`HealthCache`]): a load
//! balancer polling from several places, or a burst of probes, costs one
//! round of checks a second and never makes two file probes race each other.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use chrono::Utc;

use super::AppState;
use crate::app::App;
use crate::deliver::Delivery;
use crate::mailer::SessionFailure;

/// How long `/healthz` waits for any one check. The checks run side by side,
/// so a health checker gets its answer (503 and the reason when something is
/// away) within about this long, not after the database pool's acquire
/// timeout (10 s) or a hung file system.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// A check result younger than this answers a probe.
const FRESH: Duration = Duration::from_secs(1);
/// Less room than this on a file system the daemon writes is a failure:
/// SQLite cannot commit a page of planning, the outbox cannot take a mail.
const LOW_SPACE: u64 = 1024 * 1024;

/// Each line: `Ok` healthy, `Err` with the reason.
pub type Lines = Vec<Result<String, String>>;

/// The last check and when it ran; the lock is held while a check runs,
/// so probes arriving meanwhile wait for it and take its result.
#[derive(Default)]
pub struct HealthCache(tokio::sync::Mutex<Option<(Instant, Arc<Lines>)>>);

impl HealthCache {
    async fn lines(&self, app: &App, delivery: &Delivery) -> Arc<Lines> {
        let mut last = self.0.lock().await;
        if let Some((at, lines)) = last.as_ref()
            && at.elapsed() < FRESH
        {
            return lines.clone();
        }
        let lines = Arc::new(checks(app, delivery).await);
        *last = Some((Instant::now(), lines.clone()));
        lines
    }
}

pub async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    let app = state.shared.current();
    let lines = state.health.lines(&app, &state.delivery).await;
    let healthy = lines.iter().all(Result::is_ok);
    let text: Vec<&str> = lines
        .iter()
        .map(|line| match line {
            Ok(l) | Err(l) => l.as_str(),
        })
        .collect();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        format!(
            "{}\n{}\n",
            if healthy { "ok" } else { "unhealthy" },
            text.join("\n")
        ),
    )
}

/// The database and the mail transport, side by side, and the pauses in force.
async fn checks(app: &App, delivery: &Delivery) -> Lines {
    let (database, mail, holds) = tokio::join!(
        database(app),
        mail(app, Some(delivery)),
        tokio::time::timeout(HEALTH_CHECK_TIMEOUT, hold_lines(app))
    );
    let mut lines = vec![database, mail];
    // A pause is not a fault: shown, but the answer stays 200.
    lines.extend(
        holds
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
            .into_iter()
            .map(Ok),
    );
    lines
}

/// Lines for the pauses in force: email to customers held.
async fn hold_lines(app: &App) -> anyhow::Result<Vec<String>> {
    let holds = crate::control::Holds::load(app, Utc::now()).await?;
    let mut lines = Vec::new();
    if let Some(all) = holds.everything() {
        lines.push(format!(
            "hold: all customer email {}; planned messages wait",
            crate::control::paused(app, all)
        ));
    }
    for (id, why) in holds.paused_rules(app) {
        lines.push(format!("hold: {id} {why}"));
    }
    Ok(lines)
}

/// What `outreach status` shows under "Storage": the database, and the
/// outbox folder when mail goes to files. (A command does not create the
/// folder: run by another user, it would leave one the daemon cannot use.)
pub async fn storage(app: &App) -> Lines {
    let mut lines = vec![database(app).await];
    let mail_settings = &app.settings().mail;
    if mail_settings.transport == crate::config::Transport::File {
        lines.push(if mail_settings.file_dir.is_dir() {
            mail(app, None).await
        } else {
            Ok(format!(
                "mail: {} does not exist yet; the daemon creates it",
                mail_settings.file_dir.display()
            ))
        });
    }
    lines
}

/// The database's line: it answers, takes a write, and (SQLite) has room.
async fn database(app: &App) -> Result<String, String> {
    let probe = async {
        app.store.ping().await?;
        app.store.write_probe(Utc::now()).await
    };
    match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("database: {e:#}")),
        Err(_) => {
            return Err(format!(
                "database: no answer within {} s",
                HEALTH_CHECK_TIMEOUT.as_secs()
            ));
        }
    }
    if let Some(file) = app.store.sqlite_file()
        && let Some(low) = low_space(file.parent().unwrap_or(Path::new(".")))
    {
        return Err(format!("database: {low}; writes will fail"));
    }
    Ok("database: reachable, takes writes".to_string())
}

/// Why `dir`'s file system is too full to write to, if it is.
fn low_space(dir: &Path) -> Option<String> {
    let free = free_bytes(dir).ok()?;
    (free < LOW_SPACE).then(|| {
        format!(
            "only {} KiB free on the file system of {}",
            free / 1024,
            dir.display()
        )
    })
}

/// Bytes an unprivileged user may still write on `dir`'s file system.
#[allow(unsafe_code)]
fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: an all-zero statvfs is a valid value of this plain C struct.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: statvfs only writes the struct it is given; `path` is a valid C string.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

/// The mail transport's line. For SMTP, a session the daemon could not open
/// (TLS, login) counts, not just whether the port answers.
async fn mail(app: &App, delivery: Option<&Delivery>) -> Result<String, String> {
    let mail = &app.settings().mail;
    match mail.transport {
        crate::config::Transport::File => {
            // File system calls cannot be cancelled: the probe runs on a
            // blocking thread, and while one hangs (a dead network mount)
            // no second one is started.
            static PROBING: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            use std::sync::atomic::Ordering;
            let dir = mail.file_dir.clone();
            if PROBING.swap(true, Ordering::AcqRel) {
                return Err(format!(
                    "mail: the outbox folder {} did not answer (an earlier check still waits); messages wait in the queue",
                    dir.display()
                ));
            }
            struct Done;
            impl Drop for Done {
                fn drop(&mut self) {
                    PROBING.store(false, Ordering::Release);
                }
            }
            let probe = tokio::task::spawn_blocking({
                let dir = dir.clone();
                move || {
                    let _done = Done;
                    crate::mailer::outbox_writable(&dir)?;
                    Ok::<_, anyhow::Error>(low_space(&dir))
                }
            });
            match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, probe).await {
                Ok(Ok(Ok(None))) => Ok(format!("mail: writing files to {}", dir.display())),
                Ok(Ok(Ok(Some(low)))) => Err(format!("mail: {low}; messages wait in the queue")),
                Ok(Ok(Err(e))) => Err(format!("mail: {e:#}; messages wait in the queue")),
                Ok(Err(e)) => Err(format!("mail: checking the outbox folder failed: {e}")),
                Err(_) => Err(format!(
                    "mail: the outbox folder {} did not answer within {} s; messages wait in the queue",
                    dir.display(),
                    HEALTH_CHECK_TIMEOUT.as_secs()
                )),
            }
        }
        crate::config::Transport::Smtp => {
            // A TLS or login failure stands until a session opens again; a
            // server that could not be reached is looked at afresh below.
            if let Some(failure) = delivery
                .and_then(Delivery::session_failure)
                .filter(|f| !matches!(f, SessionFailure::Unreachable(_)))
            {
                return Err(format!("smtp: {failure}; messages wait in the queue"));
            }
            let addr = (mail.smtp.host.as_str(), mail.smtp.port);
            match tokio::time::timeout(HEALTH_CHECK_TIMEOUT, tokio::net::TcpStream::connect(addr))
                .await
            {
                Ok(Ok(_)) => Ok(format!(
                    "smtp: {}:{} reachable",
                    mail.smtp.host, mail.smtp.port
                )),
                _ => Err(format!(
                    "smtp: {}:{} not reachable; messages wait in the queue",
                    mail.smtp.host, mail.smtp.port
                )),
            }
        }
    }
}
