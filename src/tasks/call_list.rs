//! The call list: a check-in run puts customers on it, and each working day
//! every staff member's list is filled from it, within their capacity.
//!
//! The list is served in this order (for the staff member being planned):
//! 1. agreed callbacks that were missed on their day, and follow-ups after
//!    "needs help" (a follow-up waits for its manager while they are present);
//! 2. their own regulars (customers whose `owner` they are);
//! 3. everyone else;
//!
//! each group longest without personal contact first, then first come, first
//! served: someone selected again without having been reached (not reached
//! on every try, or a call nobody made) keeps their place in line. A regular waits for their owner unless the owner is away (an
//! absence, not a day off) or no longer on staff, or the rule assigns
//! `least_loaded`; a call someone left unmade goes to a colleague.
//!
//! Which list takes the next customer nobody keeps: the one for the earliest
//! day, then whoever has the most room left on it, then fewest open calls,
//! then by id. A day's list is filled until its digest goes out; after that,
//! the next working day's. Nothing is planned further ahead than that.

use std::collections::HashSet;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use tracing::info;

use super::roster::{Member, Roster};
use crate::app::App;
use crate::audience::AudienceError;
use crate::config::{Assign, Checkin};
use crate::context::customer_value_on;
use crate::domain::{Customer, RunState};
use crate::store::{
    Candidate, CandidateQuery, ListReason, NewEntry, NewTask, Planned, Run, TaskKind,
};

/// Why a matched customer is not put on the call list, if anything.
fn call_blocker(customer: &Customer, rule: &Checkin, now: DateTime<Utc>) -> Option<String> {
    if customer.do_not_call {
        return Some("do not call".into());
    }
    if !customer.is_business && !customer.phone_consent {
        return Some("no phone consent (consumer)".into());
    }
    if customer
        .phone
        .as_deref()
        .is_none_or(|p| p.trim().is_empty())
    {
        return Some("no phone number".into());
    }
    if let Some(last) = customer.last_personal_contact_at {
        let days = (now - last).num_days();
        if days < i64::from(rule.min_days_between_personal_contacts) {
            return Some(format!(
                "personal contact within the last {} days",
                rule.min_days_between_personal_contacts
            ));
        }
    }
    None
}

/// Runs a check-in rule: the customers it selects join the call list; the
/// others are recorded with why they were left out. Returns how many joined.
pub async fn fill(app: &App, run: &Run, now: DateTime<Utc>) -> Result<u64> {
    let Some(rule) = app.checkin(&run.rule_id) else {
        app.store
            .transition_run(
                run.id,
                &[RunState::Planning],
                RunState::Skipped,
                Some("the check-in rule is no longer in the config"),
                now,
            )
            .await?;
        return Ok(0);
    };
    let audience = &rule.audience;
    let open = app.store.customers_with_open_call().await?;
    let waiting = app.store.customers_on_call_list().await?;
    let places = app.store.places_in_line().await?;
    let staff: HashSet<&str> = app.settings().staff.iter().map(|s| s.id.as_str()).collect();
    let (mut added, mut skipped) = (0u64, 0u64);
    let day = run
        .occurrence
        .with_timezone(&app.config.resolved.timezone)
        .date_naive();
    let mut after = 0;
    loop {
        let page = app
            .store
            .customers_page(after, 2000, &crate::store::CustomerColumns::all())
            .await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for customer in &page {
            match audience.matches(&customer_value_on(customer, day)) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(AudienceError::Runaway(why)) => {
                    crate::plan::stop_runaway(app, run, &why, now).await?;
                    return Ok(added);
                }
                Err(e) => {
                    app.store
                        .record_checkin_skip(run.id, customer.id, &format!("audience error: {e}"))
                        .await?;
                    continue;
                }
            }
            let blocker = if open.contains(&customer.id) {
                Some("already has an open call task".to_string())
            } else if waiting.contains(&customer.id) {
                Some("already on the call list".to_string())
            } else {
                call_blocker(customer, rule, now)
            };
            if let Some(reason) = blocker {
                app.store
                    .record_checkin_skip(run.id, customer.id, &reason)
                    .await?;
                skipped += 1;
                continue;
            }
            let reason = match customer.owner.as_deref() {
                Some(owner) if staff.contains(owner) => ListReason::Regular,
                _ => ListReason::Checkin,
            };
            let entry = NewEntry {
                customer_id: customer.id,
                rule_id: rule.id.clone(),
                run_id: Some(run.id),
                reason,
                staff_id: None,
                avoid_staff_id: None,
                not_before: None,
                attempts: 0,
                from_task_id: None,
                detail: None,
                place: places.get(&customer.id).copied(),
            };
            if app.store.add_to_call_list(&entry, now).await? {
                added += 1;
            }
        }
    }
    app.store
        .transition_run(
            run.id,
            &[RunState::Planning],
            RunState::Done,
            Some(&format!("{added} on the call list, {skipped} left out")),
            now,
        )
        .await?;
    info!(run = run.id, rule = %rule.id, added, skipped, "check-in: customers put on the call list");
    Ok(added)
}

