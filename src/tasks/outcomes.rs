//! What staff record after a call, and what follows from it.
//!
//! - `reached`: the customer's last personal contact is now.
//! - `not_reached`: the same task comes back on the caller's next working
//!   day, up to `max_attempts` tries.
//! - `callback`: a promise for a day. It must be a day the business is open
//!   and the caller works; otherwise it is refused with the next possible
//!   day. The callback keeps that day and its owner (the caller).
//! - `needs_help`: a follow-up for someone else: the caller's manager, else
//!   `business.contact_staff`, else the colleague with the most room. It is
//!   due on their next working day if their list has room, else it waits
//!   first in line on the call list.
//! - `do_not_call`: remembered on the customer.

use anyhow::{Result, anyhow};
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::{Value, context};
use tracing::info;

use super::roster::{HORIZON_DAYS, Member, Roster};
use crate::app::App;
pub use crate::domain::CallOutcome;
use crate::message::render::local_date;
use crate::store::{
    FollowUp, ListReason, NewEntry, NewTask, OutcomeChange, Task, TaskKind, TaskState,
};

/// An outcome that cannot be recorded as given; the staff member can fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutcomeError {
    #[error(
        "unknown outcome \"{0}\"; use one of: reached, not_reached, callback, needs_help, do_not_call"
    )]
    Unknown(String),
    #[error("callback needs a date (YYYY-MM-DD)")]
    CallbackWithoutDate,
    #[error("the callback date {0} is in the past")]
    CallbackInPast(NaiveDate),
    #[error("{day} is a closing day of the business; {}", next_day_en(*.next))]
    ClosedDay {
        day: NaiveDate,
        next: Option<NaiveDate>,
    },
    #[error("{name} does not work on {day}; {}", next_day_en(*.next))]
    DayOff {
        day: NaiveDate,
        name: String,
        next: Option<NaiveDate>,
    },
}

fn next_day_en(next: Option<NaiveDate>) -> String {
    match next {
        Some(d) => format!("the next possible day is {d}"),
        None => format!("no possible day in the next {HORIZON_DAYS} days"),
    }
}

impl OutcomeError {
    /// What the task page shows about the mistake: which one (`key`), and
    /// the days and the name it is about, written as the reader writes dates.
    pub fn page_problem(&self, locale: &str) -> Value {
        let date = |d: &NaiveDate| local_date(*d, locale);
        let (key, day, next, name) = match self {
            OutcomeError::Unknown(_) => ("unknown_outcome", None, None, None),
            OutcomeError::CallbackWithoutDate => ("callback_date_missing", None, None, None),
            OutcomeError::CallbackInPast(d) => ("callback_date_past", Some(date(d)), None, None),
            OutcomeError::ClosedDay { day, next } => (
                "callback_closed_day",
                Some(date(day)),
                next.as_ref().map(date),
                None,
            ),
            OutcomeError::DayOff { day, name, next } => (
                "callback_day_off",
                Some(date(day)),
                next.as_ref().map(date),
                Some(name.clone()),
            ),
        };
        context! { key, day, next, name }
    }
}

/// Checks a callback day against the calendar of the one who agreed it.
fn check_callback_day(
    app: &App,
    roster: &Roster,
    caller: Option<Member<'_>>,
    day: NaiveDate,
    today: NaiveDate,
) -> Result<(), OutcomeError> {
    if day < today {
        return Err(OutcomeError::CallbackInPast(day));
    }
    let next = |m: Option<Member<'_>>| match m {
        Some(m) => roster.working_day_from(m, day),
        None => Some(app.config.resolved.closed.next_open(day)),
    };
    if app.config.resolved.closed.is_closed(day) {
        return Err(OutcomeError::ClosedDay {
            day,
            next: next(caller),
        });
    }
    match caller {
        Some(m) if !roster.works_on(m, day) => Err(OutcomeError::DayOff {
            day,
            name: m.staff.name.clone(),
            next: next(caller),
        }),
        _ => Ok(()),
    }
}

/// Where a "needs help" from a caller goes.
pub enum HelpGoesTo<'a> {
    /// On this colleague's list, due that day.
    Colleague(Member<'a>, NaiveDate),
    /// First in line on the call list: kept for `helper` (from `from`) when
    /// there is one whose list is full, else for whoever has room.
    CallList {
        helper: Option<Member<'a>>,
        from: Option<NaiveDate>,
    },
}

impl<'a> HelpGoesTo<'a> {
    /// Decided as the outcome will be, so that the task page names the
    /// same place the follow-up then goes to.
    pub fn decide(app: &App, roster: &Roster<'a>, caller: &str, today: NaiveDate) -> Self {
        let helper = helper(app, roster, caller, today);
        let from = helper.and_then(|m| roster.next_working_day(m, today));
        match (helper, from) {
            (Some(m), Some(day)) if roster.room(m, day) > 0 => HelpGoesTo::Colleague(m, day),
            _ => HelpGoesTo::CallList { helper, from },
        }
    }
}

