//! How far the team is from having called everyone: the call list per
//! reason and the day everyone waiting will have been called at the current
//! capacity. Shown by `outreach status` and `outreach runs show`, and sent
//! to managers once a week.
//!
//! The expected day is worked out day by day with the staff's working days,
//! absences, closing days and capacities known now: calls already planned
//! are made first, each staff member's own regulars (and follow-ups) wait for them
//! while they are present, and someone whose overdue calls fill a whole day
//! counts as calling nobody. Calls that are added later (callbacks, retries,
//! calls that come back unmade) push it out.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write;

use anyhow::Result;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;
use tracing::{info, warn};

use super::digest::{send, staff_locale};
use super::roster::Roster;
use crate::app::App;
use crate::config::Assign;
use crate::message::render::local_date;
use crate::store::{CallListCount, ListReason};

/// How far ahead the expected day is looked for.
const FORECAST_DAYS: u64 = 366;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallListSummary {
    pub waiting: i64,
    pub by_reason: BTreeMap<ListReason, i64>,
    /// Of those waiting, how many came back because a call was not made.
    pub returned: i64,
    /// When everyone waiting will have been called at the current capacity;
    /// `None` if nobody waits or not within a year.
    pub all_called_by: Option<NaiveDate>,
}

pub async fn summarize(app: &App, now: DateTime<Utc>) -> Result<CallListSummary> {
    let counts = app.store.call_list_counts().await?;
    let roster = Roster::load(app, now).await?;
    let mut summary = CallListSummary::default();
    for c in &counts {
        summary.waiting += c.n;
        *summary.by_reason.entry(c.reason).or_default() += c.n;
        if c.returned {
            summary.returned += c.n;
        }
    }
    if summary.waiting > 0 {
        summary.all_called_by = forecast(app, &roster, &counts);
    }
    Ok(summary)
}

/// Who keeps a waiting entry for themselves while present, if anyone.
/// Nobody keeps anything while their own calls pile up: theirs go to colleagues.
fn keeper(app: &App, roster: &Roster, c: &CallListCount) -> Option<String> {
    let least_loaded = app
        .checkin(&c.rule_id)
        .is_some_and(|r| r.assign == Assign::LeastLoaded);
    let kept = match c.reason {
        ListReason::Callback | ListReason::FollowUp => c.staff_id.clone(),
        ListReason::Regular | ListReason::Checkin if least_loaded => None,
        ListReason::Regular | ListReason::Checkin | ListReason::BadAddress => c.owner.clone(),
    };
    kept.filter(|k| c.avoid_staff_id.as_deref() != Some(k))
        .filter(|k| {
            roster
                .member(k)
                .is_some_and(|m| m.staff.daily_capacity > 0 && !roster.piled_up(m))
        })
}

/// The day the last one waiting is planned, taking the days one by one.
fn forecast(app: &App, roster: &Roster, counts: &[CallListCount]) -> Option<NaiveDate> {
    let mut kept: HashMap<String, i64> = HashMap::new();
    let mut shared = 0;
    for c in counts {
        match keeper(app, roster, c) {
            Some(k) => *kept.entry(k).or_default() += c.n,
            None => shared += c.n,
        }
    }
    // Each member from the next day they call, with the calls already on
    // their lists from that day on; earlier ones are made before. Someone
    // whose calls pile up calls nobody.
    let mut members: Vec<_> = roster
        .members()
        .iter()
        .filter(|m| !roster.piled_up(**m))
        .filter_map(|m| {
            let first = roster.next_list_day(*m)?;
            let before = roster.list_size(m.id(), first - Days::new(1));
            Some((*m, first, roster.open_count(m.id()) - before))
        })
        .collect();
    let start = members.iter().map(|(_, day, _)| *day).min()?;
    for day in (0..FORECAST_DAYS).map(|i| start + Days::new(i)) {
        let mut free = Vec::new();
        for (m, first, open) in &mut members {
            if day < *first || !roster.works_on(*m, day) {
                continue;
            }
            let mut room = i64::from(m.staff.daily_capacity);
            let done = (*open).min(room);
            *open -= done;
            room -= done;
            let own = kept.entry(m.id().to_string()).or_default();
            let take = (*own).min(room);
            *own -= take;
            free.push(room - take);
        }
        // What nobody present keeps is for anyone with room that day.
        let mut room: i64 = free.iter().sum();
        let take = room.min(shared);
        shared -= take;
        room -= take;
        for (keeper, n) in kept.iter_mut() {
            if roster
                .member(keeper)
                .is_none_or(|m| roster.is_absent(m, day))
            {
                let take = (*n).min(room);
                *n -= take;
                room -= take;
            }
        }
        if shared == 0 && kept.values().all(|n| *n == 0) {
            return Some(day);
        }
    }
    None
}

