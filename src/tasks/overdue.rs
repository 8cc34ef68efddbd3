//! Calls that cannot be made by whoever has them: absences, overdue calls
//! and staff whose calls pile up. Nothing disappears in silence: a call
//! moves to a colleague on its day, or goes back to the call list with its
//! history, and an unmade call only after its manager has been told.
//!
//! - A call due on a day its staff member does not work (an absence recorded
//!   after it was planned, a staff member who left) goes to a colleague who
//!   works that day and has room; an agreed callback goes to a colleague on
//!   its day even beyond their capacity, and its owner stays. A call nobody
//!   can take that day goes back to the call list. Overdue calls of someone
//!   who is away now count as due today.
//! - An overdue call is escalated to the manager (else `business.contact_staff`,
//!   else the admin) once `escalate_after` has passed since its last day on
//!   time — or earlier, when it is about to go back to the call list.
//! - At a later pass it goes back to the call list, for a colleague, once
//!   `expire_after` has passed, or at once when its staff member is away or
//!   has so many overdue calls that they fill a day (they get no new ones).

use std::collections::HashMap;

use anyhow::Result;
use chrono::{DateTime, Days, NaiveDate, Utc};
use tracing::{info, warn};

use super::roster::Roster;
use super::{deadline, digest, staff_zone};
use crate::app::App;
use crate::store::{ListReason, NewEntry, Task, TaskKind, TaskReturn, TaskState};

