//! Customers, their event history and the suppression list.

use std::sync::LazyLock;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::sqlite_reader::{self, ColumnValue};
use super::{Backend, Store, dispatch};
use crate::domain::{Attributes, Customer, NewObjection, Tags};

/// The columns of `customers` a page reads: copying every column of every
/// row is most of what planning a large run costs, and an audience usually
/// reads two or three of them.
#[derive(Debug, Clone)]
pub struct CustomerColumns(Vec<&'static str>);

impl CustomerColumns {
    pub fn all() -> Self {
        Self::only(std::iter::once("id").chain(COLUMNS))
    }

    /// Just these columns (names of `customers`' columns, from our own code).
    pub fn only(names: impl IntoIterator<Item = &'static str>) -> Self {
        let names: std::collections::BTreeSet<&'static str> = names.into_iter().collect();
        CustomerColumns(names.into_iter().collect())
    }

    /// The page query of these columns: customers (not forgotten) with
    /// `id > $1`, in id order, `$2` at most.
    pub(super) fn page_query(&self) -> String {
        format!(
            "SELECT {} FROM customers WHERE id > $1 AND forgotten_at IS NULL ORDER BY id LIMIT $2",
            self.0.join(", ")
        )
    }

    /// A customer from a row of exactly these columns, in this order; the
    /// fields not read keep their defaults. Read by position, not through
    /// `FromRow`: that looks every field up by name and builds an error
    /// for each column a page leaves out, per row, which was a fifth of
    /// planning's time.
    pub(super) fn decode(&self, row: &impl CustomerRow) -> Result<Customer, sqlx::Error> {
        // Tags and attributes are JSON text.
        let json = |i: usize| -> Result<String, sqlx::Error> { row.value(i) };
        let bad = |i: usize, e: serde_json::Error| sqlx::Error::ColumnDecode {
            index: i.to_string(),
            source: Box::new(e),
        };
        let mut c = Customer::default();
        for (i, name) in self.0.iter().enumerate() {
            match *name {
                "id" => c.id = row.value(i)?,
                "external_id" => c.external_id = row.value(i)?,
                "email" => c.email = row.value(i)?,
                "name" => c.name = row.value(i)?,
                "salutation" => c.salutation = row.value(i)?,
                "first_name" => c.first_name = row.value(i)?,
                "last_name" => c.last_name = row.value(i)?,
                "company" => c.company = row.value(i)?,
                "note" => c.note = row.value(i)?,
                "phone" => c.phone = row.value(i)?,
                "locale" => c.locale = row.value(i)?,
                "timezone" => c.timezone = row.value(i)?,
                "consent" => c.consent = row.value(i)?,
                "consent_at" => c.consent_at = row.value(i)?,
                "consent_source" => c.consent_source = row.value(i)?,
                "phone_consent" => c.phone_consent = row.value(i)?,
                "do_not_call" => c.do_not_call = row.value(i)?,
                "is_business" => c.is_business = row.value(i)?,
                "owner" => c.owner = row.value(i)?,
                "tags" => c.tags = Tags::try_from(json(i)?).map_err(|e| bad(i, e))?,
                "customer_since" => c.customer_since = row.value(i)?,
                "birthday" => c.birthday = row.value(i)?,
                "points" => c.points = row.value(i)?,
                "tier" => c.tier = row.value(i)?,
                "attributes" => {
                    c.attributes = Attributes::try_from(json(i)?).map_err(|e| bad(i, e))?;
                }
                "unsubscribed_at" => c.unsubscribed_at = row.value(i)?,
                "bad_address_at" => c.bad_address_at = row.value(i)?,
                "last_personal_contact_at" => c.last_personal_contact_at = row.value(i)?,
                "forgotten_at" => c.forgotten_at = row.value(i)?,
                "created_at" => c.created_at = row.value(i)?,
                "updated_at" => c.updated_at = row.value(i)?,
                other => return Err(sqlx::Error::ColumnNotFound(other.to_string())),
            }
        }
        Ok(c)
    }
}

/// A row [`CustomerColumns::decode`] reads values from, by position.
pub(super) trait CustomerRow {
    fn value<T: ColumnValue>(&self, index: usize) -> Result<T, sqlx::Error>;
}

impl CustomerRow for sqlx::sqlite::SqliteRow {
    fn value<T: ColumnValue>(&self, index: usize) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, index)
    }
}

impl CustomerRow for sqlx::postgres::PgRow {
    fn value<T: ColumnValue>(&self, index: usize) -> Result<T, sqlx::Error> {
        sqlx::Row::try_get(self, index)
    }
}

