//! Check-ins: the personal part, handed to people.
//!
//! A `[[checkin]]` run never emails a customer. It creates call tasks for
//! staff — for customers the audience matches, who may be called, have no
//! open call task and were not personally contacted within
//! `min_days_between_personal_contacts` — and records why the others were
//! left out. Staff get one digest email per working day at their `digest_at`
//! and record each call's outcome on the task page (or `outreach tasks
//! done`); outcomes feed back into the customer (last personal contact,
//! tags, do-not-call) and into follow-up tasks.
//!
//! Planning days: a task's `due_on` is the first day, from today, on which
//! its staff member works, is not absent and has capacity left
//! (`daily_capacity` open tasks due that day); tasks beyond capacity wait for
//! the next working day, oldest first. A task is overdue once its due day has
//! passed; overdue longer than `escalate_after` it is escalated to the
//! manager; untouched for `expire_after` it closes as `expired`.

use std::collections::HashMap;

use anyhow::{Result, anyhow, bail};
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tracing::{info, warn};

use crate::app::App;
use crate::audience::AudienceError;
use crate::config::{Assign, Checkin, Staff, StaffRules};
use crate::context::customer_value_on;
use crate::domain::Customer;
use crate::store::{NewTask, OutcomeChange, Run, Task};

pub mod digest;

/// How far ahead a free day is searched for.
const HORIZON_DAYS: u64 = 60;

/// The outcomes staff can record.
pub const OUTCOMES: [&str; 5] = [
    "reached",
    "not_reached",
    "callback",
    "needs_help",
    "do_not_call",
];

/// Who can take calls on which day, and how full their days are.
pub struct Roster<'a> {
    staff: Vec<(&'a Staff, &'a StaffRules)>,
    load: HashMap<(String, NaiveDate), i64>,
}

