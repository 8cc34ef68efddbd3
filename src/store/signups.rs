//! Sign-ups by double opt-in: requests waiting for their confirmation, and
//! the confirmation, which makes (or updates) the customer with their
//! consent and its proof.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};

use super::{Store, dispatch};
use crate::config::CampaignKind;
use crate::domain::Email;

/// Where a consent by sign-up comes from, in `consent_source` and the history.
pub const DOUBLE_OPT_IN: &str = "double opt-in";

/// A sign-up request to record (the confirmation email is sent for it).
#[derive(Debug, Clone)]
pub struct NewSignup {
    pub email: Email,
    pub name: Option<String>,
    pub locale: String,
    pub kinds: Vec<CampaignKind>,
    /// Which text the person saw and will confirm (see `Templates::fingerprint`).
    pub text_fingerprint: String,
}

/// A sign-up request as stored (`kinds` comma-separated, as in the table).
#[derive(Debug, Clone, serde::Serialize, sqlx::FromRow)]
pub struct Signup {
    pub id: i64,
    pub email: String,
    pub name: Option<String>,
    pub locale: String,
    kinds: String,
    pub text_fingerprint: String,
    pub requested_at: DateTime<Utc>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub customer_id: Option<i64>,
}

impl Signup {
    /// The kinds of email agreed to.
    pub fn kinds(&self) -> Vec<CampaignKind> {
        self.kinds
            .split(',')
            .filter_map(CampaignKind::parse)
            .collect()
    }
}

/// What confirming a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confirmed {
    /// Consent recorded for this customer (new, or known by the address).
    Customer(i64),
    /// Confirmed before: nothing changed.
    Already,
    /// The address belongs to a forgotten person: nobody was added.
    Forgotten,
}