/// The moment a task became overdue: the end of its last day on time, in its
/// staff member's zone. `None` for a day that does not exist there.
fn overdue_since(app: &App, task: &Task) -> Option<DateTime<Utc>> {
    (deadline(app, task) + Days::new(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_local_timezone(staff_zone(app, &task.staff_id))
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

fn duration(d: std::time::Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// Why an overdue call goes back to the call list now, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    Expired,
    PiledUp,
    Away,
    LeftStaff,
}

impl Release {
    fn describe(self) -> &'static str {
        match self {
            Release::Expired => "overdue for expire_after",
            Release::PiledUp => "their overdue calls fill a whole day",
            Release::Away => "they are away",
            Release::LeftStaff => "they are no longer on staff",
        }
    }
}

/// When (and why) an open task goes back to the call list, once escalated.
fn release_of(app: &App, roster: &Roster, task: &Task, now: DateTime<Utc>) -> Option<Release> {
    let since = overdue_since(app, task)?;
    if now < since {
        return None;
    }
    let Some(m) = roster.member(&task.staff_id) else {
        return Some(Release::LeftStaff);
    };
    let expire_after = app
        .checkin(&task.rule_id)
        .map(|rule| duration(rule.expire_after))
        .unwrap_or(chrono::Duration::days(14));
    if now - since >= expire_after {
        Some(Release::Expired)
    } else if roster.is_absent(m, m.today(now)) {
        Some(Release::Away)
    } else if roster.piled_up(m) {
        Some(Release::PiledUp)
    } else {
        None
    }
}

/// The call list entry an unmade or unplaceable call comes back as, in its
/// customer's old place in line.
async fn comeback(app: &App, task: &Task, avoid: Option<&str>) -> Result<NewEntry> {
    let list_reason = list_reason(app, task).await?;
    Ok(NewEntry {
        customer_id: task.customer_id,
        rule_id: task.rule_id.clone(),
        run_id: None,
        reason: list_reason,
        staff_id: None,
        avoid_staff_id: avoid.map(str::to_string),
        not_before: None,
        attempts: task.attempts,
        from_task_id: Some(task.id),
        detail: (task.kind != TaskKind::Call || list_reason == ListReason::BadAddress)
            .then(|| task.reason.clone()),
        place: app.store.place_of_task(task.id).await?,
    })
}

/// The reason an unmade task is on the call list again.
async fn list_reason(app: &App, task: &Task) -> Result<ListReason> {
    Ok(match task.kind {
        TaskKind::Callback => ListReason::Callback,
        TaskKind::FollowUp => ListReason::FollowUp,
        TaskKind::Call if task.rule_id == super::call_list::BAD_ADDRESS_RULE => {
            ListReason::BadAddress
        }
        TaskKind::Call => {
            let customer = app.store.customers_by_ids(&[task.customer_id]).await?.pop();
            let owner = customer.and_then(|c| c.owner);
            if owner.is_some_and(|o| app.settings().staff.iter().any(|s| s.id == o)) {
                ListReason::Regular
            } else {
                ListReason::Checkin
            }
        }
    })
}

/// Calls due on a day their staff member does not work move to a colleague
/// on the same day, or back to the call list.
pub async fn move_from_absent(app: &App, now: DateTime<Utc>) -> Result<()> {
    let mut roster = Roster::load(app, now).await?;
    let business_today = now
        .with_timezone(&app.config.resolved.timezone)
        .date_naive();
    for task in app.store.tasks(None, true).await? {
        let member = roster.member(&task.staff_id);
        let today = member.map_or(business_today, |m| m.today(now));
        let overdue = task.due_on < today;
        let day = task.due_on.max(today);
        let stays = match member {
            // Overdue calls wait for escalation, unless their staff member is away.
            Some(m) if overdue => !roster.is_absent(m, today),
            Some(m) => roster.works_on(m, day),
            None => false,
        };
        if stays {
            continue;
        }
        let promise = !overdue && task.is_agreed_for(day);
        let Some(colleague) = roster.colleague_on(day, &task.staff_id, !promise) else {
            if !overdue && !promise {
                give_back(app, &mut roster, &task, now).await?;
            }
            // Overdue calls go back after escalation; a callback nobody can
            // take on its day stays and is escalated once overdue.
            continue;
        };
        app.store
            .move_task(task.id, colleague.id(), day, now)
            .await?;
        roster.unbook(&task.staff_id, task.due_on);
        roster.book(colleague.id(), day);
        info!(task = task.id, from = %task.staff_id, to = %colleague.id(), %day, owner = %task.owner_id, "call moved: its staff member does not work that day");
    }
    Ok(())
}

/// A planned call nobody can take on its day goes back to the call list.
async fn give_back(
    app: &App,
    roster: &mut Roster<'_>,
    task: &Task,
    now: DateTime<Utc>,
) -> Result<()> {
    let entry = comeback(app, task, None).await?;
    let ret = TaskReturn {
        state: TaskState::Returned,
        note: format!(
            "{} does not work on {} and no colleague had room; back on the call list",
            task.staff_id, task.due_on
        ),
        entry,
        event: format!(
            "back on the call list: task {} of {} due {} (nobody could take it that day)",
            task.id, task.staff_id, task.due_on
        ),
    };
    if app.store.return_task(task, &ret, now).await? {
        roster.unbook(&task.staff_id, task.due_on);
        info!(task = task.id, staff = %task.staff_id, "call back on the call list: nobody works that day");
    }
    Ok(())
}

/// Where escalations for a staff member's calls go: their manager, else
/// the business contact, else the admin address.
fn manager_address(app: &App, staff_id: &str) -> String {
    let settings = app.settings();
    let find = |id: &str| settings.staff.iter().find(|s| s.id == id);
    find(staff_id)
        .and_then(|s| s.manager.as_deref())
        .or(settings
            .business
            .contact_staff
            .as_deref()
            .filter(|c| *c != staff_id))
        .and_then(find)
        .map(|m| m.email.clone())
        .unwrap_or_else(|| settings.business.admin_email())
}

/// An overdue task the manager hears about, and when it goes back.
pub struct Escalated {
    pub task: Task,
    /// `None`: at the next pass.
    pub back_on: Option<NaiveDate>,
}

/// Overdue calls are escalated to the manager, one email per manager.
pub async fn escalate(app: &App, now: DateTime<Utc>) -> Result<()> {
    let roster = Roster::load(app, now).await?;
    let mut by_manager: HashMap<String, Vec<Escalated>> = HashMap::new();
    for task in app.store.tasks(None, true).await? {
        if task.escalated_at.is_some() {
            continue;
        }
        let Some(since) = overdue_since(app, &task).filter(|s| now >= *s) else {
            continue;
        };
        let Some(durations) = app.checkin(&task.rule_id) else {
            continue;
        };
        let expire_after = duration(durations.expire_after);
        let release = release_of(app, &roster, &task, now);
        if now - since < duration(durations.escalate_after) && release.is_none() {
            continue;
        }
        let back_on = match release {
            Some(_) => None,
            None => Some(
                (since + expire_after)
                    .with_timezone(&staff_zone(app, &task.staff_id))
                    .date_naive(),
            ),
        };
        by_manager
            .entry(manager_address(app, &task.staff_id))
            .or_default()
            .push(Escalated { task, back_on });
    }
    for (to, tasks) in by_manager {
        // A manager's address that fails must hold up neither the other
        // escalations nor everyone's digest; it is retried next pass, and
        // the calls stay where they are until the manager has been told.
        if let Err(e) = digest::send_escalation(app, &to, &tasks, now).await {
            warn!(to = %to, error = %format!("{e:#}"), "overdue calls could not be escalated; will retry");
            continue;
        }
        app.store
            .mark_escalated(&tasks.iter().map(|t| t.task.id).collect::<Vec<_>>(), now)
            .await?;
    }
    Ok(())
}

/// Escalated overdue calls whose time has come go back to the call list,
/// for a colleague. Never in the pass that told the manager.
pub async fn release(app: &App, now: DateTime<Utc>) -> Result<()> {
    let roster = Roster::load(app, now).await?;
    for task in app.store.tasks(None, true).await? {
        if task.escalated_at.is_none_or(|at| at >= now) {
            continue;
        }
        let Some(why) = release_of(app, &roster, &task, now) else {
            continue;
        };
        let since = deadline(app, &task) + Days::new(1);
        let entry = comeback(app, &task, Some(&task.staff_id)).await?;
        let ret = TaskReturn {
            state: TaskState::Expired,
            note: format!(
                "expired: overdue since {since} ({}); back on the call list",
                why.describe()
            ),
            entry,
            event: format!(
                "back on the call list: task {} of {} not made (overdue since {since}, {})",
                task.id,
                task.staff_id,
                why.describe()
            ),
        };
        if app.store.return_task(&task, &ret, now).await? {
            info!(task = task.id, staff = %task.staff_id, reason = why.describe(), "unmade call back on the call list");
        }
    }
    Ok(())
}
