//! The outbox: one row per (run, customer), written at planning time, before
//! anything is sent, and moved to a final state exactly once.
//!
//! States: `planned` → `sending` (claimed with a lease) → `sent` | `failed`;
//! or `suppressed` (with the reason) at planning or send time; or `unknown`
//! when a claim's lease ran out because its daemon died mid-send. `unknown`
//! is never resent on its own (`outreach runs retry-unknown` does that).

use std::collections::HashMap;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{Backend, Store, dispatch};
use crate::domain::MessageState;

/// A row to plan.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub customer_id: i64,
    pub state: MessageState,
    /// Why it is suppressed; most reasons are fixed texts, so no copy per row.
    pub reason: Option<std::borrow::Cow<'static, str>>,
    pub not_before: DateTime<Utc>,
    pub voucher_code: Option<String>,
}

/// A claimed message, ready to render and send.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub run_id: i64,
    pub customer_id: i64,
    pub message_id: String,
    pub attempts: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub voucher_code: Option<String>,
}

/// How a send attempt ended, to record (and, as JSON, in the send journal).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Sent {
        reply: String,
    },
    Failed {
        reply: String,
    },
    Suppressed {
        reason: String,
    },
    /// Try again at `at` (temporary failure or quiet hours).
    Retry {
        at: DateTime<Utc>,
        reply: Option<String>,
    },
    /// May or may not have been delivered; held for a human.
    Unknown {
        reason: String,
    },
    /// Not tried: no SMTP session could be opened, or the database did not
    /// answer. Waits until `at` without using up an attempt; `reason` is
    /// what `outreach status` shows.
    Waiting {
        at: DateTime<Utc>,
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct MessageInfo {
    pub id: i64,
    pub run_id: i64,
    pub rule_id: String,
    pub state: MessageState,
    pub reason: Option<String>,
    pub smtp_reply: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Planned messages held back for one reason (a temporary SMTP reply, no
/// SMTP session, the database away), and when the first of them is tried again.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Waiting {
    pub reason: String,
    pub messages: i64,
    pub next_try: DateTime<Utc>,
}

/// Planned messages of a run that wait alike (see [`Store::planned_breakdown`]).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlannedGroup {
    pub run_id: i64,
    pub timezone: Option<String>,
    pub not_before: DateTime<Utc>,
    pub reason: Option<String>,
    pub n: i64,
}

/// One recipient of a run (`outreach runs show`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Recipient {
    pub message_id: i64,
    pub customer_id: i64,
    pub email: Option<String>,
    pub name: Option<String>,
    pub state: MessageState,
    pub reason: Option<String>,
    /// When it was sent, or reached its state.
    pub at: DateTime<Utc>,
    /// When a planned message may go out.
    pub not_before: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Failure {
    pub message_id: i64,
    pub state: MessageState,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// What an outcome writes: id, state, reason, SMTP reply, next attempt, sent at, attempted (0/1).
type Columns = (
    i64,
    MessageState,
    Option<String>,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    i32,
);

fn columns(id: i64, outcome: &Outcome, now: DateTime<Utc>) -> Columns {
    match outcome {
        Outcome::Sent { reply } => (
            id,
            MessageState::Sent,
            None,
            Some(reply.clone()),
            None,
            Some(now),
            1,
        ),
        Outcome::Failed { reply } => (
            id,
            MessageState::Failed,
            Some(reply.clone()),
            Some(reply.clone()),
            None,
            None,
            1,
        ),
        Outcome::Suppressed { reason } => (
            id,
            MessageState::Suppressed,
            Some(reason.clone()),
            None,
            None,
            None,
            0,
        ),
        Outcome::Retry { at, reply } => (
            id,
            MessageState::Planned,
            reply.clone(),
            reply.clone(),
            Some(*at),
            None,
            i32::from(reply.is_some()),
        ),
        Outcome::Unknown { reason } => (
            id,
            MessageState::Unknown,
            Some(reason.clone()),
            Some(reason.clone()),
            None,
            None,
            1,
        ),
        Outcome::Waiting { at, reason } => (
            id,
            MessageState::Planned,
            Some(reason.clone()),
            None,
            Some(*at),
            None,
            0,
        ),
    }
}

/// What inserting planned rows does with a customer who has a row in the
/// run already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingRows {
    /// Keeps the row and inserts the others: a plan resumed after a crash,
    /// or one a second daemon took over while the first was still writing.
    Keep,
    /// Fails the whole insert (the unique key), for a run that had no rows
    /// when planning began. `ON CONFLICT` makes PostgreSQL check each row
    /// first, about 30 % more work for the insert; the rare failure makes
    /// the next attempt plan with [`ExistingRows::Keep`].
    Refuse,
}

impl Store {
    /// Inserts planned rows for a run. `domain` makes the deterministic
    /// Message-ID `<outreach.run.customer@domain>`, built by the database
    /// from the ids rather than sent along with every row.
    pub async fn insert_messages(
        &self,
        run_id: i64,
        rows: &[NewMessage],
        domain: &str,
        existing: ExistingRows,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let on_conflict = match existing {
            ExistingRows::Keep => "ON CONFLICT (run_id, customer_id) DO NOTHING",
            ExistingRows::Refuse => "",
        };
        match &self.backend {
            // One statement of arrays instead of thousands of parameters.
            Backend::Postgres(pool) => sqlx::query(&format!(
                "INSERT INTO messages (run_id, customer_id, state, reason, message_id, not_before, voucher_code, created_at, updated_at)
                 SELECT $1, u.customer_id, u.state, u.reason, '<outreach.' || $1 || '.' || u.customer_id || '@' || $7 || '>',
                        u.not_before, u.voucher_code, $8, $8
                 FROM UNNEST($2::bigint[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])
                      AS u(customer_id, state, reason, not_before, voucher_code)
                 {on_conflict}"
            ))
            .bind(run_id)
            .bind(rows.iter().map(|m| m.customer_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|m| m.state.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|m| m.reason.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|m| m.not_before).collect::<Vec<_>>())
            .bind(rows.iter().map(|m| m.voucher_code.as_deref()).collect::<Vec<_>>())
            .bind(domain)
            .bind(now)
            .execute(pool)
            .await
            .map(|_| ()),
            // SQLite has no arrays: each batch goes as JSON that SQLite
            // takes apart itself, in one transaction (a refused row undoes
            // the batch). Rows that differ only in their customer go in one
            // statement, in the batch's order, as a flat array of integers,
            // each the customer and the row's group (`sqlite_groups`).
            // Inserted group by group instead, each group's rows landed
            // between the previous group's in the outbox's key and indexes,
            // which made SQLite's planning a tenth slower
            // (benches/README.md). The rest (voucher codes, more than eight
            // groups) go after them as an array of rows, which costs SQLite
            // a text copy and a parse of every row. (`WHERE true` tells the
            // parser that the `ON CONFLICT` belongs to the `INSERT`.)
            Backend::Sqlite(pool) => {
                let _writer = self.write_guard().await;
                let (groups, others) = sqlite_groups(rows);
                async {
                    let mut tx = pool.begin().await?;
                    if let Some(Grouped { alike, packed }) = &groups {
                        let pick = |column: usize| {
                            let arms: String = (0..alike.len())
                                .map(|g| format!(" WHEN {g} THEN ${}", 5 + 3 * g + column))
                                .collect();
                            format!("CASE c.grp{arms} END")
                        };
                        let sql = format!(
                            "INSERT INTO messages (run_id, customer_id, state, reason, message_id, not_before, voucher_code, created_at, updated_at)
                             SELECT $1, c.customer_id, {}, {}, '<outreach.' || $1 || '.' || c.customer_id || '@' || $2 || '>', {}, NULL, $3, $3
                             FROM (SELECT value >> {GROUP_BITS} AS customer_id, value & {GROUP_MASK} AS grp FROM json_each($4)) AS c WHERE true
                             {on_conflict}",
                            pick(0),
                            pick(1),
                            pick(2),
                        );
                        let mut insert = sqlx::query(&sql)
                            .bind(run_id)
                            .bind(domain)
                            .bind(now)
                            .bind(packed);
                        for same in alike {
                            insert = insert.bind(same.state).bind(same.reason).bind(same.not_before);
                        }
                        insert.execute(&mut *tx).await?;
                    }
                    if !others.is_empty() {
                        sqlx::query(&format!(
                            "INSERT INTO messages (run_id, customer_id, state, reason, message_id, not_before, voucher_code, created_at, updated_at)
                             SELECT $1, r.value ->> 0, r.value ->> 1, r.value ->> 2,
                                    '<outreach.' || $1 || '.' || (r.value ->> 0) || '@' || $2 || '>',
                                    r.value ->> 3, r.value ->> 4, $3, $3
                             FROM json_each($4) AS r WHERE true
                             {on_conflict}"
                        ))
                        .bind(run_id)
                        .bind(domain)
                        .bind(now)
                        .bind(sqlite_rows_json(&others))
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await
                }
                .await
            }
        }
        .context("writing planned messages")
    }

    /// Customers that already have a row in this run (resuming a plan).
    pub async fn planned_customers(&self, run_id: i64) -> Result<std::collections::HashSet<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM messages WHERE run_id = $1").bind(run_id).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Marketing messages per customer planned or sent since `since` (frequency cap).
    pub async fn recent_message_counts(&self, since: DateTime<Utc>) -> Result<HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT customer_id, COUNT(*) FROM messages
                 WHERE state IN ('planned', 'sending', 'sent', 'unknown') AND created_at > $1 GROUP BY customer_id",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().collect())
    }

    /// Claims up to `limit` due messages of runs that may send, oldest run
    /// first. Each claim reads one run's due rows through the partial index
    /// `messages_claimable`, so its cost does not grow with the run.
    /// PostgreSQL skips rows another daemon holds; SQLite has one writer.
    pub async fn claim_messages(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Claimed>> {
        let lock = match self.backend {
            Backend::Postgres(_) => "FOR UPDATE SKIP LOCKED",
            Backend::Sqlite(_) => "",
        };
        let sql = format!(
            "UPDATE messages SET state = 'sending', claimed_by = $1, claimed_until = $2, updated_at = $3
             WHERE id IN (
                 SELECT id FROM messages
                 WHERE run_id = $4 AND state = 'planned' AND not_before <= $3
                 ORDER BY not_before, id LIMIT $5 {lock})
             RETURNING id, run_id, customer_id, message_id, attempts, first_attempt_at, voucher_code"
        );
        // A run held by a pause sends nothing; the hold is looked up here, so
        // that a pause holds every claim made after it.
        let runs: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id FROM runs WHERE state = 'sending' AND rule_kind = 'campaign' AND held_since IS NULL
                   AND NOT EXISTS (SELECT 1 FROM holds h WHERE (h.scope = $1 OR h.scope = runs.rule_id) AND (h.until_at IS NULL OR h.until_at > $2))
                 ORDER BY id",
            )
            .bind(super::control::ALL_EMAIL)
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        let mut claimed: Vec<Claimed> = Vec::new();
        for (run_id,) in runs {
            let want = limit - claimed.len() as i64;
            if want <= 0 {
                break;
            }
            let _writer = self.write_guard().await;
            let rows: Vec<Claimed> = dispatch!(self, pool => {
                sqlx::query_as(&sql)
                    .bind(owner)
                    .bind(lease_until)
                    .bind(now)
                    .bind(run_id)
                    .bind(want)
                    .fetch_all(pool)
                    .await
            })
            .context("claiming messages to send")?;
            claimed.extend(rows);
        }
        claimed.sort_by_key(|r| r.id);
        Ok(claimed)
    }

    /// Records the outcomes of a batch in one statement and one commit
    /// (group commit). Only rows still `sending` under our claim change;
    /// returns how many did.
    ///
    /// A claim is held only while a row is `sending` (every way out of
    /// `sending` clears `claimed_by`), so the rows are matched by id and
    /// claim alone. A `state = 'sending'` condition would let PostgreSQL
    /// plan through `messages_unsettled`, whose entries for rows sent
    /// earlier in the run are dead but still scanned: every batch would
    /// read the whole run's claims again.
    pub async fn record_outcomes(
        &self,
        owner: &str,
        outcomes: &[(i64, Outcome)],
        now: DateTime<Utc>,
    ) -> Result<u64> {
        if outcomes.is_empty() {
            return Ok(0);
        }
        let rows: Vec<Columns> = outcomes
            .iter()
            .map(|(id, outcome)| columns(*id, outcome, now))
            .collect();
        // `now` comes in as the one row of `n`, so that both backends share
        // this text whatever their parameter syntax.
        const SET: &str = "state = v.state, reason = COALESCE(v.reason, m.reason), smtp_reply = COALESCE(v.reply, m.smtp_reply),
            not_before = COALESCE(v.not_before, m.not_before), sent_at = v.sent_at, updated_at = n.at,
            attempts = m.attempts + v.attempted, first_attempt_at = COALESCE(m.first_attempt_at, CASE WHEN v.attempted = 1 THEN n.at END),
            claimed_by = NULL, claimed_until = NULL";
        match &self.backend {
            // Arrays: one statement text (prepared once) whatever the batch size.
            Backend::Postgres(pool) => sqlx::query(&format!(
                "UPDATE messages AS m SET {SET}
                 FROM UNNEST($3::bigint[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::int[])
                      AS v(id, state, reason, reply, not_before, sent_at, attempted),
                      (VALUES ($2::timestamptz)) AS n(at)
                 WHERE m.id = v.id AND m.claimed_by = $1"
            ))
            .bind(owner)
            .bind(now)
            .bind(rows.iter().map(|c| c.0).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.1.as_str()).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.2.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.3.as_deref()).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.4).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.5).collect::<Vec<_>>())
            .bind(rows.iter().map(|c| c.6).collect::<Vec<_>>())
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
            // SQLite has no arrays: a VALUES list. Its parameters are plain
            // `?` bound in order of appearance (numbered ones are looked up by
            // a linear scan each: quadratic in a batch of thousands).
            Backend::Sqlite(pool) => {
                let values = vec!["(?, ?, ?, ?, ?, ?, ?)"; rows.len()].join(", ");
                let sql = format!(
                    "WITH v(id, state, reason, reply, not_before, sent_at, attempted) AS (VALUES {values}),
                          n(at) AS (VALUES (?))
                     UPDATE messages AS m SET {SET}
                     FROM v, n WHERE m.id = v.id AND m.claimed_by = ?"
                );
                let mut q = sqlx::query(&sql);
                for c in &rows {
                    q = q.bind(c.0).bind(c.1).bind(c.2.clone()).bind(c.3.clone()).bind(c.4).bind(c.5).bind(c.6);
                }
                // In order of appearance: the values, `now`, the owner.
                q = q.bind(now).bind(owner);
                let _writer = self.write_guard().await;
                q.execute(pool).await.map(|r| r.rows_affected())
            }
        }
        .context("recording send results")
    }

    /// Gives claimed messages back unsent (the batch could not be prepared),
    /// so they are not left to expire into `unknown`.
    pub async fn release_claims(&self, owner: &str, ids: &[i64]) -> Result<()> {
        let list = super::id_list(ids);
        let sql = format!(
            "UPDATE messages SET state = 'planned', claimed_by = NULL, claimed_until = NULL
             WHERE id IN ({list}) AND state = 'sending' AND claimed_by = $1"
        );
        let _writer = self.write_guard().await;
        dispatch!(self, pool => {
            sqlx::query(&sql).bind(owner).execute(pool).await.map(|_| ())
        })
        .context("giving back claimed messages")
    }

    /// Marks messages of a dead daemon's claims `unknown` that its send
    /// journal shows on the wire without a reply. Only rows still `sending`
    /// under that claim change, so running it again changes nothing.
    pub async fn mark_claims_unknown(&self, owner: &str, ids: &[i64], reason: &str) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list = super::id_list(ids);
        let sql = format!(
            "UPDATE messages SET state = 'unknown', reason = $2, updated_at = $3, claimed_by = NULL, claimed_until = NULL
             WHERE id IN ({list}) AND state = 'sending' AND claimed_by = $1"
        );
        let _writer = self.write_guard().await;
        dispatch!(self, pool => {
            sqlx::query(&sql).bind(owner).bind(reason).bind(Utc::now()).execute(pool).await.map(|r| r.rows_affected())
        })
        .context("marking messages unknown from the send journal")
    }

    /// Every claim a dead daemon still holds, given back to the queue: its
    /// send journal shows that none of them went on the wire.
    pub async fn release_all_claims(&self, owner: &str) -> Result<u64> {
        let _writer = self.write_guard().await;
        dispatch!(self, pool => {
            sqlx::query(
                "UPDATE messages SET state = 'planned', claimed_by = NULL, claimed_until = NULL
                 WHERE state = 'sending' AND claimed_by = $1",
            )
            .bind(owner)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .context("giving back the claims of a stopped daemon")
    }

    /// Claims whose lease ran out belong to a daemon that died mid-send:
    /// they may or may not have gone out, so they become `unknown`. A live
    /// daemon passes its own id as `alive`: its claims are its workers' to
    /// settle, whatever the clock says (a clock stepped forward would
    /// otherwise expire them under a running send).
    pub async fn expire_claims(&self, now: DateTime<Utc>, alive: Option<&str>) -> Result<u64> {
        let n = dispatch!(self, pool => {
            sqlx::query(
                "UPDATE messages SET state = 'unknown', reason = 'the daemon stopped while sending; not resent automatically', updated_at = $1,
                    claimed_by = NULL, claimed_until = NULL
                 WHERE state = 'sending' AND claimed_until < $1 AND claimed_by <> $2",
            )
            .bind(now)
            .bind(alive.unwrap_or(""))
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Suppresses every not-yet-sent message of a run (cancelled or expired).
    pub async fn suppress_pending(
        &self,
        run_id: i64,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64> {
        let n = dispatch!(self, pool => {
            sqlx::query("UPDATE messages SET state = 'suppressed', reason = $1, updated_at = $2 WHERE run_id = $3 AND state = 'planned'")
                .bind(reason)
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Puts a run's `unknown` messages back in the queue (admin decision).
    pub async fn retry_unknown(&self, run_id: i64, now: DateTime<Utc>) -> Result<u64> {
        let n = dispatch!(self, pool => {
            sqlx::query("UPDATE messages SET state = 'planned', not_before = $1, updated_at = $1 WHERE run_id = $2 AND state = 'unknown'")
                .bind(now)
                .bind(run_id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Runs in `sending` with nothing left to send become `done`.
    pub async fn finish_drained_runs(&self, now: DateTime<Utc>) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "UPDATE runs SET state = 'done', updated_at = $1
                 WHERE state = 'sending' AND rule_kind = 'campaign'
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.run_id = runs.id AND m.state = 'planned')
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.run_id = runs.id AND m.state = 'sending')
                 RETURNING id",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Message counts by state across all runs (status, metrics).
    pub async fn queue_counts(&self) -> Result<Vec<(MessageState, i64)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT state, COUNT(*) FROM messages GROUP BY state ORDER BY state").fetch_all(pool).await
        })?)
    }

    pub async fn customer_messages(&self, customer_id: i64) -> Result<Vec<MessageInfo>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT m.id, m.run_id, r.rule_id, m.state, m.reason, m.smtp_reply, m.created_at, m.sent_at
                 FROM messages m JOIN runs r ON r.id = m.run_id WHERE m.customer_id = $1 ORDER BY m.created_at, m.id",
            )
            .bind(customer_id)
            .fetch_all(pool)
            .await
        })?)
    }

    pub async fn message_voucher(&self, run_id: i64, customer_id: i64) -> Result<Option<String>> {
        let row: Option<(Option<String>,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT voucher_code FROM messages WHERE run_id = $1 AND customer_id = $2")
                .bind(run_id)
                .bind(customer_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.and_then(|r| r.0))
    }

    /// The latest failed or unknown messages, for `status`.
    pub async fn recent_failures(&self, limit: i64) -> Result<Vec<Failure>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id AS message_id, state, COALESCE(reason, '') AS reason, updated_at AS at FROM messages
                 WHERE state IN ('failed', 'unknown') ORDER BY updated_at DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Why planned messages wait, most common reason first.
    pub async fn waiting_reasons(&self, limit: i64) -> Result<Vec<Waiting>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT reason, COUNT(*) AS messages, MIN(not_before) AS next_try FROM messages
                 WHERE state = 'planned' AND reason IS NOT NULL
                 GROUP BY reason ORDER BY COUNT(*) DESC, reason LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await
        })?)
    }

    /// A run's planned messages grouped by when they may go out, why they
    /// wait (the last temporary failure, if any) and the customer's time
    /// zone: what `status` and `runs show` explain waiting messages with.
    pub async fn planned_breakdown(&self, run_ids: &[i64]) -> Result<Vec<PlannedGroup>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT m.run_id, c.timezone, m.not_before, m.reason, COUNT(*) AS n
             FROM messages m JOIN customers c ON c.id = m.customer_id
             WHERE m.state = 'planned' AND m.run_id IN ({})
             GROUP BY m.run_id, c.timezone, m.not_before, m.reason ORDER BY m.run_id, m.not_before",
            super::id_list(run_ids)
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).fetch_all(pool).await
        })?)
    }

    /// A run's recipients, in message order, optionally only those in one
    /// state and whose reason contains a text.
    pub async fn run_recipients(
        &self,
        run_id: i64,
        state: Option<MessageState>,
        reason: Option<&str>,
    ) -> Result<Vec<Recipient>> {
        let rows: Vec<Recipient> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT m.id AS message_id, m.customer_id, c.email, c.name, m.state, m.reason,
                        COALESCE(m.sent_at, m.updated_at) AS at, m.not_before
                 FROM messages m JOIN customers c ON c.id = m.customer_id
                 WHERE m.run_id = $1 AND ($2 IS NULL OR m.state = $2)
                 ORDER BY m.id",
            )
            .bind(run_id)
            .bind(state)
            .fetch_all(pool)
            .await
        })?;
        // Matched here: LIKE is case-blind on SQLite and not on PostgreSQL.
        Ok(match reason {
            Some(text) => rows
                .into_iter()
                .filter(|r| r.reason.as_deref().is_some_and(|x| x.contains(text)))
                .collect(),
            None => rows,
        })
    }

    /// The first message of a run, for previews in approval requests.
    pub async fn first_message_customer(&self, run_id: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM messages WHERE run_id = $1 AND state = 'planned' ORDER BY id LIMIT 1")
                .bind(run_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|r| r.0))
    }
}