/// Written columns, in bind order (everything but `id`).
const COLUMNS: [&str; 30] = [
    "external_id",
    "email",
    "name",
    "salutation",
    "first_name",
    "last_name",
    "company",
    "note",
    "phone",
    "locale",
    "timezone",
    "consent",
    "consent_at",
    "consent_source",
    "phone_consent",
    "do_not_call",
    "is_business",
    "owner",
    "tags",
    "customer_since",
    "birthday",
    "points",
    "tier",
    "attributes",
    "unsubscribed_at",
    "bad_address_at",
    "last_personal_contact_at",
    "forgotten_at",
    "created_at",
    "updated_at",
];

/// Rows per multi-row INSERT: 30 binds each stays under SQLite's 32766 limit.
const INSERT_CHUNK: usize = 500;

static UPDATE_SQL: LazyLock<String> = LazyLock::new(|| {
    let sets: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    format!(
        "UPDATE customers SET {} WHERE id = ${}",
        sets.join(", "),
        COLUMNS.len() + 1
    )
});

/// Binds a customer's fields in [`COLUMNS`] order.
macro_rules! bind_customer {
    ($query:expr, $c:expr) => {
        $query
            .bind(&$c.external_id)
            .bind(&$c.email)
            .bind(&$c.name)
            .bind($c.salutation.map(|s| s.as_str()))
            .bind(&$c.first_name)
            .bind(&$c.last_name)
            .bind(&$c.company)
            .bind(&$c.note)
            .bind(&$c.phone)
            .bind(&$c.locale)
            .bind(&$c.timezone)
            .bind($c.consent)
            .bind($c.consent_at)
            .bind(&$c.consent_source)
            .bind($c.phone_consent)
            .bind($c.do_not_call)
            .bind($c.is_business)
            .bind(&$c.owner)
            .bind($c.tags.to_json())
            .bind($c.customer_since)
            .bind($c.birthday)
            .bind($c.points)
            .bind(&$c.tier)
            .bind($c.attributes.to_json())
            .bind($c.unsubscribed_at)
            .bind($c.bad_address_at)
            .bind($c.last_personal_contact_at)
            .bind($c.forgotten_at)
            .bind($c.created_at)
            .bind($c.updated_at)
    };
}

/// Something that happened to a customer, for their history.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub kind: String,
    pub detail: String,
}

impl NewEvent {
    pub fn new(kind: &str, detail: impl Into<String>) -> Self {
        NewEvent {
            kind: kind.to_string(),
            detail: detail.into(),
        }
    }
}

/// One line of `customers show`: an event, a message or a task, in time order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub detail: String,
}

/// A customer to insert (`id == 0`) or update, with what is recorded
/// alongside in the same transaction.
#[derive(Debug, Clone)]
pub struct CustomerWrite {
    pub customer: Customer,
    pub events: Vec<NewEvent>,
    /// Objections the write records (a "no" in an imported list); their
    /// effect is already in `customer`.
    pub objections: Vec<NewObjection>,
    /// Objections a later consent lifts: (id, why).
    pub lifted: Vec<(i64, String)>,
}

impl Store {
    /// Customers whose external id or email is among the given keys.
    pub async fn customers_by_keys(
        &self,
        external_ids: &[String],
        emails: &[String],
    ) -> Result<Vec<Customer>> {
        let mut found = Vec::new();
        for (column, keys) in [("external_id", external_ids), ("email", emails)] {
            for chunk in keys.chunks(500) {
                let sql = format!(
                    "SELECT * FROM customers WHERE {column} IN ({})",
                    self.placeholders(1, chunk.len())
                );
                let rows: Vec<Customer> = dispatch!(self, pool => {
                    let mut q = sqlx::query_as(sql.as_str());
                    for k in chunk {
                        q = q.bind(k);
                    }
                    q.fetch_all(pool).await
                })
                .context("looking up customers")?;
                found.extend(rows);
            }
        }
        found.sort_by_key(|c| c.id);
        found.dedup_by_key(|c| c.id);
        Ok(found)
    }

