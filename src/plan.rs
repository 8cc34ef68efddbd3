//! Planning a campaign run: audience → one outbox row per matched customer.
//!
//! Every customer the audience matches gets a row, also those who get
//! nothing: they are `suppressed` with the reason (no consent, unsubscribed,
//! frequency cap, pool exhausted …), so the run's counts add up and an admin
//! can see why someone did not get a message. Quiet hours, and for a
//! campaign with `skip_closed_days` the business's closing days, defer a row
//! (`not_before`), never drop it.
//!
//! Planning walks the customer table page by page and writes rows in batches
//! with `ON CONFLICT DO NOTHING`, so a plan interrupted by a crash is resumed
//! by planning again: customers who already have a row are skipped.

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use tracing::{error, info};

use crate::app::App;
use crate::audience::{Audience, AudienceError};
use crate::config::Campaign;
use crate::context::{columns_read_by, customer_value_on};
use crate::domain::{Customer, MessageState, RunState};
use crate::store::{CustomerColumns, NewMessage, Occasion, Run};

const PAGE: i64 = 5000;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlanSummary {
    pub matched: u64,
    pub planned: u64,
    pub suppressed: u64,
}

/// Plans a campaign run and moves it on: to `awaiting_approval` (and asks
/// the approvers) or straight to `sending`.
pub async fn plan_campaign(app: &App, run: &Run, now: DateTime<Utc>) -> Result<PlanSummary> {
    let Some(campaign) = app.campaign(&run.rule_id) else {
        app.store
            .transition_run(
                run.id,
                &[RunState::Planning],
                RunState::Skipped,
                Some("the campaign is no longer in the config"),
                now,
            )
            .await?;
        return Ok(PlanSummary::default());
    };
    let summary = match plan_rows(app, run, campaign, now).await {
        Ok(summary) => summary,
        Err(e) => match e.downcast_ref::<AudienceError>() {
            Some(AudienceError::Runaway(why)) => {
                stop_runaway(app, run, why, now).await?;
                return Ok(PlanSummary::default());
            }
            _ => return Err(e),
        },
    };
    info!(run = run.id, campaign = %campaign.id, matched = summary.matched, planned = summary.planned, suppressed = summary.suppressed, "run planned");
    let stale = crate::approval::text_is_stale(app, campaign, run).await?;
    app.store
        .set_template_hash(run.id, &app.templates.fingerprint(&campaign.template))
        .await?;
    if crate::approval::needs_approval(campaign, stale.is_some()) {
        crate::approval::request(app, run, campaign, stale, now).await?;
    } else {
        app.store
            .transition_run(run.id, &[RunState::Planning], RunState::Sending, None, now)
            .await?;
    }
    Ok(summary)
}

