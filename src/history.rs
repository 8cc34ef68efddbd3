//! A customer's contact history: events (import, consent, unsubscribe,
//! call outcomes), messages and tasks, in time order. Shown by `customers
//! show`, in digests and on the task page.

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::domain::MessageState;
use crate::store::{HistoryEntry, Store};

pub async fn customer_history(store: &Store, customer_id: i64) -> Result<Vec<HistoryEntry>> {
    let mut entries = store.customer_events(customer_id).await?;
    for m in store.customer_messages(customer_id).await? {
        let detail = match (m.state, &m.reason) {
            (MessageState::Sent, _) => format!("{} (run {}) sent", m.rule_id, m.run_id),
            (state, Some(reason)) => format!("{} (run {}) {state}: {reason}", m.rule_id, m.run_id),
            (state, None) => format!("{} (run {}) {state}", m.rule_id, m.run_id),
        };
        entries.push(HistoryEntry {
            at: m.sent_at.unwrap_or(m.created_at),
            kind: "email".into(),
            detail,
        });
    }
    for t in store.customer_tasks(customer_id).await? {
        entries.push(HistoryEntry {
            at: t.created_at,
            kind: format!("{}_task", t.kind),
            detail: format!(
                "task {} for {} due {}: {} [{}]",
                t.id, t.staff_id, t.due_on, t.reason, t.state
            ),
        });
    }
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}

/// A contact as staff see it: an email the customer got, or a call and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contact {
    Email {
        at: DateTime<Utc>,
        campaign: String,
    },
    Call {
        at: DateTime<Utc>,
        /// The outcome as recorded (`reached`, `not_reached` …).
        outcome: String,
        /// Who called (staff id), when the record says.
        by: Option<String>,
        note: Option<String>,
    },
}

impl Contact {
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            Contact::Email { at, .. } | Contact::Call { at, .. } => *at,
        }
    }

    /// A call from its event, written by the outcome form as
    /// `reached (task 12, maria): note`; anything else is kept whole as the outcome.
    fn call(at: DateTime<Utc>, detail: &str) -> Contact {
        let parsed = detail.split_once(" (task ").and_then(|(outcome, rest)| {
            let (task_and_staff, note) = rest.split_once(')')?;
            let (_, by) = task_and_staff.split_once(", ")?;
            let note = note.strip_prefix(": ").map(String::from);
            Some((outcome.to_string(), Some(by.to_string()), note))
        });
        let (outcome, by, note) = parsed.unwrap_or_else(|| (detail.to_string(), None, None));
        Contact::Call {
            at,
            outcome,
            by,
            note,
        }
    }
}

/// The last `n` actual contacts (emails sent, calls), newest first.
pub async fn last_contacts(store: &Store, customer_id: i64, n: usize) -> Result<Vec<Contact>> {
    let mut contacts: Vec<Contact> = store
        .customer_events(customer_id)
        .await?
        .into_iter()
        .filter(|e| e.kind == "call_outcome")
        .map(|e| Contact::call(e.at, &e.detail))
        .collect();
    contacts.extend(
        store
            .customer_messages(customer_id)
            .await?
            .into_iter()
            .filter(|m| m.state == MessageState::Sent)
            .map(|m| Contact::Email {
                at: m.sent_at.unwrap_or(m.created_at),
                campaign: m.rule_id,
            }),
    );
    contacts.sort_by_key(|c| std::cmp::Reverse(c.at()));
    contacts.truncate(n);
    Ok(contacts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_is_read_from_what_the_outcome_form_records() {
        let at = Utc::now();
        assert_eq!(
            Contact::call(
                at,
                "needs_help (task 12, maria): braucht Lieferung (dienstags)"
            ),
            Contact::Call {
                at,
                outcome: "needs_help".into(),
                by: Some("maria".into()),
                note: Some("braucht Lieferung (dienstags)".into()),
            }
        );
        assert_eq!(
            Contact::call(at, "reached (task 3, tim)"),
            Contact::Call {
                at,
                outcome: "reached".into(),
                by: Some("tim".into()),
                note: None,
            }
        );
        assert_eq!(
            Contact::call(at, "something else"),
            Contact::Call {
                at,
                outcome: "something else".into(),
                by: None,
                note: None,
            }
        );
    }
}
