//! Objections and their effect on the customer row: an email objection to
//! everything sets `unsubscribed_at`, a phone objection `do_not_call`; one
//! to a single campaign kind is read when a run of that kind is planned.

use std::collections::HashSet;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{Store, dispatch};
use crate::config::CampaignKind;
use crate::domain::{Channel, NewObjection, Objection};

/// Inserts objection `$o` of customer `$customer_id` unless one in force
/// covers it (one with no kind covers every kind), or the customer is
/// unknown or forgotten. Write-first, so there is no read-then-write race.
macro_rules! insert_objection {
    ($customer_id:expr, $o:expr) => {
        sqlx::query(
            "INSERT INTO objections (customer_id, channel, kind, at, recorded_by, source, note)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE EXISTS (SELECT 1 FROM customers WHERE id = $1 AND forgotten_at IS NULL)
               AND NOT EXISTS (SELECT 1 FROM objections WHERE customer_id = $1 AND channel = $2
                               AND lifted_at IS NULL AND (kind IS NULL OR kind = $3))",
        )
        .bind($customer_id)
        .bind($o.channel.as_str())
        .bind(&$o.kind)
        .bind($o.at)
        .bind(&$o.recorded_by)
        .bind(&$o.source)
        .bind(&$o.note)
    };
}
pub(super) use insert_objection;

impl Store {
    /// Records an objection unless one already in force covers it (or the
    /// customer is unknown or forgotten); true if it was recorded. The
    /// customer row and the history change in the same transaction.
    pub async fn record_objection(&self, customer_id: i64, o: &NewObjection) -> Result<bool> {
        let effect = match (o.channel, &o.kind) {
            (Channel::Email, None) => Some(
                "UPDATE customers SET unsubscribed_at = $1, updated_at = $1 WHERE id = $2 AND unsubscribed_at IS NULL",
            ),
            (Channel::Phone, _) => {
                Some("UPDATE customers SET do_not_call = TRUE, updated_at = $1 WHERE id = $2")
            }
            (Channel::Email, Some(_)) => None,
        };
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = insert_objection!(customer_id, o)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 1 {
                if let Some(sql) = effect {
                    sqlx::query(sql).bind(o.at).bind(customer_id).execute(&mut *tx).await?;
                }
                sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                    .bind(customer_id)
                    .bind(o.at)
                    .bind(o.channel.event_kind())
                    .bind(o.describe())
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await.map(|_| n == 1)
        })
        .context("recording the objection")
    }

    /// Records an unsubscribe by the customer (the link in an email);
    /// true if it changed anything.
    pub async fn unsubscribe(
        &self,
        customer_id: i64,
        how: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        self.record_objection(
            customer_id,
            &NewObjection {
                channel: Channel::Email,
                kind: None,
                at,
                recorded_by: "the customer".into(),
                source: how.into(),
                note: None,
            },
        )
        .await
    }

    /// The customer's own choice of email kinds (the preference centre):
    /// each kind in `declined` gets an objection of its own (unless one in
    /// force covers it), and objections to a kind in `kept` are lifted. An
    /// objection to every email is left as it is. Returns what changed, for
    /// the log: (kinds declined now, kinds taken back).
    pub async fn set_email_preferences(
        &self,
        customer_id: i64,
        declined: &[CampaignKind],
        kept: &[CampaignKind],
        source: &str,
        at: DateTime<Utc>,
    ) -> Result<(Vec<CampaignKind>, Vec<CampaignKind>)> {
        let mut now_declined = Vec::new();
        for &kind in declined {
            let objection = NewObjection {
                channel: Channel::Email,
                kind: Some(kind.as_str().to_string()),
                at,
                recorded_by: "the customer".into(),
                source: source.into(),
                note: None,
            };
            if self.record_objection(customer_id, &objection).await? {
                now_declined.push(kind);
            }
        }
        let mut taken_back = Vec::new();
        for &kind in kept {
            let because = format!(
                "the customer chose {} emails again via {source}",
                kind.as_str()
            );
            let lifted = dispatch!(self, pool => {
                let mut tx = pool.begin().await?;
                let n = sqlx::query(
                    "UPDATE objections SET lifted_at = $1, lifted_because = $2
                     WHERE customer_id = $3 AND channel = 'email' AND kind = $4 AND lifted_at IS NULL",
                )
                .bind(at)
                .bind(&because)
                .bind(customer_id)
                .bind(kind.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if n > 0 {
                    sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'preferences', $3)")
                        .bind(customer_id)
                        .bind(at)
                        .bind(&because)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await.map(|_| n > 0)
            })
            .with_context(|| format!("taking back the objection to {} emails", kind.as_str()))?;
            if lifted {
                taken_back.push(kind);
            }
        }
        Ok((now_declined, taken_back))
    }

    /// The objections in force for these customers.
    pub async fn active_objections(&self, customer_ids: &[i64]) -> Result<Vec<Objection>> {
        let mut found = Vec::new();
        for chunk in customer_ids.chunks(500) {
            let sql = format!(
                "SELECT * FROM objections WHERE lifted_at IS NULL AND customer_id IN ({}) ORDER BY at, id",
                super::id_list(chunk)
            );
            let rows: Vec<Objection> = dispatch!(self, pool => {
                sqlx::query_as(sql.as_str()).persistent(false).fetch_all(pool).await
            })
            .context("reading objections")?;
            found.extend(rows);
        }
        Ok(found)
    }

    /// Every objection of a customer, lifted ones too, oldest first.
    pub async fn customer_objections(&self, customer_id: i64) -> Result<Vec<Objection>> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT * FROM objections WHERE customer_id = $1 ORDER BY at, id")
                .bind(customer_id)
                .fetch_all(pool)
                .await
        })
        .context("reading the customer's objections")
    }

    /// Customers who objected to emails of this campaign kind only (an
    /// objection to every email is on the customer row already).
    pub async fn objecting_to_kind(&self, kind: CampaignKind) -> Result<HashSet<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM objections WHERE kind = $1 AND channel = 'email' AND lifted_at IS NULL")
                .bind(kind.as_str())
                .fetch_all(pool)
                .await
        })
        .context("reading objections to one kind of email")?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}