/// One staff member's list being filled.
struct Slot<'a> {
    member: Member<'a>,
    day: NaiveDate,
    room: i64,
    candidates: std::vec::IntoIter<Candidate>,
}

/// Fills every staff member's next list from the call list, up to their
/// capacity (see the module docs for the order).
pub async fn plan(app: &App, now: DateTime<Utc>) -> Result<()> {
    let roster = Roster::load(app, now).await?;
    let mut slots: Vec<Slot> = roster
        .members()
        .iter()
        .filter_map(|m| {
            let day = roster.plan_day(*m)?;
            Some(Slot {
                member: *m,
                day,
                room: roster.room(*m, day),
                candidates: Vec::new().into_iter(),
            })
        })
        .filter(|s| s.room > 0)
        .collect();
    let total: i64 = slots.iter().map(|s| s.room).sum();
    if total == 0 {
        return Ok(());
    }
    let least_loaded: Vec<String> = app
        .rules()
        .checkins
        .iter()
        .filter(|r| r.assign == Assign::LeastLoaded)
        .map(|r| r.id.clone())
        .collect();
    let alone = roster.members().len() == 1;
    for slot in &mut slots {
        let present = roster.present_on(slot.day);
        // As many as all rooms together: others may take some of the first.
        let waiting = CandidateQuery {
            staff: slot.member.id(),
            day: slot.day,
            present: &present,
            least_loaded: &least_loaded,
            alone,
            limit: total,
        };
        slot.candidates = app.store.call_list_candidates(&waiting).await?.into_iter();
    }
    let mut taken = HashSet::new();
    let mut planned = 0;
    // One at a time: to the list of the earliest day, so nobody is called
    // later than they could be; among lists of one day, to whoever has the
    // most room left, so that customers nobody keeps are shared out evenly.
    while let Some(slot) = slots.iter_mut().filter(|s| s.room > 0).min_by_key(|s| {
        (
            s.day,
            -s.room,
            roster.open_count(s.member.id()),
            s.member.id().to_string(),
        )
    }) {
        let Some(candidate) = slot.candidates.by_ref().find(|c| !taken.contains(&c.id)) else {
            slot.room = 0;
            continue;
        };
        taken.insert(candidate.id);
        let task = planned_task(app, &candidate, slot.member.id(), slot.day);
        if let Planned::Task(_) = app.store.plan_entry(candidate.id, &task, now).await? {
            slot.room -= 1;
            planned += 1;
        }
    }
    if planned > 0 {
        info!(calls = planned, "calls planned from the call list");
    }
    Ok(())
}

