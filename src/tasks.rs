//! Check-ins: the personal part, handed to people.
//!
//! A `[[checkin]]` run never emails a customer. It puts the customers the
//! audience matches — who may be called, have no open call and were not
//! personally contacted within `min_days_between_personal_contacts` — on the
//! call list ([`call_list`]), and records why the others were left out. Each
//! working day every staff member's list is filled from the call list up to
//! their `daily_capacity`, counting everything due that day ([`roster`]).
//! Staff get one digest email per working day at their `digest_at`
//! ([`digest`]) and record each call's outcome on the task page or with
//! `outreach tasks done` ([`outcomes`]). Calls that cannot be made by whoever
//! has them move to a colleague or go back to the call list, never silently
//! ([`overdue`]); who is away when is recorded in [`absences`]; managers get
//! a weekly summary of the call list ([`summary`]).
//!
//! A task is due on its planned day; staff may call until `due_in` after it
//! was made. After that it is overdue.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};

use crate::app::App;
use crate::store::{Task, TaskKind, TaskState};

pub mod absences;
pub mod call_list;
pub mod digest;
pub mod outcomes;
pub mod overdue;
pub mod roster;
pub mod summary;
pub mod view;

pub use outcomes::{CallOutcome, OutcomeError, record_outcome};

/// A staff member's time zone (the business's for someone no longer in the config).
pub fn staff_zone(app: &App, staff_id: &str) -> chrono_tz::Tz {
    app.config
        .resolved
        .staff
        .get(staff_id)
        .map(|r| r.timezone)
        .unwrap_or(app.config.resolved.timezone)
}

/// Whether an open task's last day on time has passed, by its staff
/// member's own calendar (the business's for someone no longer in the config).
pub fn is_overdue(app: &App, task: &Task, now: DateTime<Utc>) -> bool {
    let tz = staff_zone(app, &task.staff_id);
    task.state == TaskState::Open && now.with_timezone(&tz).date_naive() > deadline(app, task)
}

/// The last day a call is on time: its planned day, or `due_in` after the
/// task was made if that is later — staff may call any day in between. An
/// agreed callback is on time on its day only.
pub fn deadline(app: &App, task: &Task) -> NaiveDate {
    if task.kind == TaskKind::Callback {
        return task.due_on;
    }
    let tz = staff_zone(app, &task.staff_id);
    let due_in_days = app
        .checkin(&task.rule_id)
        .map(|rule| rule.due_in.as_secs() / 86_400)
        .unwrap_or(0);
    let by_due_in =
        task.created_at.with_timezone(&tz).date_naive() + chrono::Days::new(due_in_days);
    task.due_on.max(by_due_in)
}

/// Time-driven check-in work, in this order: calls of staff who are away
/// move, overdue calls are escalated and, at a later pass, go back to the
/// call list; the call list is tidied and every list filled; then digests
/// and weekly summaries go out.
pub async fn housekeeping(app: &App, now: DateTime<Utc>) -> Result<()> {
    overdue::move_from_absent(app, now).await?;
    overdue::escalate(app, now).await?;
    overdue::release(app, now).await?;
    call_list::prune(app, now).await?;
    call_list::plan(app, now).await?;
    digest::send_due(app, now).await?;
    summary::send_weekly(app, now).await
}
