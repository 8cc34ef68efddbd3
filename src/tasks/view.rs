//! What staff see of a call task, in their language: whom to call, why, by
//! when, the talking points and the last contacts. The digest, the task
//! page, the calendar file and escalations all show a task through
//! [`CallView`], so they say the same thing; a new field here reaches every
//! template at once.

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use minijinja::{Value, context};
use serde::Serialize;

use crate::app::App;
use crate::config::Settings;
use crate::context::{business_value, customer_value};
use crate::domain::{CallOutcome, Customer};
use crate::history::Contact;
use crate::message::render::local_date;
use crate::message::templates::Fragment;
use crate::store::{Task, TaskKind, TaskState};

/// The talking points' template: the rule's for its own calls, a built-in
/// one (adjustable like any template) for callbacks and follow-ups, whose
/// reason is a different one.
fn talking_points_template(app: &App, task: &Task) -> Option<String> {
    match task.kind {
        TaskKind::Call => app.checkin(&task.rule_id).map(|r| r.template.clone()),
        TaskKind::Callback => Some("callback".into()),
        TaskKind::FollowUp => Some("follow_up".into()),
    }
}

/// A call task as one staff member reads it.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    pub task: i64,
    pub kind: TaskKind,
    /// The check-in rule it came from.
    pub rule: String,
    /// The customer's name (or email).
    pub name: String,
    /// The phone number as written, and as a `tel:` link ("" without a number).
    pub phone: String,
    pub tel: String,
    /// Why the rule suggests the call, in the reader's language.
    pub reason: String,
    /// For a call back or a follow-up: what the colleague noted on the call before.
    pub earlier_note: Option<String>,
    /// For a follow-up: who asked for help (their name).
    pub asked_by: Option<String>,
    /// The planned day, and the last day on time when that is later.
    pub due: String,
    pub until: Option<String>,
    pub overdue: bool,
    /// For a callback: the day agreed with the customer, and whether that is today.
    pub agreed_on: Option<String>,
    pub agreed_today: bool,
    /// The how-many-th try this is, from the second on.
    pub attempt: Option<i32>,
    /// Whose call this was when a colleague took it over (their name).
    pub taken_over_from: Option<String>,
    /// Open for an outcome; else how it ended.
    pub open: bool,
    pub outcome: String,
    pub note: Option<String>,
    /// The signed link to the task page.
    pub link: String,
    pub contacts: Vec<ContactView>,
    /// Talking points for this call alone (the digest shows shared ones once).
    pub talking_points: Option<Value>,
    /// The day the call shows on in the calendar file.
    #[serde(skip)]
    pub day: NaiveDate,
    #[serde(skip)]
    pub points: Option<Fragment>,
}

/// A contact as the task page and the digest list it.
#[derive(Debug, Clone, Serialize)]
pub struct ContactView {
    pub date: String,
    /// `email` or `call`.
    pub kind: &'static str,
    pub campaign: Option<String>,
    pub outcome: Option<String>,
    /// Who called (their name).
    pub by: Option<String>,
    pub note: Option<String>,
}

/// A staff member's name for people, by id (the id for someone no longer in the config).
pub fn staff_name(settings: &Settings, id: &str) -> String {
    settings
        .staff
        .iter()
        .find(|s| s.id == id)
        .map(|s| s.name.clone())
        .unwrap_or_else(|| id.to_string())
}

