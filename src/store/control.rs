//! Holds on customer email (pauses), the runs they hold, and stopped runs.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, dispatch};
use crate::domain::RunState;

/// The scope of a hold on all customer email (`outreach pause`); any other
/// scope is the id of one campaign or check-in rule.
pub const ALL_EMAIL: &str = "*";

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Hold {
    pub scope: String,
    /// The hold ends by itself then; `None`: until someone resumes.
    pub until_at: Option<DateTime<Utc>>,
    pub note: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl Store {
    /// Sets a hold, replacing one of the same scope (a new `--until` or note).
    pub async fn set_hold(&self, hold: &Hold) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query(
                "INSERT INTO holds (scope, until_at, note, created_by, created_at) VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (scope) DO UPDATE SET until_at = $2, note = $3, created_by = $4, created_at = $5",
            )
            .bind(&hold.scope)
            .bind(hold.until_at)
            .bind(&hold.note)
            .bind(&hold.created_by)
            .bind(hold.created_at)
            .execute(pool)
            .await
            .map(|_| ())
        })
        .context("recording a pause")
    }

    /// Ends a hold in force; false if there was none.
    pub async fn remove_hold(&self, scope: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = dispatch!(self, pool => {
            sqlx::query("DELETE FROM holds WHERE scope = $1 AND (until_at IS NULL OR until_at > $2)")
                .bind(scope)
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("ending a pause")?;
        Ok(n > 0)
    }

    /// Holds in force at `now`.
    pub async fn holds(&self, now: DateTime<Utc>) -> Result<Vec<Hold>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT scope, until_at, note, created_by, created_at FROM holds
                 WHERE until_at IS NULL OR until_at > $1 ORDER BY scope",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Removes holds whose `until` has come; returns them.
    pub async fn end_expired_holds(&self, now: DateTime<Utc>) -> Result<Vec<Hold>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "DELETE FROM holds WHERE until_at <= $1 RETURNING scope, until_at, note, created_by, created_at",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Records since when a sending run's messages wait for a pause, or
    /// (`None`) that they may go again.
    pub async fn set_run_held(&self, run_id: i64, since: Option<DateTime<Utc>>) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE runs SET held_since = $1 WHERE id = $2")
                .bind(since)
                .bind(run_id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Stops a run that has not finished: the run becomes `stopped` (with who,
    /// when and `detail`) and its planned messages `suppressed` ("stopped"),
    /// in one transaction. `None` if the run was not in `from` any more.
    pub async fn stop_run(
        &self,
        run_id: i64,
        from: &[RunState],
        by: &str,
        detail: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<u64>> {
        let sql = format!(
            "UPDATE runs SET state = 'stopped', detail = $1, stopped_by = $2, stopped_at = $3, updated_at = $3,
                 held_since = NULL, lease_owner = NULL, lease_until = NULL
             WHERE id = $4 AND state IN ({})",
            super::numbered(5, from.len())
        );
        let _writer = self.write_guard().await;
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut stop = sqlx::query(&sql)
                .bind(detail)
                .bind(by)
                .bind(now)
                .bind(run_id);
            for state in from {
                stop = stop.bind(*state);
            }
            let stopped = stop
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if stopped == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            let suppressed = sqlx::query(
                "UPDATE messages SET state = 'suppressed', reason = 'stopped', updated_at = $1 WHERE run_id = $2 AND state = 'planned'",
            )
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await.map(|_| Some(suppressed))
        })
        .context("stopping the run")
    }

    /// Messages of stopped runs that became `planned` again after the stop (a
    /// worker gave back a batch it had claimed): they end like the others.
    pub async fn suppress_stopped_leftovers(&self, now: DateTime<Utc>) -> Result<u64> {
        let _writer = self.write_guard().await;
        let n = dispatch!(self, pool => {
            sqlx::query(
                "UPDATE messages SET state = 'suppressed', reason = 'stopped', updated_at = $1
                 WHERE state = 'planned' AND run_id IN (SELECT id FROM runs WHERE state = 'stopped')",
            )
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n)
    }

    /// Runs stopped since `since`: their claimed messages may still be in a worker's batch.
    pub async fn runs_stopped_since(&self, since: DateTime<Utc>) -> Result<Vec<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT id FROM runs WHERE state = 'stopped' AND stopped_at > $1")
                .bind(since)
                .fetch_all(pool)
                .await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Holds a run for approval once more (its messages waited too long):
    /// `sending` → `awaiting_approval` with a new deadline. False if the run
    /// was not sending any more.
    pub async fn hold_for_approval_again(
        &self,
        run_id: i64,
        detail: &str,
        deadline: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = dispatch!(self, pool => {
            sqlx::query(
                "UPDATE runs SET state = 'awaiting_approval', detail = $1, approval_deadline = $2, held_since = NULL, updated_at = $3
                 WHERE id = $4 AND state = 'sending'",
            )
            .bind(detail)
            .bind(deadline)
            .bind(now)
            .bind(run_id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
