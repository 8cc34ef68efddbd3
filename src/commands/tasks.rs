//! `tasks list|done|digest`.

use anyhow::{Result, anyhow, bail};
use chrono::{NaiveDate, Utc};

use crate::app::App;
use crate::store::TaskState;
use crate::tasks::digest::SentNow;
use crate::tasks::{CallOutcome, OutcomeError};

pub async fn list(app: &App, staff: Option<&str>, only_open: bool, json: bool) -> Result<()> {
    if let Some(s) = staff
        && !app.settings().staff.iter().any(|x| x.id == s)
    {
        bail!("unknown staff id \"{s}\"");
    }
    let tasks = app.store.tasks(staff, only_open).await?;
    let customers = app
        .store
        .customers_by_ids(&tasks.iter().map(|t| t.customer_id).collect::<Vec<_>>())
        .await?;
    if json {
        let out: Vec<_> = tasks
            .iter()
            .map(|t| {
                let c = customers.iter().find(|c| c.id == t.customer_id);
                serde_json::json!({ "task": t, "customer": c.map(|c| c.label()), "phone": c.and_then(|c| c.phone.clone()) })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if tasks.is_empty() {
        println!("no tasks");
    }
    let now = Utc::now();
    for t in &tasks {
        let c = customers.iter().find(|c| c.id == t.customer_id);
        let overdue = if crate::tasks::is_overdue(app, t, now) {
            " OVERDUE"
        } else {
            ""
        };
        println!(
            "task {:<5} {:<9} {:<8} due {}{overdue}  {} {}  — {}{}",
            t.id,
            t.kind,
            t.state,
            t.due_on,
            t.staff_id,
            c.map(|c| format!("{} {}", c.label(), c.phone.as_deref().unwrap_or("")))
                .unwrap_or_default(),
            t.reason,
            t.outcome
                .as_ref()
                .map(|o| format!(" [{o}]"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

pub async fn done(
    app: &App,
    task: i64,
    outcome: &str,
    note: Option<&str>,
    callback_on: Option<NaiveDate>,
) -> Result<()> {
    if outcome.parse::<CallOutcome>().is_err() {
        return Err(OutcomeError::Unknown(outcome.to_string()).into());
    }
    let Some(before) = app.store.task(task).await? else {
        bail!("no task {task}");
    };
    if crate::tasks::record_outcome(app, task, outcome, note, callback_on, Utc::now()).await? {
        println!("task {task}: {outcome} recorded");
    } else if matches!(before.state, TaskState::Expired | TaskState::Returned) {
        println!(
            "task {task} went back to the call list ({}); nothing recorded",
            before.note.as_deref().unwrap_or("not made in time")
        );
    } else {
        println!("task {task}: an outcome was already recorded; nothing changed");
    }
    Ok(())
}

pub async fn digest(app: &App, staff: Option<&str>, again: bool) -> Result<()> {
    let now = Utc::now();
    let members: Vec<_> = app
        .settings()
        .staff
        .iter()
        .filter(|s| staff.is_none_or(|id| s.id == id))
        .collect();
    if members.is_empty() {
        return Err(anyhow!(
            "unknown staff id \"{}\"",
            staff.unwrap_or_default()
        ));
    }
    for s in members {
        match crate::tasks::digest::send_now(app, s, again, now).await? {
            SentNow::Sent => println!("digest sent to {} <{}>", s.id, s.email),
            SentNow::NothingDue => println!("{}: no open tasks due, no digest", s.id),
            SentNow::AlreadySent(at) => println!(
                "{}: today's digest went out at {}; not sent again (--again sends it anyway)",
                s.id,
                crate::local_time::time_in(at, crate::tasks::staff_zone(app, &s.id))
            ),
        }
    }
    Ok(())
}
