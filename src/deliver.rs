//! Delivery: claim due messages, render, send, record — one step
//! ([`deliver_batch`]) plus a loop per SMTP connection ([`worker`]) and one
//! group-commit task ([`spawn_recorder`]).
//!
//! Each worker owns one transport session and claims a small batch at a time
//! (with a lease), the next one while the current one is being sent. It hands
//! a sent batch's results to the recorder and goes on sending while they are
//! committed, with at most [`COMMITTING`] batches awaiting their commit: a
//! crash leaves at most [`IN_FLIGHT_BATCHES`] per worker in the `sending`
//! state (awaiting commit, being sent, claimed ahead). The send journal
//! (src/journal.rs) says what became of each of them: at the next start the
//! results are recorded, the message that was on the wire (at most one per
//! worker) becomes `unknown` and the rest goes back to the queue. Without a
//! usable journal they become `unknown` once their lease runs out; `unknown`
//! is never resent automatically.
//!
//! Right before each send the customer is checked again: an unsubscribe that
//! arrived while the run was going out takes effect for everything not yet
//! sent.
//!
//! Under a rate limit each send waits for a slot of the window kept in the
//! database (`send_slot`); batches are then smaller and none is claimed
//! ahead.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, Utc};
use rand::Rng;
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::app::{App, Shared};
use crate::control::{Closed, Gate, STOPPED};
use crate::domain::Customer;
use crate::journal::{Journal, Segment};
use crate::mailer::{Mailer, MailerSettings, SendResult, SessionFailure, is_bad_address};
use crate::message::render::{render_campaign, unsubscribe_url, voucher_for};
use crate::plan::quiet_release;
use crate::store::{Claimed, Outcome, SendSlots};
use crate::timings;
use lettre::Message;

/// Messages a worker claims at once; at most [`IN_FLIGHT_BATCHES`] per worker
/// are `sending` when the process dies. Each batch costs a claim, a customer read
/// and part of a commit: 100 sent about 10 % faster than 50 on PostgreSQL
/// (benches/smtp.sh), 200 little more.
pub const BATCH: i64 = 100;
/// How long messages wait when the database cannot give what sending them
/// needs. Not counted as an attempt. (When the SMTP server is away, the
/// mailer's session backoff decides.)
const DATABASE_WAIT: chrono::Duration = chrono::Duration::seconds(30);
/// Batches per worker handed to the recorder and not yet committed.
pub const COMMITTING: usize = 1;
/// Batches per worker that a crash can leave `sending`: those awaiting
/// their commit, the one being sent and the one claimed ahead (all
/// `unknown` if the journal is lost, see [`crate::journal`]).
pub const IN_FLIGHT_BATCHES: usize = COMMITTING + 2;
/// Results committed together at most (group commit).
const GROUP: usize = 500;

/// State shared by all workers of one daemon.
#[derive(Default)]
pub struct Delivery {
    /// Customers who unsubscribed through this daemon since their batch was claimed.
    unsubscribed: Mutex<HashSet<i64>>,
    /// The rule (campaign id) of each run seen: it never changes, and
    /// reading it for every batch would cost a query each.
    rules: Mutex<HashMap<i64, String>>,
    /// Woken when new work may be due (a run approved, planned or started).
    pub wake: Notify,
    /// Pauses and stops that reach a batch already claimed.
    pub gate: crate::control::Gate,
    pub metrics: crate::metrics::DeliveryMetrics,
    /// The daemon's send journal (`None` in tests that drive batches directly).
    pub journal: Option<Arc<Journal>>,
    /// How the latest attempt to open an SMTP session ended (`None`: none
    /// made yet), for `/healthz`.
    session: Mutex<Option<Result<(), SessionFailure>>>,
}

impl Delivery {
    /// A daemon's delivery state, its workers writing to `journal`.
    pub fn with_journal(journal: Arc<Journal>) -> Delivery {
        Delivery {
            journal: Some(journal),
            ..Delivery::default()
        }
    }

    pub fn note_unsubscribe(&self, customer_id: i64) {
        self.unsubscribed
            .lock()
            .expect("unsubscribe set lock")
            .insert(customer_id);
    }

