//! The call list: customers waiting for a call, and how each left it.
//!
//! A customer waits at most once (a partial unique index); an entry leaves
//! the list either `planned` (it became a call task, `task_id`) or `dropped`
//! (with a [`DropReason`]), which the table's CHECK constraints enforce.

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::tasks::{INSERT_TASK, NewTask, bind_task};
use super::{Store, dispatch, text_enum};

text_enum! {
    /// Why a customer is on the call list. The order of the variants is
    /// the order in which the list is served (see [`ListReason::served_first`]).
    pub enum ListReason ("reason to be on the call list") {
        /// An agreed callback whose day passed without the call.
        Callback = "callback",
        /// "Needs help": a manager's or the business contact's call.
        FollowUp = "follow_up",
        /// A check-in for a customer with an owner on staff.
        Regular = "regular",
        /// A check-in for a customer without an owner.
        Checkin = "checkin",
        /// Their email address bounced for good: staff ask for a working one.
        BadAddress = "bad_address",
    }
}

impl ListReason {
    /// Promises made to customers come before check-ins.
    pub fn served_first(self) -> bool {
        matches!(self, ListReason::Callback | ListReason::FollowUp)
    }

    pub fn describe(self) -> &'static str {
        match self {
            ListReason::Callback => "agreed callback, missed on its day",
            ListReason::FollowUp => "follow-up after \"needs help\"",
            ListReason::Regular => "check-in, regular of a staff member",
            ListReason::Checkin => "check-in, no owner",
            ListReason::BadAddress => "email address bounced, ask for a working one",
        }
    }
}

text_enum! {
    pub enum EntryState ("call list state") {
        Waiting = "waiting",
        /// It became a call task (`task_id`).
        Planned = "planned",
        /// It left without a call (`drop_reason`).
        Dropped = "dropped",
    }
}

text_enum! {
    /// Why a customer left the call list without being called.
    pub enum DropReason ("reason to leave the call list") {
        DoNotCall = "do_not_call",
        NoPhoneConsent = "no_phone_consent",
        NoPhone = "no_phone",
        /// Someone talked to them after they joined the list.
        RecentContact = "recent_contact",
        /// Another open call (e.g. an agreed callback) covers them.
        OpenCall = "open_call",
        Forgotten = "forgotten",
        /// Their check-in rule is no longer in the config.
        RuleRemoved = "rule_removed",
    }
}

/// A customer to put on the call list.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct NewEntry {
    pub customer_id: i64,
    pub rule_id: String,
    pub run_id: Option<i64>,
    pub reason: ListReason,
    /// Who should take it (a follow-up's manager); anyone if none.
    pub staff_id: Option<String>,
    /// Who left it unmade: a colleague takes it.
    pub avoid_staff_id: Option<String>,
    pub not_before: Option<NaiveDate>,
    pub attempts: i32,
    pub from_task_id: Option<i64>,
    /// Why the call is due, shown to staff; the rule's reason if none.
    pub detail: Option<String>,
    /// The place in line of an earlier entry, kept by someone who comes back
    /// without having been reached; a new entry's place is its own id.
    pub place: Option<i64>,
}

/// An entry as stored: what it joined the list with, and how it left.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Entry {
    pub id: i64,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub joined: NewEntry,
    pub state: EntryState,
    pub task_id: Option<i64>,
    pub drop_reason: Option<DropReason>,
    pub added_at: DateTime<Utc>,
    pub left_at: Option<DateTime<Utc>>,
}

impl std::ops::Deref for Entry {
    type Target = NewEntry;

    fn deref(&self) -> &NewEntry {
        &self.joined
    }
}

const ENTRY_COLUMNS: &str = "id, customer_id, rule_id, run_id, reason, staff_id, avoid_staff_id, not_before, attempts, from_task_id, detail, place, state, task_id, drop_reason, added_at, left_at";

