//! Retention: personal data is kept only as long as it serves its purpose
//! (`[retention]`). Once a day the daemon deletes the outbox folder's
//! `.eml` files older than `outbox_files` and erases what was written about
//! contacts older than `details` — call notes, SMTP replies, imported values
//! that changed — keeping what proves consent and contact: dates, kinds,
//! states and outcomes ([`crate::store::Store::erase_details_before`]).

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use tracing::info;

use crate::app::App;

/// The business day on which the last pass ran, kept in `kv` (restarts and
/// several daemons on one database run it once a day, not once each).
const LAST_PASS_KV: &str = "retention_last_day";

/// Runs the pass unless it ran already on the business's day of `now`;
/// one that failed is tried again the next day, not at every tick.
pub async fn daily(app: &App, now: DateTime<Utc>) -> Result<()> {
    let today = now
        .with_timezone(&app.config.resolved.timezone)
        .date_naive()
        .to_string();
    if app.store.kv_get(LAST_PASS_KV).await?.as_deref() == Some(today.as_str()) {
        return Ok(());
    }
    let pass = run(app, now).await;
    app.store.kv_set(LAST_PASS_KV, &today).await?;
    pass
}

/// One pass, whatever day it is.
pub async fn run(app: &App, now: DateTime<Utc>) -> Result<()> {
    let ages = app.config.resolved.retention;
    let dir = app.settings().mail.file_dir.clone();
    let before: std::time::SystemTime = cutoff(now, ages.outbox_files).into();
    let files =
        tokio::task::spawn_blocking(move || crate::mail_files::delete_older_than(&dir, before))
            .await
            .context("deleting old outbox files")??;
    let erased = app
        .store
        .erase_details_before(cutoff(now, ages.details))
        .await?;
    if files > 0 || erased != Default::default() {
        info!(
            outbox_files = files,
            history_details = erased.event_details,
            call_notes = erased.call_notes,
            smtp_replies = erased.smtp_replies,
            report_details = erased.report_details,
            "retention: deleted what was past its age"
        );
    }
    Ok(())
}

/// `age` before `now`; the beginning of time for an age longer than that.
fn cutoff(now: DateTime<Utc>, age: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| now.checked_sub_signed(age))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