impl<'a> Roster<'a> {
    pub async fn load(app: &'a App) -> Result<Roster<'a>> {
        let rules = &app.config.resolved.staff;
        let staff = app
            .settings()
            .staff
            .iter()
            .filter_map(|s| rules.get(&s.id).map(|r| (s, r)))
            .collect();
        let load = app
            .store
            .open_task_load()
            .await?
            .into_iter()
            .map(|(s, d, n)| ((s, d), n))
            .collect();
        Ok(Roster { staff, load })
    }

    fn find(&self, id: &str) -> Option<(&'a Staff, &'a StaffRules)> {
        self.staff.iter().copied().find(|(s, _)| s.id == id)
    }

    /// Today in the staff member's own time zone.
    pub fn today(rules: &StaffRules, now: DateTime<Utc>) -> NaiveDate {
        now.with_timezone(&rules.timezone).date_naive()
    }

    pub fn is_absent(staff: &Staff, day: NaiveDate) -> bool {
        staff.absences.iter().any(|a| a.from <= day && day <= a.to)
    }

    pub fn works_on(staff: &Staff, rules: &StaffRules, day: NaiveDate) -> bool {
        rules.days.contains(&day.weekday()) && !Self::is_absent(staff, day)
    }

    /// The first day from `from` this person works with capacity left.
    fn free_day(&self, staff: &Staff, rules: &StaffRules, from: NaiveDate) -> Option<NaiveDate> {
        (0..HORIZON_DAYS)
            .map(|i| from + chrono::Days::new(i))
            .find(|day| {
                Self::works_on(staff, rules, *day)
                    && self
                        .load
                        .get(&(staff.id.clone(), *day))
                        .copied()
                        .unwrap_or(0)
                        < i64::from(staff.daily_capacity)
            })
    }

    /// The next working day after `day` (ignoring capacity), for retries.
    pub fn next_working_day(staff: &Staff, rules: &StaffRules, day: NaiveDate) -> NaiveDate {
        (1..=HORIZON_DAYS)
            .map(|i| day + chrono::Days::new(i))
            .find(|d| Self::works_on(staff, rules, *d))
            .unwrap_or(day + chrono::Days::new(1))
    }

    /// Picks who calls and when: the owner if they are not absent today,
    /// else whoever has the earliest free day (fewest open tasks on ties).
    /// Colleagues absent today are not given new tasks.
    pub fn assign(
        &self,
        owner: Option<&str>,
        policy: Assign,
        exclude: Option<&str>,
        now: DateTime<Utc>,
    ) -> Option<(&'a Staff, NaiveDate)> {
        if policy == Assign::Owner
            && let Some((staff, rules)) = owner.and_then(|o| self.find(o))
            && exclude != Some(staff.id.as_str())
            && !Self::is_absent(staff, Self::today(rules, now))
            && let Some(day) = self.free_day(staff, rules, Self::today(rules, now))
        {
            return Some((staff, day));
        }
        self.staff
            .iter()
            .filter(|(s, r)| {
                exclude != Some(s.id.as_str()) && !Self::is_absent(s, Self::today(r, now))
            })
            .filter_map(|(s, r)| self.free_day(s, r, Self::today(r, now)).map(|d| (*s, d)))
            .min_by_key(|(s, d)| (*d, self.open_count(&s.id), s.id.clone()))
    }

    fn open_count(&self, staff: &str) -> i64 {
        self.load
            .iter()
            .filter(|((s, _), _)| s == staff)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn book(&mut self, staff: &str, day: NaiveDate) {
        *self.load.entry((staff.to_string(), day)).or_insert(0) += 1;
    }

    fn unbook(&mut self, staff: &str, day: NaiveDate) {
        if let Some(n) = self.load.get_mut(&(staff.to_string(), day)) {
            *n -= 1;
        }
    }
}

/// A staff member's time zone (the business's for someone no longer in the config).
fn staff_zone(app: &App, staff_id: &str) -> chrono_tz::Tz {
    app.config
        .resolved
        .staff
        .get(staff_id)
        .map(|r| r.timezone)
        .unwrap_or(app.config.resolved.timezone)
}

/// Whether an open task's due day has passed, by its staff member's own
/// calendar (the business's for someone no longer in the config).
pub fn is_overdue(app: &App, task: &Task, now: DateTime<Utc>) -> bool {
    let tz = staff_zone(app, &task.staff_id);
    task.state == "open" && now.with_timezone(&tz).date_naive() > deadline(app, task)
}

/// The last day a call is on time: its planned day, or `due_in` after the
/// task was made if that is later — staff may call any day in between.
pub fn deadline(app: &App, task: &Task) -> NaiveDate {
    let tz = staff_zone(app, &task.staff_id);
    let due_in_days = app
        .config
        .resolved
        .checkin_durations
        .get(&task.rule_id)
        .map(|d| d.due_in.as_secs() / 86_400)
        .unwrap_or(0);
    let by_due_in =
        task.created_at.with_timezone(&tz).date_naive() + chrono::Days::new(due_in_days);
    task.due_on.max(by_due_in)
}

/// Why a matched customer gets no call suggested, if any.
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

/// Runs a check-in rule: call tasks for the matched customers.
pub async fn create_tasks(app: &App, run: &Run, now: DateTime<Utc>) -> Result<u64> {
    let Some(rule) = app.checkin(&run.rule_id) else {
        app.store
            .transition_run(
                run.id,
                &["planning"],
                "skipped",
                Some("the check-in rule is no longer in the config"),
                now,
            )
            .await?;
        return Ok(0);
    };
    let audience = app
        .config
        .resolved
        .audiences
        .get(&rule.id)
        .ok_or_else(|| anyhow!("check-in {}: audience not compiled", rule.id))?;
    let open = app.store.customers_with_open_call().await?;
    let mut roster = Roster::load(app).await?;
    let (mut created, mut skipped) = (0u64, 0u64);
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
                    return Ok(created);
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
            let Some((staff, day)) =
                roster.assign(customer.owner.as_deref(), rule.assign, None, now)
            else {
                app.store
                    .record_checkin_skip(
                        run.id,
                        customer.id,
                        "no staff member available in the next 60 days",
                    )
                    .await?;
                skipped += 1;
                continue;
            };
            let task = NewTask {
                rule_id: &rule.id,
                run_id: Some(run.id),
                customer_id: customer.id,
                staff_id: &staff.id,
                kind: "call",
                reason: &rule.reason,
                due_on: day,
                parent_id: None,
            };
            if app.store.create_task(&task, now).await?.is_some() {
                roster.book(&staff.id, day);
                created += 1;
            }
        }
    }
    app.store
        .transition_run(
            run.id,
            &["planning"],
            "done",
            Some(&format!("{created} call task(s), {skipped} left out")),
            now,
        )
        .await?;
    info!(run = run.id, rule = %rule.id, created, skipped, "check-in tasks created");
    Ok(created)
}

