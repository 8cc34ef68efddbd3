//! Operator control: pausing email to customers, and stopping a run.
//!
//! A **pause** holds email to customers: all of it (`outreach pause`), or
//! one campaign or check-in rule (`outreach campaigns pause ID`, or for good
//! `enabled = false` in its config section). Held messages stay `planned` and
//! go out once the pause ends; nothing is dropped. Staff email (digests,
//! approval requests) is never held. While a rule is paused, its occurrences
//! are recorded as `skipped` with the reason and `outreach runs start`
//! refuses, saying why.
//!
//! Pauses live in the database (`holds`), so every daemon and command sees
//! the same ones. A claim looks them up, so a pause holds every claim made
//! after it; a batch claimed just before is stopped by the [`Gate`] the
//! delivery workers check right before each send. The daemon applies pauses
//! on every tick ([`apply`]): a sending run that is held is marked
//! `held_since`; when released, a run whose messages waited longer than its
//! approval timeout (or [`REAPPROVE_AFTER`] without approval) goes back to a
//! person first, since its text may no longer be right.
//!
//! A **stop** (`outreach runs stop`) ends a run for good: its planned
//! messages end `suppressed` ("stopped"), who stopped it and when is kept on
//! the run, and what is on the wire finishes and is recorded.

use std::collections::HashSet;
use std::sync::RwLock;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, NaiveDate, Utc};
use tokio::sync::Notify;
use tracing::info;

use crate::app::App;
use crate::config::ApprovalMode;
use crate::deliver::Delivery;
use crate::domain::{MessageState, RuleKind, RunState, Schedule};
use crate::local_time::{business_date, business_day, business_time, start_of_business_day};
use crate::store::{ALL_EMAIL, Hold, Run};

/// How long a run without approval may have waited for a pause before a
/// person must look at it again.
pub const REAPPROVE_AFTER: chrono::Duration = chrono::Duration::days(3);

/// The reason messages of a stopped run end `suppressed` with.
pub const STOPPED: &str = "stopped";

/// Why a rule or a run is held.
#[derive(Debug, Clone, Copy)]
pub enum Held<'a> {
    /// All customer email (`outreach pause`).
    Everything(&'a Hold),
    /// The rule itself (`outreach campaigns pause`).
    Paused(&'a Hold),
    /// `enabled = false` in the config.
    Disabled,
}

impl Held<'_> {
    /// For people: `paused until 07.01.2027 (Betriebsferien)`.
    pub fn describe(&self, app: &App) -> String {
        match self {
            Held::Everything(hold) => format!("all customer email {}", paused(app, hold)),
            Held::Paused(hold) => paused(app, hold),
            Held::Disabled => "disabled in the config (enabled = false)".to_string(),
        }
    }

    /// Since when, if known.
    fn since(&self) -> Option<DateTime<Utc>> {
        match self {
            Held::Everything(hold) | Held::Paused(hold) => Some(hold.created_at),
            Held::Disabled => None,
        }
    }
}

/// `paused until 07.01.2027 (note)` / `paused (note)`.
pub fn paused(app: &App, hold: &Hold) -> String {
    let until = hold
        .until_at
        .map(|t| format!(" until {}", business_date(app, business_day(app, t))))
        .unwrap_or_default();
    let note = if hold.note.is_empty() {
        String::new()
    } else {
        format!(" ({})", hold.note)
    };
    format!("paused{until}{note}")
}

/// The pauses in force, and the rules the config disables.
pub struct Holds {
    list: Vec<Hold>,
    disabled: HashSet<String>,
}

impl Holds {
    pub async fn load(app: &App, now: DateTime<Utc>) -> Result<Holds> {
        let disabled = app.rules().disabled_ids().map(String::from).collect();
        Ok(Holds {
            list: app.store.holds(now).await?,
            disabled,
        })
    }

    /// The pause of all customer email, if any.
    pub fn everything(&self) -> Option<&Hold> {
        self.list.iter().find(|h| h.scope == ALL_EMAIL)
    }

    /// Why this campaign or check-in rule itself is held, if it is.
    pub fn of_rule(&self, rule_id: &str) -> Option<Held<'_>> {
        if self.disabled.contains(rule_id) {
            return Some(Held::Disabled);
        }
        self.list
            .iter()
            .find(|h| h.scope == rule_id)
            .map(Held::Paused)
    }

    /// Every campaign and check-in rule held by a pause or the config, and why.
    pub fn paused_rules<'a>(&self, app: &'a App) -> Vec<(&'a str, String)> {
        app.rules()
            .ids()
            .filter_map(|id| self.of_rule(id).map(|h| (id, h.describe(app))))
            .collect()
    }

    /// When a rule with `schedule` next runs: the first occurrence after
    /// `now`, or after its pause when the pause has an end; none while it
    /// is paused for good or disabled. A pause of all customer email does
    /// not move it: runs are planned, and their messages wait.
    pub fn next_run(
        &self,
        rule_id: &str,
        schedule: &Schedule,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self.of_rule(rule_id) {
            None => schedule.next_after(now),
            Some(Held::Paused(Hold {
                until_at: Some(until),
                ..
            })) => schedule.next_after((*until - chrono::Duration::seconds(1)).max(now)),
            Some(_) => None,
        }
    }

    /// Why a run's customer email is held, if it is.
    pub fn of_run(&self, rule_id: &str) -> Option<Held<'_>> {
        self.of_rule(rule_id)
            .or_else(|| self.everything().map(Held::Everything))
    }
}

