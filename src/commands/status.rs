//! `outreach status`: what an admin checks first.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;

use crate::app::App;

pub async fn run(app: &App, json: bool) -> Result<()> {
    let now = Utc::now();
    let tz = app.config.resolved.timezone;
    let queue = app.store.queue_counts().await?;
    let mut next_runs = BTreeMap::new();
    for (id, schedule) in &app.config.resolved.schedules {
        if let Some(t) = schedule.next_after(now) {
            next_runs.insert(
                id.clone(),
                t.with_timezone(&tz).format("%Y-%m-%d %H:%M %Z").to_string(),
            );
        }
    }
    let mut per_staff: BTreeMap<String, (i64, i64)> = app
        .settings()
        .staff
        .iter()
        .map(|s| (s.id.clone(), (0, 0)))
        .collect();
    for t in app.store.tasks(None, true).await? {
        let e = per_staff.entry(t.staff_id.clone()).or_default();
        e.0 += 1;
        if crate::tasks::is_overdue(app, &t, now) {
            e.1 += 1;
        }
    }
    let call_list = crate::tasks::summary::summarize(app, now).await?;
    let failures = app.store.recent_failures(10).await?;
    let waiting_for = app.store.waiting_reasons(5).await?;
    let waiting = app.store.runs_in_state("awaiting_approval").await?;
    if json {
        let doc = serde_json::json!({
            "queue": queue.iter().cloned().collect::<BTreeMap<_, _>>(),
            "next_runs": next_runs,
            "tasks": per_staff.iter().map(|(s, (open, overdue))| (s.clone(), serde_json::json!({"open": open, "overdue": overdue}))).collect::<BTreeMap<_, _>>(),
            "call_list": call_list,
            "awaiting_approval": waiting.iter().map(|r| r.id).collect::<Vec<_>>(),
            "waiting": waiting_for,
            "recent_failures": failures,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("Queue:");
    if queue.is_empty() {
        println!("  empty");
    }
    for (state, n) in &queue {
        println!("  {state:<11} {n}");
    }
    println!("Next runs:");
    for (id, t) in &next_runs {
        println!("  {id:<24} {t}");
    }
    if !waiting.is_empty() {
        println!(
            "Awaiting approval: {}",
            waiting
                .iter()
                .map(|r| format!("run {} ({})", r.id, r.rule_id))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if !waiting_for.is_empty() {
        println!("Waiting to be sent (messages, reason, next try):");
    }
    for w in &waiting_for {
        println!(
            "  {:>6}  {} — next try {}",
            w.messages,
            w.reason,
            w.next_try.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        );
    }
    println!("Tasks (open / overdue):");
    for (s, (open, overdue)) in &per_staff {
        println!("  {s:<12} {open} / {overdue}");
    }
    println!("Call list:");
    for line in crate::tasks::summary::describe(&call_list).lines() {
        println!("  {line}");
    }
    println!("Recent failures:");
    if failures.is_empty() {
        println!("  none");
    }
    for f in &failures {
        println!(
            "  {} message {} ({}): {}",
            f.at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            f.message_id,
            f.state,
            f.reason
        );
    }
    Ok(())
}