/// What an outcome does, decided before anything is written.
pub fn outcome_change(
    app: &App,
    task: &Task,
    outcome: &str,
    note: Option<&str>,
    callback_on: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<OutcomeChange> {
    let rule = app.checkin(&task.rule_id);
    let tags = |pick: fn(&crate::config::OutcomeTags) -> &Vec<String>| {
        rule.map(|r| pick(&r.outcome_tags).clone())
            .unwrap_or_default()
    };
    let staff_rules = app.config.resolved.staff.get(&task.staff_id);
    let staff = app.settings().staff.iter().find(|s| s.id == task.staff_id);
    let next_day = |from: NaiveDate| match (staff, staff_rules) {
        (Some(s), Some(r)) => Roster::next_working_day(s, r, from),
        _ => from + chrono::Days::new(1),
    };
    let today = staff_rules
        .map(|r| Roster::today(r, now))
        .unwrap_or_else(|| now.date_naive());
    let note_text = note.map(|n| format!(": {n}")).unwrap_or_default();
    let mut change = OutcomeChange {
        event: format!("{outcome} (task {}, {}){note_text}", task.id, task.staff_id),
        ..OutcomeChange::default()
    };
    match outcome {
        "reached" => {
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.reached);
        }
        "not_reached" => {
            let max = rule.map(|r| r.max_attempts).unwrap_or(3);
            if (task.attempts as u32) + 1 < max {
                change.retry_on = Some(next_day(today.max(task.due_on)));
            }
            change.add_tags = tags(|t| &t.not_reached);
        }
        "callback" => {
            let day = callback_on.ok_or_else(|| anyhow!("callback needs a date (YYYY-MM-DD)"))?;
            if day < today {
                bail!("the callback date {day} is in the past");
            }
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.callback);
            // The note stays with this task and its history entry: a reason
            // is shown wherever the task is, and is no place for it.
            change.follow_up = Some((
                task.staff_id.clone(),
                "call".into(),
                "callback agreed".into(),
                day,
            ));
        }
        "needs_help" => {
            change.personal_contact = true;
            change.add_tags = tags(|t| &t.needs_help);
            let manager = staff
                .and_then(|s| s.manager.clone())
                .unwrap_or_else(|| task.staff_id.clone());
            let due = match (
                app.settings().staff.iter().find(|s| s.id == manager),
                app.config.resolved.staff.get(&manager),
            ) {
                (Some(s), Some(r)) => Roster::next_working_day(s, r, today),
                _ => today + chrono::Days::new(1),
            };
            change.follow_up = Some((
                manager,
                "follow_up".into(),
                format!("needs help (call by {})", task.staff_id),
                due,
            ));
        }
        "do_not_call" => {
            change.personal_contact = true;
            change.do_not_call = true;
            change.add_tags = tags(|t| &t.do_not_call);
        }
        other => bail!(
            "unknown outcome \"{other}\"; use one of: {}",
            OUTCOMES.join(", ")
        ),
    }
    Ok(change)
}

