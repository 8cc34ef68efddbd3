//! Bounces and complaints read from email (`mail_reports`), and the sent
//! message a report is about.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{Store, dispatch};

/// What a report did, as stored (the table's CHECK names the same values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type, serde::Serialize)]
#[sqlx(type_name = "text", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    Permanent,
    Temporary,
    Complaint,
    /// Read, but not acted on; `detail` says why.
    Ignored,
}

impl ReportKind {
    pub const ALL: [ReportKind; 4] = [
        ReportKind::Permanent,
        ReportKind::Temporary,
        ReportKind::Complaint,
        ReportKind::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportKind::Permanent => "permanent",
            ReportKind::Temporary => "temporary",
            ReportKind::Complaint => "complaint",
            ReportKind::Ignored => "ignored",
        }
    }
}

/// A report to record.
pub struct MailReport<'a> {
    pub kind: ReportKind,
    pub customer_id: Option<i64>,
    pub message_id: Option<i64>,
    pub status: Option<&'a str>,
    pub detail: &'a str,
    /// SHA-256 of the whole email, so that it is acted on once.
    pub digest: &'a str,
}

/// A message that went out, as a report needs it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SentMessage {
    pub customer_id: i64,
    /// `None` once the customer was forgotten.
    pub email: Option<String>,
    pub sent_at: DateTime<Utc>,
}

impl Store {
    pub async fn record_mail_report(&self, r: &MailReport<'_>, now: DateTime<Utc>) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO mail_reports (received_at, kind, customer_id, message_id, status, detail, digest)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (digest) DO NOTHING",
            )
            .bind(now)
            .bind(r.kind)
            .bind(r.customer_id)
            .bind(r.message_id)
            .bind(r.status)
            .bind(r.detail)
            .bind(r.digest)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .context("recording a bounce or complaint")
    }

    /// Whether the email with this digest was read before.
    pub async fn mail_report_seen(&self, digest: &str) -> Result<bool> {
        let row: Option<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT id FROM mail_reports WHERE digest = $1")
                .bind(digest)
                .fetch_optional(pool)
                .await
        })
        .context("looking up a bounce read before")?;
        Ok(row.is_some())
    }

    /// Reports of `kind` for a customer since `since` (this one included).
    pub async fn mail_reports_since(
        &self,
        customer_id: i64,
        kind: ReportKind,
        since: DateTime<Utc>,
    ) -> Result<i64> {
        let (n,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM mail_reports WHERE customer_id = $1 AND kind = $2 AND received_at >= $3")
                .bind(customer_id)
                .bind(kind)
                .bind(since)
                .fetch_one(pool)
                .await
        })
        .context("counting bounces")?;
        Ok(n)
    }

    /// Reports by kind, for `/metrics`.
    pub async fn mail_report_counts(&self) -> Result<Vec<(ReportKind, i64)>> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT kind, COUNT(*) FROM mail_reports GROUP BY kind")
                .fetch_all(pool)
                .await
        })
        .context("counting bounces and complaints")
    }

    /// The outbox message `id`, if it was sent.
    pub async fn sent_message(&self, id: i64) -> Result<Option<SentMessage>> {
        dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT m.customer_id, c.email, m.sent_at FROM messages m JOIN customers c ON c.id = m.customer_id
                 WHERE m.id = $1 AND m.state = 'sent' AND m.sent_at IS NOT NULL",
            )
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .context("looking up the message a report is about")
    }
}
