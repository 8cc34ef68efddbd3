//! Emails to staff: the daily digest of calls, and escalations.
//!
//! The digest goes out once per staff member and working day at their
//! `digest_at` (their time zone), only when they have open tasks due, overdue
//! ones first. It reads like a morning list: today's calls at a glance, then
//! per reason the talking points once and each call under them (phone,
//! when, the last contacts, the link to the task page). A calendar file
//! carries the calls as events, one a call. The `digests` table makes "once
//! a day" hold across restarts and daemons. The wording is in the
//! `digest` and `escalation` templates.

use std::fmt::Write;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Serialize;
use tracing::{info, warn};

use super::overdue::Escalated;
use super::roster::Roster;
use super::view::CallView;
use crate::app::App;
use crate::config::Staff;
use crate::domain::Customer;
use crate::mailer::{MailerSettings, SendResult};
use crate::store::{Task, TaskKind};
use crate::tokens::Purpose;

/// How many of a customer's last contacts a digest shows per call.
const DIGEST_CONTACTS: usize = 3;

/// The language a staff member reads (before the reader rule picks a text).
pub fn staff_locale<'a>(app: &'a App, staff: &'a Staff) -> &'a str {
    staff
        .locale
        .as_deref()
        .unwrap_or(&app.settings().business.locale)
}

/// The signed link to a task's page.
pub fn task_link(app: &App, task: &Task, now: DateTime<Utc>) -> String {
    let valid = app
        .checkin(&task.rule_id)
        .map(|rule| rule.expire_after)
        .unwrap_or(std::time::Duration::from_secs(14 * 86400));
    let expires = now
        + chrono::Duration::from_std(valid).unwrap_or(chrono::Duration::days(14))
        + chrono::Duration::days(7);
    app.link(&format!(
        "/t/{}",
        app.signer.sign(Purpose::Task, task.id, expires)
    ))
}

/// What the `digest` template sees.
pub fn digest_context(
    (id, name): (&str, &str),
    date: String,
    calls: &[CallView],
    business: Value,
) -> Value {
    context! {
        staff => context! { id, name },
        date,
        overdue => calls.iter().filter(|c| c.overdue).count(),
        groups => Value::from(Serde(by_reason(calls))),
        calls => Value::from(Serde(calls)),
        business,
    }
}

/// An overdue call as its escalation lists it.
pub struct Escalation {
    /// Whose call it is (their name).
    pub staff: String,
    /// The day it goes back on the call list for a colleague (`None`: now).
    pub back_on: Option<String>,
    pub call: CallView,
}

/// What the `escalation` template sees: each call with whose it is and
/// when it goes back on the call list.
pub fn escalation_context(manager: Option<&str>, calls: &[Escalation]) -> Value {
    let calls: Vec<Value> = calls
        .iter()
        .map(|e| context! { staff => &e.staff, back_on => &e.back_on, ..Value::from(Serde(&e.call)) })
        .collect();
    context! { manager, calls }
}

/// What the `calendar_event` template sees.
pub fn calendar_event_context(call: &CallView) -> Value {
    context! { call => Value::from(Serde(call)) }
}

/// Calls with one reason: the talking points, once when they are the same for all.
#[derive(Serialize)]
struct Group {
    kind: TaskKind,
    /// The rule's reason (for a rule's calls).
    reason: String,
    talking_points: Option<Value>,
    calls: Vec<CallView>,
}

/// The calls by reason, in the order their first call comes; talking points
/// the same for every call of a group move up to the group.
fn by_reason(calls: &[CallView]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for call in calls {
        let same = |g: &Group| g.kind == call.kind && g.calls[0].rule == call.rule;
        match groups.iter_mut().find(|g| same(g)) {
            Some(group) => group.calls.push(call.clone()),
            None => groups.push(Group {
                kind: call.kind,
                reason: call.reason.clone(),
                talking_points: None,
                calls: vec![call.clone()],
            }),
        }
    }
    for group in &mut groups {
        let first = &group.calls[0].points;
        if group.calls.iter().all(|c| &c.points == first) {
            group.talking_points = first.clone().map(|p| p.value());
            for call in &mut group.calls {
                call.talking_points = None;
            }
        }
    }
    groups
}

/// The calls as an iCalendar file (RFC 5545) of events: one all-day event a
/// call, on the day it is to be made, that does not block the day
/// (`TRANSP:TRANSPARENT`). The UID is the task's, so importing the next
/// day's file updates an event instead of adding a second; SEQUENCE grows
/// as an open call moves to a later day.
fn calendar(
    app: &App,
    calls: &[CallView],
    tasks: &[&Task],
    locale: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let domain = app.mail_domain();
    let mut out = String::from(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//outreach//calls//EN\r\nCALSCALE:GREGORIAN\r\nMETHOD:PUBLISH\r\n",
    );
    for (call, task) in calls.iter().zip(tasks) {
        let event = app.templates.render_plain(
            "calendar_event",
            Some(locale),
            &calendar_event_context(call),
        )?;
        let created = task
            .created_at
            .with_timezone(&app.config.resolved.timezone)
            .date_naive();
        let _ = write!(
            out,
            "BEGIN:VEVENT\r\nUID:task-{id}@{domain}\r\nDTSTAMP:{stamp}\r\nSEQUENCE:{sequence}\r\n\
             DTSTART;VALUE=DATE:{day}\r\nDTEND;VALUE=DATE:{next}\r\nTRANSP:TRANSPARENT\r\n\
             SUMMARY:{summary}\r\nDESCRIPTION:{description}\r\nURL:{url}\r\nEND:VEVENT\r\n",
            id = call.task,
            sequence = (call.day - created).num_days().max(0),
            day = call.day.format("%Y%m%d"),
            next = (call.day + chrono::Days::new(1)).format("%Y%m%d"),
            summary = ics_text(&event.subject),
            description = ics_text(event.text.trim_end()),
            url = ics_text(&call.link),
        );
    }
    out.push_str("END:VCALENDAR\r\n");
    Ok(fold_lines(&out))
}