    /// Records how an SMTP session attempt ended; true if that differs from
    /// the one before (worth a log line, unlike the same failure again).
    pub fn note_session(&self, result: Result<(), SessionFailure>) -> bool {
        let mut session = self.session.lock().expect("session state lock");
        let changed = session.as_ref() != Some(&result);
        *session = Some(result);
        changed
    }

    /// Why the latest SMTP session could not be opened, if it could not.
    pub fn session_failure(&self) -> Option<SessionFailure> {
        match &*self.session.lock().expect("session state lock") {
            Some(Err(failure)) => Some(failure.clone()),
            _ => None,
        }
    }

    fn is_unsubscribed(&self, customer_id: i64) -> bool {
        self.unsubscribed
            .lock()
            .expect("unsubscribe set lock")
            .contains(&customer_id)
    }
}

/// A sent batch's results, waiting to be recorded: (message id, customer id, outcome).
pub type Results = Vec<(i64, i64, Outcome)>;

/// A batch handed to the recorder: its results, the journal file that holds
/// them until they are committed, and how it tells the worker they are.
pub type Handed = (Results, Option<Arc<Segment>>, oneshot::Sender<()>);

/// Claims, sends and records one batch. Returns how many messages it handled.
pub async fn deliver_batch(
    app: &App,
    delivery: &Delivery,
    mailer: &mut Mailer,
    now: DateTime<Utc>,
) -> Result<usize> {
    let claimed = claim(app, now).await?;
    if claimed.is_empty() {
        return Ok(0);
    }
    let (_keep, never_stops) = watch::channel(false);
    // Recorded before this returns: nothing for a journal to cover.
    let results = send_claimed(app, delivery, mailer, claimed, None, &never_stops, now).await?;
    record(app, &results, now).await?;
    Ok(results.len())
}

/// Claims up to [`batch_size`] messages due at `now` for this daemon.
async fn claim(app: &App, now: DateTime<Utc>) -> Result<Vec<Claimed>> {
    app.store
        .claim_messages(
            &app.instance,
            now,
            now + timings::get().lease,
            batch_size(app),
        )
        .await
}

/// [`BATCH`], or under a rate limit what one connection sends in about a
/// minute: a batch must go out well within its lease ([`timings`]) (see [`send_slot`]),
/// and a worker stopping mid-batch gives back less.
fn batch_size(app: &App) -> i64 {
    let mail = &app.settings().mail;
    match mail.rate_per_minute {
        0 => BATCH,
        rate => (i64::from(rate) / i64::from(mail.workers())).clamp(1, BATCH),
    }
}

/// Gives a claimed batch that was not sent back to the queue, rather than
/// let its lease turn it into `unknown`. If that fails too, the database is
/// away and the lease is the fallback.
async fn give_back(app: &App, claimed: &[Claimed]) {
    let ids: Vec<i64> = claimed.iter().map(|c| c.id).collect();
    if let Err(e) = app.store.release_claims(&app.instance, &ids).await {
        warn!(error = %format!("{e:#}"), messages = ids.len(), "could not give back an unsent batch; it becomes unknown when its lease ends");
    }
}