fn rule_exists(app: &App, id: &str) -> Result<()> {
    if app.campaign(id).is_some() || app.checkin(id).is_some() {
        return Ok(());
    }
    let ids: Vec<&str> = app.rules().ids().collect();
    bail!(
        "no campaign or check-in rule \"{id}\" in the config; ids: {}",
        ids.join(", ")
    )
}

/// `outreach pause` (`rule` = `None`) or `outreach campaigns pause RULE`.
/// A pause until a day lasts until that day begins (business time zone).
pub async fn pause(
    app: &App,
    rule: Option<&str>,
    until: Option<NaiveDate>,
    note: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<Hold> {
    if let Some(id) = rule {
        rule_exists(app, id)?;
        if let Some(Held::Disabled) = Holds::load(app, now).await?.of_rule(id) {
            bail!("{id} is disabled in the config (enabled = false) already; nothing changed");
        }
    }
    let until_at = match until {
        Some(day) => {
            let today = business_day(app, now);
            if day <= today {
                bail!(
                    "--until {day} is not after today ({today}, {}): a pause lasts until that day begins; give a later day",
                    app.config.resolved.timezone.name()
                );
            }
            Some(start_of_business_day(app, day))
        }
        None => None,
    };
    let hold = Hold {
        scope: rule.unwrap_or(ALL_EMAIL).to_string(),
        until_at,
        note: note.trim().to_string(),
        created_by: by.to_string(),
        created_at: now,
    };
    app.store.set_hold(&hold).await?;
    Ok(hold)
}

/// `outreach resume` / `outreach campaigns resume RULE`: ends the pause and
/// returns it.
pub async fn resume(app: &App, rule: Option<&str>, now: DateTime<Utc>) -> Result<Hold> {
    if let Some(id) = rule {
        rule_exists(app, id)?;
    }
    let holds = Holds::load(app, now).await?;
    let hold = match rule {
        Some(id) => match holds.of_rule(id) {
            Some(Held::Paused(hold)) => hold.clone(),
            Some(Held::Disabled) => bail!(
                "{id} is disabled in the config (enabled = false); set enabled = true there and reload"
            ),
            _ => bail!("{id} is not paused; nothing changed"),
        },
        None => holds
            .everything()
            .cloned()
            .ok_or_else(|| anyhow!("customer email is not paused; nothing changed"))?,
    };
    if !app.store.remove_hold(&hold.scope, now).await? {
        bail!("the pause ended just now; nothing changed");
    }
    Ok(hold)
}

/// Why a rule may not run now (paused or disabled), for `runs start` and
/// the schedule.
pub async fn rule_held(app: &App, rule_id: &str, now: DateTime<Utc>) -> Result<Option<String>> {
    Ok(Holds::load(app, now)
        .await?
        .of_rule(rule_id)
        .map(|held| held.describe(app)))
}

/// `outreach runs stop`: returns the run as it was and how many planned
/// messages were suppressed.
pub async fn stop(
    app: &App,
    run_id: i64,
    note: &str,
    by: &str,
    now: DateTime<Utc>,
) -> Result<(Run, u64)> {
    let Some(run) = app.store.run(run_id).await? else {
        bail!("no run {run_id}");
    };
    let state = run.state;
    if state.is_finished() {
        bail!("run {run_id} is {state} already; nothing to stop");
    }
    if run.rule_kind != RuleKind::Campaign {
        bail!("run {run_id} is a check-in run: it makes call tasks and sends nothing to stop");
    }
    if state == RunState::Sending
        && !app
            .store
            .run_counts(&[run_id])
            .await?
            .iter()
            .any(|c| matches!(c.state, MessageState::Planned | MessageState::Sending))
    {
        bail!(
            "run {run_id} has sent everything already (it is done at the next tick); nothing to stop"
        );
    }
    let note = match note.trim() {
        "" => String::new(),
        note => format!(": {note}"),
    };
    let detail = format!("stopped by {by} at {}{note}", business_time(app, now));
    let live = [
        RunState::Planning,
        RunState::AwaitingApproval,
        RunState::Sending,
    ];
    match app.store.stop_run(run_id, &live, by, &detail, now).await? {
        Some(suppressed) => {
            info!(run = run_id, by, suppressed, "run stopped");
            Ok((run, suppressed))
        }
        None => bail!("run {run_id} finished just now; nothing to stop"),
    }
}

/// The daemon's part, every tick: ends pauses whose day came, marks and
/// releases held runs, settles what a stop left over, and tells the
/// delivery workers.
pub async fn apply(app: &App, delivery: &Delivery, now: DateTime<Utc>) -> Result<()> {
    for ended in app.store.end_expired_holds(now).await? {
        info!(scope = %ended.scope, "a pause ended: its day came");
    }
    let holds = Holds::load(app, now).await?;
    for run in app.store.runs_in_state(RunState::Sending).await? {
        match (holds.of_run(&run.rule_id), run.held_since) {
            (Some(held), None) => {
                // Since the pause, or since the run began sending (planned or approved).
                let sending_since = run.decided_at.unwrap_or(run.created_at);
                let since = held.since().map_or(now, |s| s.max(sending_since));
                app.store.set_run_held(run.id, Some(since)).await?;
                info!(run = run.id, rule = %run.rule_id, why = %held.describe(app), "run held");
            }
            (None, Some(since)) => release(app, &run, since, now).await?,
            _ => {}
        }
    }
    let leftovers = app.store.suppress_stopped_leftovers(now).await?;
    if leftovers > 0 {
        info!(
            messages = leftovers,
            "messages given back after their run was stopped: suppressed"
        );
    }
    let stopped = app
        .store
        .runs_stopped_since(now - crate::timings::get().lease)
        .await?;
    delivery.gate.set(&holds, stopped);
    Ok(())
}

/// A pause of this run ended: it goes on, or, if its messages waited too
/// long, back to a person first.
async fn release(app: &App, run: &Run, since: DateTime<Utc>, now: DateTime<Utc>) -> Result<()> {
    let waited = now - since;
    if let Some(campaign) = app.campaign(&run.rule_id) {
        let limit = match campaign.approval {
            ApprovalMode::Required => {
                chrono::Duration::from_std(campaign.approval_timeout).unwrap_or(REAPPROVE_AFTER)
            }
            ApprovalMode::None => REAPPROVE_AFTER,
        };
        if waited > limit {
            let why = format!(
                "held by a pause since {}, longer than {}: approve again before it goes on",
                business_time(app, since),
                crate::local_time::spoken_duration(limit.to_std().unwrap_or_default())
            );
            if crate::approval::request_again(app, run, campaign, &why, since, now).await? {
                info!(run = run.id, rule = %run.rule_id, "pause ended; the run waited too long and needs approval again");
                return Ok(());
            }
        }
    }
    app.store.set_run_held(run.id, None).await?;
    info!(run = run.id, rule = %run.rule_id, "pause ended; the run goes on");
    Ok(())
}

/// What a delivery worker may do with a claimed message right before
/// sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    /// A pause: give the rest of the batch back, unsent.
    Held,
    /// A stop: the message ends `suppressed` ("stopped").
    Stopped,
}

