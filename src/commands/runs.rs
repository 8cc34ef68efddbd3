//! `preview`, `runs list|approve|cancel|start|stop|retry-unknown`, the check-in part of
//! `runs show`, `import vouchers`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use chrono::Utc;

use crate::app::App;
use crate::approval::Decision;
use crate::domain::MessageState;
use crate::message::render::{render_campaign, sample_voucher, unsubscribe_url};
use crate::store::{DropReason, EntryState, ListReason, Run, RunCount};

pub async fn preview(
    app: &App,
    campaign_id: &str,
    customer: Option<&str>,
    html: bool,
) -> Result<()> {
    let campaign = app
        .campaign(campaign_id)
        .ok_or_else(|| anyhow!("no campaign \"{campaign_id}\" in the config"))?;
    let now = Utc::now();
    let customer = match customer {
        Some(key) => app
            .store
            .find_customer(key)
            .await?
            .filter(|c| c.forgotten_at.is_none())
            .ok_or_else(|| anyhow!("no customer with id, external id or email \"{key}\""))?,
        None => crate::context::sample_customer(&app.settings().business.locale),
    };
    let voucher = sample_voucher(app, campaign, now);
    let unsubscribe = unsubscribe_url(app, customer.id, campaign.kind, now);
    let rendered = render_campaign(
        app,
        campaign,
        &customer,
        0,
        voucher.as_ref(),
        &unsubscribe,
        now,
    )?;
    let to = customer
        .email
        .clone()
        .unwrap_or_else(|| "(no email address)".into());
    if let Err(reason) = customer.mailable() {
        eprintln!("note: this customer would not get the message ({reason})");
    }
    if html {
        println!("{}", rendered.html);
    } else {
        let email = crate::message::compose::customer_email(
            &app.config,
            &to,
            &format!("<preview@{}>", app.mail_domain()),
            &unsubscribe,
            &rendered,
            false,
            None,
        )?;
        // The text part as a person reads it, after the headers that matter.
        for header in [
            "From",
            "To",
            "Reply-To",
            "Subject",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ] {
            if let Some(value) = email.headers().get_raw(header) {
                println!("{header}: {value}");
            }
        }
        println!("\n{}", rendered.text);
    }
    Ok(())
}