async fn plan_rows(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Result<PlanSummary> {
    let resolved = &app.config.resolved;
    let audience = &campaign.audience;
    let already = app.store.planned_customers(run.id).await?;
    let cap = resolved.frequency_cap;
    let mut recent = match cap {
        Some(cap) => app.store.recent_message_counts(now - cap.window).await?,
        None => Default::default(),
    };
    let mut summary = PlanSummary::default();
    // A run made for particular customers (attribute change) plans only those.
    let targets = match run.trigger.as_str() {
        "attribute_change" => Some(app.store.run_targets(run.id).await?),
        _ => None,
    };
    let anniversary_of = campaign
        .trigger
        .as_ref()
        .and_then(|t| t.anniversary_of.as_deref());
    let day = run
        .occurrence
        .with_timezone(&resolved.timezone)
        .date_naive();
    let domain = app.mail_domain();
    // Objections to this kind of email only; one to every email is on the
    // customer row and makes `mailable` fail.
    let objecting = app.store.objecting_to_kind(campaign.kind).await?;
    // An anniversary is one occasion per customer and day (a birthday: once a
    // year), however many runs of the campaign that day has (a manual start).
    let occasion_key = format!("{}:{day}", campaign.id);
    let occasion = anniversary_of.map(|_| Occasion {
        key: &occasion_key,
        run_id: run.id,
    });
    let columns = planning_columns(audience, anniversary_of);
    let mut page = next_page(app, targets.as_deref(), 0, &columns).await?;
    while let Some(last) = page.last() {
        let after = last.id;
        let mut rows = Vec::new();
        for customer in &page {
            if anniversary_of
                .is_some_and(|field| !crate::triggers::is_anniversary(customer, field, day))
            {
                continue;
            }
            let matched = match audience.matches(&customer_value_on(customer, day)) {
                Ok(m) => m,
                Err(e @ AudienceError::Runaway(_)) => return Err(e.into()),
                Err(e) => {
                    // A broken expression for one customer is recorded, not fatal for the run.
                    summary.matched += 1;
                    if !already.contains(&customer.id) {
                        rows.push(suppressed(customer.id, now, format!("audience error: {e}")));
                    }
                    continue;
                }
            };
            if !matched {
                continue;
            }
            summary.matched += 1;
            if already.contains(&customer.id) {
                continue;
            }
            let row = match customer.mailable() {
                Err(reason) => suppressed(customer.id, now, reason.to_string()),
                Ok(_) if objecting.contains(&customer.id) => {
                    suppressed(customer.id, now, campaign.kind.declined_reason().into())
                }
                Ok(_) => {
                    let count = recent.entry(customer.id).or_insert(0);
                    match cap {
                        Some(cap) if *count >= i64::from(cap.max) => suppressed(
                            customer.id,
                            now,
                            format!(
                                "frequency cap ({} per {})",
                                cap.max,
                                humantime::format_duration(cap.window)
                            ),
                        ),
                        _ => {
                            *count += 1;
                            plan_one(app, campaign, customer, occasion.as_ref(), now).await?
                        }
                    }
                }
            };
            rows.push(row);
        }
        summary.planned += rows
            .iter()
            .filter(|r| r.state == MessageState::Planned)
            .count() as u64;
        summary.suppressed += rows
            .iter()
            .filter(|r| r.state == MessageState::Suppressed)
            .count() as u64;
        // Write this page while the next one is read (WAL lets SQLite do both).
        let (written, next) = tokio::join!(
            app.store.insert_messages(run.id, &rows, &domain, now),
            next_page(app, targets.as_deref(), after, &columns)
        );
        written?;
        page = next?;
    }
    Ok(summary)
}

/// Ends a run whose audience is too costly to evaluate: nothing more is
/// planned or sent for it (trying again would cost the same). Named in the
/// log and in `runs list`; after fixing the audience, `runs start` makes a
/// new run.
pub async fn stop_runaway(app: &App, run: &Run, why: &str, now: DateTime<Utc>) -> Result<()> {
    error!(run = run.id, rule = %run.rule_id, why, "run stopped: its audience runs away");
    app.store
        .transition_run(
            run.id,
            &[RunState::Planning],
            RunState::Skipped,
            Some(&format!("{}: {why}", run.rule_id)),
            now,
        )
        .await?;
    Ok(())
}

/// What planning reads of each customer: what consent, quiet hours and the
/// anniversary check need, and what the audience reads.
fn planning_columns(audience: &Audience, anniversary_of: Option<&str>) -> CustomerColumns {
    const OWN: [&str; 6] = [
        "id",
        "email",
        "consent",
        "unsubscribed_at",
        "bad_address_at",
        "timezone",
    ];
    let names = audience.names();
    let read = columns_read_by(names.iter().map(String::as_str).chain(anniversary_of));
    CustomerColumns::only(OWN.into_iter().chain(read))
}

/// Customers after `after`: a page of the whole table, or, for a run made
/// for particular customers, all of them at once.
async fn next_page(
    app: &App,
    targets: Option<&[i64]>,
    after: i64,
    columns: &CustomerColumns,
) -> Result<Vec<Customer>> {
    match targets {
        Some(ids) if after == 0 => app.store.customers_by_ids(ids).await,
        Some(_) => Ok(Vec::new()),
        None => app.store.customers_page(after, PAGE, columns).await,
    }
}

fn suppressed(customer_id: i64, now: DateTime<Utc>, reason: String) -> NewMessage {
    NewMessage {
        customer_id,
        state: MessageState::Suppressed,
        reason: Some(reason),
        not_before: now,
        voucher_code: None,
    }
}

/// A row for a customer who may get the message: quiet hours and voucher applied.
async fn plan_one(
    app: &App,
    campaign: &Campaign,
    customer: &Customer,
    occasion: Option<&Occasion<'_>>,
    now: DateTime<Utc>,
) -> Result<NewMessage> {
    let voucher_code = match &campaign.voucher_pool {
        Some(pool) => match crate::vouchers::assign(app, pool, customer.id, occasion, now).await? {
            Ok(code) => Some(code),
            Err(reason) => return Ok(suppressed(customer.id, now, reason)),
        },
        None => None,
    };
    let mut not_before = quiet_release(app, customer, now);
    if campaign.skip_closed_days {
        not_before = open_release(app, customer, not_before);
    }
    Ok(NewMessage {
        customer_id: customer.id,
        state: MessageState::Planned,
        reason: None,
        not_before,
        voucher_code,
    })
}

/// For a campaign with `skip_closed_days`: a message due on a closing day of
/// the business waits for the start of the next open day (and its quiet hours).
fn open_release(app: &App, customer: &Customer, at: DateTime<Utc>) -> DateTime<Utc> {
    let tz = app.config.resolved.timezone;
    let day = at.with_timezone(&tz).date_naive();
    let open = app.config.resolved.closed.next_open(day);
    if open == day {
        return at;
    }
    let start = open
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_local_timezone(tz)
        .earliest()
        .map_or(at, |t| t.with_timezone(&Utc));
    quiet_release(app, customer, start)
}

/// When a message to this customer may go out, given quiet hours in their zone.
pub fn quiet_release(app: &App, customer: &Customer, now: DateTime<Utc>) -> DateTime<Utc> {
    match app.config.resolved.quiet_hours {
        Some(q) => q.release_at(now, customer_zone(app, customer)),
        None => now,
    }
}

pub fn customer_zone(app: &App, customer: &Customer) -> Tz {
    customer
        .timezone
        .as_deref()
        .and_then(|t| t.parse().ok())
        .unwrap_or(app.config.resolved.timezone)
}
