//! Runs: one per schedule occurrence (or manual start, or trigger) of a
//! campaign or check-in rule. The unique (rule_id, occurrence) key is what
//! makes an occurrence happen once across restarts and daemons.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, dispatch};
use crate::domain::{MessageState, RuleKind, RunState};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Run {
    pub id: i64,
    pub rule_id: String,
    pub rule_kind: RuleKind,
    pub occurrence: DateTime<Utc>,
    pub trigger: String,
    pub state: RunState,
    pub detail: String,
    pub template_hash: Option<String>,
    pub approval_deadline: Option<DateTime<Utc>>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// Its messages wait for a pause to end, since then.
    pub held_since: Option<DateTime<Utc>>,
    /// Held for approval: the text is the same as in this earlier run.
    pub stale_since: Option<i64>,
    pub stopped_by: Option<String>,
    pub stopped_at: Option<DateTime<Utc>>,
}

/// What a new run is.
pub struct NewRun<'a> {
    pub rule_id: &'a str,
    pub rule_kind: RuleKind,
    pub occurrence: DateTime<Utc>,
    pub trigger: &'a str,
    pub state: RunState,
    pub detail: &'a str,
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct RunCount {
    pub run_id: i64,
    pub state: MessageState,
    pub reason: Option<String>,
    pub n: i64,
}

const RUN_COLUMNS: &str = "id, rule_id, rule_kind, occurrence, trigger, state, detail, template_hash, approval_deadline, decided_by, decided_at, created_at, held_since, stale_since, stopped_by, stopped_at";

