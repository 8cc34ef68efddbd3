//! Reading pages of customers straight through SQLite's C interface.
//!
//! sqlx copies every value of every row into an allocation of its own on
//! its connection's thread, and hands the rows over one by one. For the
//! million customers of a large run, that took longer than SQLite's own
//! work, deciding the rows and writing them together (benches/README.md).
//! Here a page is stepped through with SQLite's C interface on a blocking
//! thread (as sqlx's own calls run off the async workers), with the
//! connection locked (sqlx's `lock_handle`: its thread makes no call on
//! the connection meanwhile), and each value is decoded where SQLite
//! keeps it.
//!
//! Only values in the forms outreach writes are decoded here
//! ([`ColumnValue::from_sqlite`]). A page holding anything else (a
//! timestamp written by hand, say, or broken JSON) is read again through
//! sqlx, whose decoding accepts more forms and names what is wrong.
//! Connections to a shared in-memory cache (`cache=shared`), which sqlx
//! waits on with unlock notifications, are not supported here.

// SQLite's C interface: every call carries a SAFETY comment.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::marker::PhantomData;
use std::ptr::{self, NonNull};

use anyhow::{Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use libsqlite3_sys as ffi;
use sqlx::SqlitePool;
use sqlx::sqlite::LockedSqliteHandle;
use tracing::debug;

use super::customers::{CustomerColumns, CustomerRow};
use crate::domain::{Customer, Salutation};

/// Runs the page query of `columns` ([`CustomerColumns::page_query`]) and
/// decodes its rows. `None` when a value is not one this module decodes:
/// the caller reads the page through sqlx instead.
pub(super) async fn customers_page(
    pool: &SqlitePool,
    after: i64,
    limit: i64,
    columns: CustomerColumns,
) -> Result<Option<Vec<Customer>>> {
    let mut connection = pool.acquire().await?;
    tokio::task::spawn_blocking(move || {
        // Locking waits only for sqlx's thread to let go of the connection.
        let mut locked = futures::executor::block_on(connection.lock_handle())?;
        let mut statement = Statement::prepare(&mut locked, &columns.page_query())?;
        statement.bind(c"$1", after)?;
        statement.bind(c"$2", limit)?;
        let mut customers = Vec::with_capacity(usize::try_from(limit).unwrap_or(0).min(10_000));
        while statement.step()? {
            match columns.decode(&statement) {
                Ok(customer) => customers.push(customer),
                Err(e) => {
                    debug!(error = %e, "a page of customers is read through sqlx");
                    return Ok(None);
                }
            }
        }
        Ok(Some(customers))
    })
    .await?
}

/// A prepared statement on a locked connection, finalized when dropped.
struct Statement<'c> {
    db: NonNull<ffi::sqlite3>,
    raw: NonNull<ffi::sqlite3_stmt>,
    columns: c_int,
    /// Whether the last step gave a row, whose values may be read.
    on_row: bool,
    /// The connection stays locked while the statement lives.
    _locked: PhantomData<&'c mut ()>,
}