pub async fn list(app: &App, json: bool) -> Result<()> {
    let runs = app.store.recent_runs(50).await?;
    let counts = app
        .store
        .run_counts(&runs.iter().map(|r| r.id).collect::<Vec<_>>())
        .await?;
    if json {
        let out: Vec<_> = runs
            .iter()
            .map(|r| {
                let mut states: BTreeMap<MessageState, i64> = BTreeMap::new();
                let mut suppressed: BTreeMap<String, i64> = BTreeMap::new();
                for c in counts.iter().filter(|c| c.run_id == r.id) {
                    *states.entry(c.state).or_default() += c.n;
                    if let Some(reason) = &c.reason {
                        *suppressed.entry(reason.clone()).or_default() += c.n;
                    }
                }
                serde_json::json!({ "run": r, "messages": states, "suppressed": suppressed })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    if runs.is_empty() {
        println!("no runs yet");
    }
    for r in &runs {
        print_run(app, r, &counts);
    }
    Ok(())
}

/// One run in a line, with its messages per state and why any were suppressed.
fn print_run(app: &App, r: &Run, counts: &[RunCount]) {
    let tz = app.config.resolved.timezone;
    let mut states: BTreeMap<&str, i64> = BTreeMap::new();
    for c in counts.iter().filter(|c| c.run_id == r.id) {
        *states.entry(c.state.as_str()).or_default() += c.n;
    }
    let summary: Vec<String> = states.iter().map(|(s, n)| format!("{s} {n}")).collect();
    println!(
        "run {:<5} {:<22} {:<18} {} ({}) {}{}",
        r.id,
        r.rule_id,
        r.state,
        crate::local_time::time_in(r.occurrence, tz),
        r.trigger,
        summary.join(", "),
        if r.detail.is_empty() {
            String::new()
        } else {
            format!(" — {}", r.detail)
        }
    );
    for c in counts
        .iter()
        .filter(|c| c.run_id == r.id && c.reason.is_some())
    {
        println!(
            "          suppressed {}: {}",
            c.reason.as_deref().unwrap_or(""),
            c.n
        );
    }
}

/// `runs show RUN` of a check-in run: what became of the customers it
/// selected (planned, waiting per reason, dropped per reason), who it left
/// out and why, and the call list as it is now.
pub async fn show_checkin(app: &App, run: &Run, json: bool) -> Result<()> {
    let run_id = run.id;
    let counts = app.store.run_counts(&[run_id]).await?;
    let mut planned = 0;
    let mut waiting: BTreeMap<ListReason, i64> = BTreeMap::new();
    let mut dropped: BTreeMap<DropReason, i64> = BTreeMap::new();
    for (state, reason, drop_reason, n) in app.store.run_call_list_counts(run_id).await? {
        match (state, drop_reason) {
            (EntryState::Planned, _) => planned += n,
            (EntryState::Waiting, _) => *waiting.entry(reason).or_default() += n,
            (EntryState::Dropped, Some(why)) => *dropped.entry(why).or_default() += n,
            (EntryState::Dropped, None) => {}
        }
    }
    let left_out = app.store.checkin_skip_counts(run_id).await?;
    let now_summary = crate::tasks::summary::summarize(app, Utc::now()).await?;
    if json {
        let doc = serde_json::json!({
            "run": run,
            "call_list": { "planned": planned, "waiting": waiting, "dropped": dropped },
            "left_out": left_out.iter().cloned().collect::<BTreeMap<_, _>>(),
            "call_list_now": now_summary,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    print_run(app, run, &counts);
    println!("  From this run:");
    println!("    planned as calls: {planned}");
    println!(
        "    waiting on the call list: {}",
        waiting.values().sum::<i64>()
    );
    for (reason, n) in &waiting {
        println!("      {}: {n}", reason.describe());
    }
    if !dropped.is_empty() {
        println!(
            "    left the call list without a call: {}",
            dropped.values().sum::<i64>()
        );
        for (why, n) in &dropped {
            println!("      {why}: {n}");
        }
    }
    println!(
        "  Left out: {}",
        left_out.iter().map(|(_, n)| n).sum::<i64>()
    );
    for (reason, n) in &left_out {
        println!("    {reason}: {n}");
    }
    println!("  The call list now:");
    for line in crate::tasks::summary::describe(&now_summary).lines() {
        println!("    {line}");
    }
    Ok(())
}

pub async fn decide(app: &App, run: i64, decision: Decision) -> Result<()> {
    let to = crate::approval::decide(app, run, decision, &super::by_whom(), Utc::now()).await?;
    println!("run {run}: {to}");
    Ok(())
}

pub async fn stop(app: &App, run: i64, note: &str) -> Result<()> {
    let (before, suppressed) =
        crate::control::stop(app, run, note, &super::by_whom(), Utc::now()).await?;
    println!(
        "run {run} of {} stopped (was {}): {suppressed} planned message(s) suppressed (\"{}\"); messages being sent right now finish",
        before.rule_id,
        before.state,
        crate::control::STOPPED
    );
    Ok(())
}

pub async fn start(app: &App, rule: &str) -> Result<()> {
    let now = Utc::now();
    let id = crate::schedule::start_now(app, rule, now).await?;
    let campaign = app.campaign(rule).is_some();
    if campaign {
        println!(
            "run {id} of {rule} started; the running daemon plans and sends it (approval still applies)"
        );
    } else {
        println!(
            "run {id} of {rule} started; the running daemon picks whom to call and puts them on the call list (it sends no customer email)"
        );
    }
    if campaign && let Some(all) = crate::control::Holds::load(app, now).await?.everything() {
        println!(
            "note: all customer email is {}; its messages wait until then",
            crate::control::paused(app, all)
        );
    }
    Ok(())
}

pub async fn retry_unknown(app: &App, run: i64) -> Result<()> {
    if app.store.run(run).await?.is_none() {
        bail!("no run {run}");
    }
    let n = app.store.retry_unknown(run, Utc::now()).await?;
    println!("run {run}: {n} message(s) in state unknown queued again; the daemon sends them");
    Ok(())
}

pub async fn import_vouchers(app: &App, pool: &str, file: &Path) -> Result<()> {
    let report = crate::vouchers::import(app, pool, file).await?;
    println!("added {}, rejected {}", report.added, report.rejected.len());
    for (line, reason) in &report.rejected {
        println!("line {line}: {reason}");
    }
    if !report.rejected.is_empty() {
        bail!(
            "{} line(s) rejected; the other codes were added",
            report.rejected.len()
        );
    }
    Ok(())
}