impl Store {
    /// Records a run unless its (rule, occurrence) exists; `None` if it did.
    pub async fn create_run(&self, run: &NewRun<'_>, now: DateTime<Utc>) -> Result<Option<i64>> {
        let id: Option<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "INSERT INTO runs (rule_id, rule_kind, occurrence, trigger, state, detail, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
                 ON CONFLICT (rule_id, occurrence) DO NOTHING RETURNING id",
            )
            .bind(run.rule_id)
            .bind(run.rule_kind)
            .bind(run.occurrence)
            .bind(run.trigger)
            .bind(run.state)
            .bind(run.detail)
            .bind(now)
            .fetch_all(pool)
            .await
        })
        .context("recording a run")?
        .pop();
        Ok(id.map(|r| r.0))
    }

    /// The latest occurrence recorded for a rule (any state).
    pub async fn latest_occurrence(&self, rule_id: &str) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(Option<DateTime<Utc>>,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT MAX(occurrence) FROM runs WHERE rule_id = $1 AND trigger IN ('schedule', 'catch_up')")
                .bind(rule_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.and_then(|r| r.0))
    }

    /// The customers a targeted run was made for.
    pub async fn add_run_targets(&self, run_id: i64, targets: &[(i64, String)]) -> Result<()> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            for (customer_id, detail) in targets {
                sqlx::query("INSERT INTO run_targets (run_id, customer_id, detail) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                    .bind(run_id)
                    .bind(customer_id)
                    .bind(detail)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .context("recording the run's customers")
    }

    pub async fn run_targets(&self, run_id: i64) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM run_targets WHERE run_id = $1 ORDER BY customer_id").bind(run_id).fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    pub async fn run(&self, id: i64) -> Result<Option<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = $1");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(id).fetch_optional(pool).await
        })?)
    }

    pub async fn runs_in_state(&self, state: RunState) -> Result<Vec<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs WHERE state = $1 ORDER BY id");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(state).fetch_all(pool).await
        })?)
    }

    pub async fn recent_runs(&self, limit: i64) -> Result<Vec<Run>> {
        let sql = format!("SELECT {RUN_COLUMNS} FROM runs ORDER BY id DESC LIMIT $1");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(limit).fetch_all(pool).await
        })?)
    }

    /// Takes a run in `planning` for this daemon; leases let another daemon
    /// take over a run whose planner died. Our own lease ending before
    /// `retry_own_until` (a planning of ours that failed, e.g. on a full
    /// disk, taken a while ago) is taken again: this daemon plans one run at
    /// a time, so it is not planning that run now.
    pub async fn claim_run_for_planning(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        retry_own_until: DateTime<Utc>,
    ) -> Result<Option<Run>> {
        let free =
            "(lease_until IS NULL OR lease_until < $3 OR (lease_owner = $1 AND lease_until < $4))";
        let sql = format!(
            "UPDATE runs SET lease_owner = $1, lease_until = $2
             WHERE id = (SELECT id FROM runs WHERE state = 'planning' AND {free} ORDER BY id LIMIT 1)
               AND state = 'planning' AND {free}
             RETURNING {RUN_COLUMNS}"
        );
        let mut rows: Vec<Run> = dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(owner).bind(lease_until).bind(now).bind(retry_own_until).fetch_all(pool).await
        })
        .context("claiming a run to plan")?;
        Ok(rows.pop())
    }

    /// Moves a run from one state to another; false if it was not in `from`
    /// (someone else decided first).
    pub async fn transition_run(
        &self,
        id: i64,
        from: &[RunState],
        to: RunState,
        detail: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let sql = format!(
            "UPDATE runs SET state = $1, detail = COALESCE($2, detail), updated_at = $3, lease_owner = NULL, lease_until = NULL
             WHERE id = $4 AND state IN ({})",
            super::numbered(5, from.len())
        );
        let affected = dispatch!(self, pool => {
            let mut q = sqlx::query(sql.as_str())
                .bind(to)
                .bind(detail)
                .bind(now)
                .bind(id);
            for state in from {
                q = q.bind(*state);
            }
            q.execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("changing a run's state")?;
        Ok(affected == 1)
    }

    /// The template fingerprint of the campaign's last run (before
    /// `before`) whose text went out or is going out: one sending, or one
    /// with a message sent, being sent or perhaps sent (`unknown`), whatever
    /// became of the run after (stopped, or held again by a pause and then
    /// cancelled). A run that sent nothing does not count: nobody read it.
    pub async fn last_sent_run_hash(
        &self,
        rule_id: &str,
        before: i64,
    ) -> Result<Option<(i64, String)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT id, template_hash FROM runs r
                 WHERE rule_id = $1 AND id < $2 AND template_hash IS NOT NULL
                   AND (state = 'sending'
                        OR EXISTS (SELECT 1 FROM messages m
                                   WHERE m.run_id = r.id AND m.state IN ('sent', 'sending', 'unknown')))
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(rule_id)
            .bind(before)
            .fetch_optional(pool)
            .await
        })?)
    }

    pub async fn set_template_hash(&self, id: i64, template_hash: &str) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE runs SET template_hash = $1 WHERE id = $2")
                .bind(template_hash)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The run waits for approval until `deadline`; `stale_since`: because
    /// its text is the same as in that run.
    pub async fn set_run_approval(
        &self,
        id: i64,
        deadline: DateTime<Utc>,
        stale_since: Option<i64>,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE runs SET approval_deadline = $1, stale_since = $2 WHERE id = $3")
                .bind(deadline)
                .bind(stale_since)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn record_decision(&self, id: i64, by: &str, now: DateTime<Utc>) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE runs SET decided_by = $1, decided_at = $2 WHERE id = $3")
                .bind(by)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Message counts by state (and reason, for suppressed/failed) per run.
    pub async fn run_counts(&self, run_ids: &[i64]) -> Result<Vec<RunCount>> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        let list = super::id_list(run_ids);
        let sql = format!(
            "SELECT run_id, state, CASE WHEN state = 'suppressed' THEN reason ELSE NULL END AS reason, COUNT(*) AS n
             FROM messages WHERE run_id IN ({list}) GROUP BY run_id, state, CASE WHEN state = 'suppressed' THEN reason ELSE NULL END
             ORDER BY run_id, state"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).fetch_all(pool).await
        })?)
    }
}