impl<'c> Statement<'c> {
    fn prepare(locked: &'c mut LockedSqliteHandle<'_>, sql: &str) -> Result<Self> {
        let db = locked.as_raw_handle();
        let len = c_int::try_from(sql.len())?;
        let mut raw = ptr::null_mut();
        // SAFETY: `db` is an open connection that no other thread uses
        // while sqlx's lock is held (borrowed for `'c`); `sql`
        // is valid for `len` bytes during the call, and SQLite copies what
        // it keeps.
        let rc = unsafe {
            ffi::sqlite3_prepare_v2(
                db.as_ptr(),
                sql.as_ptr().cast(),
                len,
                &mut raw,
                ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            bail!(
                "SQLite could not prepare a page query: {}",
                error_text(db, rc)
            );
        }
        let Some(raw) = NonNull::new(raw) else {
            bail!("SQLite found no statement in a page query");
        };
        // SAFETY: `raw` is the statement just prepared on `db`.
        let columns = unsafe { ffi::sqlite3_column_count(raw.as_ptr()) };
        Ok(Statement {
            db,
            raw,
            columns,
            on_row: false,
            _locked: PhantomData,
        })
    }

    /// Binds the parameter `name` (`$1` …) of the statement.
    fn bind(&mut self, name: &CStr, value: i64) -> Result<()> {
        // SAFETY: `raw` is a live statement of this connection, not being
        // stepped; `name` is NUL-terminated.
        let rc = unsafe {
            match ffi::sqlite3_bind_parameter_index(self.raw.as_ptr(), name.as_ptr()) {
                0 => bail!("a page query has no parameter {}", name.to_string_lossy()),
                index => ffi::sqlite3_bind_int64(self.raw.as_ptr(), index, value),
            }
        };
        if rc != ffi::SQLITE_OK {
            bail!(
                "SQLite could not bind {}: {}",
                name.to_string_lossy(),
                error_text(self.db, rc)
            );
        }
        Ok(())
    }

    /// The next row: `true` while there is one. Taking `&mut self` ends
    /// every borrow of the previous row's text first.
    fn step(&mut self) -> Result<bool> {
        // SAFETY: `raw` is a live statement of this connection, which only
        // this thread uses while it is locked.
        let rc = unsafe { ffi::sqlite3_step(self.raw.as_ptr()) };
        self.on_row = rc == ffi::SQLITE_ROW;
        match rc {
            ffi::SQLITE_ROW => Ok(true),
            ffi::SQLITE_DONE => Ok(false),
            rc => bail!(
                "SQLite could not read a page of customers: {}",
                error_text(self.db, rc)
            ),
        }
    }

    /// Column `index` of the current row; `None` off a row.
    fn column(&self, index: usize) -> Option<Value<'_>> {
        if !self.on_row {
            return None;
        }
        let column = c_int::try_from(index).ok().filter(|&c| c < self.columns)?;
        Some(Value {
            raw: self.raw,
            column,
            _row: PhantomData,
        })
    }
}

impl Drop for Statement<'_> {
    fn drop(&mut self) {
        // SAFETY: `raw` was prepared by `prepare` and is finalized only here.
        unsafe { ffi::sqlite3_finalize(self.raw.as_ptr()) };
    }
}

fn error_text(db: NonNull<ffi::sqlite3>, rc: c_int) -> String {
    // SAFETY: `db` is the open, locked connection; SQLite returns a
    // NUL-terminated message that stays valid until its next call on the
    // connection, and it is copied before that.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) };
    format!("{} (code {rc})", message.to_string_lossy())
}

/// One value of the current row, as SQLite stores it.
#[derive(Clone, Copy)]
pub(super) struct Value<'s> {
    raw: NonNull<ffi::sqlite3_stmt>,
    column: c_int,
    /// The statement, on this row, for `'s`.
    _row: PhantomData<&'s ()>,
}

impl<'s> Value<'s> {
    fn kind(self) -> c_int {
        // SAFETY: the statement is on a row (decoding happens between
        // steps) and `column` is within its columns (`Statement::column`).
        unsafe { ffi::sqlite3_column_type(self.raw.as_ptr(), self.column) }
    }

    fn is_null(self) -> bool {
        self.kind() == ffi::SQLITE_NULL
    }

    /// An INTEGER value; `None` for any other type.
    fn integer(self) -> Option<i64> {
        // SAFETY: as in `kind`; the value is an integer, so nothing is converted.
        (self.kind() == ffi::SQLITE_INTEGER)
            .then(|| unsafe { ffi::sqlite3_column_int64(self.raw.as_ptr(), self.column) })
    }

