//! Why planned messages wait, in words, for `status` and `runs show`:
//! "7 planned: quiet hours in Europe/Berlin until 08:00", "12 planned,
//! held: all customer email paused until 07.01.2027".

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::app::App;
use crate::control::Holds;
use crate::domain::RunState;
use crate::local_time::business_time;
use crate::store::{PlannedGroup, Run};

/// For each of `runs` with planned messages, why they wait.
pub async fn waiting(
    app: &App,
    holds: &Holds,
    runs: &[Run],
    now: DateTime<Utc>,
) -> Result<BTreeMap<i64, Vec<String>>> {
    let live: Vec<&Run> = runs
        .iter()
        .filter(|r| matches!(r.state, RunState::Sending | RunState::AwaitingApproval))
        .collect();
    let groups = app
        .store
        .planned_breakdown(&live.iter().map(|r| r.id).collect::<Vec<_>>())
        .await?;
    let mut out = BTreeMap::new();
    for run in live {
        let mine: Vec<&PlannedGroup> = groups.iter().filter(|g| g.run_id == run.id).collect();
        let total: i64 = mine.iter().map(|g| g.n).sum();
        if total == 0 {
            continue;
        }
        let lines = if run.state == RunState::AwaitingApproval {
            let until = run
                .approval_deadline
                .map(|d| format!(" (until {})", business_time(app, d)))
                .unwrap_or_default();
            vec![format!("{total} planned: waiting for approval{until}")]
        } else if let Some(held) = holds.of_run(&run.rule_id) {
            vec![format!("{total} planned, held: {}", held.describe(app))]
        } else if run.held_since.is_some() {
            vec![format!(
                "{total} planned, held: the pause ended; the daemon lets them go on (or asks for approval again) at once"
            )]
        } else {
            by_cause(app, &mine, now)
        };
        out.insert(run.id, lines);
    }
    Ok(out)
}

/// The planned messages of a sending run, by what they wait for.
fn by_cause(app: &App, groups: &[&PlannedGroup], now: DateTime<Utc>) -> Vec<String> {
    let business: Tz = app.config.resolved.timezone;
    let quiet_hours = app.config.resolved.quiet_hours;
    let mut due = 0;
    let mut quiet: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut retry: Option<(i64, DateTime<Utc>)> = None;
    let mut later: Option<(i64, DateTime<Utc>)> = None;
    let add = |slot: &mut Option<(i64, DateTime<Utc>)>, n: i64, at: DateTime<Utc>| {
        *slot = Some(match *slot {
            Some((m, first)) => (m + n, first.min(at)),
            None => (n, at),
        });
    };
    for g in groups {
        if g.not_before <= now {
            due += g.n;
            continue;
        }
        if g.reason.is_some() {
            add(&mut retry, g.n, g.not_before);
            continue;
        }
        let zone: Tz = g
            .timezone
            .as_deref()
            .and_then(|z| z.parse().ok())
            .unwrap_or(business);
        let local = g.not_before.with_timezone(&zone);
        if quiet_hours.is_some_and(|q| local.time() == q.end) {
            *quiet
                .entry((zone.name().to_string(), local.format("%H:%M").to_string()))
                .or_default() += g.n;
        } else {
            add(&mut later, g.n, g.not_before);
        }
    }
    let mut lines = Vec::new();
    if due > 0 {
        let rate = app.settings().mail.rate_per_minute;
        let limit = if rate > 0 {
            format!(" (at most {rate} a minute)")
        } else {
            String::new()
        };
        lines.push(format!("{due} planned: due now, going out{limit}"));
    }
    for ((zone, until), n) in quiet {
        lines.push(format!("{n} planned: quiet hours in {zone} until {until}"));
    }
    if let Some((n, next)) = retry {
        lines.push(format!(
            "{n} planned: waiting after a failed try, next at {}",
            business_time(app, next)
        ));
    }
    if let Some((n, next)) = later {
        lines.push(format!(
            "{n} planned: not due yet, first at {}",
            business_time(app, next)
        ));
    }
    lines
}
