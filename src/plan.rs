//! Planning a campaign run: audience → one outbox row per matched customer.
//!
//! Every customer the audience matches gets a row, also those who get
//! nothing: they are `suppressed` with the reason (no consent, unsubscribed,
//! frequency cap, pool exhausted …), so the run's counts add up and an admin
//! can see why someone did not get a message. Quiet hours, and for a
//! campaign with `skip_closed_days` the business's closing days, defer a row
//! (`not_before`), never drop it.
//!
//! Planning walks the customer table page by page and writes rows in
//! batches, so a plan interrupted by a crash is resumed by planning again:
//! customers who already have a row are skipped, and their rows kept
//! (`ExistingRows::Keep`).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use chrono_tz::Tz;
use tokio::task::JoinHandle;
use tracing::{error, info};

use crate::app::App;
use crate::audience::{Audience, AudienceError};
use crate::config::Campaign;
use crate::context::{columns_read_by, shared_customer_value_on};
use crate::domain::{Customer, MessageState, RunState};
use crate::store::{CustomerColumns, ExistingRows, NewMessage, Occasion, Run};

/// Customers read at a time.
const PAGE: i64 = 5000;
/// Rows written at a time, one commit each: fewer, larger inserts were a
/// tenth faster on PostgreSQL and spare SQLite commits (benches/README.md).
const WRITE_BATCH: usize = 20_000;

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

/// What deciding one customer's row needs, read once per run.
struct Planner<'a> {
    app: &'a App,
    campaign: &'a Campaign,
    now: DateTime<Utc>,
    /// The run's day in the business's zone (anniversaries, `years_as_customer`).
    day: NaiveDate,
    anniversary_of: Option<&'a str>,
    occasion: Option<Occasion<'a>>,
    /// Customers that have a row already (a plan resumed after a crash).
    already: HashSet<i64>,
    /// Objections to this kind of email only; one to every email is on the
    /// customer row and makes `mailable` fail.
    objecting: HashSet<i64>,
    /// Marketing messages per customer inside the frequency cap's window.
    recent: HashMap<i64, i64>,
}

async fn plan_rows(
    app: &App,
    run: &Run,
    campaign: &Campaign,
    now: DateTime<Utc>,
) -> Result<PlanSummary> {
    let resolved = &app.config.resolved;
    let recent = match resolved.frequency_cap {
        Some(cap) => app.store.recent_message_counts(now - cap.window).await?,
        None => Default::default(),
    };
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
    // An anniversary is one occasion per customer and day (a birthday: once a
    // year), however many runs of the campaign that day has (a manual start).
    let occasion_key = format!("{}:{day}", campaign.id);
    let planner = Planner {
        app,
        campaign,
        now,
        day,
        anniversary_of,
        occasion: anniversary_of.map(|_| Occasion {
            key: &occasion_key,
            run_id: run.id,
        }),
        already: app.store.planned_customers(run.id).await?,
        objecting: app.store.objecting_to_kind(campaign.kind).await?,
        recent,
    };
    let pages = Pages {
        store: app.store.clone(),
        targets: targets.map(Arc::from),
        columns: Arc::new(planning_columns(&campaign.audience, anniversary_of)),
    };
    // Reading the next page, deciding this one and writing the rows before
    // overlap: each waits on the database for about as long as deciding
    // takes. Rows are written a batch at a time, one write at a time, so
    // memory stays at a few pages.
    let mut writer = BatchWriter {
        store: app.store.clone(),
        run_id: run.id,
        domain: app.mail_domain(),
        existing: if planner.already.is_empty() {
            ExistingRows::Refuse
        } else {
            ExistingRows::Keep
        },
        now,
        under_way: None,
    };
    let mut summary = PlanSummary::default();
    let decided = async {
        let mut reading = pages.read_after(0);
        let mut batch = Vec::new();
        loop {
            let page = reading.await??;
            let Some(last) = page.last() else {
                break;
            };
            reading = pages.read_after(last.id);
            batch.extend(planner.decide(page, &mut summary).await?);
            if batch.len() >= WRITE_BATCH {
                writer.start(std::mem::take(&mut batch)).await?;
            }
        }
        if !batch.is_empty() {
            writer.start(batch).await?;
        }
        anyhow::Ok(())
    }
    .await;
    // A write under way finishes before planning reports, even after an error.
    let written = writer.finish().await;
    decided.and(written)?;
    Ok(summary)
}