/// Who a "needs help" follow-up goes to: never the caller.
fn helper<'a>(
    app: &App,
    roster: &Roster<'a>,
    caller: &str,
    today: NaiveDate,
) -> Option<Member<'a>> {
    // Someone with no capacity takes no calls, follow-ups included.
    let named = |id: Option<&str>| {
        id.filter(|id| *id != caller)
            .and_then(|id| roster.member(id))
            .filter(|m| m.staff.daily_capacity > 0)
    };
    let manager = roster
        .member(caller)
        .and_then(|m| m.staff.manager.as_deref());
    named(manager)
        .or_else(|| named(app.settings().business.contact_staff.as_deref()))
        .or_else(|| {
            roster
                .members()
                .iter()
                .copied()
                .filter(|m| m.id() != caller && m.staff.daily_capacity > 0)
                .filter_map(|m| Some((roster.working_day_from(m, today)?, m)))
                .min_by_key(|(day, m)| (*day, -roster.room(*m, *day), m.id().to_string()))
                .map(|(_, m)| m)
        })
}

/// What an outcome does, decided before anything is written.
pub fn outcome_change(
    app: &App,
    roster: &Roster,
    task: &Task,
    outcome: CallOutcome,
    note: Option<&str>,
    callback_on: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<OutcomeChange, OutcomeError> {
    let rule = app.checkin(&task.rule_id);
    let tags = |pick: fn(&crate::config::OutcomeTags) -> &Vec<String>| {
        rule.map(|r| pick(&r.outcome_tags).clone())
            .unwrap_or_default()
    };
    let caller = roster.member(&task.staff_id);
    let today = caller.map(|m| m.today(now)).unwrap_or_else(|| {
        now.with_timezone(&app.config.resolved.timezone)
            .date_naive()
    });
    let note_text = note.map(|n| format!(": {n}")).unwrap_or_default();
    let mut change = OutcomeChange {
        event: format!("{outcome} (task {}, {}){note_text}", task.id, task.staff_id),
        ..OutcomeChange::default()
    };
    match outcome {
        CallOutcome::Reached => {
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.reached);
        }
        CallOutcome::NotReached => {
            let max = rule.map(|r| r.max_attempts).unwrap_or(3);
            if (task.attempts as u32) + 1 < max {
                let from = today.max(task.due_on);
                change.retry_on = Some(
                    caller
                        .and_then(|m| roster.next_working_day(m, from))
                        .unwrap_or(from + chrono::Days::new(1)),
                );
            }
            change.add_tags = tags(|t| &t.not_reached);
        }
        CallOutcome::Callback => {
            let day = callback_on.ok_or(OutcomeError::CallbackWithoutDate)?;
            check_callback_day(app, roster, caller, day, today)?;
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.callback);
            change.follow_up = Some(FollowUp::Task(NewTask {
                rule_id: task.rule_id.clone(),
                run_id: None,
                customer_id: task.customer_id,
                staff_id: task.staff_id.clone(),
                owner_id: task.staff_id.clone(),
                kind: TaskKind::Callback,
                // The note stays with this task and its history entry: a
                // reason is shown wherever the task is, and is no place for it.
                reason: "callback agreed".into(),
                due_on: day,
                agreed_on: Some(day),
                attempts: 0,
                parent_id: Some(task.id),
            }));
        }
        CallOutcome::NeedsHelp => {
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.needs_help);
            let reason = format!("needs help (call by {})", task.staff_id);
            change.follow_up = Some(
                match HelpGoesTo::decide(app, roster, &task.staff_id, today) {
                    HelpGoesTo::Colleague(m, day) => FollowUp::Task(NewTask {
                        rule_id: task.rule_id.clone(),
                        run_id: None,
                        customer_id: task.customer_id,
                        staff_id: m.id().to_string(),
                        owner_id: m.id().to_string(),
                        kind: TaskKind::FollowUp,
                        reason,
                        due_on: day,
                        agreed_on: None,
                        attempts: 0,
                        parent_id: Some(task.id),
                    }),
                    // No room (or nobody else on staff): first in line on the call list.
                    HelpGoesTo::CallList { helper, from } => FollowUp::Waiting(NewEntry {
                        customer_id: task.customer_id,
                        rule_id: task.rule_id.clone(),
                        run_id: None,
                        reason: ListReason::FollowUp,
                        staff_id: helper.map(|m| m.id().to_string()),
                        avoid_staff_id: helper.map(|_| task.staff_id.clone()),
                        not_before: from,
                        attempts: 0,
                        from_task_id: Some(task.id),
                        detail: Some(reason),
                        place: None,
                    }),
                },
            );
        }
        CallOutcome::DoNotCall => {
            change.personal_contact = true;
            change.do_not_call = true;
            change.add_tags = tags(|t| &t.do_not_call);
        }
    }
    Ok(change)
}

/// Records an outcome; `Ok(false)` if the task was not open any more (an
/// outcome recorded already, or it went back to the call list). Mistakes
/// the staff member can fix are [`OutcomeError`]s.
pub async fn record_outcome(
    app: &App,
    task_id: i64,
    outcome: &str,
    note: Option<&str>,
    callback_on: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let outcome: CallOutcome = outcome
        .parse()
        .map_err(|_| OutcomeError::Unknown(outcome.to_string()))?;
    let task = app
        .store
        .task(task_id)
        .await?
        .ok_or_else(|| anyhow!("no task {task_id}"))?;
    if task.state != TaskState::Open {
        return Ok(false);
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    let roster = Roster::load(app, now).await?;
    let change = outcome_change(app, &roster, &task, outcome, note, callback_on, now)?;
    let applied = app
        .store
        .apply_outcome(&task, outcome, note, &change, now)
        .await?;
    if applied {
        info!(
            task = task.id,
            customer = task.customer_id,
            %outcome,
            "call outcome recorded"
        );
    }
    Ok(applied)
}
