//! Deciding which runs happen: schedule occurrences (including the daily
//! look for anniversaries), catch-up after downtime, manual starts.
//!
//! Occurrences come from croner in the business time zone (see
//! [`crate::domain::Schedule`]); the database records every occurrence that
//! ran (`runs`, unique per rule and occurrence), so a restart or a second
//! daemon never runs one twice. We do not use tokio-cron-scheduler's jobs:
//! they pin a zone to a fixed UTC offset (an hour off after DST, upstream
//! #107) and forget runs missed while down. The daemon's loop wakes at the
//! next computed occurrence instead (see `daemon.rs`).
//!
//! Missed while down: when a rule's latest due occurrence has no run and is
//! younger than `limits.catch_up`, it runs once (trigger `catch_up`); older
//! missed occurrences are recorded as `skipped`. A rule seen for the first
//! time starts from now: its past is not "missed".

use anyhow::Result;
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::app::App;
use crate::control::{Held, Holds};
use crate::domain::{RuleKind, RunState};
use crate::store::NewRun;

/// How many missed occurrences are looked at (and recorded as skipped) per rule.
const MAX_MISSED: usize = 1000;

/// Creates the runs that are due at `now`. Returns the ids created here.
pub async fn create_due_runs(app: &App, now: DateTime<Utc>) -> Result<Vec<i64>> {
    let mut created = Vec::new();
    let holds = Holds::load(app, now).await?;
    for (rule_id, schedule, kind) in app.rules().scheduled() {
        let armed = armed_at(app, rule_id, now).await?;
        let recorded = app.store.latest_occurrence(rule_id).await?;
        let cursor = recorded.map_or(armed, |r| r.max(armed));
        // Walk forward from the last recorded occurrence: forward iteration
        // yields a repeated wall-clock time (DST fall-back) once. Only up to
        // now: a rare schedule (29 February) costs years of searching per
        // occurrence, and this runs every tick.
        let mut due: Vec<DateTime<Utc>> = schedule
            .occurrences(cursor)
            .take_while(|t| *t <= now)
            .take(MAX_MISSED)
            .collect();
        let Some(latest_due) = due.pop() else {
            continue;
        };
        // Anything before it was missed.
        for occurrence in &due {
            record_skipped(
                app,
                rule_id,
                kind,
                *occurrence,
                "missed while the daemon was not running",
                now,
            )
            .await?;
        }
        let late = now - latest_due;
        let catch_up = chrono::Duration::from_std(app.config.resolved.catch_up).unwrap_or_default();
        // "On time" allows for the wake-up itself being a little late.
        let (trigger, runs) = if late <= chrono::Duration::minutes(2) {
            ("schedule", true)
        } else if late <= catch_up {
            ("catch_up", true)
        } else {
            ("schedule", false)
        };
        if !runs {
            warn!(rule = rule_id, occurrence = %latest_due, "missed occurrence is older than limits.catch_up; recorded as skipped");
            record_skipped(
                app,
                rule_id,
                kind,
                latest_due,
                "missed; older than limits.catch_up",
                now,
            )
            .await?;
            continue;
        }
        if let Some(held) = holds.of_rule(rule_id) {
            info!(rule = rule_id, occurrence = %latest_due, why = %held.describe(app), "occurrence skipped: the rule is paused");
            record_skipped(app, rule_id, kind, latest_due, &held.describe(app), now).await?;
            continue;
        }
        let new = NewRun {
            rule_id,
            rule_kind: kind,
            occurrence: latest_due,
            trigger,
            state: RunState::Planning,
            detail: "",
        };
        if let Some(id) = app.store.create_run(&new, now).await? {
            if trigger == "catch_up" {
                info!(rule = rule_id, run = id, occurrence = %latest_due, "catching up a run missed while the daemon was down");
            } else {
                info!(rule = rule_id, run = id, occurrence = %latest_due, "scheduled run started");
            }
            created.push(id);
        }
    }
    Ok(created)
}

async fn record_skipped(
    app: &App,
    rule_id: &str,
    kind: RuleKind,
    occurrence: DateTime<Utc>,
    why: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let run = NewRun {
        rule_id,
        rule_kind: kind,
        occurrence,
        trigger: "schedule",
        state: RunState::Skipped,
        detail: why,
    };
    app.store.create_run(&run, now).await?;
    Ok(())
}

/// When this daemon (or any sharing the database) first saw the rule.
async fn armed_at(app: &App, rule_id: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let stored = app
        .store
        .kv_get_or_insert(&format!("rule_armed:{rule_id}"), &now.to_rfc3339())
        .await?;
    Ok(DateTime::parse_from_rfc3339(&stored)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now))
}

/// `outreach runs start ID`: a run now, as if the schedule had fired.
pub async fn start_now(app: &App, rule_id: &str, now: DateTime<Utc>) -> Result<i64> {
    let kind = if app.campaign(rule_id).is_some() {
        RuleKind::Campaign
    } else if app.checkin(rule_id).is_some() {
        RuleKind::Checkin
    } else {
        anyhow::bail!("no campaign or check-in rule with id \"{rule_id}\" in the config");
    };
    match Holds::load(app, now).await?.of_rule(rule_id) {
        Some(held @ Held::Paused(_)) => anyhow::bail!(
            "{rule_id} is {}; nothing started (`outreach campaigns resume {rule_id}` ends the pause)",
            held.describe(app)
        ),
        Some(held) => anyhow::bail!("{rule_id} is {}; nothing started", held.describe(app)),
        None => {}
    }
    let run = NewRun {
        rule_id,
        rule_kind: kind,
        occurrence: now,
        trigger: "manual",
        state: RunState::Planning,
        detail: "started by hand",
    };
    app.store.create_run(&run, now).await?.ok_or_else(|| {
        anyhow::anyhow!("a run of {rule_id} was started this very instant; try again")
    })
}

/// The next instant any schedule fires, for the daemon's sleep.
pub fn next_wake(app: &App, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    app.rules()
        .scheduled()
        .filter_map(|(_, schedule, _)| schedule.next_after(now))
        .min()
}