/// Records an outcome; `Ok(false)` if it had been recorded already.
pub async fn record_outcome(
    app: &App,
    task_id: i64,
    outcome: &str,
    note: Option<&str>,
    callback_on: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<bool> {
    let task = app
        .store
        .task(task_id)
        .await?
        .ok_or_else(|| anyhow!("no task {task_id}"))?;
    if task.state != "open" {
        return Ok(false);
    }
    let note = note.map(str::trim).filter(|n| !n.is_empty());
    let change = outcome_change(app, &task, outcome, note, callback_on, now)?;
    let applied = app
        .store
        .apply_outcome(&task, outcome, note, &change, now)
        .await?;
    if applied {
        info!(
            task = task.id,
            customer = task.customer_id,
            outcome,
            "call outcome recorded"
        );
    }
    Ok(applied)
}

/// Time-driven task work: absences, escalations, expiry, digests.
pub async fn housekeeping(app: &App, now: DateTime<Utc>) -> Result<()> {
    reassign_absent(app, now).await?;
    escalate_overdue(app, now).await?;
    for rule in &app.settings().checkins {
        let Some(durations) = app.config.resolved.checkin_durations.get(&rule.id) else {
            continue;
        };
        let before = now
            - chrono::Duration::from_std(durations.expire_after)
                .unwrap_or(chrono::Duration::days(14));
        let reason = format!(
            "expired: untouched for {}",
            humantime::format_duration(durations.expire_after)
        );
        let expired = app
            .store
            .expire_tasks(&rule.id, before, &reason, now)
            .await?;
        if !expired.is_empty() {
            info!(rule = %rule.id, tasks = ?expired, "tasks expired");
        }
    }
    digest::send_due(app, now).await
}

/// Open tasks of someone absent today move to the least-loaded colleague.
async fn reassign_absent(app: &App, now: DateTime<Utc>) -> Result<()> {
    let mut roster = Roster::load(app).await?;
    for staff in &app.settings().staff {
        let Some(rules) = app.config.resolved.staff.get(&staff.id) else {
            continue;
        };
        if !Roster::is_absent(staff, Roster::today(rules, now)) {
            continue;
        }
        for task in app.store.tasks(Some(&staff.id), true).await? {
            match roster.assign(None, Assign::LeastLoaded, Some(&staff.id), now) {
                Some((colleague, day)) => {
                    app.store
                        .reassign_task(task.id, &colleague.id, day, now)
                        .await?;
                    roster.unbook(&staff.id, task.due_on);
                    roster.book(&colleague.id, day);
                    info!(task = task.id, from = %staff.id, to = %colleague.id, "task moved: staff member absent");
                }
                None => {
                    warn!(task = task.id, staff = %staff.id, "staff member absent and no colleague available")
                }
            }
        }
    }
    Ok(())
}

/// Overdue longer than `escalate_after`: one email to the manager per batch.
async fn escalate_overdue(app: &App, now: DateTime<Utc>) -> Result<()> {
    let mut by_manager: HashMap<String, Vec<Task>> = HashMap::new();
    for task in app.store.tasks(None, true).await? {
        if task.escalated_at.is_some() {
            continue;
        }
        let Some(durations) = app.config.resolved.checkin_durations.get(&task.rule_id) else {
            continue;
        };
        let Some(rules) = app.config.resolved.staff.get(&task.staff_id) else {
            continue;
        };
        // Overdue from the end of its last day on time, in the staff member's zone.
        let due_end = (deadline(app, &task) + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists");
        let Some(due_end) = due_end.and_local_timezone(rules.timezone).earliest() else {
            continue;
        };
        let overdue_for = now - due_end.with_timezone(&Utc);
        if overdue_for
            < chrono::Duration::from_std(durations.escalate_after)
                .unwrap_or(chrono::Duration::days(3))
        {
            continue;
        }
        let staff = app.settings().staff.iter().find(|s| s.id == task.staff_id);
        let manager = staff
            .and_then(|s| s.manager.as_deref())
            .and_then(|m| app.settings().staff.iter().find(|s| s.id == m))
            .map(|m| m.email.clone())
            .unwrap_or_else(|| app.settings().business.admin_email());
        by_manager.entry(manager).or_default().push(task);
    }
    for (to, tasks) in by_manager {
        // A manager's address that fails must hold up neither the other
        // escalations nor expiry and everyone's digest; it is retried next tick.
        if let Err(e) = digest::send_escalation(app, &to, &tasks, now).await {
            warn!(to = %to, error = %format!("{e:#}"), "overdue calls could not be escalated; will retry");
            continue;
        }
        app.store
            .mark_escalated(&tasks.iter().map(|t| t.id).collect::<Vec<_>>(), now)
            .await?;
    }
    Ok(())
}