/// Puts a customer on the list. One already waiting keeps their place,
/// unless the new entry is a promise (callback, follow-up) and theirs is not.
pub(super) const INSERT_WAITING: &str = "INSERT INTO call_list (customer_id, rule_id, run_id, reason, staff_id, avoid_staff_id, not_before, attempts, from_task_id, detail, place, state, added_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'waiting', $12)
     ON CONFLICT (customer_id) WHERE state = 'waiting' DO UPDATE SET
         rule_id = excluded.rule_id, reason = excluded.reason, staff_id = excluded.staff_id,
         avoid_staff_id = excluded.avoid_staff_id, not_before = excluded.not_before,
         attempts = excluded.attempts, from_task_id = excluded.from_task_id, detail = excluded.detail
     WHERE excluded.reason IN ('callback', 'follow_up') AND call_list.reason NOT IN ('callback', 'follow_up')";

/// Runs [`INSERT_WAITING`] for a [`NewEntry`] on `$executor`.
macro_rules! insert_waiting {
    ($executor:expr, $e:expr, $now:expr) => {
        sqlx::query($crate::store::call_list::INSERT_WAITING)
            .bind($e.customer_id)
            .bind(&$e.rule_id)
            .bind($e.run_id)
            .bind($e.reason)
            .bind(&$e.staff_id)
            .bind(&$e.avoid_staff_id)
            .bind($e.not_before)
            .bind($e.attempts)
            .bind($e.from_task_id)
            .bind(&$e.detail)
            .bind($e.place)
            .bind($now)
            .execute($executor)
    };
}
pub(super) use insert_waiting;

/// A waiting entry as one staff member's plan sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Candidate {
    pub id: i64,
    pub customer_id: i64,
    pub rule_id: String,
    pub run_id: Option<i64>,
    pub reason: ListReason,
    pub attempts: i32,
    pub from_task_id: Option<i64>,
    pub detail: Option<String>,
    pub owner: Option<String>,
}

/// Who may take which entries on a day (see [`Store::call_list_candidates`]).
#[derive(Debug, Clone)]
pub struct CandidateQuery<'a> {
    pub staff: &'a str,
    pub day: NaiveDate,
    /// Staff members who keep their regulars and follow-ups for themselves
    /// on this day: on staff and not away.
    pub present: &'a [String],
    /// Check-in rules with `assign = "least_loaded"`: owners keep nothing.
    pub least_loaded: &'a [String],
    /// Nobody else is on staff: entries this person left unmade come back to them.
    pub alone: bool,
    pub limit: i64,
}

/// Waiting entries by what decides who takes them and when, for summaries
/// and the forecast.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct CallListCount {
    pub reason: ListReason,
    pub rule_id: String,
    pub owner: Option<String>,
    pub staff_id: Option<String>,
    pub avoid_staff_id: Option<String>,
    pub returned: bool,
    pub n: i64,
}

/// What became of an entry the plan picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Planned {
    Task(i64),
    /// The customer has an open call already; the entry was dropped.
    Covered,
    /// Someone else (another daemon) planned it first.
    Gone,
}

