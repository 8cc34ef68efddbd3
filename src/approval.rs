//! The approval gate: a prepared run waits for a person.
//!
//! With `approval = "required"` (or when `require_fresh_text` finds the
//! template unchanged since the last run) a planned run stops in
//! `awaiting_approval`; each approver gets an email with the counts, one
//! rendered sample and their own signed link to the approval page, so the
//! decision is recorded as theirs. The sample's unsubscribe link acts on
//! nobody: an approver who clicks around in it changes nothing. Nothing is
//! sent before a decision; a run left alone expires after
//! `approval_timeout` and its messages end `suppressed` ("approval expired").

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;
use tracing::{info, warn};

use crate::app::App;
use crate::config::{ApprovalMode, Campaign, CampaignKind, Config, Staff};
use crate::domain::{MessageState, RuleKind, RunState};
use crate::mailer::{MailerSettings, SendResult};
use crate::message::render::{local_datetime, render_sample, sample_voucher, voucher_for};
use crate::message::templates::Fragment;
use crate::store::Run;
use crate::tasks::digest::staff_locale;
use crate::tasks::view::staff_name;
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

/// Who decides on a campaign's runs: its approvers, else the staff without a manager.
pub fn approvers<'a>(app: &'a App, campaign: &Campaign) -> Vec<&'a Staff> {
    let staff = &app.settings().staff;
    if campaign.approvers.is_empty() {
        staff.iter().filter(|s| s.manager.is_none()).collect()
    } else {
        staff
            .iter()
            .filter(|s| campaign.approvers.contains(&s.id))
            .collect()
    }
}

/// Holds the run and asks the approvers, each with their own link.
pub async fn request(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    stale_since: Option<i64>,
    now: DateTime<Utc>,
) -> Result<()> {
    let deadline = deadline(campaign, now)?;
    app.store
        .set_run_approval(run.id, deadline, stale_since)
        .await?;
    // For `runs list` and logs; pages and emails say it in the reader's language.
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
            &[RunState::Planning],
            RunState::AwaitingApproval,
            Some(&detail),
            now,
        )
        .await?
    {
        // Stopped while it was being planned: nobody needs to decide.
        return Ok(());
    }
    ask_approvers(app, run, campaign, deadline, None, now).await
}

/// Holds a sending run for approval once more, after a pause that lasted
/// since `paused_since`; `why` is the run's detail. False if it was not
/// sending any more.
pub async fn request_again(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    why: &str,
    paused_since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let deadline = deadline(campaign, now)?;
    if !app
        .store
        .hold_for_approval_again(run.id, why, deadline, now)
        .await?
    {
        return Ok(false);
    }
    ask_approvers(app, run, campaign, deadline, Some(paused_since), now).await?;
    Ok(true)
}

fn deadline(campaign: &Campaign, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    let timeout = campaign.approval_timeout;
    Ok(now + chrono::Duration::from_std(timeout).context("approval_timeout is too long")?)
}

