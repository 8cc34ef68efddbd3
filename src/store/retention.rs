//! Erasing details by age ([`crate::retention`]): what was written about a
//! contact beyond its date, kind and outcome.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{Store, dispatch};

/// History kinds whose detail proves consent or its withdrawal (when, from
/// which source, how): kept as long as the customer is.
pub const PROOF_KINDS: [&str; 4] = [
    "consent_given",
    "consent_withdrawn",
    "resubscribed",
    "unsubscribed",
];

/// What one pass erased.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Erased {
    pub event_details: u64,
    pub call_notes: u64,
    pub smtp_replies: u64,
    pub report_details: u64,
}

impl Store {
    /// Erases details older than `before`: history details (imported and
    /// changed values, bounce replies, call outcomes with their notes) except
    /// the proofs of consent; notes of closed tasks; SMTP replies and
    /// failure texts of messages in a final state; the texts of bounces and
    /// complaints (which quote addresses). Dates, kinds, states and outcomes
    /// stay.
    pub async fn erase_details_before(&self, before: DateTime<Utc>) -> Result<Erased> {
        let proofs = PROOF_KINDS
            .iter()
            .map(|k| format!("'{k}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let events = format!(
            "UPDATE customer_events SET detail = '' WHERE at < $1 AND detail <> '' AND kind NOT IN ({proofs})"
        );
        let _writer = self.write_guard().await;
        let counts = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let event_details = sqlx::query(&events).bind(before).execute(&mut *tx).await?.rows_affected();
            let call_notes = sqlx::query(
                "UPDATE tasks SET note = NULL WHERE note IS NOT NULL AND state <> 'open' AND updated_at < $1",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let smtp_replies = sqlx::query(
                "UPDATE messages SET smtp_reply = NULL, reason = CASE WHEN state = 'failed' THEN NULL ELSE reason END
                 WHERE state IN ('sent', 'failed', 'suppressed') AND updated_at < $1
                   AND (smtp_reply IS NOT NULL OR (state = 'failed' AND reason IS NOT NULL))",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            let report_details = sqlx::query(
                "UPDATE mail_reports SET detail = '' WHERE received_at < $1 AND detail <> ''",
            )
            .bind(before)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            Ok::<_, sqlx::Error>(Erased { event_details, call_notes, smtp_replies, report_details })
        })
        .context("erasing details past their retention")?;
        Ok(counts)
    }
}
