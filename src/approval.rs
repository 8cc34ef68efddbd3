//! The approval gate: a prepared run waits for a person.
//!
//! With `approval = "required"` (or when `require_fresh_text` finds the
//! template unchanged since the last run) a planned run stops in
//! `awaiting_approval`; the approvers get an email with the counts, one
//! rendered sample and signed links to approve or cancel. Nothing is sent
//! before a decision; a run left alone expires after `approval_timeout` and
//! its messages end `suppressed` ("approval expired").

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use tracing::{info, warn};

use crate::app::App;
use crate::config::{ApprovalMode, Campaign};
use crate::mailer::{MailerSettings, SendResult};
use crate::render::{render_campaign, sample_voucher, voucher_for};
use crate::store::Run;
use crate::templates::escape_html;
use crate::tokens::Purpose;

/// Whether the campaign's text is the same as in its last run that was sent.
pub async fn text_is_stale(app: &App, campaign: &Campaign, run: &Run) -> Result<Option<i64>> {
    if !campaign.require_fresh_text {
        return Ok(None);
    }
    let fingerprint = app.templates.fingerprint(&campaign.template);
    let previous = app.store.last_sent_run_hash(&campaign.id, run.id).await?;
    Ok(previous
        .filter(|(_, hash)| *hash == fingerprint)
        .map(|(id, _)| id))
}

/// Holds the run and asks the approvers.
pub async fn request(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    stale_since: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    let deadline = deadline(app, campaign, now)?;
    app.store
        .set_run_approval(run.id, deadline, stale_since)
        .await?;
    let detail = match stale_since {
        Some(previous) => format!(
            "held: the text is the same as in run {previous}; update the template, then approve"
        ),
        None => "waiting for approval".to_string(),
    };
    if !app
        .store
        .transition_run(
            run.id,
            &["planning"],
            "awaiting_approval",
            Some(&detail),
            now,
        )
        .await?
    {
        // Stopped while it was being planned: nobody needs to decide.
        return Ok(());
    }
    ask_approvers(app, run, campaign, &detail, deadline, now).await
}

/// Holds a sending run for approval once more, `why` shown to the
/// approvers; false if it was not sending any more.
pub async fn request_again(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    why: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let deadline = deadline(app, campaign, now)?;
    if !app
        .store
        .hold_for_approval_again(run.id, why, deadline, now)
        .await?
    {
        return Ok(false);
    }
    ask_approvers(app, run, campaign, why, deadline, now).await?;
    Ok(true)
}

fn deadline(app: &App, campaign: &Campaign, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let timeout = app
        .config
        .resolved
        .approval_timeouts
        .get(&campaign.id)
        .copied()
        .unwrap_or_default();
    Ok(now + chrono::Duration::from_std(timeout).context("approval_timeout is too long")?)
}