/// Sends a claimed batch; the results still have to be recorded. With a
/// journal, each message's data goes out only after a `wire` line, and each
/// result is written there before it is returned.
/// Under a rate limit a stop (SIGTERM) ends the batch at the next wait for
/// a send slot and gives the rest back: the wait can be minutes.
async fn send_claimed(
    app: &App,
    delivery: &Delivery,
    mailer: &mut Mailer,
    claimed: Vec<Claimed>,
    journal: Option<&Segment>,
    stop: &watch::Receiver<bool>,
    now: DateTime<Utc>,
) -> Result<Results> {
    let (customers, runs) = match prepare(app, delivery, &claimed).await {
        Ok(prepared) => prepared,
        Err(e) => {
            give_back(app, &claimed).await;
            return Err(e);
        }
    };
    let (claimed, customers, runs) = (&claimed, &customers, &runs);
    let build = move |i: usize, eight_bit: bool| {
        let message = &claimed[i];
        build_one(
            app,
            delivery,
            message,
            customers.get(&message.customer_id),
            runs.get(&message.run_id).and_then(|r| r.as_deref()),
            eight_bit,
            now,
        )
    };
    // With a rate limit a message may wait before its data goes out; its
    // envelope must not be sent ahead and leave the server waiting.
    let rate = app.settings().mail.rate_per_minute;
    let announce = rate == 0;
    // The batch was claimed a moment ago (nothing is claimed ahead under a
    // rate limit); `now` may be a test's clock, so this one is the wall's.
    let give_back_at = Instant::now()
        + (timings::get().lease / 2)
            .to_std()
            .expect("a positive lease");
    let mut slots = VecDeque::new();
    let mut results = Vec::with_capacity(claimed.len());
    // Set once nothing can be sent (no SMTP session, database away): the
    // rest of the batch waits as the message that found out did.
    let mut waiting: Option<Outcome> = None;
    // Built messages from index i on: the current one and the next, whose
    // envelope goes out with the current one's data.
    let mut built: VecDeque<Result<Message, Outcome>> = VecDeque::new();
    for (i, message) in claimed.iter().enumerate() {
        // Once the server cannot be reached, the rest of the batch waits
        // without trying (and without using up attempts).
        let outcome = if let Some(wait) = &waiting {
            wait.clone()
        } else {
            while built.len() < 2 && i + built.len() < claimed.len() {
                built.push_back(build(i + built.len(), mailer.takes_8bit()).await);
            }
            // A pause or stop made since the batch was claimed: no slot is
            // waited for (looked at again after a wait for one).
            let rule = runs.get(&message.run_id).and_then(|r| r.as_deref());
            let gate = &delivery.gate;
            // (Only under a limit, where no envelope goes ahead: ending the
            // batch here leaves no transaction open on the SMTP session.)
            let slot = match built.front() {
                Some(Ok(_)) if rate > 0 && gate.check(message.run_id, rule).is_none() => {
                    let want = slots_at_once(app, rate).min((claimed.len() - i) as u32);
                    send_slot(
                        app,
                        rate,
                        want,
                        &mut slots,
                        give_back_at,
                        gate,
                        stop.clone(),
                    )
                    .await
                }
                _ => Slot::Go,
            };
            let closed = gate.check(message.run_id, rule);
            match (built.pop_front().expect("built just above"), slot) {
                (Err(outcome), _) => outcome,
                (Ok(_), _) if closed == Some(Closed::Held) => {
                    give_back(app, &claimed[i..]).await;
                    break;
                }
                (Ok(_), _) if closed == Some(Closed::Stopped) => Outcome::Suppressed {
                    reason: STOPPED.into(),
                },
                (Ok(_), Slot::GiveBack) => {
                    give_back(app, &claimed[i..]).await;
                    break;
                }
                (Ok(_), Slot::DatabaseAway) => Outcome::Waiting {
                    at: now + DATABASE_WAIT,
                    reason: "no send slot could be reserved: the database did not answer".into(),
                },
                (Ok(email), Slot::Go) => 'send: {
                    if let Some(Err(e)) = journal.map(|j| j.wire(message.id)) {
                        // Unjournaled, a crash would hide that it went out.
                        warn!(error = %format!("{e:#}"), "the send journal cannot be written; messages wait");
                        break 'send Outcome::Waiting {
                            at: now + DATABASE_WAIT,
                            reason: format!("{e:#}"),
                        };
                    }
                    let next = match built.front() {
                        Some(Ok(next)) if announce => Some(next),
                        _ => None,
                    };
                    // The message after that is rendered while this one is
                    // on the wire: the worker would otherwise wait idle.
                    let later = i + 1 + built.len();
                    let eight_bit = mailer.takes_8bit();
                    let (outcome, more) = tokio::join!(
                        send_one(app, delivery, mailer, message, &email, next, now),
                        async {
                            if later < claimed.len() {
                                Some(build(later, eight_bit).await)
                            } else {
                                None
                            }
                        }
                    );
                    built.extend(more);
                    outcome
                }
            }
        };
        if matches!(outcome, Outcome::Waiting { .. }) {
            waiting = Some(outcome.clone());
        }
        delivery.metrics.count(&outcome);
        if let Some(Err(e)) = journal.map(|j| j.result(message.id, &outcome)) {
            // The `wire` line is there: a crash now costs an `unknown`, no more.
            warn!(error = %format!("{e:#}"), message = message.id, "cannot write a send result to the journal");
        }
        results.push((message.id, message.customer_id, outcome));
    }
    Ok(results)
}

