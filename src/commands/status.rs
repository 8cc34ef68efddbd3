//! `outreach status`: what an admin checks first.

use std::collections::BTreeMap;

use anyhow::Result;
use chrono::Utc;

use crate::app::App;
use crate::control::{self, Holds};
use crate::domain::RunState;
use crate::local_time::bare_time_in;
use crate::tasks::absences::Absences;

pub async fn run(app: &App, json: bool) -> Result<()> {
    let now = Utc::now();
    let tz = app.config.resolved.timezone;
    let queue = app.store.queue_counts().await?;
    let holds = Holds::load(app, now).await?;
    let mut next_runs = BTreeMap::new();
    for (id, schedule, _) in app.rules().scheduled() {
        if let Some(t) = holds.next_run(id, schedule, now) {
            next_runs.insert(id.to_string(), bare_time_in(t, tz));
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
    let waiting = app.store.runs_in_state(RunState::AwaitingApproval).await?;
    let everything = holds.everything().map(|h| control::paused(app, h));
    let paused: BTreeMap<&str, String> = holds.paused_rules(app).into_iter().collect();
    let absences = Absences::load(app).await?;
    let away: BTreeMap<&str, String> = app
        .settings()
        .staff
        .iter()
        .filter_map(|s| {
            let today = crate::tasks::absences::today_of(app, &s.id, now);
            absences
                .on(&s.id, today)
                .map(|a| (s.id.as_str(), super::staff::absence_text(a)))
        })
        .collect();
    let mut live = app.store.runs_in_state(RunState::Sending).await?;
    live.extend(waiting.iter().cloned());
    let explained = super::explain::waiting(app, &holds, &live, now).await?;
    let rule_of = |id: &i64| {
        live.iter()
            .find(|r| r.id == *id)
            .map(|r| r.rule_id.clone())
            .unwrap_or_default()
    };
    let storage = crate::http::health::storage(app).await;
    if json {
        let doc = serde_json::json!({
            "queue": queue.iter().cloned().collect::<BTreeMap<_, _>>(),
            "timezone": tz.name(),
            "next_runs": next_runs,
            "hold": everything,
            "paused": paused,
            "away": away,
            "waiting": explained.iter().map(|(run, lines)| (run.to_string(), serde_json::json!({"rule": rule_of(run), "why": lines}))).collect::<BTreeMap<_, _>>(),
            "tasks": per_staff.iter().map(|(s, (open, overdue))| (s.clone(), serde_json::json!({"open": open, "overdue": overdue}))).collect::<BTreeMap<_, _>>(),
            "call_list": call_list,
            "awaiting_approval": waiting.iter().map(|r| r.id).collect::<Vec<_>>(),
            "waiting_to_send": waiting_for,
            "recent_failures": failures,
            "storage": storage.iter().map(|line| match line {
                Ok(text) => serde_json::json!({"ok": true, "detail": text}),
                Err(text) => serde_json::json!({"ok": false, "detail": text}),
            }).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("Storage:");
    for line in &storage {
        match line {
            Ok(text) => println!("  ok       {text}"),
            Err(text) => println!("  FAILING  {text}"),
        }
    }
    if let Some(hold) = &everything {
        println!(
            "HOLD: all customer email {hold}; planned messages wait (`outreach resume` ends it)"
        );
    }
    println!("Queue:");
    if queue.is_empty() {
        println!("  empty");
    }
    for (state, n) in &queue {
        println!("  {state:<11} {n}");
    }
    if !explained.is_empty() {
        println!("Waiting:");
        for (run, lines) in &explained {
            for line in lines {
                println!("  run {run} ({}): {line}", rule_of(run));
            }
        }
    }
    if !paused.is_empty() {
        println!("Paused:");
        for (id, why) in &paused {
            println!("  {id:<24} {why}");
        }
    }
    println!("Next runs ({}):", tz.name());
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
    if !away.is_empty() {
        println!("Away today:");
        for (s, absence) in &away {
            println!("  {s:<12} {absence}");
        }
    }
    println!("Call list:");
    for line in crate::tasks::summary::describe(&call_list).lines() {
        println!("  {line}");
    }
    println!("Recent failures ({}):", tz.name());
    if failures.is_empty() {
        println!("  none");
    }
    for f in &failures {
        println!(
            "  {} message {} ({}): {}",
            bare_time_in(f.at, tz),
            f.message_id,
            f.state,
            f.reason
        );
    }
    Ok(())
}
