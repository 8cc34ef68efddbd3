//! Emails to staff: the daily digest of calls, and escalations.
//!
//! The digest goes out once per staff member and working day at their
//! `digest_at` (their time zone), only when they have open tasks due, overdue
//! ones first. Each task shows whom to call (with a `tel:` link), why, the
//! talking points, the last contacts and a link to the task page; an `.ics`
//! file carries the calls as to-dos. The `digests` table makes "once a day"
//! hold across restarts and daemons.

use std::fmt::Write;

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::context;
use tracing::{info, warn};

use super::overdue::Escalated;
use super::roster::works_on;
use crate::app::App;
use crate::config::Staff;
use crate::context::{business_value, customer_value};
use crate::domain::Customer;
use crate::mailer::{MailerSettings, SendResult};
use crate::store::{Task, TaskKind};
use crate::templates::Rendered;
use crate::tokens::Purpose;

/// Words of the staff emails and the task page, per locale.
pub fn words(locale: &str) -> &'static Words {
    if locale == "en" { &EN } else { &DE }
}

pub struct Words {
    pub digest_subject: &'static str,
    pub intro: &'static str,
    pub overdue: &'static str,
    pub due: &'static str,
    pub why: &'static str,
    pub last_contacts: &'static str,
    pub no_contacts: &'static str,
    pub open_task: &'static str,
    pub escalation_subject: &'static str,
    pub escalation_intro: &'static str,
    pub back_on_list: &'static str,
    pub back_on_list_now: &'static str,
    pub callback_today: &'static str,
    pub callback_for: &'static str,
    pub follow_up: &'static str,
    pub attempt: fn(i32) -> String,
    pub taken_over_from: &'static str,
}

const DE: Words = Words {
    digest_subject: "Ihre Anrufe für heute",
    intro: "Guten Morgen! Diese Menschen freuen sich über einen Anruf. Es geht ums Zuhören, nicht ums Verkaufen.",
    overdue: "überfällig seit",
    due: "fällig am",
    why: "Warum",
    last_contacts: "Letzte Kontakte",
    no_contacts: "noch keine",
    open_task: "Aufgabe öffnen und Ergebnis eintragen",
    escalation_subject: "Überfällige Anrufe",
    escalation_intro: "Diese Anrufe sind überfällig. Bitte schauen Sie, wer sie übernehmen kann; sonst gehen sie zum genannten Tag zurück auf die Anrufliste, für eine Kollegin oder einen Kollegen:",
    back_on_list: "geht zurück auf die Anrufliste am",
    back_on_list_now: "geht jetzt zurück auf die Anrufliste",
    callback_today: "Rückruf vereinbart für heute",
    callback_for: "Rückruf vereinbart für",
    follow_up: "Nachfassen: braucht Unterstützung",
    attempt: |n| format!("{n}. Versuch"),
    taken_over_from: "übernommen von",
};

const EN: Words = Words {
    digest_subject: "Your calls for today",
    intro: "Good morning! These people will be glad of a call. It is about listening, not selling.",
    overdue: "overdue since",
    due: "due",
    why: "Why",
    last_contacts: "Last contacts",
    no_contacts: "none yet",
    open_task: "Open the task and record the outcome",
    escalation_subject: "Overdue calls",
    escalation_intro: "These calls are overdue. Please see who can take them; otherwise they go back on the call list on the day given, for a colleague:",
    back_on_list: "goes back on the call list on",
    back_on_list_now: "goes back on the call list now",
    callback_today: "callback agreed for today",
    callback_for: "callback agreed for",
    follow_up: "follow-up: needs help",
    attempt: |n| format!("attempt {n}"),
    taken_over_from: "taken over from",
};

pub fn staff_locale<'a>(app: &'a App, staff: &'a Staff) -> &'a str {
    staff
        .locale
        .as_deref()
        .unwrap_or(&app.settings().business.locale)
}

/// The signed link to a task's page.
pub fn task_link(app: &App, task: &Task, now: DateTime<Utc>) -> String {
    let valid = app
        .config
        .resolved
        .checkin_durations
        .get(&task.rule_id)
        .map(|d| d.expire_after)
        .unwrap_or(std::time::Duration::from_secs(14 * 86400));
    let expires = now
        + chrono::Duration::from_std(valid).unwrap_or(chrono::Duration::days(14))
        + chrono::Duration::days(7);
    app.link(&format!(
        "/t/{}",
        app.signer.sign(Purpose::Task, task.id, expires)
    ))
}