/// A TEXT value (RFC 5545 §3.3.11): backslash, semicolon and comma escaped,
/// every line break (CRLF, LF or a lone CR) as `\n`, other control
/// characters dropped, so nothing in a name can end the property or start
/// another.
fn ics_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\r' => {
                chars.next_if_eq(&'\n');
                out.push_str("\\n");
            }
            '\n' => out.push_str("\\n"),
            '\t' => out.push(' '),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// Folds content lines longer than 75 octets (RFC 5545 §3.1): a line break
/// followed by a space, never inside a UTF-8 character.
fn fold_lines(ics: &str) -> String {
    let mut out = String::with_capacity(ics.len() + ics.len() / 64);
    for line in ics.split_terminator("\r\n") {
        let mut width = 0;
        for ch in line.chars() {
            if width + ch.len_utf8() > 75 {
                out.push_str("\r\n ");
                width = 1;
            }
            out.push(ch);
            width += ch.len_utf8();
        }
        out.push_str("\r\n");
    }
    out
}

/// Open tasks due by `today` for one staff member, overdue first, with their customers.
async fn due_tasks(app: &App, staff: &Staff, today: NaiveDate) -> Result<Vec<(Task, Customer)>> {
    let tasks: Vec<Task> = app
        .store
        .tasks(Some(&staff.id), true)
        .await?
        .into_iter()
        .filter(|t| t.due_on <= today)
        .collect();
    let customers = app
        .store
        .customers_by_ids(&tasks.iter().map(|t| t.customer_id).collect::<Vec<_>>())
        .await?;
    let mut pairs: Vec<(Task, Customer)> = tasks
        .into_iter()
        .filter_map(|t| {
            customers
                .iter()
                .find(|c| c.id == t.customer_id)
                .cloned()
                .map(|c| (t, c))
        })
        .collect();
    pairs.sort_by_key(|(t, _)| (t.due_on, t.id));
    Ok(pairs)
}

/// Builds and sends one staff member's digest; false if they have nothing due.
pub async fn send_digest(
    app: &App,
    staff: &Staff,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<bool> {
    let tasks = due_tasks(app, staff, today).await?;
    if tasks.is_empty() {
        return Ok(false);
    }
    let locale = app
        .templates
        .locale_for("digest", "md", Some(staff_locale(app, staff)));
    let mut calls = Vec::with_capacity(tasks.len());
    for (task, customer) in &tasks {
        calls.push(
            CallView::build(app, task, customer, &locale, today, DIGEST_CONTACTS, now).await?,
        );
    }
    let task_refs: Vec<&Task> = tasks.iter().map(|(t, _)| t).collect();
    let calendar = calendar(app, &calls, &task_refs, &locale, now)?;
    let ctx = digest_context(
        (&staff.id, &staff.name),
        crate::message::render::local_date(today, &locale),
        &calls,
        crate::context::business_value(&app.settings().business),
    );
    let rendered = app
        .templates
        .render_staff_email("digest", Some(&locale), &ctx)?;
    let message = crate::message::compose::staff_email(
        &app.config,
        &staff.email,
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        Some((
            if locale == "de" {
                "anrufe.ics"
            } else {
                "calls.ics"
            },
            "text/calendar; charset=utf-8; method=PUBLISH",
            calendar,
        )),
    )?;
    send(app, &message).await?;
    info!(staff = %staff.id, tasks = tasks.len(), "digest sent");
    Ok(true)
}

/// What `outreach tasks digest` did for one staff member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SentNow {
    Sent,
    NothingDue,
    /// Today's digest went out at this time (scheduled or by hand).
    AlreadySent(DateTime<Utc>),
}

