//! `runs show RUN`: who got what. Counts by state and reason, why planned
//! messages wait, and every recipient with state, reason and time; for a
//! check-in run, what became of the customers it put on the call list and
//! who was left out, and why (`runs::show_checkin`).

use anyhow::{Result, bail};
use chrono::Utc;

use crate::app::App;
use crate::control::Holds;
use crate::domain::{MessageState, RuleKind};
use crate::local_time::{bare_time_in, business_time};
use crate::store::{Recipient, Run};

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
    if run.rule_kind == RuleKind::Checkin {
        return super::runs::show_checkin(app, &run, json).await;
    }
    let now = Utc::now();
    let counts = app.store.run_counts(&[run.id]).await?;
    let holds = Holds::load(app, now).await?;
    let waiting = super::explain::waiting(app, &holds, std::slice::from_ref(&run), now)
        .await?
        .remove(&run.id)
        .unwrap_or_default();
    let recipients = app.store.run_recipients(run.id, state, reason).await?;
    if json {
        let doc = serde_json::json!({
            "run": run,
            "counts": counts,
            "waiting": waiting,
            "recipients": recipients,
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
    print_recipients(app, &recipients, state, reason);
    Ok(())
}

fn print_header(app: &App, run: &Run) {
    let kind = app
        .campaign(&run.rule_id)
        .map(|c| c.kind.as_str())
        .unwrap_or(run.rule_kind.as_str());
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
            state.map(|s| s.as_str()).unwrap_or("those"),
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
        let at = if r.state == MessageState::Planned {
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