impl CallView {
    /// A made-up call with every field set, for `outreach check` to render
    /// the templates that show calls.
    pub fn sample(locale: &str, talking_points: Fragment) -> CallView {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).expect("a real date");
        let contact = |kind, campaign: Option<&str>, outcome: Option<&str>| ContactView {
            date: local_date(day, locale),
            kind,
            campaign: campaign.map(String::from),
            outcome: outcome.map(String::from),
            by: outcome.map(|_| "Maria".to_string()),
            note: outcome.map(|_| "…".to_string()),
        };
        CallView {
            task: 1,
            kind: TaskKind::Callback,
            rule: "sample".into(),
            name: "Erika Musterfrau".into(),
            phone: "+49 221 555 0000".into(),
            tel: "tel:+492215550000".into(),
            reason: "…".into(),
            earlier_note: Some("…".into()),
            asked_by: Some("Maria".into()),
            due: local_date(day, locale),
            until: Some(local_date(day, locale)),
            overdue: true,
            agreed_on: Some(local_date(day, locale)),
            agreed_today: false,
            attempt: Some(2),
            taken_over_from: Some("Jonas".into()),
            open: true,
            outcome: CallOutcome::NotReached.to_string(),
            note: Some("…".into()),
            link: "https://example.invalid/t/sample".into(),
            contacts: vec![
                contact("email", Some("sample"), None),
                contact("call", None, Some("callback")),
            ],
            talking_points: Some(talking_points.clone().value()),
            day,
            points: Some(talking_points),
        }
    }

    /// `task` of `customer` for a reader of `locale` on their day `today`.
    pub async fn build(
        app: &App,
        task: &Task,
        customer: &Customer,
        locale: &str,
        today: NaiveDate,
        contacts: usize,
        now: DateTime<Utc>,
    ) -> Result<CallView> {
        let kind = task.kind;
        let parent = match task.parent_id {
            Some(id) => app.store.task(id).await?,
            None => None,
        };
        let deadline = super::deadline(app, task);
        let open = task.state == TaskState::Open;
        let overdue = open && deadline < today;
        let phone = customer.phone.clone().unwrap_or_default();
        let tel = if phone.trim().is_empty() {
            String::new()
        } else {
            format!("tel:{}", phone.replace([' ', '/', '-', '(', ')'], ""))
        };
        let reason = match app.checkin(&task.rule_id) {
            Some(rule) => rule
                .reason
                .get(Some(locale), &app.settings().business.locale)
                .to_string(),
            None if task.rule_id == super::call_list::BAD_ADDRESS_RULE => {
                super::call_list::bad_address_reason(locale).to_string()
            }
            None => task.reason.clone(),
        };
        let points = talking_points(app, task, customer, locale)?;
        let contacts = crate::history::last_contacts(&app.store, customer.id, contacts)
            .await?
            .into_iter()
            .map(|c| ContactView::new(app, c, locale))
            .collect();
        Ok(CallView {
            task: task.id,
            kind,
            rule: task.rule_id.clone(),
            name: customer.label(),
            phone,
            tel,
            reason,
            earlier_note: parent.as_ref().and_then(|p| p.note.clone()),
            asked_by: match kind {
                TaskKind::FollowUp => parent
                    .as_ref()
                    .map(|p| staff_name(app.settings(), &p.staff_id)),
                _ => None,
            },
            due: local_date(task.due_on, locale),
            until: (deadline > task.due_on).then(|| local_date(deadline, locale)),
            overdue,
            agreed_on: task.agreed_on.map(|d| local_date(d, locale)),
            agreed_today: task.agreed_on == Some(today),
            attempt: (task.attempts > 0).then_some(task.attempts + 1),
            taken_over_from: (task.owner_id != task.staff_id)
                .then(|| staff_name(app.settings(), &task.owner_id)),
            open,
            outcome: task
                .outcome
                .map_or_else(|| task.state.to_string(), |o| o.to_string()),
            note: task.note.clone(),
            link: super::digest::task_link(app, task, now),
            contacts,
            talking_points: points.clone().map(Fragment::value),
            // An overdue call is still to be made: today, not on a day gone by.
            day: task.due_on.max(today),
            points,
        })
    }
}

impl ContactView {
    fn new(app: &App, contact: Contact, locale: &str) -> ContactView {
        let date = |at: DateTime<Utc>| {
            local_date(
                at.with_timezone(&app.config.resolved.timezone).date_naive(),
                locale,
            )
        };
        match contact {
            Contact::Email { at, campaign } => ContactView {
                date: date(at),
                kind: "email",
                campaign: Some(campaign),
                outcome: None,
                by: None,
                note: None,
            },
            Contact::Call {
                at,
                outcome,
                by,
                note,
            } => ContactView {
                date: date(at),
                kind: "call",
                campaign: None,
                outcome: Some(outcome),
                by: by.map(|id| staff_name(app.settings(), &id)),
                note,
            },
        }
    }
}

/// The talking points for a task in `locale`, if its template is known.
fn talking_points(
    app: &App,
    task: &Task,
    customer: &Customer,
    locale: &str,
) -> Result<Option<Fragment>> {
    let Some(template) = talking_points_template(app, task) else {
        return Ok(None);
    };
    let ctx = context! {
        customer => customer_value(customer),
        business => business_value(&app.settings().business),
    };
    let rendered = app.templates.render_plain(&template, Some(locale), &ctx)?;
    Ok(Some(rendered.into()))
}