/// The pauses and stops as the delivery workers see them, set on every tick.
#[derive(Debug, Default)]
pub struct Gate {
    state: RwLock<GateState>,
    /// Woken when something more is paused or stopped than before.
    closed_more: Notify,
}

#[derive(Debug, Default)]
struct GateState {
    everything: bool,
    rules: HashSet<String>,
    stopped: HashSet<i64>,
}

impl Gate {
    fn set(&self, holds: &Holds, stopped: Vec<i64>) {
        let state = GateState {
            everything: holds.everything().is_some(),
            rules: holds
                .list
                .iter()
                .map(|h| h.scope.clone())
                .chain(holds.disabled.iter().cloned())
                .collect(),
            stopped: stopped.into_iter().collect(),
        };
        let mut current = self.state.write().expect("gate lock is never poisoned");
        let more = (state.everything && !current.everything)
            || !state.rules.is_subset(&current.rules)
            || !state.stopped.is_subset(&current.stopped);
        *current = state;
        drop(current);
        if more {
            self.closed_more.notify_waiters();
        }
    }

    /// Resolves when more is paused or stopped than before (a worker
    /// waiting for a send slot looks at its batch again).
    pub async fn closed_more(&self) {
        self.closed_more.notified().await
    }

    /// Whether a message of this run (of this rule) may go out now.
    pub fn check(&self, run_id: i64, rule_id: Option<&str>) -> Option<Closed> {
        let state = self.state.read().expect("gate lock is never poisoned");
        if state.stopped.contains(&run_id) {
            Some(Closed::Stopped)
        } else if state.everything || rule_id.is_some_and(|r| state.rules.contains(r)) {
            Some(Closed::Held)
        } else {
            None
        }
    }
}