/// What the rows of one group of a SQLite insert share.
#[derive(Clone, Copy, PartialEq)]
struct SameRow<'a> {
    state: MessageState,
    reason: Option<&'a str>,
    not_before: DateTime<Utc>,
}

/// Bits of a grouped SQLite row's integer that hold its group: eight
/// groups a batch at most, as rows that all differ (a `not_before` per
/// customer) would otherwise make a statement as long as the batch.
const GROUP_BITS: u32 = 3;
const GROUP_MASK: i64 = (1 << GROUP_BITS) - 1;

/// The rows of a SQLite batch alike but for their customer: up to eight
/// groups, and the rows of all of them in the batch's order as one JSON
/// array of `customer_id << 3 | group`.
struct Grouped<'a> {
    alike: Vec<SameRow<'a>>,
    packed: String,
}

/// A batch for SQLite: its grouped rows, if any, and the rest (those with
/// a voucher code, beyond eight groups, or with a negative id or one of
/// 2⁶⁰ or more).
fn sqlite_groups(rows: &[NewMessage]) -> (Option<Grouped<'_>>, Vec<&NewMessage>) {
    use std::fmt::Write;
    let mut alike: Vec<SameRow<'_>> = Vec::new();
    let mut packed = String::from("[");
    let mut others = Vec::new();
    for row in rows {
        let same = SameRow {
            state: row.state,
            reason: row.reason.as_deref(),
            not_before: row.not_before,
        };
        let shifted = row
            .customer_id
            .checked_mul(1 << GROUP_BITS)
            .filter(|s| *s >= 0);
        let group = match alike.iter().position(|s| *s == same) {
            _ if row.voucher_code.is_some() || shifted.is_none() => None,
            Some(g) => Some(g),
            None if alike.len() <= GROUP_MASK as usize => {
                alike.push(same);
                Some(alike.len() - 1)
            }
            None => None,
        };
        match shifted.zip(group) {
            Some((shifted, g)) => {
                if packed.len() > 1 {
                    packed.push(',');
                }
                let _ = write!(packed, "{}", shifted | g as i64);
            }
            None => others.push(row),
        }
    }
    packed.push(']');
    let grouped = (packed.len() > 2).then_some(Grouped { alike, packed });
    (grouped, others)
}

/// Planned rows as the JSON array `insert_messages` hands SQLite:
/// `[customer_id, state, reason, not_before, voucher_code]` each, the
/// timestamp in the text form sqlx gives SQLite (so it compares with the
/// others as text).
fn sqlite_rows_json(rows: &[&NewMessage]) -> String {
    let rows: Vec<_> = rows
        .iter()
        .map(|m| {
            (
                m.customer_id,
                m.state.as_str(),
                m.reason.as_deref(),
                m.not_before
                    .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false),
                m.voucher_code.as_deref(),
            )
        })
        .collect();
    serde_json::to_string(&rows).expect("numbers and strings always serialize")
}