/// The call list in a few lines, for the admin (`status`, `runs show`).
pub fn describe(summary: &CallListSummary) -> String {
    let mut out = String::new();
    if summary.waiting == 0 {
        out.push_str("Nobody is waiting on the call list.\n");
        return out;
    }
    let _ = writeln!(out, "{} waiting on the call list:", summary.waiting);
    for (reason, n) in &summary.by_reason {
        let _ = writeln!(out, "- {}: {n}", reason.describe());
    }
    if summary.returned > 0 {
        let _ = writeln!(
            out,
            "Of these, back because a call was not made: {}",
            summary.returned
        );
    }
    let _ = match summary.all_called_by {
        Some(day) => writeln!(
            out,
            "At the current capacity, everyone will have been called by {day}."
        ),
        None => writeln!(
            out,
            "At the current capacity, not everyone will have been called within a year."
        ),
    };
    out
}

/// Once a week (on a manager's first working day of it they are around for,
/// at their `digest_at`): the call list, and each staff member's open and
/// overdue calls. Managers are everyone named as a `manager`, and the
/// business contact.
pub async fn send_weekly(app: &App, now: DateTime<Utc>) -> Result<()> {
    let settings = app.settings();
    if app.rules().checkins.is_empty() {
        return Ok(());
    }
    let managers: BTreeSet<&str> = settings
        .staff
        .iter()
        .filter_map(|s| s.manager.as_deref())
        .chain(settings.business.contact_staff.as_deref())
        .collect();
    let roster = Roster::load(app, now).await?;
    let mut summary = None;
    for id in managers {
        let Some(m) = roster.member(id) else { continue };
        let local = now.with_timezone(&m.rules.timezone);
        let today = local.date_naive();
        if !roster.works_on(m, today) || local.time() < m.rules.digest_at {
            continue;
        }
        let week = today.iso_week();
        let key = format!("weekly-summary:{id}:{}-W{:02}", week.year(), week.week());
        if !app.store.claim_notice(&key, now).await? {
            continue;
        }
        let summary = match &summary {
            Some(s) => s,
            None => summary.insert(summarize(app, now).await?),
        };
        if let Err(e) = send_summary(app, &roster, m.staff, summary).await {
            warn!(to = %m.staff.email, error = %format!("{e:#}"), "weekly call list summary could not be sent; will retry");
            app.store.clear_notice(&key).await?;
        }
    }
    Ok(())
}

/// What the `call_list_summary` template sees.
pub fn summary_context(
    manager: &str,
    summary: &CallListSummary,
    staff: Vec<Value>,
    locale: &str,
) -> Value {
    let reasons: Vec<Value> = summary
        .by_reason
        .iter()
        .map(|(reason, n)| context! { reason => reason.as_str(), n })
        .collect();
    context! {
        manager,
        waiting => summary.waiting,
        reasons,
        returned => summary.returned,
        all_called_by => summary.all_called_by.map(|d| local_date(d, locale)),
        staff,
    }
}

async fn send_summary(
    app: &App,
    roster: &Roster<'_>,
    to: &crate::config::Staff,
    summary: &CallListSummary,
) -> Result<()> {
    let locale = app
        .templates
        .locale_for("call_list_summary", "md", Some(staff_locale(app, to)));
    let staff = roster
        .members()
        .iter()
        .map(|m| {
            context! {
                name => &m.staff.name,
                open => roster.open_count(m.id()),
                overdue => roster.overdue_count(*m),
            }
        })
        .collect();
    let rendered = app.templates.render_staff_email(
        "call_list_summary",
        Some(&locale),
        &summary_context(&to.name, summary, staff, &locale),
    )?;
    let message = crate::message::compose::staff_email(
        &app.config,
        &to.email,
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        None,
    )?;
    send(app, &message).await?;
    info!(to = %to.id, waiting = summary.waiting, "weekly call list summary sent");
    Ok(())
}