impl Planner<'_> {
    /// The rows of one page: every customer the audience matches gets one.
    async fn decide(
        &self,
        page: Vec<Customer>,
        summary: &mut PlanSummary,
    ) -> Result<Vec<NewMessage>> {
        let now = self.now;
        let mut rows = Vec::with_capacity(page.len());
        for customer in page.into_iter().map(Arc::new) {
            if self
                .anniversary_of
                .is_some_and(|field| !crate::triggers::is_anniversary(&customer, field, self.day))
            {
                continue;
            }
            let value = shared_customer_value_on(Arc::clone(&customer), self.day);
            let matched = match self.campaign.audience.matches(&value) {
                Ok(m) => m,
                Err(e @ AudienceError::Runaway(_)) => return Err(e.into()),
                Err(e) => {
                    // A broken expression for one customer is recorded, not fatal for the run.
                    summary.matched += 1;
                    if !self.already.contains(&customer.id) {
                        rows.push(suppressed(customer.id, now, format!("audience error: {e}")));
                        summary.suppressed += 1;
                    }
                    continue;
                }
            };
            if !matched {
                continue;
            }
            summary.matched += 1;
            if self.already.contains(&customer.id) {
                continue;
            }
            let mut row = self.decide_one(&customer);
            if let (MessageState::Planned, Some(pool)) = (row.state, &self.campaign.voucher_pool) {
                // Boxed: a database call's future is large, and inlined here
                // it would be copied for every customer of every run.
                let assigned = Box::pin(crate::vouchers::assign(
                    self.app,
                    pool,
                    customer.id,
                    self.occasion.as_ref(),
                    now,
                ))
                .await?;
                match assigned {
                    Ok(code) => row.voucher_code = Some(code),
                    Err(reason) => row = suppressed(customer.id, now, reason),
                }
            }
            match row.state {
                MessageState::Planned => summary.planned += 1,
                _ => summary.suppressed += 1,
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The row of a customer the audience matched, before a voucher.
    fn decide_one(&self, customer: &Customer) -> NewMessage {
        let (id, now) = (customer.id, self.now);
        if let Err(reason) = customer.mailable() {
            return suppressed(id, now, reason);
        }
        if self.objecting.contains(&id) {
            return suppressed(id, now, self.campaign.kind.declined_reason());
        }
        // A run has one row per customer, so this run's own rows never
        // count against the cap of the same customer.
        if let Some(cap) = self.app.config.resolved.frequency_cap
            && self.recent.get(&id).copied().unwrap_or(0) >= i64::from(cap.max)
        {
            let window = crate::local_time::spoken_duration(cap.window);
            return suppressed(id, now, format!("frequency cap ({} per {window})", cap.max));
        }
        planned(self.app, self.campaign, customer, now)
    }
}

/// Writes batches of a run's rows in the background, one at a time.
struct BatchWriter {
    store: crate::store::Store,
    run_id: i64,
    domain: String,
    existing: ExistingRows,
    now: DateTime<Utc>,
    under_way: Option<JoinHandle<Result<()>>>,
}

impl BatchWriter {
    /// Waits for the write under way, then starts writing `rows`.
    async fn start(&mut self, rows: Vec<NewMessage>) -> Result<()> {
        self.finish().await?;
        let (store, domain) = (self.store.clone(), self.domain.clone());
        let (run_id, existing, now) = (self.run_id, self.existing, self.now);
        self.under_way = Some(tokio::spawn(async move {
            store
                .insert_messages(run_id, &rows, &domain, existing, now)
                .await
        }));
        Ok(())
    }

    /// Waits for the write under way, if any.
    async fn finish(&mut self) -> Result<()> {
        match self.under_way.take() {
            Some(write) => write.await?,
            None => Ok(()),
        }
    }
}

/// Where planning reads its customers from, shared with the task that
/// reads the next page.
struct Pages {
    store: crate::store::Store,
    targets: Option<Arc<[i64]>>,
    columns: Arc<CustomerColumns>,
}

impl Pages {
    /// Customers after `after`, read in the background: a page of the
    /// whole table or, for a run made for particular customers, all of
    /// them at once.
    fn read_after(&self, after: i64) -> JoinHandle<Result<Vec<Customer>>> {
        let (store, targets, columns) = (
            self.store.clone(),
            self.targets.clone(),
            Arc::clone(&self.columns),
        );
        tokio::spawn(async move {
            match targets {
                Some(ids) if after == 0 => store.customers_by_ids(&ids).await,
                Some(_) => Ok(Vec::new()),
                None => store.customers_page(after, PAGE, &columns).await,
            }
        })
    }
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

fn suppressed(
    customer_id: i64,
    now: DateTime<Utc>,
    reason: impl Into<Cow<'static, str>>,
) -> NewMessage {
    NewMessage {
        customer_id,
        state: MessageState::Suppressed,
        reason: Some(reason.into()),
        not_before: now,
        voucher_code: None,
    }
}

/// The row of a customer who may get the message, quiet hours (and
/// closing days) applied.
fn planned(app: &App, campaign: &Campaign, customer: &Customer, now: DateTime<Utc>) -> NewMessage {
    let mut not_before = quiet_release(app, customer, now);
    if campaign.skip_closed_days {
        not_before = open_release(app, customer, not_before);
    }
    NewMessage {
        customer_id: customer.id,
        state: MessageState::Planned,
        reason: None,
        not_before,
        voucher_code: None,
    }
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