/// Emails the approvers (or every staff member without a manager) the
/// counts, a sample and the link to decide.
async fn ask_approvers(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    detail: &str,
    deadline: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<()> {
    let approvers: Vec<&str> = if campaign.approvers.is_empty() {
        app.settings()
            .staff
            .iter()
            .filter(|s| s.manager.is_none())
            .map(|s| s.id.as_str())
            .collect()
    } else {
        campaign.approvers.iter().map(String::as_str).collect()
    };
    let (text, html) = preview_text(app, run, campaign, detail, now).await?;
    let token = app.signer.sign(Purpose::Approval, run.id, deadline);
    let link = app.link(&format!("/a/{token}"));
    let mut mailer = MailerSettings::from_config(&app.config).open()?;
    for id in approvers {
        let Some(staff) = app.settings().staff.iter().find(|s| s.id == id) else {
            continue;
        };
        let subject = format!(
            "Freigabe nötig / approval needed: {} (run {})",
            campaign.id, run.id
        );
        let body = format!("{text}\nFreigeben oder abbrechen / approve or cancel:\n{link}\n");
        let html_body = format!(
            "{html}<p><a href=\"{link}\">Freigeben oder abbrechen / approve or cancel</a></p>"
        );
        let message = crate::compose::staff_email(
            &app.config,
            &staff.email,
            &subject,
            &body,
            &html_body,
            None,
        )?;
        match mailer.send(&message).await {
            SendResult::Sent(_) => info!(run = run.id, approver = id, "approval requested"),
            other => {
                warn!(run = run.id, approver = id, result = ?other, "could not send the approval request; use `outreach runs approve`")
            }
        }
    }
    Ok(())
}

/// Counts by state and reason plus one rendered sample, as text and HTML.
pub async fn preview_text(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    detail: &str,
    now: DateTime<Utc>,
) -> Result<(String, String)> {
    let counts = app.store.run_counts(&[run.id]).await?;
    let mut text = format!(
        "Kampagne / campaign: {} ({})\nRun {}: {detail}\n\n",
        campaign.id,
        campaign.kind.as_str(),
        run.id
    );
    for c in &counts {
        match &c.reason {
            Some(reason) => text.push_str(&format!("  {:>6}  {} ({reason})\n", c.n, c.state)),
            None => text.push_str(&format!("  {:>6}  {}\n", c.n, c.state)),
        }
    }
    let sample = match app.store.first_message_customer(run.id).await? {
        Some(customer_id) => app.store.customers_by_ids(&[customer_id]).await?.pop(),
        None => None,
    };
    let mut html = format!("<pre>{}</pre>", escape_html(&text));
    if let Some(customer) = sample {
        let code = app.store.message_voucher(run.id, customer.id).await?;
        let voucher = match voucher_for(app, campaign, code.as_deref()).await? {
            Some(v) => Some(v),
            None => sample_voucher(app, campaign, now),
        };
        let (rendered, _) =
            render_campaign(app, campaign, &customer, run.id, voucher.as_ref(), now)?;
        text.push_str(&format!(
            "\nBeispiel / sample ({}):\nSubject: {}\n\n{}\n",
            customer.label(),
            rendered.subject,
            rendered.text
        ));
        html.push_str(&format!(
            "<h3>{}</h3>{}",
            escape_html(&rendered.subject),
            rendered.html
        ));
    }
    Ok((text, html))
}

/// What a person decided about a waiting run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Approve,
    /// Approve a run held because its text did not change, knowing so.
    ApproveUnchanged,
    Cancel,
}

/// Approves or cancels a waiting run; `by` is recorded. A run held because
/// its text is unchanged is approved only with [`Decision::ApproveUnchanged`].
pub async fn decide(
    app: &App,
    run_id: i64,
    decision: Decision,
    by: &str,
    now: DateTime<Utc>,
) -> Result<&'static str> {
    let Some(run) = app.store.run(run_id).await? else {
        bail!("no run {run_id}")
    };
    if run.state != "awaiting_approval" {
        bail!("run {run_id} is {}, not awaiting approval", run.state);
    }
    let (to, detail) = match (decision, run.stale_since) {
        (Decision::Approve, Some(previous)) => bail!(
            "run {run_id} is held because its text is the same as in run {previous}; update the template, or send it unchanged with `outreach runs approve {run_id} --force`"
        ),
        (Decision::ApproveUnchanged, Some(previous)) => (
            "sending",
            format!("sending by {by}: approved with the text unchanged since run {previous}"),
        ),
        (Decision::Approve | Decision::ApproveUnchanged, None) => {
            ("sending", format!("sending by {by}"))
        }
        (Decision::Cancel, _) => ("cancelled", format!("cancelled by {by}")),
    };
    let approve = to == "sending";
    if !app
        .store
        .transition_run(run_id, &["awaiting_approval"], to, Some(&detail), now)
        .await?
    {
        bail!("run {run_id} was decided by someone else just now");
    }
    app.store.record_decision(run_id, by, now).await?;
    if !approve {
        app.store
            .suppress_pending(run_id, &format!("run cancelled by {by}"), now)
            .await?;
    }
    info!(run = run_id, decision = to, by, "approval decision");
    Ok(to)
}

/// Runs nobody decided on in time expire; their messages are suppressed.
pub async fn expire_overdue(app: &App, now: DateTime<Utc>) -> Result<()> {
    for run in app.store.runs_in_state("awaiting_approval").await? {
        if run.approval_deadline.is_some_and(|d| d < now)
            && app
                .store
                .transition_run(
                    run.id,
                    &["awaiting_approval"],
                    "expired",
                    Some("nobody approved it in time"),
                    now,
                )
                .await?
        {
            let n = app
                .store
                .suppress_pending(run.id, "approval expired", now)
                .await?;
            info!(run = run.id, messages = n, "run expired without approval");
        }
    }
    Ok(())
}

/// Whether a campaign's run must wait for a person.
pub fn needs_approval(campaign: &Campaign, stale: bool) -> bool {
    campaign.approval == ApprovalMode::Required || stale
}