/// What sending a batch needs from the database: its customers, and the
/// campaign (rule id) of each run in it (`None`: the run is gone).
async fn prepare(
    app: &App,
    delivery: &Delivery,
    claimed: &[Claimed],
) -> Result<(HashMap<i64, Customer>, HashMap<i64, Option<String>>)> {
    let ids: Vec<i64> = claimed.iter().map(|c| c.customer_id).collect();
    let customers = app
        .store
        .customers_by_ids(&ids)
        .await?
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    let mut runs = HashMap::new();
    let run_ids: HashSet<i64> = claimed.iter().map(|c| c.run_id).collect();
    for run_id in run_ids {
        let known = delivery
            .rules
            .lock()
            .expect("rules lock")
            .get(&run_id)
            .cloned();
        let rule = match known {
            Some(rule) => Some(rule),
            None => {
                let rule = app.store.run(run_id).await?.map(|r| r.rule_id);
                if let Some(rule) = &rule {
                    delivery
                        .rules
                        .lock()
                        .expect("rules lock")
                        .insert(run_id, rule.clone());
                }
                rule
            }
        };
        runs.insert(run_id, rule);
    }
    Ok((customers, runs))
}

/// Commits results (one statement) and marks addresses that do not exist.
async fn record(app: &App, results: &Results, now: DateTime<Utc>) -> Result<()> {
    let outcomes: Vec<(i64, Outcome)> = results.iter().map(|(id, _, o)| (*id, o.clone())).collect();
    let recorded = app
        .store
        .record_outcomes(&app.instance, &outcomes, now)
        .await?;
    if recorded < outcomes.len() as u64 {
        // Another daemon expired these claims (its clock ahead of ours?):
        // they stay `unknown`, never resent, so this is not silent.
        warn!(
            messages = outcomes.len() as u64 - recorded,
            "send results not recorded: their claims had expired and are marked unknown"
        );
    }
    for (_, customer_id, outcome) in results {
        if let Outcome::Failed { reply } = outcome
            && is_bad_address(reply)
            && app.store.mark_bad_address(*customer_id, reply, now).await?
        {
            crate::tasks::call_list::ask_for_working_address(app, *customer_id, now).await?;
        }
    }
    Ok(())
}

/// Group commit: workers hand their results over and go on sending while
/// one task commits whatever has arrived, up to [`GROUP`] rows at a time,
/// and acknowledges each batch. It ends when every worker has dropped its
/// sender, after committing the rest. A failed commit (database away) is
/// retried; the claims' leases keep the rows from being sent again meanwhile.
pub fn spawn_recorder(
    shared: Shared,
    journal: Option<Arc<Journal>>,
) -> (mpsc::Sender<Handed>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Handed>(64);
    let handle = tokio::spawn(async move {
        while let Some((mut pending, segment, ack)) = rx.recv().await {
            let mut acks = vec![ack];
            // Released once committed: a journal file goes with its last holder.
            let mut segments = vec![segment];
            while pending.len() < GROUP {
                match rx.try_recv() {
                    Ok((more, segment, ack)) => {
                        pending.extend(more);
                        segments.push(segment);
                        acks.push(ack);
                    }
                    Err(_) => break,
                }
            }
            loop {
                let app = shared.current();
                match record(&app, &pending, Utc::now()).await {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), messages = pending.len(), "recording send results failed; retrying in 1 s");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            }
            drop(segments);
            if let Some(journal) = &journal {
                journal.rotate_if_large();
            }
            for ack in acks {
                let _ = ack.send(());
            }
        }
        info!("send results recorder stopped");
    });
    (tx, handle)
}

/// Whether a message may go out under the rate limit.
enum Slot {
    Go,
    /// The daemon is stopping, the batch has taken half its lease, or a
    /// pause or stop came: the rest of the batch is given back.
    GiveBack,
    /// No slot could be reserved: the rest of the batch waits, as when the
    /// SMTP server is away.
    DatabaseAway,
}

