//! `runs show RUN`: who got what. Counts by state and reason, why planned
//! messages wait, and every recipient with state, reason and time; for a
//! check-in run, the tasks it made and who was left out, and why.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use chrono::Utc;

use crate::app::App;
use crate::control::Holds;
use crate::domain::MessageState;
use crate::local_time::{bare_time_in, business_time};
use crate::store::{Recipient, Run, Task};

pub async fn show(
    app: &App,
    run_id: i64,
    state: Option<MessageState>,
    reason: Option<&str>,
    json: bool,
) -> Result<()> {
    let Some(run) = app.store.run(run_id).await? else {
        bail!("no run {run_id}");
    };
    let now = Utc::now();
    let counts = app.store.run_counts(&[run.id]).await?;
    let holds = Holds::load(app, now).await?;
    let waiting = super::explain::waiting(app, &holds, std::slice::from_ref(&run), now)
        .await?
        .remove(&run.id)
        .unwrap_or_default();
    let recipients = app
        .store
        .run_recipients(run.id, state.map(MessageState::as_str), reason)
        .await?;
    let checkin = if run.rule_kind == "checkin" {
        Some((
            app.store.run_tasks(run.id).await?,
            app.store.checkin_skip_counts(run.id).await?,
        ))
    } else {
        None
    };
    if json {
        let doc = serde_json::json!({
            "run": run,
            "counts": counts,
            "waiting": waiting,
            "recipients": recipients,
            "checkin": checkin.as_ref().map(|(tasks, left_out)| serde_json::json!({
                "tasks": tasks,
                "left_out": left_out.iter().cloned().collect::<BTreeMap<_, _>>(),
            })),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_header(app, &run);
    if !counts.is_empty() {
        println!("Messages:");
        for c in &counts {
            println!(
                "  {:<11} {:>7}  {}",
                c.state,
                c.n,
                c.reason.as_deref().unwrap_or("")
            );
        }
    }
    if !waiting.is_empty() {
        println!("Waiting:");
        for line in &waiting {
            println!("  {line}");
        }
    }
    if let Some((tasks, left_out)) = &checkin {
        print_checkin(app, tasks, left_out).await?;
    } else {
        print_recipients(app, &recipients, state, reason);
    }
    Ok(())
}

fn print_header(app: &App, run: &Run) {
    let kind = app
        .campaign(&run.rule_id)
        .map(|c| c.kind.as_str())
        .unwrap_or(&run.rule_kind);
    println!(
        "run {} of {} ({kind}): {}, {} for {}",
        run.id,
        run.rule_id,
        run.state,
        run.trigger,
        business_time(app, run.occurrence)
    );
    if !run.detail.is_empty() {
        println!("  {}", run.detail);
    }
    // (Who stopped it and when is in the detail.)
    if let (Some(by), Some(at)) = (&run.decided_by, run.decided_at) {
        println!("  decided by {by} at {}", business_time(app, at));
    }
}

fn print_recipients(
    app: &App,
    recipients: &[Recipient],
    state: Option<MessageState>,
    reason: Option<&str>,
) {
    let tz = app.config.resolved.timezone;
    let filter = match (state, reason) {
        (None, None) => String::new(),
        (state, reason) => format!(
            ", only {}{}",
            state.map(|s| s.as_str()).unwrap_or("any state"),
            reason
                .map(|r| format!(" with reason containing \"{r}\""))
                .unwrap_or_default()
        ),
    };
    println!(
        "Recipients ({}{filter}; times in {}):",
        recipients.len(),
        tz.name()
    );
    for r in recipients {
        let who = match (&r.name, &r.email) {
            (Some(name), Some(email)) => format!("{name} <{email}>"),
            (None, Some(email)) => email.clone(),
            (Some(name), None) => name.clone(),
            (None, None) => "(forgotten)".to_string(),
        };
        // A planned message: when it may go out; otherwise when it got its state.
        let at = if r.state == "planned" {
            format!("not before {}", bare_time_in(r.not_before, tz))
        } else {
            bare_time_in(r.at, tz)
        };
        println!(
            "  customer {:<7} {:<40} {:<10} {at}{}",
            r.customer_id,
            who,
            r.state,
            r.reason
                .as_deref()
                .map(|x| format!("  {x}"))
                .unwrap_or_default()
        );
    }
}

async fn print_checkin(app: &App, tasks: &[Task], left_out: &[(String, i64)]) -> Result<()> {
    let skipped: i64 = left_out.iter().map(|(_, n)| n).sum();
    println!(
        "Check-in: {} call task(s) made, {skipped} customer(s) left out",
        tasks.len()
    );
    if !left_out.is_empty() {
        println!("Left out, by reason:");
        for (reason, n) in left_out {
            println!("  {n:>7}  {reason}");
        }
    }
    let customers = app
        .store
        .customers_by_ids(&tasks.iter().map(|t| t.customer_id).collect::<Vec<_>>())
        .await?;
    if !tasks.is_empty() {
        println!("Tasks:");
    }
    for t in tasks {
        let name = customers
            .iter()
            .find(|c| c.id == t.customer_id)
            .map(|c| c.label())
            .unwrap_or_default();
        println!(
            "  task {:<6} {:<12} due {}  {:<8} {name}",
            t.id, t.staff_id, t.due_on, t.state
        );
    }
    Ok(())
}
