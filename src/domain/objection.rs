//! Objections: a customer said "no more emails" (of one campaign kind, or
//! all of them) or "do not call me" — by the link in an email, on the
//! phone, at the counter, or in a list an import reads.
//!
//! An objection is kept with who recorded it, how and when, and it sticks:
//! an import saying "yes" does not undo it; only a consent dated after it
//! does (see `import`).

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What the customer objected to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Email,
    Phone,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Phone => "phone",
        }
    }

    /// The kind of the history entry an objection makes.
    pub fn event_kind(self) -> &'static str {
        match self {
            Channel::Email => "unsubscribed",
            Channel::Phone => "do_not_call",
        }
    }
}

impl TryFrom<String> for Channel {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        match text.as_str() {
            "email" => Ok(Channel::Email),
            "phone" => Ok(Channel::Phone),
            other => Err(format!("unknown objection channel {other:?}")),
        }
    }
}

/// An objection to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewObjection {
    pub channel: Channel,
    /// A campaign kind ("voucher") for an objection to that kind of email
    /// only; `None` for every email (or every call).
    pub kind: Option<String>,
    pub at: DateTime<Utc>,
    /// Who recorded it: "the customer" for the link, else a person.
    pub recorded_by: String,
    /// How it came: "unsubscribe link", "outreach customers unsubscribe",
    /// "import line 7 of kunden.csv", "call outcome (task 12)".
    pub source: String,
    pub note: Option<String>,
}

/// "no more emails", "no more voucher emails", "do not call".
fn objected_to(channel: Channel, kind: Option<&str>) -> String {
    match (channel, kind) {
        (Channel::Email, None) => "no more emails".to_string(),
        (Channel::Email, Some(kind)) => format!("no more {kind} emails"),
        (Channel::Phone, _) => "do not call".to_string(),
    }
}

fn with_note(note: Option<&str>) -> String {
    note.map(|n| format!(": {n}")).unwrap_or_default()
}

impl NewObjection {
    /// One line for the customer's history: what, who, how, and the note.
    pub fn describe(&self) -> String {
        format!(
            "{} (recorded by {} via {}){}",
            objected_to(self.channel, self.kind.as_deref()),
            self.recorded_by,
            self.source,
            with_note(self.note.as_deref())
        )
    }
}

/// An objection as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Objection {
    pub id: i64,
    pub customer_id: i64,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    pub kind: Option<String>,
    pub at: DateTime<Utc>,
    pub recorded_by: String,
    pub source: String,
    pub note: Option<String>,
    /// Set when a consent dated after `at` lifted it.
    pub lifted_at: Option<DateTime<Utc>>,
    pub lifted_because: Option<String>,
}

impl Objection {
    /// "no more voucher emails since 2026-03-01, recorded by maria via …: note",
    /// and when it was lifted, if it was.
    pub fn describe(&self) -> String {
        let lifted = match &self.lifted_at {
            Some(at) => format!(
                " — lifted {} ({})",
                at.date_naive(),
                self.lifted_because.as_deref().unwrap_or("-")
            ),
            None => String::new(),
        };
        format!(
            "{} since {}, recorded by {} via {}{}{lifted}",
            objected_to(self.channel, self.kind.as_deref()),
            self.at.date_naive(),
            self.recorded_by,
            self.source,
            with_note(self.note.as_deref())
        )
    }

    /// "2026-03-01 via unsubscribe link" for messages about it.
    pub fn when_and_how(&self) -> String {
        format!("{} via {}", self.at.date_naive(), self.source)
    }
}