/// The call task a waiting customer becomes.
fn planned_task(app: &App, entry: &Candidate, staff: &str, day: NaiveDate) -> NewTask {
    // Kept in the business language (`customers show`, `tasks list`);
    // pages and digests show the rule's reason in the reader's.
    let reason = entry.detail.clone().unwrap_or_else(|| {
        app.checkin(&entry.rule_id)
            .map(|r| {
                r.reason
                    .get(None, &app.settings().business.locale)
                    .to_string()
            })
            .unwrap_or_default()
    });
    NewTask {
        rule_id: entry.rule_id.clone(),
        run_id: entry.run_id,
        customer_id: entry.customer_id,
        staff_id: staff.to_string(),
        owner_id: staff.to_string(),
        kind: if entry.reason == ListReason::FollowUp {
            TaskKind::FollowUp
        } else {
            TaskKind::Call
        },
        reason,
        due_on: day,
        agreed_on: None,
        attempts: entry.attempts,
        parent_id: entry.from_task_id,
    }
}

/// The rule id of the calls that ask for a working email address (no
/// check-in rule: they come from a bounce).
pub const BAD_ADDRESS_RULE: &str = "bad_address";

/// Why a bad-address call is due, in `locale` (staff pages, digests) or
/// the business language (the task's stored reason).
pub fn bad_address_reason(locale: &str) -> &'static str {
    match locale {
        "de" => {
            "Die E-Mail-Adresse kommt als unzustellbar zurück: bitte nach einer Adresse fragen, die funktioniert."
        }
        _ => "Their email address bounced for good: please ask for one that works.",
    }
}

/// After a permanent bounce: a customer who may be called (phone consent,
/// or a business; a phone number; not "do not call") and who has an owner
/// on the staff joins the call list, so that someone asks for a working
/// address instead of email just stopping. Recorded in their history.
/// Returns whether they joined.
pub async fn ask_for_working_address(
    app: &App,
    customer_id: i64,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Some(customer) = app.store.customers_by_ids(&[customer_id]).await?.pop() else {
        return Ok(false);
    };
    let has_owner = customer
        .owner
        .as_deref()
        .is_some_and(|o| app.settings().staff.iter().any(|s| s.id == o));
    let callable = customer.forgotten_at.is_none()
        && !customer.do_not_call
        && (customer.phone_consent || customer.is_business)
        && customer
            .phone
            .as_deref()
            .is_some_and(|p| !p.trim().is_empty());
    if !(has_owner && callable) {
        return Ok(false);
    }
    let entry = NewEntry {
        customer_id,
        rule_id: BAD_ADDRESS_RULE.to_string(),
        run_id: None,
        reason: ListReason::BadAddress,
        staff_id: None,
        avoid_staff_id: None,
        not_before: None,
        attempts: 0,
        from_task_id: None,
        detail: Some(bad_address_reason(&app.settings().business.locale).to_string()),
        place: None,
    };
    let joined = app.store.add_to_call_list(&entry, now).await?;
    let detail = if joined {
        "joined the call list: the email address bounced, staff ask for a working one"
    } else {
        "the email address bounced; already on the call list, so staff can ask for a working one there"
    };
    app.store
        .add_customer_event(
            customer_id,
            now,
            &crate::store::NewEvent::new("call_list", detail),
        )
        .await?;
    if joined {
        info!(
            customer = customer_id,
            "on the call list to ask for a working email address"
        );
    }
    Ok(joined)
}

/// Customers who may no longer be called, or whose rule is gone, leave the
/// call list, each with the reason.
pub async fn prune(app: &App, now: DateTime<Utc>) -> Result<()> {
    let rules: Vec<String> = app
        .rules()
        .checkins
        .iter()
        .map(|r| r.id.clone())
        .chain([BAD_ADDRESS_RULE.to_string()])
        .collect();
    for (reason, customers) in app.store.prune_call_list(&rules, now).await? {
        info!(%reason, customers, "left the call list without a call");
    }
    Ok(())
}