/// `outreach tasks digest`: sends a staff member's digest now, whatever the
/// hour, and takes the place of today's scheduled one, so the daemon does not
/// send a second at `digest_at`. Once a day, like the scheduled one, unless
/// `again`.
pub async fn send_now(
    app: &App,
    staff: &Staff,
    again: bool,
    now: DateTime<Utc>,
) -> Result<SentNow> {
    let today = match app.config.resolved.staff.get(&staff.id) {
        Some(rules) => now.with_timezone(&rules.timezone).date_naive(),
        None => now
            .with_timezone(&app.config.resolved.timezone)
            .date_naive(),
    };
    let due = due_tasks(app, staff, today).await?.len() as i64;
    if due == 0 {
        return Ok(SentNow::NothingDue);
    }
    let claimed = app.store.claim_digest(&staff.id, today, due, now).await?;
    if !claimed
        && !again
        && let Some(at) = app.store.digest_sent_at(&staff.id, today).await?
    {
        return Ok(SentNow::AlreadySent(at));
    }
    let result = send_digest(app, staff, today, now).await;
    if claimed && !matches!(result, Ok(true)) {
        app.store.release_digest(&staff.id, today).await?;
    }
    Ok(if result? {
        SentNow::Sent
    } else {
        SentNow::NothingDue
    })
}

pub(super) async fn send(app: &App, message: &lettre::Message) -> Result<()> {
    let mut mailer = MailerSettings::from_config(&app.config).open()?;
    match mailer.send(message).await {
        SendResult::Sent(_) => Ok(()),
        other => anyhow::bail!("sending failed: {other:?}"),
    }
}

/// Sends every digest that is due now (working day, not absent, past
/// `digest_at`, tasks due, none sent today).
pub async fn send_due(app: &App, now: DateTime<Utc>) -> Result<()> {
    let roster = Roster::load(app, now).await?;
    for &m in roster.members() {
        let (staff, rules) = (m.staff, m.rules);
        let local = now.with_timezone(&rules.timezone);
        let today = local.date_naive();
        if !roster.works_on(m, today) || local.time() < rules.digest_at {
            continue;
        }
        // Nothing due: no digest, and none claimed, so tasks created later today still get one.
        let due = due_tasks(app, staff, today).await?.len() as i64;
        if due == 0 || !app.store.claim_digest(&staff.id, today, due, now).await? {
            continue;
        }
        if let Err(e) = send_digest(app, staff, today, now).await {
            warn!(staff = %staff.id, error = %format!("{e:#}"), "digest could not be sent; will retry");
            app.store.release_digest(&staff.id, today).await?;
        }
    }
    Ok(())
}

/// One email to a manager listing overdue tasks, and when each goes back
/// on the call list.
pub async fn send_escalation(
    app: &App,
    to: &str,
    tasks: &[Escalated],
    now: DateTime<Utc>,
) -> Result<()> {
    let manager = app.settings().staff.iter().find(|s| s.email == to);
    let locale =
        app.templates
            .locale_for("escalation", "md", manager.map(|s| staff_locale(app, s)));
    let customers = app
        .store
        .customers_by_ids(&tasks.iter().map(|t| t.task.customer_id).collect::<Vec<_>>())
        .await?;
    let mut calls = Vec::with_capacity(tasks.len());
    for Escalated { task, back_on } in tasks {
        let Some(customer) = customers.iter().find(|c| c.id == task.customer_id) else {
            continue;
        };
        let today = now
            .with_timezone(&app.config.resolved.timezone)
            .date_naive();
        let call = CallView::build(app, task, customer, &locale, today, 0, now).await?;
        calls.push(Escalation {
            staff: super::view::staff_name(app.settings(), &task.staff_id),
            back_on: back_on.map(|day| crate::message::render::local_date(day, &locale)),
            call,
        });
    }
    let rendered = app.templates.render_staff_email(
        "escalation",
        Some(&locale),
        &escalation_context(manager.map(|m| m.name.as_str()), &calls),
    )?;
    let message = crate::message::compose::staff_email(
        &app.config,
        to,
        &rendered.subject,
        &rendered.text,
        &rendered.html,
        None,
    )?;
    send(app, &message).await?;
    info!(to, tasks = tasks.len(), "overdue tasks escalated");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_values_cannot_end_their_property_or_start_another() {
        assert_eq!(
            ics_text("Müller, Anna; \"Büro\" \\ 2"),
            "Müller\\, Anna\\; \"Büro\" \\\\ 2"
        );
        for line_break in ["\r\n", "\n", "\r"] {
            assert_eq!(
                ics_text(&format!("Anna{line_break}BEGIN:VEVENT")),
                "Anna\\nBEGIN:VEVENT"
            );
        }
        assert_eq!(ics_text("a\tb\u{7}c\u{0}"), "a bc");
    }

    #[test]
    fn long_lines_fold_at_75_octets_without_splitting_a_character() {
        let line = format!("SUMMARY:{}", "☎ Ä".repeat(30));
        let folded = fold_lines(&format!("BEGIN:VCALENDAR\r\n{line}\r\nEND:VCALENDAR\r\n"));
        assert!(folded.ends_with("\r\nEND:VCALENDAR\r\n"), "{folded}");
        for physical in folded.split("\r\n").filter(|l| !l.is_empty()) {
            assert!(
                physical.len() <= 75,
                "{} octets: {physical:?}",
                physical.len()
            );
        }
        assert_eq!(
            folded.replace("\r\n ", ""),
            format!("BEGIN:VCALENDAR\r\n{line}\r\nEND:VCALENDAR\r\n")
        );
        assert!(
            !folded.replace("\r\n", "").contains('\n'),
            "only CRLF line ends"
        );
    }
}