/// Talking points for a task: the rule's template rendered for the customer,
/// as text and as HTML (values shown as text, never as Markdown).
pub fn talking_points(
    app: &App,
    task: &Task,
    customer: &Customer,
    locale: &str,
) -> Result<Rendered> {
    let template = app.checkin(&task.rule_id).map(|r| r.template.clone());
    let Some(template) = template else {
        return Ok(Rendered {
            subject: String::new(),
            text: String::new(),
            html: String::new(),
        });
    };
    let ctx = context! { customer => customer_value(customer), business => business_value(&app.settings().business) };
    app.templates.render_plain(&template, Some(locale), &ctx)
}

/// One task as text and HTML blocks for an email.
async fn task_block(
    app: &App,
    task: &Task,
    customer: &Customer,
    locale: &str,
    today: NaiveDate,
    now: DateTime<Utc>,
) -> Result<(String, String)> {
    let w = words(locale);
    let phone = customer.phone.clone().unwrap_or_default();
    let deadline = super::deadline(app, task);
    let date = |d: NaiveDate| crate::render::local_date(d, locale);
    let when = if deadline < today {
        format!("{} {}", w.overdue, date(deadline))
    } else if deadline > task.due_on {
        format!("{} {}–{}", w.due, date(task.due_on), date(deadline))
    } else {
        format!("{} {}", w.due, date(task.due_on))
    };
    let when = std::iter::once(when)
        .chain(marks(app, task, locale, today))
        .collect::<Vec<_>>()
        .join(" · ");
    let points = talking_points(app, task, customer, locale)?;
    let contacts = crate::history::last_contacts(&app.store, customer.id, 3).await?;
    let contacts_text = if contacts.is_empty() {
        w.no_contacts.to_string()
    } else {
        contacts
            .iter()
            .map(|c| format!("{} {}", c.at.date_naive(), c.detail))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let link = task_link(app, task, now);
    let mut text = String::new();
    let _ = writeln!(text, "* {} — {phone} ({when})", customer.label());
    let _ = writeln!(text, "  {}: {}", w.why, task.reason);
    for line in points.text.lines().filter(|l| !l.trim().is_empty()) {
        let _ = writeln!(text, "  {line}");
    }
    let _ = writeln!(text, "  {}: {contacts_text}", w.last_contacts);
    let _ = writeln!(text, "  {}: {link}\n", w.open_task);
    let esc = crate::templates::escape_html;
    let html = format!(
        "<div style=\"margin:0 0 24px\"><h3 style=\"margin:0\">{name}</h3>\
         <p style=\"margin:4px 0\"><a href=\"tel:{tel}\">{phone}</a> · {when}</p>\
         <p style=\"margin:4px 0\"><b>{why}:</b> {reason}</p>{points}\
         <p style=\"margin:4px 0;color:#555\"><b>{last}:</b> {contacts}</p>\
         <p><a href=\"{link}\">{open}</a></p></div>",
        name = esc(&customer.label()),
        tel = esc(&phone.replace(' ', "")),
        phone = esc(&phone),
        when = esc(&when),
        why = w.why,
        reason = esc(&task.reason),
        points = points.html,
        last = w.last_contacts,
        contacts = esc(&contacts_text),
        open = w.open_task,
    );
    Ok((text, html))
}

/// What sets a call apart in the digest: an agreed callback, a follow-up,
/// a further attempt, a call taken over from a colleague.
fn marks(app: &App, task: &Task, locale: &str, today: NaiveDate) -> Vec<String> {
    let w = words(locale);
    let mut marks = Vec::new();
    match (task.kind, task.agreed_on) {
        (TaskKind::Callback, Some(day)) if day == today => marks.push(w.callback_today.into()),
        (TaskKind::Callback, Some(day)) => marks.push(format!(
            "{} {}",
            w.callback_for,
            crate::render::local_date(day, locale)
        )),
        (TaskKind::FollowUp, _) => marks.push(w.follow_up.into()),
        _ => {}
    }
    if task.attempts > 0 {
        marks.push((w.attempt)(task.attempts + 1));
    }
    if task.owner_id != task.staff_id {
        let owner = app
            .settings()
            .staff
            .iter()
            .find(|s| s.id == task.owner_id)
            .map_or(task.owner_id.as_str(), |s| s.name.as_str());
        marks.push(format!("{} {owner}", w.taken_over_from));
    }
    marks
}

/// The calls as iCalendar to-dos.
fn ics(app: &App, tasks: &[(Task, Customer)], now: DateTime<Utc>) -> String {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let domain = app.mail_domain();
    let mut out =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//outreach//calls//EN\r\n");
    for (task, customer) in tasks {
        let text = |s: &str| {
            s.replace('\\', "\\\\")
                .replace(';', "\\;")
                .replace(',', "\\,")
                .replace('\n', "\\n")
        };
        let _ = write!(
            out,
            "BEGIN:VTODO\r\nUID:task-{id}@{domain}\r\nDTSTAMP:{stamp}\r\nDUE;VALUE=DATE:{due}\r\nSUMMARY:{summary}\r\nDESCRIPTION:{desc}\r\nURL:{url}\r\nEND:VTODO\r\n",
            id = task.id,
            due = task.due_on.format("%Y%m%d"),
            summary = text(&format!(
                "☎ {} {}",
                customer.label(),
                customer.phone.as_deref().unwrap_or("")
            )),
            desc = text(&task.reason),
            url = task_link(app, task, now),
        );
    }
    out.push_str("END:VCALENDAR\r\n");
    fold_lines(&out)
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
    let locale = staff_locale(app, staff);
    let w = words(locale);
    let mut text = format!("{}\n\n", w.intro);
    let mut html = format!(
        "<div style=\"font-family:sans-serif;max-width:640px\"><p>{}</p>",
        w.intro
    );
    for (task, customer) in &tasks {
        let (t, h) = task_block(app, task, customer, locale, today, now).await?;
        text.push_str(&t);
        html.push_str(&h);
    }
    html.push_str("</div>");
    let subject = format!("{} ({})", w.digest_subject, tasks.len());
    let message = crate::compose::staff_email(
        &app.config,
        &staff.email,
        &subject,
        &text,
        &html,
        Some((
            if locale == "de" {
                "anrufe.ics"
            } else {
                "calls.ics"
            },
            "text/calendar; charset=utf-8",
            ics(app, &tasks, now),
        )),
    )?;
    send(app, &message).await?;
    info!(staff = %staff.id, tasks = tasks.len(), "digest sent");
    Ok(true)
}

/// `outreach tasks digest`: sends a staff member's digest now, whatever the
/// hour, and takes the place of today's scheduled one, so the daemon does not
/// send a second at `digest_at`. False if nothing is due.
pub async fn send_now(app: &App, staff: &Staff, now: DateTime<Utc>) -> Result<bool> {
    let today = match app.config.resolved.staff.get(&staff.id) {
        Some(rules) => now.with_timezone(&rules.timezone).date_naive(),
        None => now
            .with_timezone(&app.config.resolved.timezone)
            .date_naive(),
    };
    let due = due_tasks(app, staff, today).await?.len() as i64;
    if due == 0 {
        return Ok(false);
    }
    // Already claimed (sent earlier today): sent again all the same, as asked.
    let claimed = app.store.claim_digest(&staff.id, today, due, now).await?;
    let result = send_digest(app, staff, today, now).await;
    if claimed && !matches!(result, Ok(true)) {
        app.store.release_digest(&staff.id, today).await?;
    }
    result
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
    for staff in &app.settings().staff {
        let Some(rules) = app.config.resolved.staff.get(&staff.id) else {
            continue;
        };
        let local = now.with_timezone(&rules.timezone);
        let today = local.date_naive();
        if !works_on(app, staff, rules, today) || local.time() < rules.digest_at {
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
    let locale = app
        .settings()
        .staff
        .iter()
        .find(|s| s.email == to)
        .map(|s| staff_locale(app, s))
        .unwrap_or(&app.settings().business.locale);
    let w = words(locale);
    let customers = app
        .store
        .customers_by_ids(&tasks.iter().map(|t| t.task.customer_id).collect::<Vec<_>>())
        .await?;
    let mut text = format!("{}\n\n", w.escalation_intro);
    for Escalated { task, back_on } in tasks {
        let name = customers
            .iter()
            .find(|c| c.id == task.customer_id)
            .map(Customer::label)
            .unwrap_or_default();
        let back = match back_on {
            Some(day) => format!(
                "{} {}",
                w.back_on_list,
                crate::render::local_date(*day, locale)
            ),
            None => w.back_on_list_now.to_string(),
        };
        let _ = writeln!(
            text,
            "* {name} — {} ({} {}) — {back} — {}",
            task.staff_id,
            w.due,
            crate::render::local_date(task.due_on, locale),
            task_link(app, task, now)
        );
    }
    let html = format!("<pre>{}</pre>", crate::templates::escape_html(&text));
    let message = crate::compose::staff_email(
        &app.config,
        to,
        &format!("{} ({})", w.escalation_subject, tasks.len()),
        &text,
        &html,
        None,
    )?;
    send(app, &message).await?;
    info!(to, tasks = tasks.len(), "overdue tasks escalated");
    Ok(())
}
