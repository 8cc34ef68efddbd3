//! `campaigns list|pause|resume` and `pause` / `resume` (all customer email).

use anyhow::Result;
use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use serde::Serialize;

use crate::app::App;
use crate::config::Trigger;
use crate::control::{self, Held, Holds};
use crate::domain::RuleKind;
use crate::local_time::{bare_time_in, business_date, business_day};
use crate::store::Hold;

/// One line of `campaigns list`.
#[derive(Debug, Serialize)]
struct Entry {
    id: String,
    /// `status_update`, `loyalty`, `voucher` or `checkin`.
    kind: &'static str,
    /// The crontab, or what triggers it.
    when: String,
    /// The next occurrence that will run (none while paused without end).
    next: Option<DateTime<Utc>>,
    /// `enabled`, `paused` or `disabled`.
    state: &'static str,
    /// Why not enabled, for people.
    held: Option<String>,
    paused: Option<Hold>,
}

fn trigger_text(trigger: &Trigger) -> String {
    match (&trigger.anniversary_of, &trigger.attribute_changed) {
        (Some(field), _) => format!("anniversary of {field}, at {}", trigger.at),
        (None, Some(field)) => match &trigger.to {
            Some(to) => format!("when an import changes {field} to {to}"),
            None => format!("when an import changes {field}"),
        },
        (None, None) => "-".to_string(),
    }
}

fn entries(app: &App, holds: &Holds, now: DateTime<Utc>) -> Vec<Entry> {
    let r = app.rules();
    let rules = r
        .campaigns
        .iter()
        .map(|c| {
            // An anniversary's daily look is no schedule the admin wrote: the trigger says when.
            let when = match (&c.trigger, &c.schedule) {
                (Some(trigger), _) => trigger_text(trigger),
                (None, Some(schedule)) => schedule.expression().to_string(),
                (None, None) => "-".to_string(),
            };
            (c.id.as_str(), c.kind.as_str(), when, c.schedule.as_ref())
        })
        .chain(r.checkins.iter().map(|c| {
            let when = c.schedule.expression().to_string();
            (
                c.id.as_str(),
                RuleKind::Checkin.as_str(),
                when,
                Some(&c.schedule),
            )
        }));
    rules
        .map(|(id, kind, when, schedule)| {
            let held = holds.of_rule(id);
            let next = schedule.and_then(|s| holds.next_run(id, s, now));
            let (state, paused) = match held {
                None => ("enabled", None),
                Some(Held::Paused(hold)) => ("paused", Some(hold.clone())),
                Some(_) => ("disabled", None),
            };
            Entry {
                id: id.to_string(),
                kind,
                when,
                next,
                state,
                held: held.map(|h| h.describe(app)),
                paused,
            }
        })
        .collect()
}

pub async fn list(app: &App, json: bool) -> Result<()> {
    // Whole seconds: occurrences found from `now` keep its fraction.
    let now = Utc::now().trunc_subsecs(0);
    let holds = Holds::load(app, now).await?;
    let entries = entries(app, &holds, now);
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(());
    }
    let tz = app.config.resolved.timezone;
    if let Some(all) = holds.everything() {
        println!("All customer email is held: {}", control::paused(app, all));
    }
    println!(
        "{:<24} {:<14} {:<40} {:<17} state",
        "id",
        "kind",
        "schedule or trigger",
        format!("next ({})", tz.name())
    );
    for e in &entries {
        println!(
            "{:<24} {:<14} {:<40} {:<17} {}",
            e.id,
            e.kind,
            e.when,
            e.next
                .map(|t| bare_time_in(t, tz))
                .unwrap_or_else(|| "-".into()),
            e.held.as_deref().unwrap_or(e.state)
        );
    }
    Ok(())
}

/// `campaigns pause ID` (`rule`) or `pause` (all customer email).
pub async fn pause(
    app: &App,
    rule: Option<&str>,
    until: Option<NaiveDate>,
    note: &str,
) -> Result<()> {
    let now = Utc::now();
    let hold = control::pause(app, rule, until, note, &super::by_whom(), now).await?;
    let what = match rule {
        Some(id) => format!("{id} is"),
        None => "all customer email is".to_string(),
    };
    let how = control::paused(app, &hold);
    let after = match rule {
        Some(_) => "its occurrences are skipped, its planned messages wait",
        None => "planned messages wait, nothing is dropped; staff email goes on",
    };
    println!("{what} {how}: {after}");
    if let Some(day) = until {
        println!(
            "it resumes by itself when {} begins ({}), or with `outreach {}resume{}`",
            business_date(app, day),
            app.config.resolved.timezone.name(),
            if rule.is_some() { "campaigns " } else { "" },
            rule.map(|r| format!(" {r}")).unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn resume(app: &App, rule: Option<&str>) -> Result<()> {
    let now = Utc::now();
    let hold = control::resume(app, rule, now).await?;
    let (what, after) = match rule {
        Some(id) => (
            id,
            "its next occurrences run; its messages that waited go out now",
        ),
        None => (
            "all customer email",
            "what waited goes out now, subject to quiet hours",
        ),
    };
    println!(
        "{what} resumed (was {} since {}); {after}",
        control::paused(app, &hold),
        business_date(app, business_day(app, hold.created_at))
    );
    Ok(())
}
