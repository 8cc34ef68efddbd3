//! Call tasks for staff, the reasons customers were left out, and digests.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::call_list::{NewEntry, insert_waiting};
use super::{Store, dispatch, text_enum};
use crate::domain::{CallOutcome, Channel, NewObjection};

text_enum! {
    /// What a task asks of a staff member.
    pub enum TaskKind ("task kind") {
        /// A check-in call from the call list.
        Call = "call",
        /// A callback agreed with the customer for a day (`agreed_on`).
        Callback = "callback",
        /// A call by someone else after "needs help".
        FollowUp = "follow_up",
    }
}

text_enum! {
    pub enum TaskState ("task state") {
        Open = "open",
        /// An outcome was recorded.
        Done = "done",
        /// Overdue and not made: back on the call list, after the manager was told.
        Expired = "expired",
        /// Planned for a day its staff member turned out not to work and no
        /// colleague had room: back on the call list before its day.
        Returned = "returned",
    }
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Task {
    pub id: i64,
    pub rule_id: String,
    pub run_id: Option<i64>,
    pub customer_id: i64,
    /// Who makes the call.
    pub staff_id: String,
    /// Whose call it is: who it was planned for or who agreed the callback.
    /// A colleague covering an absence takes `staff_id`, never this.
    pub owner_id: String,
    pub kind: TaskKind,
    pub state: TaskState,
    pub reason: String,
    pub due_on: NaiveDate,
    /// For a callback: the day agreed with the customer.
    pub agreed_on: Option<NaiveDate>,
    /// Unanswered tries so far, carried over when an unmade call comes back.
    pub attempts: i32,
    pub outcome: Option<CallOutcome>,
    pub note: Option<String>,
    pub outcome_at: Option<DateTime<Utc>>,
    pub escalated_at: Option<DateTime<Utc>>,
    pub parent_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Task {
    /// A callback on the day agreed with the customer: the one kind of call
    /// that may take a staff member's list beyond their capacity.
    pub fn is_agreed_for(&self, day: NaiveDate) -> bool {
        self.kind == TaskKind::Callback && self.agreed_on == Some(day)
    }
}

/// A task to create.
#[derive(Debug, Clone)]
pub struct NewTask {
    pub rule_id: String,
    pub run_id: Option<i64>,
    pub customer_id: i64,
    pub staff_id: String,
    pub owner_id: String,
    pub kind: TaskKind,
    pub reason: String,
    pub due_on: NaiveDate,
    pub agreed_on: Option<NaiveDate>,
    pub attempts: i32,
    pub parent_id: Option<i64>,
}

/// Where a callback or follow-up goes: a task on a day, or the call list
/// when its staff member has no room.
#[derive(Debug, Clone)]
pub enum FollowUp {
    Task(NewTask),
    Waiting(NewEntry),
}

/// What an outcome changes, applied in one transaction.
#[derive(Debug, Clone, Default)]
pub struct OutcomeChange {
    /// The task stays open (not reached, retry): its new due day.
    pub retry_on: Option<NaiveDate>,
    pub personal_contact: bool,
    pub add_tags: Vec<String>,
    pub do_not_call: bool,
    pub follow_up: Option<FollowUp>,
    pub event: String,
}

/// How an unmade call goes back to the call list.
#[derive(Debug, Clone)]
pub struct TaskReturn {
    pub state: TaskState,
    pub note: String,
    pub entry: NewEntry,
    /// For the customer's history.
    pub event: String,
}

const TASK_COLUMNS: &str = "id, rule_id, run_id, customer_id, staff_id, owner_id, kind, state, reason, due_on, agreed_on, attempts, outcome, note, outcome_at, escalated_at, parent_id, created_at, updated_at";

pub(super) const INSERT_TASK: &str = "INSERT INTO tasks (rule_id, run_id, customer_id, staff_id, owner_id, kind, state, reason, due_on, agreed_on, attempts, parent_id, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $11, $12, $12)
     ON CONFLICT DO NOTHING RETURNING id";

/// Binds a [`NewTask`] to [`INSERT_TASK`].
macro_rules! bind_task {
    ($query:expr, $t:expr, $now:expr) => {
        $query
            .bind(&$t.rule_id)
            .bind($t.run_id)
            .bind($t.customer_id)
            .bind(&$t.staff_id)
            .bind(&$t.owner_id)
            .bind($t.kind)
            .bind(&$t.reason)
            .bind($t.due_on)
            .bind($t.agreed_on)
            .bind($t.attempts)
            .bind($t.parent_id)
            .bind($now)
    };
}
pub(super) use bind_task;

impl Store {
    /// Creates a task; `None` if the customer already has an open call
    /// (or this run already made one for them).
    pub async fn create_task(&self, t: &NewTask, now: DateTime<Utc>) -> Result<Option<i64>> {
        let row: Option<(i64,)> = dispatch!(self, pool => {
            bind_task!(sqlx::query_as(INSERT_TASK), t, now).fetch_all(pool).await
        })
        .context("creating a task")?
        .pop();
        Ok(row.map(|r| r.0))
    }

    pub async fn record_checkin_skip(
        &self,
        run_id: i64,
        customer_id: i64,
        reason: &str,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("INSERT INTO checkin_skips (run_id, customer_id, reason) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(run_id)
                .bind(customer_id)
                .bind(reason)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn checkin_skip_counts(&self, run_id: i64) -> Result<Vec<(String, i64)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT reason, COUNT(*) FROM checkin_skips WHERE run_id = $1 GROUP BY reason ORDER BY reason")
                .bind(run_id)
                .fetch_all(pool)
                .await
        })?)
    }

    pub async fn task(&self, id: i64) -> Result<Option<Task>> {
        let sql = format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = $1");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(id).fetch_optional(pool).await
        })?)
    }

    /// Tasks by due day; filtered by staff and to open ones if asked.
    pub async fn tasks(&self, staff: Option<&str>, only_open: bool) -> Result<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE ($1 IS NULL OR staff_id = $1) AND ($2 = FALSE OR state = 'open') ORDER BY due_on, id"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(staff).bind(only_open).fetch_all(pool).await
        })?)
    }

    pub async fn customer_tasks(&self, customer_id: i64) -> Result<Vec<Task>> {
        let sql = format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE customer_id = $1 ORDER BY created_at, id"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(customer_id).fetch_all(pool).await
        })?)
    }

    /// Open tasks per (staff, due day), for capacity planning.
    pub async fn open_task_load(&self) -> Result<Vec<(String, NaiveDate, i64)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT staff_id, due_on, COUNT(*) FROM tasks WHERE state = 'open' GROUP BY staff_id, due_on")
                .fetch_all(pool)
                .await
        })?)
    }

    pub async fn customers_with_open_call(&self) -> Result<std::collections::HashSet<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM tasks WHERE state = 'open' AND kind IN ('call', 'callback')").fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// Gives an open task to another staff member for `due_on`; its owner stays.
    pub async fn move_task(
        &self,
        id: i64,
        staff: &str,
        due_on: NaiveDate,
        now: DateTime<Utc>,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE tasks SET staff_id = $1, due_on = $2, updated_at = $3 WHERE id = $4 AND state = 'open'")
                .bind(staff)
                .bind(due_on)
                .bind(now)
                .bind(id)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn mark_escalated(&self, ids: &[i64], now: DateTime<Utc>) -> Result<()> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            for id in ids {
                sqlx::query("UPDATE tasks SET escalated_at = $1 WHERE id = $2 AND escalated_at IS NULL")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })?;
        Ok(())
    }

    /// Closes an open task without an outcome and puts its customer back on
    /// the call list, with a line in their history, at once; false if the
    /// task was not open any more.
    pub async fn return_task(
        &self,
        task: &Task,
        ret: &TaskReturn,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE tasks SET state = $1, note = $2, outcome_at = $3, updated_at = $3 WHERE id = $4 AND state = 'open'",
            )
            .bind(ret.state)
            .bind(&ret.note)
            .bind(now)
            .bind(task.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            insert_waiting!(&mut *tx, &ret.entry, now).await?;
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'call_list', $3)")
                .bind(task.customer_id)
                .bind(now)
                .bind(&ret.event)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map(|_| true)
        })
        .context("putting an unmade call back on the call list")
    }

    /// Records an outcome and its effects at once; false if the task was not
    /// open any more (a second submit changes nothing).
    pub async fn apply_outcome(
        &self,
        task: &Task,
        outcome: CallOutcome,
        note: Option<&str>,
        change: &OutcomeChange,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = match change.retry_on {
                Some(day) => sqlx::query(
                    "UPDATE tasks SET attempts = attempts + 1, due_on = $1, note = $2, outcome = $3, updated_at = $4
                     WHERE id = $5 AND state = 'open' AND attempts = $6",
                )
                .bind(day)
                .bind(note)
                .bind(outcome)
                .bind(now)
                .bind(task.id)
                .bind(task.attempts)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
                None => sqlx::query(
                    "UPDATE tasks SET state = 'done', attempts = attempts + 1, outcome = $1, note = $2, outcome_at = $3, updated_at = $3
                     WHERE id = $4 AND state = 'open' AND attempts = $5",
                )
                .bind(outcome)
                .bind(note)
                .bind(now)
                .bind(task.id)
                .bind(task.attempts)
                .execute(&mut *tx)
                .await?
                .rows_affected(),
            };
            if n == 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            if change.personal_contact {
                sqlx::query("UPDATE customers SET last_personal_contact_at = $1, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(task.customer_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if change.do_not_call {
                sqlx::query("UPDATE customers SET do_not_call = TRUE, updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(task.customer_id)
                    .execute(&mut *tx)
                    .await?;
                // Kept as an objection, so that an import cannot undo it.
                let objection = NewObjection {
                    channel: Channel::Phone,
                    kind: None,
                    at: now,
                    recorded_by: task.staff_id.clone(),
                    source: format!("call outcome (task {})", task.id),
                    note: note.map(String::from),
                };
                super::objections::insert_objection!(task.customer_id, objection)
                    .execute(&mut *tx)
                    .await?;
            }
            if !change.add_tags.is_empty() {
                let (tags,): (String,) = sqlx::query_as("SELECT tags FROM customers WHERE id = $1")
                    .bind(task.customer_id)
                    .fetch_one(&mut *tx)
                    .await?;
                let mut tags = crate::domain::Tags::try_from(tags).unwrap_or_default();
                if tags.add(&change.add_tags) {
                    sqlx::query("UPDATE customers SET tags = $1, updated_at = $2 WHERE id = $3")
                        .bind(tags.to_json())
                        .bind(now)
                        .bind(task.customer_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            match &change.follow_up {
                Some(FollowUp::Task(t)) => {
                    bind_task!(sqlx::query(INSERT_TASK), t, now).execute(&mut *tx).await?;
                }
                Some(FollowUp::Waiting(entry)) => {
                    insert_waiting!(&mut *tx, entry, now).await?;
                }
                None => {}
            }
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'call_outcome', $3)")
                .bind(task.customer_id)
                .bind(now)
                .bind(&change.event)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map(|_| true)
        })
        .context("recording the call outcome")
    }

    /// Staff members whose digest for a day from `since` on went out.
    pub async fn digests_since(&self, since: NaiveDate) -> Result<Vec<(String, NaiveDate)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as("SELECT staff_id, day FROM digests WHERE day >= $1")
                .bind(since)
                .fetch_all(pool)
                .await
        })?)
    }

    /// Claims today's digest for a staff member; false if one went out already.
    pub async fn claim_digest(
        &self,
        staff: &str,
        day: NaiveDate,
        tasks: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = dispatch!(self, pool => {
            sqlx::query("INSERT INTO digests (staff_id, day, sent_at, tasks) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING")
                .bind(staff)
                .bind(day)
                .bind(now)
                .bind(tasks)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// When today's digest went out, if it did.
    pub async fn digest_sent_at(
        &self,
        staff: &str,
        day: NaiveDate,
    ) -> Result<Option<DateTime<Utc>>> {
        let row: Option<(DateTime<Utc>,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT sent_at FROM digests WHERE staff_id = $1 AND day = $2")
                .bind(staff)
                .bind(day)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|r| r.0))
    }

    /// Gives a claimed digest back after the email could not be sent.
    pub async fn release_digest(&self, staff: &str, day: NaiveDate) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("DELETE FROM digests WHERE staff_id = $1 AND day = $2")
                .bind(staff)
                .bind(day)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }
}
