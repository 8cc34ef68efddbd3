//! A customer's contact history: events (import, consent, unsubscribe,
//! call outcomes), messages and tasks, in time order. Shown by `customers
//! show`, in digests and on the task page.

use anyhow::Result;

use crate::store::{HistoryEntry, Store};

pub async fn customer_history(store: &Store, customer_id: i64) -> Result<Vec<HistoryEntry>> {
    let mut entries = store.customer_events(customer_id).await?;
    for m in store.customer_messages(customer_id).await? {
        let detail = match (&m.state[..], &m.reason) {
            ("sent", _) => format!("{} (run {}) sent", m.rule_id, m.run_id),
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

/// The last `n` entries that were actual contacts (emails sent, calls).
pub async fn last_contacts(store: &Store, customer_id: i64, n: usize) -> Result<Vec<HistoryEntry>> {
    let all = customer_history(store, customer_id).await?;
    let contacts: Vec<HistoryEntry> = all
        .into_iter()
        .filter(|e| e.kind == "call_outcome" || (e.kind == "email" && e.detail.ends_with(" sent")))
        .collect();
    Ok(contacts.into_iter().rev().take(n).collect())
}