/// Send slots a worker reserves at once: about a second's worth of its
/// share of `rate` per minute. One reservation per message would cap the
/// rate at the database's pace (about 300 a second on PostgreSQL here).
fn slots_at_once(app: &App, rate: u32) -> u32 {
    let per_second = rate.div_ceil(60 * app.settings().mail.workers());
    per_second.clamp(1, BATCH as u32)
}

/// Waits for the next send slot under a limit of `rate` per minute, taking
/// it from `slots` or reserving up to `want` more, for a batch whose lease
/// is half over at `give_back_at`. Several daemons sharing a small limit can
/// make a batch take minutes: from then on the rest goes back to the queue,
/// before another daemon could take the claims for those of a dead one.
/// Slots reserved and not used stay counted: the limit errs on the safe side.
async fn send_slot(
    app: &App,
    rate: u32,
    want: u32,
    slots: &mut VecDeque<DateTime<Utc>>,
    give_back_at: Instant,
    gate: &Gate,
    mut stop: watch::Receiver<bool>,
) -> Slot {
    loop {
        let left = give_back_at.saturating_duration_since(Instant::now());
        if *stop.borrow() || left.is_zero() {
            return Slot::GiveBack;
        }
        // Slots long past (the SMTP server held us up) are dropped, not used
        // in a burst; ones over a minute ahead were reserved before the
        // clock stepped back. Dropped slots stay counted: safe, if wasteful.
        let now = Utc::now();
        while slots
            .front()
            .is_some_and(|at| *at < now - chrono::Duration::seconds(1))
        {
            slots.pop_front();
        }
        if slots
            .front()
            .is_some_and(|at| *at > now + chrono::Duration::seconds(61))
        {
            slots.clear();
        }
        if let Some(at) = slots.pop_front() {
            let wait = (at - now).to_std().unwrap_or_default();
            return if waited_unstopped(&mut stop, gate, wait).await {
                Slot::Go
            } else {
                Slot::GiveBack
            };
        }
        let reply = tokio::select! {
            reply = app.store.reserve_send_slots(rate, want, &Utc::now) => reply,
            Ok(_) = stop.wait_for(|stopping| *stopping) => return Slot::GiveBack,
        };
        match reply {
            Ok(SendSlots::Reserved(reserved)) => slots.extend(reserved),
            Ok(SendSlots::Full(retry)) => {
                if !waited_unstopped(&mut stop, gate, retry.min(left)).await {
                    return Slot::GiveBack;
                }
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "cannot reserve a send slot; the batch waits");
                return Slot::DatabaseAway;
            }
        }
    }
}

/// Sleeps for `wait`; false if the daemon began stopping meanwhile, or a
/// pause or stop came (the batch goes back, the rest of a minute's wait is
/// not sat out for it).
async fn waited_unstopped(stop: &mut watch::Receiver<bool>, gate: &Gate, wait: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        Ok(_) = stop.wait_for(|stopping| *stopping) => false,
        _ = gate.closed_more() => false,
    }
}

/// Everything before the wire: the checks, the voucher, the rendered email
/// — or the outcome that stops this message here.
async fn build_one(
    app: &App,
    delivery: &Delivery,
    message: &Claimed,
    customer: Option<&Customer>,
    rule_id: Option<&str>,
    eight_bit: bool,
    now: DateTime<Utc>,
) -> Result<Message, Outcome> {
    let Some(customer) = customer else {
        return Err(Outcome::Suppressed {
            reason: "customer no longer exists".into(),
        });
    };
    if delivery.is_unsubscribed(customer.id) {
        return Err(Outcome::Suppressed {
            reason: "unsubscribed".into(),
        });
    }
    let to = customer.mailable().map_err(|reason| Outcome::Suppressed {
        reason: reason.into(),
    })?;
    let release = quiet_release(app, customer, now);
    if release > now {
        return Err(Outcome::Retry {
            at: release,
            reply: None,
        });
    }
    let Some(campaign) = rule_id.and_then(|id| app.campaign(id)) else {
        return Err(Outcome::Suppressed {
            reason: "the campaign is no longer in the config".into(),
        });
    };
    let voucher = match voucher_for(app, campaign, message.voucher_code.as_deref()).await {
        Ok(voucher) => voucher,
        // The database, not the message, is at fault: wait, don't fail it.
        Err(e) => {
            warn!(error = %format!("{e:#}"), message = message.id, "cannot read the voucher; the message waits");
            return Err(Outcome::Waiting {
                at: now + DATABASE_WAIT,
                reason: "the voucher could not be read: the database did not answer".into(),
            });
        }
    };
    let unsubscribe = unsubscribe_url(app, customer.id, campaign.kind, now);
    let rendered = render_campaign(
        app,
        campaign,
        customer,
        message.run_id,
        voucher.as_ref(),
        &unsubscribe,
        now,
    )
    .map_err(|e| could_not_build(&e))?;
    crate::message::compose::customer_email(
        &app.config,
        to,
        &message.message_id,
        &unsubscribe,
        &rendered,
        eight_bit,
        Some(&app.signer.verp_tag(message.id)),
    )
    .map_err(|e| could_not_build(&e))
}