    /// Inserts (id 0) or updates customers with their new events and
    /// objections, all in one transaction: an import chunk is either fully
    /// recorded or not at all.
    pub async fn write_customers(&self, rows: &[CustomerWrite], at: DateTime<Utc>) -> Result<()> {
        let (new, changed): (Vec<&CustomerWrite>, Vec<&CustomerWrite>) =
            rows.iter().partition(|w| w.customer.id == 0);
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            // Each write with the id of its customer, new ones once inserted.
            let mut written: Vec<(i64, &CustomerWrite)> = Vec::with_capacity(rows.len());
            // New customers: multi-row INSERTs; the ids come back with the keys they belong to.
            for chunk in new.chunks(INSERT_CHUNK) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| format!("({})", self.placeholders(i * COLUMNS.len() + 1, COLUMNS.len())))
                    .collect();
                let sql = format!(
                    "INSERT INTO customers ({}) VALUES {} RETURNING id, external_id, email",
                    COLUMNS.join(", "),
                    values.join(", ")
                );
                let mut q = sqlx::query_as(&sql);
                for w in chunk {
                    q = bind_customer!(q, w.customer);
                }
                let ids: Vec<(i64, Option<String>, Option<String>)> = q.fetch_all(&mut *tx).await?;
                for w in chunk {
                    let c = &w.customer;
                    let id = ids
                        .iter()
                        .find(|(_, ext, email)| match &c.external_id {
                            Some(k) => ext.as_ref() == Some(k),
                            None => email.is_some() && *email == c.email,
                        })
                        .map(|r| r.0)
                        .ok_or(sqlx::Error::RowNotFound)?;
                    written.push((id, w));
                }
            }
            for w in &changed {
                bind_customer!(sqlx::query(UPDATE_SQL.as_str()), w.customer)
                    .bind(w.customer.id)
                    .execute(&mut *tx)
                    .await?;
                written.push((w.customer.id, w));
            }
            let events: Vec<(i64, &NewEvent)> = written
                .iter()
                .flat_map(|(id, w)| w.events.iter().map(move |e| (*id, e)))
                .collect();
            for chunk in events.chunks(INSERT_CHUNK) {
                let values: Vec<String> = (0..chunk.len()).map(|i| format!("({})", self.placeholders(i * 4 + 1, 4))).collect();
                let sql = format!("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES {}", values.join(", "));
                let mut q = sqlx::query(&sql);
                for (id, event) in chunk {
                    q = q.bind(*id).bind(at).bind(&event.kind).bind(&event.detail);
                }
                q.execute(&mut *tx).await?;
            }
            for (id, w) in &written {
                for o in &w.objections {
                    super::objections::insert_objection!(*id, o).execute(&mut *tx).await?;
                }
                for (objection, because) in &w.lifted {
                    sqlx::query("UPDATE objections SET lifted_at = $1, lifted_because = $2 WHERE id = $3 AND customer_id = $4 AND lifted_at IS NULL")
                        .bind(at)
                        .bind(because)
                        .bind(*objection)
                        .bind(*id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await
        })
        .context("writing customers")
    }

    /// A customer by numeric id, external id or email.
    pub async fn find_customer(&self, key: &str) -> Result<Option<Customer>> {
        let by_id = key.parse::<i64>().ok();
        let email = key.trim().to_lowercase();
        let found: Option<Customer> = dispatch!(self, pool => {
            sqlx::query_as("SELECT * FROM customers WHERE id = $1 OR external_id = $2 OR email = $3 ORDER BY id LIMIT 1")
                .bind(by_id.unwrap_or(-1))
                .bind(key.trim())
                .bind(&email)
                .fetch_optional(pool)
                .await
        })
        .context("looking up the customer")?;
        Ok(found)
    }

    pub async fn customer_events(&self, customer_id: i64) -> Result<Vec<HistoryEntry>> {
        let rows = dispatch!(self, pool => {
            sqlx::query_as("SELECT at, kind, detail FROM customer_events WHERE customer_id = $1 ORDER BY at, id")
                .bind(customer_id)
                .fetch_all(pool)
                .await
        })
        .context("reading the customer's history")?;
        Ok(rows)
    }

    pub async fn add_customer_event(
        &self,
        customer_id: i64,
        at: DateTime<Utc>,
        event: &NewEvent,
    ) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, $3, $4)")
                .bind(customer_id)
                .bind(at)
                .bind(&event.kind)
                .bind(&event.detail)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .context("recording a customer event")?;
        Ok(())
    }

    /// Erases a customer's personal data: the row keeps only its id and
    /// creation time (so counts and "never twice" records stay intact);
    /// history details, call notes, objection notes, task reasons (older
    /// versions copied notes into them), the values that started a run for
    /// them, SMTP replies and bounce diagnostics (which may quote the
    /// address) are blanked; their open tasks end as expired; the
    /// suppression keys go on the anonymous list, keyed.
    /// On SQLite the log is then checkpointed into the file, where
    /// `secure_delete` has overwritten the old content: false if a reader
    /// kept part of it for the next checkpoint.
    pub async fn forget_customer(
        &self,
        id: i64,
        suppression_keys: &[String],
        at: DateTime<Utc>,
    ) -> Result<bool> {
        let keyed = suppression_keys
            .iter()
            .map(|k| self.keyed(k))
            .collect::<Result<Vec<_>>>()?;
        let _writer = self.write_guard().await;
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let (created_at,): (DateTime<Utc>,) = sqlx::query_as("SELECT created_at FROM customers WHERE id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            let erased = Customer { id, forgotten_at: Some(at), created_at, updated_at: at, ..Customer::default() };
            bind_customer!(sqlx::query(UPDATE_SQL.as_str()), erased).bind(id).execute(&mut *tx).await?;
            sqlx::query("UPDATE tasks SET state = 'expired', outcome_at = $2, updated_at = $2 WHERE customer_id = $1 AND state = 'open'")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            for erase in [
                "UPDATE customer_events SET detail = '' WHERE customer_id = $1",
                "UPDATE tasks SET note = NULL, reason = '' WHERE customer_id = $1",
                "UPDATE objections SET note = NULL WHERE customer_id = $1",
                "UPDATE call_list SET detail = NULL WHERE customer_id = $1",
                "UPDATE run_targets SET detail = '' WHERE customer_id = $1",
                "UPDATE messages SET smtp_reply = NULL, reason = CASE WHEN state IN ('failed', 'unknown') THEN 'erased' ELSE reason END WHERE customer_id = $1",
                "UPDATE mail_reports SET detail = '' WHERE customer_id = $1",
                "UPDATE signups SET email = '', name = NULL WHERE customer_id = $1",
            ] {
                sqlx::query(erase).bind(id).execute(&mut *tx).await?;
            }
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'forgotten', '')")
                .bind(id)
                .bind(at)
                .execute(&mut *tx)
                .await?;
            for key in &keyed {
                sqlx::query("INSERT INTO suppressions (key, reason, created_at) VALUES ($1, 'forgotten', $2) ON CONFLICT (key) DO NOTHING")
                    .bind(key)
                    .bind(at)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        })
        .context("forgetting the customer")?;
        self.checkpoint().await
    }

    /// Customers (not forgotten) with `id > after`, in id order: planning
    /// walks the whole table page by page with flat memory. Only `columns`
    /// are read; the other fields keep their defaults. SQLite's pages are
    /// read without sqlx's copy of every value ([`sqlite_reader`]).
    pub async fn customers_page(
        &self,
        after: i64,
        limit: i64,
        columns: &CustomerColumns,
    ) -> Result<Vec<Customer>> {
        if let Backend::Sqlite(pool) = &self.backend
            && let Some(page) = sqlite_reader::customers_page(pool, after, limit, columns.clone())
                .await
                .context("reading customers")?
        {
            return Ok(page);
        }
        let sql = columns.page_query();
        dispatch!(self, pool => {
            let rows = sqlx::query(sql.as_str())
                .bind(after)
                .bind(limit)
                .fetch_all(pool)
                .await?;
            rows.iter().map(|row| columns.decode(row)).collect::<Result<Vec<_>, _>>()
        })
        .context("reading customers")
    }

    pub async fn customers_by_ids(&self, ids: &[i64]) -> Result<Vec<Customer>> {
        match &self.backend {
            // One prepared statement for any list.
            Backend::Postgres(pool) => {
                sqlx::query_as("SELECT * FROM customers WHERE id = ANY($1)")
                    .bind(ids)
                    .fetch_all(pool)
                    .await
            }
            // A literal list (SQLite has no arrays), not kept in the statement
            // cache: every list is a new statement.
            Backend::Sqlite(pool) => {
                let mut found = Vec::with_capacity(ids.len());
                for chunk in ids.chunks(500) {
                    let list = super::id_list(chunk);
                    let sql = format!("SELECT * FROM customers WHERE id IN ({list})");
                    found.extend(
                        sqlx::query_as::<_, Customer>(&sql)
                            .persistent(false)
                            .fetch_all(pool)
                            .await?,
                    );
                }
                Ok(found)
            }
        }
        .context("reading customers")
    }

    /// Marks an address as undeliverable after a 5.1.1-class reply; true if
    /// it was not marked before.
    pub async fn mark_bad_address(
        &self,
        customer_id: i64,
        reply: &str,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            let newly = sqlx::query("UPDATE customers SET bad_address_at = $1 WHERE id = $2 AND bad_address_at IS NULL")
                .bind(at)
                .bind(customer_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                == 1;
            sqlx::query("INSERT INTO customer_events (customer_id, at, kind, detail) VALUES ($1, $2, 'address_bounced', $3)")
                .bind(customer_id)
                .bind(at)
                .bind(reply)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map(|_| newly)
        })
        .context("marking the address as bad")
    }

    pub async fn count_customers(&self) -> Result<i64> {
        let (n,): (i64,) = dispatch!(self, pool => {
            sqlx::query_as("SELECT COUNT(*) FROM customers WHERE forgotten_at IS NULL").fetch_one(pool).await
        })?;
        Ok(n)
    }
}
