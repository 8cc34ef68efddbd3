//! Staff absences recorded from the command line (`outreach staff away`).

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{Store, dispatch};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct StoredAbsence {
    pub id: i64,
    pub staff_id: String,
    pub from_on: NaiveDate,
    pub to_on: NaiveDate,
    pub note: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, staff_id, from_on, to_on, note, created_by, created_at";

impl Store {
    pub async fn add_absence(
        &self,
        staff_id: &str,
        from: NaiveDate,
        to: NaiveDate,
        note: &str,
        by: &str,
        now: DateTime<Utc>,
    ) -> Result<i64> {
        let mut rows: Vec<(i64,)> = dispatch!(self, pool => {
            sqlx::query_as(
                "INSERT INTO staff_absences (staff_id, from_on, to_on, note, created_by, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(staff_id)
            .bind(from)
            .bind(to)
            .bind(note)
            .bind(by)
            .bind(now)
            .fetch_all(pool)
            .await
        })
        .context("recording the absence")?;
        let (id,) = rows
            .pop()
            .context("recording the absence: no id came back")?;
        Ok(id)
    }

    /// Every recorded absence, by staff member and start.
    pub async fn absences(&self) -> Result<Vec<StoredAbsence>> {
        let sql = format!("SELECT {COLUMNS} FROM staff_absences ORDER BY staff_id, from_on, id");
        Ok(dispatch!(self, pool => {
            sqlx::query_as(sql.as_str()).fetch_all(pool).await
        })?)
    }

    /// Ends a stored absence the day before `back_on` (or removes it, if it
    /// had not begun before then).
    pub async fn end_absence(&self, id: i64, back_on: NaiveDate) -> Result<()> {
        let last = back_on.pred_opt().unwrap_or(back_on);
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("DELETE FROM staff_absences WHERE id = $1 AND from_on >= $2")
                .bind(id)
                .bind(back_on)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE staff_absences SET to_on = $1 WHERE id = $2 AND to_on > $1")
                .bind(last)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        })
        .context("ending the absence")
    }
}