fn could_not_build(e: &anyhow::Error) -> Outcome {
    Outcome::Failed {
        reply: format!("could not build the message: {e:#}"),
    }
}

/// The wire: send, and what the server's answer means.
async fn send_one(
    app: &App,
    delivery: &Delivery,
    mailer: &mut Mailer,
    message: &Claimed,
    email: &Message,
    next: Option<&Message>,
    now: DateTime<Utc>,
) -> Outcome {
    // Checked again right before sending: the email was built a moment ago.
    if delivery.is_unsubscribed(message.customer_id) {
        return Outcome::Suppressed {
            reason: "unsubscribed".into(),
        };
    }
    let started = Instant::now();
    let result = mailer.send_with_next(email, next, now).await;
    delivery.metrics.observe_latency(started.elapsed());
    let customer = message.customer_id;
    if matches!(mailer, Mailer::Smtp(_))
        && !matches!(result, SendResult::Unavailable { .. })
        && delivery.note_session(Ok(()))
    {
        info!("SMTP session open");
    }
    match result {
        SendResult::Sent(reply) => {
            debug!(message = message.id, customer, %reply, "sent");
            Outcome::Sent { reply }
        }
        SendResult::Permanent(reply) => {
            warn!(message = message.id, customer, %reply, "rejected permanently");
            Outcome::Failed { reply }
        }
        SendResult::Ambiguous(reason) => {
            warn!(message = message.id, customer, %reason, "outcome unknown; held for a person");
            Outcome::Unknown { reason }
        }
        SendResult::Temporary(reply) => retry_or_give_up(app, message, reply, now),
        SendResult::Unavailable { failure, retry_at } => {
            // The same failure again (each batch meets it) is not news.
            if delivery.note_session(Err(failure.clone())) {
                warn!(reason = %failure, %retry_at, "no SMTP session; messages wait");
            } else {
                debug!(reason = %failure, %retry_at, "still no SMTP session; messages wait");
            }
            Outcome::Waiting {
                at: retry_at,
                reason: failure.to_string(),
            }
        }
    }
}

/// Exponential backoff from one minute, capped at an hour, ±20 % jitter, until `give_up_after`.
fn retry_or_give_up(app: &App, message: &Claimed, reply: String, now: DateTime<Utc>) -> Outcome {
    let first = message.first_attempt_at.unwrap_or(now);
    let give_up = chrono::Duration::from_std(app.config.resolved.give_up_after)
        .unwrap_or(chrono::Duration::days(3));
    if now - first >= give_up {
        return Outcome::Failed {
            reply: format!(
                "gave up after {}: {reply}",
                crate::local_time::spoken_duration(app.config.resolved.give_up_after)
            ),
        };
    }
    let base = 60.0 * 2f64.powi(message.attempts.clamp(0, 6));
    let jittered = base.min(3600.0) * rand::rng().random_range(0.8..1.2);
    warn!(message = message.id, attempt = message.attempts + 1, retry_in_secs = jittered as i64, %reply, "temporary failure; will retry");
    Outcome::Retry {
        at: now + chrono::Duration::seconds(jittered as i64),
        reply: Some(reply),
    }
}