/// `n` numbered placeholders from `$from`, for `IN (…)`; `''` for none
/// (staff and rule ids are never empty), which keeps the SQL valid. Numbered
/// on SQLite too, since the statement has numbered ones already.
fn numbered(from: usize, n: usize) -> String {
    if n == 0 {
        return "''".to_string();
    }
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Puts a customer on the call list; false if they were waiting already.
    pub async fn add_to_call_list(&self, entry: &NewEntry, now: DateTime<Utc>) -> Result<bool> {
        let added = dispatch!(self, pool => {
            insert_waiting!(pool, entry, now).await.map(|r| r.rows_affected() == 1)
        })
        .context("putting a customer on the call list")?;
        Ok(added)
    }

    pub async fn customers_on_call_list(&self) -> Result<HashSet<i64>> {
        let rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT customer_id FROM call_list WHERE state = 'waiting'").fetch_all(pool).await
        })?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }

    /// The entries `w.staff` may take on `w.day`, best first: promises
    /// (callbacks, follow-ups), then their own regulars, then everyone else,
    /// each longest without personal contact first, then by place in line.
    ///
    /// Regulars wait for their owner and follow-ups for their manager while
    /// that person is present; an entry someone left unmade goes to a colleague.
    pub async fn call_list_candidates(&self, w: &CandidateQuery<'_>) -> Result<Vec<Candidate>> {
        let present = numbered(5, w.present.len());
        let least_loaded = numbered(5 + w.present.len(), w.least_loaded.len());
        let sql = format!(
            "SELECT e.id, e.customer_id, e.rule_id, e.run_id, e.reason, e.attempts, e.from_task_id, e.detail, c.owner
             FROM call_list e JOIN customers c ON c.id = e.customer_id
             WHERE e.state = 'waiting'
               AND (e.not_before IS NULL OR e.not_before <= $1)
               AND (e.avoid_staff_id IS NULL OR e.avoid_staff_id <> $2 OR $3)
               AND CASE WHEN e.reason IN ('callback', 'follow_up')
                   THEN (e.staff_id IS NULL OR e.staff_id = $2 OR e.staff_id NOT IN ({present}))
                   ELSE (c.owner IS NULL OR c.owner = $2 OR c.owner NOT IN ({present})
                         OR c.owner = e.avoid_staff_id OR e.rule_id IN ({least_loaded}))
                   END
             ORDER BY CASE WHEN e.reason IN ('callback', 'follow_up') THEN 0 WHEN c.owner = $2 THEN 1 ELSE 2 END,
                      c.last_personal_contact_at IS NOT NULL, c.last_personal_contact_at,
                      COALESCE(e.place, e.id)
             LIMIT $4"
        );
        dispatch!(self, pool => {
            let mut q = sqlx::query_as(sql.as_str())
                .bind(w.day)
                .bind(w.staff)
                .bind(w.alone)
                .bind(w.limit);
            for id in w.present.iter().chain(w.least_loaded) {
                q = q.bind(id);
            }
            q.fetch_all(pool).await
        })
        .context("reading the call list")
    }

    /// Each customer's place in line since their last personal contact:
    /// someone selected again without having been reached keeps it.
    pub async fn places_in_line(&self) -> Result<HashMap<i64, i64>> {
        let rows: Vec<(i64, i64)> = dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT e.customer_id, MIN(COALESCE(e.place, e.id)) FROM call_list e
                 WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = e.customer_id
                                   AND c.last_personal_contact_at > e.added_at)
                 GROUP BY e.customer_id",
            )
            .fetch_all(pool)
            .await
        })
        .context("reading places on the call list")?;
        Ok(rows.into_iter().collect())
    }

    /// The place in line of the entry a task was planned from.
    pub async fn place_of_task(&self, task_id: i64) -> Result<Option<i64>> {
        let row: Option<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT COALESCE(place, id) FROM call_list WHERE task_id = $1")
                .bind(task_id)
                .fetch_optional(pool)
                .await
        })?;
        Ok(row.map(|r| r.0))
    }

    /// Turns a waiting entry into a call task, at once.
    pub async fn plan_entry(
        &self,
        entry_id: i64,
        task: &NewTask,
        now: DateTime<Utc>,
    ) -> Result<Planned> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let created: Option<(i64,)> = bind_task!(sqlx::query_as(INSERT_TASK), task, now)
                .fetch_optional(&mut *tx)
                .await?;
            let (planned, done) = match created {
                Some((id,)) => (
                    Planned::Task(id),
                    sqlx::query("UPDATE call_list SET state = 'planned', task_id = $1, left_at = $2 WHERE id = $3 AND state = 'waiting'")
                        .bind(id)
                        .bind(now)
                        .bind(entry_id)
                        .execute(&mut *tx)
                        .await?,
                ),
                None => (
                    Planned::Covered,
                    sqlx::query("UPDATE call_list SET state = 'dropped', drop_reason = 'open_call', left_at = $1 WHERE id = $2 AND state = 'waiting'")
                        .bind(now)
                        .bind(entry_id)
                        .execute(&mut *tx)
                        .await?,
                ),
            };
            if done.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(Planned::Gone);
            }
            tx.commit().await.map(|_| planned)
        })
        .context("planning a call from the call list")
    }

    /// Drops waiting entries of customers who may no longer be called (or
    /// whose rule is gone); returns how many left, per reason.
    pub async fn prune_call_list(
        &self,
        rules: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<(DropReason, u64)>> {
        let rule_list = numbered(2, rules.len());
        // The first reason that applies is recorded. A follow-up is for
        // someone who needs help: a call since, or an open call, does not end it.
        let sql = format!(
            "WITH gone AS (
                 SELECT e.id, CASE
                     WHEN e.rule_id NOT IN ({rule_list}) THEN 'rule_removed'
                     WHEN c.forgotten_at IS NOT NULL THEN 'forgotten'
                     WHEN c.do_not_call THEN 'do_not_call'
                     WHEN NOT c.is_business AND NOT c.phone_consent THEN 'no_phone_consent'
                     WHEN c.phone IS NULL OR TRIM(c.phone) = '' THEN 'no_phone'
                     WHEN e.reason = 'follow_up' THEN NULL
                     WHEN c.last_personal_contact_at > e.added_at THEN 'recent_contact'
                     WHEN EXISTS (SELECT 1 FROM tasks t WHERE t.customer_id = e.customer_id
                                  AND t.state = 'open' AND t.kind IN ('call', 'callback')) THEN 'open_call'
                 END AS why
                 FROM call_list e JOIN customers c ON c.id = e.customer_id
                 WHERE e.state = 'waiting')
             UPDATE call_list SET state = 'dropped', drop_reason = gone.why, left_at = $1
             FROM gone WHERE call_list.id = gone.id AND gone.why IS NOT NULL
             RETURNING call_list.drop_reason"
        );
        let rows: Vec<(DropReason,)> = dispatch!(self, pool => {
            let mut q = sqlx::query_as(sql.as_str()).bind(now);
            for rule in rules {
                q = q.bind(rule);
            }
            q.fetch_all(pool).await
        })
        .context("tidying the call list")?;
        let mut dropped: Vec<(DropReason, u64)> = Vec::new();
        for (reason,) in rows {
            match dropped.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, n)) => *n += 1,
                None => dropped.push((reason, 1)),
            }
        }
        Ok(dropped)
    }

    /// Waiting entries, counted by what decides who takes them.
    pub async fn call_list_counts(&self) -> Result<Vec<CallListCount>> {
        dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT e.reason, e.rule_id, c.owner, e.staff_id, e.avoid_staff_id, e.from_task_id IS NOT NULL AS returned, COUNT(*) AS n
                 FROM call_list e JOIN customers c ON c.id = e.customer_id
                 WHERE e.state = 'waiting'
                 GROUP BY e.reason, e.rule_id, c.owner, e.staff_id, e.avoid_staff_id, e.from_task_id IS NOT NULL
                 ORDER BY e.reason",
            )
            .fetch_all(pool)
            .await
        })
        .context("counting the call list")
    }

    /// A run's entries: (state, reason while waiting or planned, drop reason, count).
    pub async fn run_call_list_counts(
        &self,
        run_id: i64,
    ) -> Result<Vec<(EntryState, ListReason, Option<DropReason>, i64)>> {
        Ok(dispatch!(self, pool => {
            sqlx::query_as(
                "SELECT state, reason, drop_reason, COUNT(*) FROM call_list WHERE run_id = $1
                 GROUP BY state, reason, drop_reason ORDER BY state, reason, drop_reason",
            )
            .bind(run_id)
            .fetch_all(pool)
            .await
        })?)
    }

    /// Every entry, oldest first; only waiting ones if asked.
    pub async fn call_list(&self, only_waiting: bool) -> Result<Vec<Entry>> {
        let sql = format!(
            "SELECT {ENTRY_COLUMNS} FROM call_list WHERE ($1 = FALSE OR state = 'waiting') ORDER BY id"
        );
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(only_waiting).fetch_all(pool).await
        })?)
    }

    pub async fn customer_call_list(&self, customer_id: i64) -> Result<Vec<Entry>> {
        let sql =
            format!("SELECT {ENTRY_COLUMNS} FROM call_list WHERE customer_id = $1 ORDER BY id");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).bind(customer_id).fetch_all(pool).await
        })?)
    }
}