/// Emails each approver the counts, a sample and their own link to decide.
async fn ask_approvers(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    deadline: DateTime<Utc>,
    paused_since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<()> {
    let run = app
        .store
        .run(run.id)
        .await?
        .context("the run being held vanished")?;
    let preview = Preview::build(app, &run, campaign, now).await?;
    let mut mailer = MailerSettings::from_config(&app.config).open()?;
    for staff in approvers(app, campaign) {
        let locale =
            app.templates
                .locale_for("approval_request", "md", Some(staff_locale(app, staff)));
        let token = app
            .signer
            .sign_for(Purpose::Approval, run.id, &staff.id, deadline);
        let ctx = request_context(
            preview.value(&app.config, &run, &locale),
            &staff.name,
            &app.link(&format!("/a/{token}")),
            paused_since.map(|at| local_datetime(&app.config, at, &locale)),
        );
        let rendered = app
            .templates
            .render_staff_email("approval_request", Some(&locale), &ctx)?;
        let message = crate::message::compose::staff_email(
            &app.config,
            &staff.email,
            &rendered.subject,
            &rendered.text,
            &rendered.html,
            None,
        )?;
        match mailer.send(&message).await {
            SendResult::Sent(_) => {
                info!(run = run.id, approver = %staff.id, "approval requested")
            }
            other => {
                warn!(run = run.id, approver = %staff.id, result = ?other, "could not send the approval request; use `outreach runs approve`")
            }
        }
    }
    Ok(())
}

/// What the `approval_request` template sees, besides the preview's values;
/// `paused_since`: asked again because a pause held the run that long.
pub fn request_context(
    preview: Value,
    approver: &str,
    link: &str,
    paused_since: Option<String>,
) -> Value {
    context! { approver, link, paused_since, ..preview }
}

/// What an approver reviews: the counts, one sample, whether the text is stale.
pub struct Preview {
    counts: Vec<Count>,
    sample: Option<Sample>,
    stale_since: Option<i64>,
}

/// Messages of the run in one state (and, when held back, for one reason).
#[derive(Serialize)]
struct Count {
    n: i64,
    state: MessageState,
    /// A known reason (`no_consent`, `frequency_cap` …) the templates put in words.
    reason_key: Option<&'static str>,
    /// The reason as recorded, or its detail (an audience error's message).
    reason: Option<String>,
}

/// One message of the run as its customer would read it.
struct Sample {
    customer: String,
    subject: String,
    content: Fragment,
}

impl Preview {
    pub async fn build(
        app: &App,
        run: &Run,
        campaign: &Campaign,
        now: DateTime<Utc>,
    ) -> Result<Preview> {
        let counts = app
            .store
            .run_counts(&[run.id])
            .await?
            .into_iter()
            .map(|c| {
                let (reason_key, reason) = match c.reason {
                    Some(reason) => {
                        let (key, detail) = reason_key(&reason);
                        (Some(key), Some(detail.to_string()))
                    }
                    None => (None, None),
                };
                Count {
                    n: c.n,
                    state: c.state,
                    reason_key,
                    reason,
                }
            })
            .collect();
        let customer = match app.store.first_message_customer(run.id).await? {
            Some(customer_id) => app.store.customers_by_ids(&[customer_id]).await?.pop(),
            None => None,
        };
        let sample = match customer {
            Some(customer) => {
                let code = app.store.message_voucher(run.id, customer.id).await?;
                let voucher = match voucher_for(app, campaign, code.as_deref()).await? {
                    Some(v) => Some(v),
                    None => sample_voucher(app, campaign, now),
                };
                let (body, footer) =
                    render_sample(app, campaign, &customer, run.id, voucher.as_ref(), now)?;
                Some(Sample {
                    customer: customer.label(),
                    subject: body.subject.clone(),
                    content: sample_content(&body.text, &body.html, &footer, &body.locale),
                })
            }
            None => None,
        };
        Ok(Preview {
            counts,
            sample,
            stale_since: text_is_stale(app, campaign, run).await?,
        })
    }

    /// A made-up preview and its run, with every field set, for `outreach
    /// check` to render the approval templates.
    pub fn sample(content: Fragment) -> (Preview, Run) {
        let at = DateTime::<Utc>::UNIX_EPOCH;
        let preview = Preview {
            counts: vec![
                Count {
                    n: 2,
                    state: MessageState::Planned,
                    reason_key: None,
                    reason: None,
                },
                Count {
                    n: 1,
                    state: MessageState::Suppressed,
                    reason_key: Some("no_consent"),
                    reason: Some("no consent".into()),
                },
            ],
            sample: Some(Sample {
                customer: "Erika Musterfrau".into(),
                subject: "…".into(),
                content,
            }),
            stale_since: Some(1),
        };
        let run = Run {
            id: 2,
            rule_id: "sample".into(),
            rule_kind: RuleKind::Campaign,
            occurrence: at,
            trigger: "schedule".into(),
            state: RunState::AwaitingApproval,
            detail: String::new(),
            template_hash: None,
            approval_deadline: Some(at),
            decided_by: Some("maria".into()),
            decided_at: Some(at),
            created_at: at,
            held_since: None,
            stale_since: Some(1),
            stopped_by: None,
            stopped_at: None,
        };
        (preview, run)
    }

    /// The template values for a reader of `locale`: `run`, `counts`, `sample`.
    pub fn value(&self, config: &Config, run: &Run, locale: &str) -> Value {
        let when = |at: Option<DateTime<Utc>>| at.map(|at| local_datetime(config, at, locale));
        context! {
            run => context! {
                id => run.id,
                campaign => &run.rule_id,
                state => run.state.as_str(),
                stale_since => self.stale_since,
                deadline => when(run.approval_deadline),
                decided_by => run.decided_by.as_deref().map(|by| staff_name(&config.settings, by)),
                decided_at => when(run.decided_at),
            },
            counts => Value::from(Serde(&self.counts)),
            sample => self.sample.as_ref().map(|s| context! {
                customer => &s.customer,
                subject => &s.subject,
                content => s.content.clone().value(),
            }),
        }
    }
}

/// A sample email set apart from the request around it: framed in HTML, quoted in text.
fn sample_content(text: &str, html: &str, footer: &Fragment, locale: &str) -> Fragment {
    let text = format!("{}\n\n-- \n{}", text.trim_end(), footer.text.trim_end());
    Fragment {
        text: text
            .lines()
            .map(|l| format!("> {l}").trim_end().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        html: format!(
            "<div lang=\"{locale}\" style=\"border:1px solid #cccccc;border-radius:8px;padding:0 16px;margin:16px 0;background:#fafafa;\">\n{html}<hr style=\"border:none;border-top:1px solid #dddddd;\">\n<div style=\"font-size:13px;color:#595959;\">\n{}</div>\n</div>",
            footer.html
        ),
    }
}

/// A suppression reason as a key the templates know, and its detail.
fn reason_key(reason: &str) -> (&'static str, &str) {
    if let Some(kind) = CampaignKind::ALL
        .into_iter()
        .find(|k| k.declined_reason() == reason)
    {
        return ("declined", kind.as_str());
    }
    let key = match reason {
        "no consent" => "no_consent",
        "unsubscribed" => "unsubscribed",
        "forgotten" => "forgotten",
        "no email address" => "no_email",
        "address bounced" => "bounced",
        "pool exhausted" => "pool_exhausted",
        r if r.starts_with("frequency cap") => "frequency_cap",
        r if r.starts_with("already received a code") => "already_has_code",
        r if r.starts_with("audience error: ") => {
            return ("audience_error", &reason["audience error: ".len()..]);
        }
        _ => "other",
    };
    (key, reason)
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
) -> Result<RunState> {
    let Some(run) = app.store.run(run_id).await? else {
        bail!("no run {run_id}")
    };
    if run.state != RunState::AwaitingApproval {
        bail!("run {run_id} is {}, not awaiting approval", run.state);
    }
    let (to, detail) = match (decision, run.stale_since) {
        (Decision::Approve, Some(previous)) => bail!(
            "run {run_id} is held because its text is the same as in run {previous}; update the template, or send it unchanged with `outreach runs approve {run_id} --force`"
        ),
        (Decision::ApproveUnchanged, Some(previous)) => (
            RunState::Sending,
            format!("approved by {by} with the text unchanged since run {previous}"),
        ),
        (Decision::Approve | Decision::ApproveUnchanged, None) => {
            (RunState::Sending, format!("approved by {by}"))
        }
        (Decision::Cancel, _) => (RunState::Cancelled, format!("cancelled by {by}")),
    };
    let approve = to == RunState::Sending;
    if !app
        .store
        .transition_run(
            run_id,
            &[RunState::AwaitingApproval],
            to,
            Some(&detail),
            now,
        )
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
    info!(run = run_id, decision = %to, by, "approval decision");
    Ok(to)
}

/// Runs nobody decided on in time expire; their messages are suppressed.
pub async fn expire_overdue(app: &App, now: DateTime<Utc>) -> Result<()> {
    for run in app.store.runs_in_state(RunState::AwaitingApproval).await? {
        if run.approval_deadline.is_some_and(|d| d < now)
            && app
                .store
                .transition_run(
                    run.id,
                    &[RunState::AwaitingApproval],
                    RunState::Expired,
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