/// One worker: its own transport session, batches until shutdown.
pub async fn worker(
    shared: Shared,
    delivery: Arc<Delivery>,
    results: mpsc::Sender<Handed>,
    mut stop: watch::Receiver<bool>,
) {
    let mut mailer: Option<(MailerSettings, Mailer)> = None;
    // Commits of batches handed over: at most [`COMMITTING`] are waited for
    // at a time, so at most that many batches plus the one being sent and
    // the one claimed ahead can end `unknown` per worker if the process dies.
    let mut committing: std::collections::VecDeque<oneshot::Receiver<()>> = Default::default();
    // The next batch, claimed while the previous one was being sent: a claim
    // waits for its commit (an fsync on SQLite), sending need not wait too.
    let mut ahead: Option<Vec<Claimed>> = None;
    loop {
        if *stop.borrow() {
            break;
        }
        // Registered before the claim: a wake-up (`notify_waiters`) that
        // comes while it runs is not lost and ends the sleep after it at once.
        let woken = delivery.wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let app = shared.current();
        let settings = MailerSettings::from_config(&app.config);
        if mailer
            .as_ref()
            .is_none_or(|(opened_with, _)| *opened_with != settings)
        {
            match settings.open() {
                Ok(m) => mailer = Some((settings, m)),
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot open the mail transport; retrying in 10 s");
                    sleep_or_stop(&mut stop, Duration::from_secs(10), woken).await;
                    continue;
                }
            }
        }
        let (_, m) = mailer.as_mut().expect("opened above");
        let claimed = match ahead.take() {
            Some(claimed) => Ok(claimed),
            None => claim(&app, Utc::now()).await,
        };
        let claimed = match claimed {
            Ok(claimed) if claimed.is_empty() => {
                sleep_or_stop(&mut stop, Duration::from_secs(2), woken).await;
                continue;
            }
            Ok(claimed) => claimed,
            Err(e) => {
                warn!(error = %format!("{e:#}"), "claiming messages failed; retrying in 5 s");
                sleep_or_stop(&mut stop, Duration::from_secs(5), woken).await;
                continue;
            }
        };
        let stopping = stop.clone();
        let segment = delivery.journal.as_ref().and_then(|j| j.segment());
        let (sent, next) = tokio::join!(
            send_claimed(
                &app,
                &delivery,
                m,
                claimed,
                segment.as_deref(),
                &stopping,
                Utc::now()
            ),
            async {
                // Under a rate limit sending is the slow part, and a batch
                // claimed ahead would sit out part of its lease waiting.
                if *stopping.borrow() || app.settings().mail.rate_per_minute > 0 {
                    return Ok(Vec::new());
                }
                claim(&app, Utc::now()).await
            }
        );
        match next {
            Ok(next) => ahead = Some(next).filter(|n| !n.is_empty()),
            Err(e) => warn!(error = %format!("{e:#}"), "claiming the next batch failed"),
        }
        match sent {
            Ok(batch) => {
                debug!(messages = batch.len(), "batch sent");
                while committing.len() >= COMMITTING {
                    if let Some(oldest) = committing.pop_front() {
                        let _ = oldest.await;
                    }
                }
                let (ack, committed) = oneshot::channel();
                if let Err(mpsc::error::SendError((_, segment, _))) =
                    results.send((batch, segment, ack)).await
                {
                    // Not committed: the journal file stays for the next start.
                    if let Some(segment) = segment {
                        segment.keep();
                    }
                    warn!("the results recorder stopped; stopping this worker");
                    break;
                }
                committing.push_back(committed);
            }
            Err(e) => {
                warn!(error = %format!("{e:#}"), "delivery step failed; retrying in 5 s");
                sleep_or_stop(&mut stop, Duration::from_secs(5), woken).await;
            }
        }
    }
    if let Some(unsent) = ahead {
        give_back(&shared.current(), &unsent).await;
    }
    if let Some((_, mut m)) = mailer {
        m.close().await;
    }
    info!("delivery worker stopped");
}

async fn sleep_or_stop(
    stop: &mut watch::Receiver<bool>,
    duration: Duration,
    woken: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
) {
    tokio::select! {
        _ = tokio::time::sleep(duration) => {}
        _ = woken => {}
        _ = stop.changed() => {}
    }
}
