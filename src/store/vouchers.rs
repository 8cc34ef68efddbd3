//! Voucher codes: each code belongs to at most one customer.

use anyhow::{Context, Result};
use chrono::{DateTime, NaiveDate, Utc};

use super::{Store, dispatch};

/// What a code is given for when a customer may have one per occasion
/// rather than per pool (an anniversary: one per customer and year).
#[derive(Debug, Clone, Copy)]
pub struct Occasion<'a> {
    /// E.g. `geburtstag:2027-03-14`: the campaign and the day it celebrates.
    pub key: &'a str,
    /// The run the code is given in (a resumed plan takes it up again).
    pub run_id: i64,
}

impl Store {
    /// A code of this pool already given to the customer but not yet used by
    /// any message (a plan interrupted between the two writes).
    pub async fn unused_code_of(&self, pool: &str, customer_id: i64) -> Result<Option<String>> {
        let row: Option<(String,)> = dispatch!(self, pool_ => {
            sqlx::query_as(
                "SELECT vc.code FROM voucher_codes vc WHERE vc.pool_id = $1 AND vc.customer_id = $2 AND vc.occasion IS NULL
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.customer_id = vc.customer_id AND m.voucher_code = vc.code)
                 ORDER BY vc.id LIMIT 1",
            )
            .bind(pool)
            .bind(customer_id)
            .fetch_optional(pool_)
            .await
        })?;
        Ok(row.map(|r| r.0))
    }

    /// The code given to the customer for an occasion, and the run it was given for.
    pub async fn occasion_code(
        &self,
        pool: &str,
        customer_id: i64,
        occasion: &str,
    ) -> Result<Option<(String, Option<i64>)>> {
        Ok(dispatch!(self, p => {
            sqlx::query_as("SELECT code, run_id FROM voucher_codes WHERE pool_id = $1 AND customer_id = $2 AND occasion = $3")
                .bind(pool)
                .bind(customer_id)
                .bind(occasion)
                .fetch_optional(p)
                .await
        })?)
    }

    /// Codes the customer holds from the pool, not counting those given for an occasion.
    pub async fn codes_held(&self, pool: &str, customer_id: i64) -> Result<i64> {
        let (n,): (i64,) = dispatch!(self, p => {
            sqlx::query_as("SELECT COUNT(*) FROM voucher_codes WHERE pool_id = $1 AND customer_id = $2 AND occasion IS NULL")
                .bind(pool)
                .bind(customer_id)
                .fetch_one(p)
                .await
        })?;
        Ok(n)
    }

    /// Gives the next free imported code to the customer; `None` if the pool is empty.
    /// A code for an occasion that the customer got one for already (another
    /// daemon, just now) fails on `voucher_codes_one_per_occasion`: the plan
    /// is retried and finds that code.
    pub async fn claim_code(
        &self,
        pool: &str,
        customer_id: i64,
        expires_on: NaiveDate,
        occasion: Option<&Occasion<'_>>,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let row: Option<(String,)> = dispatch!(self, p => {
            sqlx::query_as(
                "UPDATE voucher_codes SET customer_id = $1, assigned_at = $2, expires_on = $3, occasion = $5, run_id = $6
                 WHERE id = (SELECT id FROM voucher_codes WHERE pool_id = $4 AND customer_id IS NULL ORDER BY id LIMIT 1)
                   AND customer_id IS NULL
                 RETURNING code",
            )
            .bind(customer_id)
            .bind(now)
            .bind(expires_on)
            .bind(pool)
            .bind(occasion.map(|o| o.key))
            .bind(occasion.map(|o| o.run_id))
            .fetch_all(p)
            .await
        })
        .context("claiming a voucher code")?
        .pop();
        Ok(row.map(|r| r.0))
    }

    /// Stores a generated code already assigned; false if the code exists.
    pub async fn insert_assigned_code(
        &self,
        pool: &str,
        code: &str,
        customer_id: i64,
        expires_on: NaiveDate,
        occasion: Option<&Occasion<'_>>,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let n = dispatch!(self, p => {
            sqlx::query(
                "INSERT INTO voucher_codes (pool_id, code, customer_id, assigned_at, expires_on, created_at, occasion, run_id)
                 VALUES ($1, $2, $3, $4, $5, $4, $6, $7) ON CONFLICT (pool_id, code) DO NOTHING",
            )
            .bind(pool)
            .bind(code)
            .bind(customer_id)
            .bind(now)
            .bind(expires_on)
            .bind(occasion.map(|o| o.key))
            .bind(occasion.map(|o| o.run_id))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }

    /// Adds imported codes; returns those that already existed in the pool.
    pub async fn add_codes(
        &self,
        pool: &str,
        codes: &[String],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>> {
        let mut existing = Vec::new();
        dispatch!(self, p => {
            let mut tx = p.begin().await?;
            for code in codes {
                let n = sqlx::query("INSERT INTO voucher_codes (pool_id, code, created_at) VALUES ($1, $2, $3) ON CONFLICT (pool_id, code) DO NOTHING")
                    .bind(pool)
                    .bind(code)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if n == 0 {
                    existing.push(code.clone());
                }
            }
            tx.commit().await
        })
        .context("adding voucher codes")?;
        Ok(existing)
    }

    pub async fn voucher_expiry(&self, pool: &str, code: &str) -> Result<Option<NaiveDate>> {
        let row: Option<(Option<NaiveDate>,)> = dispatch!(self, p => {
            sqlx::query_as("SELECT expires_on FROM voucher_codes WHERE pool_id = $1 AND code = $2")
                .bind(pool)
                .bind(code)
                .fetch_optional(p)
                .await
        })?;
        Ok(row.and_then(|r| r.0))
    }

    /// Re-arms a one-time notice (e.g. after a pool was refilled).
    pub async fn clear_notice(&self, key: &str) -> Result<()> {
        dispatch!(self, p => {
            sqlx::query("DELETE FROM notices WHERE key = $1").bind(key).execute(p).await.map(|_| ())
        })?;
        Ok(())
    }

    /// Records that a one-time notice went out; false if it had already.
    pub async fn claim_notice(&self, key: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = dispatch!(self, p => {
            sqlx::query("INSERT INTO notices (key, sent_at) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(now)
                .execute(p)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(n == 1)
    }
}