    /// A TEXT value in UTF-8; `None` for any other type.
    fn text(self) -> Option<&'s str> {
        if self.kind() != ffi::SQLITE_TEXT {
            return None;
        }
        let raw = self.raw.as_ptr();
        // SAFETY: as in `kind`; the value is text, so `sqlite3_column_text`
        // returns it as UTF-8 (NULL only when out of memory), and
        // `sqlite3_column_bytes`, called after it, its length. They stay
        // valid until the next step, which needs `&mut Statement` and so
        // cannot happen while `'s` lasts.
        let bytes = unsafe {
            let text = ffi::sqlite3_column_text(raw, self.column);
            let len = usize::try_from(ffi::sqlite3_column_bytes(raw, self.column)).ok()?;
            if text.is_null() {
                return None;
            }
            std::slice::from_raw_parts(text, len)
        };
        std::str::from_utf8(bytes).ok()
    }
}

impl CustomerRow for Statement<'_> {
    fn value<T: ColumnValue>(&self, index: usize) -> Result<T, sqlx::Error> {
        self.column(index)
            .and_then(T::from_sqlite)
            .ok_or_else(|| sqlx::Error::ColumnDecode {
                index: index.to_string(),
                source: "not in a form outreach writes".into(),
            })
    }
}

/// A value of a `customers` column: decoded by sqlx from either
/// database's rows, or here from SQLite's own.
pub(super) trait ColumnValue:
    Sized
    + for<'r> sqlx::Decode<'r, sqlx::Sqlite>
    + sqlx::Type<sqlx::Sqlite>
    + for<'r> sqlx::Decode<'r, sqlx::Postgres>
    + sqlx::Type<sqlx::Postgres>
{
    /// The value in the form outreach writes it, the form sqlx's decoding
    /// tries first; `None` for any other.
    fn from_sqlite(value: Value<'_>) -> Option<Self>;
}

impl ColumnValue for i64 {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        value.integer()
    }
}

impl ColumnValue for bool {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        value.integer().map(|i| i != 0)
    }
}

impl ColumnValue for String {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        value.text().map(str::to_owned)
    }
}

impl ColumnValue for NaiveDate {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        NaiveDate::parse_from_str(value.text()?, "%F").ok()
    }
}

/// RFC 3339 text, as sqlx writes a `DateTime<Utc>`.
impl ColumnValue for DateTime<Utc> {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        DateTime::parse_from_rfc3339(value.text()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

impl ColumnValue for Salutation {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        Salutation::from_stored(value.text()?)
    }
}

impl<T: ColumnValue> ColumnValue for Option<T> {
    fn from_sqlite(value: Value<'_>) -> Option<Self> {
        if value.is_null() {
            Some(None)
        } else {
            T::from_sqlite(value).map(Some)
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// What outreach writes is decoded here; a timestamp in another form
    /// sends the page to sqlx (`None`), which the store's tests check
    /// reads the same.
    #[tokio::test]
    async fn decodes_what_outreach_writes_and_leaves_other_forms_to_sqlx() {
        let (_dir, _, store, pool) = crate::store::temp_sqlite(2).await;
        store.migrate().await.unwrap();
        let pool = &pool;
        let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 30, 15).unwrap();
        sqlx::query(
            "INSERT INTO customers (email, consent, tags, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind("anna@example.de")
        .bind(true)
        .bind(r#"["newsletter"]"#)
        .bind(at)
        .execute(pool)
        .await
        .unwrap();
        let columns = CustomerColumns::only(["id", "email", "consent", "tags", "created_at"]);
        let read = || customers_page(pool, 0, 10, columns.clone());

        let page = read().await.unwrap().expect("decoded without sqlx");
        let [anna] = page.as_slice() else {
            panic!("one customer: {page:?}")
        };
        assert_eq!(anna.email.as_deref(), Some("anna@example.de"));
        assert!(anna.consent);
        assert_eq!(anna.tags.0, ["newsletter"]);
        assert_eq!(anna.created_at, at);

        sqlx::query("UPDATE customers SET created_at = '2026-05-01 08:30:15'")
            .execute(pool)
            .await
            .unwrap();
        assert!(read().await.unwrap().is_none(), "left to sqlx");
    }
}