impl Store {
    /// Whether a confirmation email went to this address since `since`.
    pub async fn signup_mailed_since(&self, email: &Email, since: DateTime<Utc>) -> Result<bool> {
        let (n,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM signups WHERE email = $1 AND requested_at > $2")
                .bind(email.as_str())
                .bind(since)
                .fetch_one(pool)
                .await
        })
        .context("looking for earlier sign-ups of the address")?;
        Ok(n > 0)
    }

    /// Records a request; its id goes into the confirmation link.
    pub async fn insert_signup(&self, s: &NewSignup, at: DateTime<Utc>) -> Result<i64> {
        let kinds: Vec<&str> = s.kinds.iter().map(|k| k.as_str()).collect();
        let (id,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as(
                "INSERT INTO signups (email, name, locale, kinds, text_fingerprint, requested_at)
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            )
            .bind(s.email.as_str())
            .bind(&s.name)
            .bind(&s.locale)
            .bind(kinds.join(","))
            .bind(&s.text_fingerprint)
            .bind(at)
            .fetch_one(pool)
            .await
        })
        .context("recording the sign-up")?;
        Ok(id)
    }

    pub async fn signup(&self, id: i64) -> Result<Option<Signup>> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT * FROM signups WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .context("reading the sign-up")
    }

    /// Confirms request `id` at `at`, in one transaction: the customer with
    /// its address gets consent (source "double opt-in", at `at`), an
    /// objection to every email is lifted by it (a consent later than the
    /// objection), or a new customer is made; the request keeps when it was
    /// confirmed and for whom, and the history says what was agreed to.
    /// Which kinds they get is set afterwards (see
    /// [`Store::set_email_preferences`]). A forgotten person is not added.
    pub async fn confirm_signup(&self, id: i64, at: DateTime<Utc>) -> Result<Confirmed> {
        // The suppression list holds keyed hashes (and, from before keys,
        // plain ones): both are worked out before the transaction.
        let email: Option<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT email FROM signups WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .context("reading the sign-up")?;
        let plain = email
            .and_then(|(e,)| Email::parse(&e).ok())
            .map(|e| e.suppression_key())
            .unwrap_or_default();
        let keyed = self.keyed(&plain)?;
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let signup: Option<Signup> = sqlx::query_as("SELECT * FROM signups WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(signup) = signup else {
                return Ok(Confirmed::Already);
            };
            if signup.confirmed_at.is_some() {
                return Ok(Confirmed::Already);
            }
            let (forgotten,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM suppressions WHERE key IN ($1, $2)")
                .bind(&keyed)
                .bind(&plain)
                .fetch_one(&mut *tx)
                .await?;
            if forgotten > 0 {
                sqlx::query("DELETE FROM signups WHERE id = $1").bind(id).execute(&mut *tx).await?;
                tx.commit().await?;
                return Ok(Confirmed::Forgotten);
            }
            let known: Option<(i64,)> = sqlx::query_as("SELECT id FROM customers WHERE email = $1 AND forgotten_at IS NULL")
                .bind(&signup.email)
                .fetch_optional(&mut *tx)
                .await?;
            let customer_id = match known {
                Some((customer_id,)) => {
                    sqlx::query(
                        "UPDATE customers SET consent = TRUE, consent_at = $1, consent_source = $2,
                             unsubscribed_at = NULL, updated_at = $1 WHERE id = $3",
                    )
                    .bind(at)
                    .bind(DOUBLE_OPT_IN)
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE objections SET lifted_at = $1, lifted_because = $2
                         WHERE customer_id = $3 AND channel = 'email' AND kind IS NULL AND lifted_at IS NULL",
                    )
                    .bind(at)
                    .bind(format!("consent by {DOUBLE_OPT_IN}, confirmed {}", at.date_naive()))
                    .bind(customer_id)
                    .execute(&mut *tx)
                    .await?;
                    customer_id
                }
                None => {
                    let (customer_id,): (i64,) = sqlx::query_as(
                        "INSERT INTO customers (email, name, locale, consent, consent_at, consent_source, created_at, updated_at)
                         VALUES ($1, $2, $3, TRUE, $4, $5, $4, $4) RETURNING id",
                    )
                    .bind(&signup.email)
                    .bind(&signup.name)
                    .bind(&signup.locale)
                    .bind(at)
                    .bind(DOUBLE_OPT_IN)
                    .fetch_one(&mut *tx)
                    .await?;
                    customer_id
                }
            };
            sqlx::query("UPDATE signups SET confirmed_at = $1, customer_id = $2 WHERE id = $3")
                .bind(at)
                .bind(customer_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let detail = format!(
                "email consent by {DOUBLE_OPT_IN}: asked for {}, confirmed {}, kinds {}, text {}",
                signup.requested_at.format("%Y-%m-%d %H:%M UTC"),
                at.format("%Y-%m-%d %H:%M UTC"),
                signup.kinds.replace(',', ", "),
                &signup.text_fingerprint[..signup.text_fingerprint.len().min(12)]
            );
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'consent', $3)")
                .bind(customer_id)
                .bind(at)
                .bind(detail)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map(|_| Confirmed::Customer(customer_id))
        })
        .context("confirming the sign-up")
    }

    /// Deletes requests not confirmed since `before`; returns how many.
    pub async fn delete_unconfirmed_signups(&self, before: DateTime<Utc>) -> Result<u64> {
        dispatch!(self, pool => {
            sqlx::query("DELETE FROM signups WHERE confirmed_at IS NULL AND requested_at < $1")
                .bind(before)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .context("deleting unconfirmed sign-ups")
    }

    /// The confirmed sign-ups of a customer, the proof of their consent.
    pub async fn customer_signups(&self, customer_id: i64) -> Result<Vec<Signup>> {
        dispatch!(self, pool => {
            sqlx::query_as("SELECT * FROM signups WHERE customer_id = $1 ORDER BY id")
                .bind(customer_id)
                .fetch_all(pool)
                .await
        })
        .context("reading the customer's sign-ups")
    }
}
