//! Storage: one [`Store`] over SQLite (default) or PostgreSQL.
//!
//! All SQL lives under this module. Queries are written once with `$N`
//! placeholders, which both backends accept, and run on whichever pool the
//! URL chose through [`dispatch!`]: the macro expands the same body once per
//! backend, so each expansion is type-checked against its own driver (no
//! `Any` driver, which would lose chrono and JSON types). Where the dialects
//! differ, the module says so next to the query.
//!
//! Rules every query follows:
//! - timestamps are bound from Rust, never `CURRENT_TIMESTAMP`, so SQLite's
//!   text timestamps keep one format and compare correctly;
//! - lists, tags and attributes are JSON text on both backends;
//! - states and reasons are Rust enums stored as text ([`text_enum!`]).
//! - an `… RETURNING` statement is read with `fetch_all`, never `fetch_one`
//!   or `fetch_optional`. Outside a transaction SQLite commits a statement
//!   when it is stepped to its end; those two stop at the first row, and a
//!   commit that then fails (a full disk) is never reported while the row
//!   is: the caller would take a write that did not happen for done.
//!   `fetch_all` steps to the end and returns the commit's error.

mod call_list;
mod changes;
mod control;
mod customers;
mod messages;
mod objections;
mod reports;
mod retention;
mod runs;
mod send_slots;
mod signups;
mod sqlite_checkpoint;
mod sqlite_reader;
mod staff;
mod suppressions;
mod tasks;
mod vouchers;

pub use call_list::{
    CallListCount, Candidate, CandidateQuery, DropReason, Entry, EntryState, ListReason, NewEntry,
    Planned,
};
pub use control::{ALL_EMAIL, Hold};
pub use customers::{CustomerColumns, CustomerWrite, HistoryEntry, NewEvent};
pub use messages::{
    Claimed, ExistingRows, Failure, MessageInfo, NewMessage, Outcome, PlannedGroup, Recipient,
    Waiting,
};
pub use reports::{MailReport, ReportKind, SentMessage};
pub use retention::Erased;
pub use runs::{NewRun, Run, RunCount};
pub use send_slots::SendSlots;
pub use signups::{Confirmed, DOUBLE_OPT_IN, NewSignup, Signup};
pub use staff::StoredAbsence;
pub use tasks::{FollowUp, NewTask, OutcomeChange, Task, TaskKind, TaskReturn, TaskState};
pub use vouchers::Occasion;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use sqlite_checkpoint::Checkpoints;

#[derive(Debug, Clone)]
pub enum Backend {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs `$body` with `$pool` bound to the concrete pool of `$store`.
macro_rules! dispatch {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.backend {
            $crate::store::Backend::Sqlite($pool) => $body,
            $crate::store::Backend::Postgres($pool) => $body,
        }
    };
}
pub(crate) use dispatch;

/// An enum stored as text: one place maps each variant to its text, for
/// both databases, JSON in and out, the command line and messages. `$what`
/// names it in the error for a text that is none of its variants.
macro_rules! text_enum {
    ($(#[$meta:meta])* pub enum $name:ident ($what:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| {
                        let names: Vec<&str> = Self::ALL.iter().map(|v| v.as_str()).collect();
                        format!("\"{s}\" is not a {}; use one of: {}", $what, names.join(", "))
                    })
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, so that `{:<9}` lines up a column.
                f.pad(self.as_str())
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
            }
        }

        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
                Some(clap::builder::PossibleValue::new(self.as_str()))
            }
        }

        impl sqlx::Type<sqlx::Sqlite> for $name {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <&str as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <&str as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <&str as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, sqlx::Sqlite> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut Vec<sqlx::sqlite::SqliteArgumentValue<'q>>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, sqlx::Sqlite>>::encode(self.as_str(), buf)
            }
        }

        impl sqlx::Encode<'_, sqlx::Postgres> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut sqlx::postgres::PgArgumentBuffer,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<sqlx::Postgres>>::encode(self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $name {
            fn decode(value: sqlx::sqlite::SqliteValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<sqlx::Sqlite>>::decode(value)?.parse::<$name>()?)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(value: sqlx::postgres::PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                Ok(<&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?.parse::<$name>()?)
            }
        }
    };
}
pub(crate) use text_enum;

text_enum! {
    /// Which database a store runs on, as logs and `outreach migrate` name it.
    pub enum BackendKind ("database kind") {
        Sqlite = "sqlite",
        Postgres = "postgres",
    }
}

/// `$from, $from+1, …`: `n` numbered parameters, for a list in a statement
/// that numbers its other parameters too. ([`Store::placeholders`] gives
/// SQLite bare `?`, which sqlx counts among themselves only: the first would
/// take the statement's first argument.)
fn numbered(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Ids as a literal SQL list (`1, 2, 3`) for `IN (…)`: integers only, so
/// nothing to escape.
fn id_list(ids: &[i64]) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
    /// SQLite allows one writer at a time; delivery workers queue here for
    /// their short write transactions instead of sleeping in SQLite's busy
    /// handler (which backs off in steps of several milliseconds).
    sqlite_writer: Arc<tokio::sync::Mutex<()>>,
    /// Keys the suppression list's hashes ([`Store::use_suppression_key`]);
    /// set once per process, by whoever builds the app first.
    suppression_key: Arc<OnceLock<crate::secret::Secret>>,
}

/// Rows a SQLite connection's thread may read ahead of the task that takes
/// them (sqlx's default is 50). With 50, reading a page of customers
/// switched between the two every few rows: planning a million customers
/// took a fifth more of the daemon's CPU (benches/README.md; planning's
/// pages are now read without sqlx, other large reads still go this way).
/// Every query collects its rows whole, so this holds no more memory than
/// the result.
const SQLITE_ROWS_IN_FLIGHT: usize = 1024;

/// Attempts of [`Store::checkpoint`], 50 ms apart.
const CHECKPOINT_TRIES: u32 = 20;

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`). A SQLite file
    /// and its folder are created if missing, private to this user
    /// ([`private_sqlite_files`]); WAL lets the HTTP server read while the
    /// sender writes, `synchronous=FULL` makes every commit durable before
    /// we tell anyone a message was sent, and `secure_delete` overwrites what
    /// is deleted or changed, so erased personal data does not linger in
    /// free pages of the file.
    pub async fn connect(url: &str, max_connections: u32) -> Result<Self> {
        Self::connect_with_password(url, max_connections, None).await
    }

    /// As [`Store::connect`], with a PostgreSQL password kept out of the URL.
    pub async fn connect_with_password(
        url: &str,
        max_connections: u32,
        password: Option<&str>,
    ) -> Result<Self> {
        let backend = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("database.url \"{url}\" is not a valid SQLite URL"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true)
                .row_buffer_size(SQLITE_ROWS_IN_FLIGHT);
            let options = options.pragma("secure_delete", "on");
            let path = options.get_filename().to_path_buf();
            let in_memory = url.contains(":memory:");
            if !in_memory {
                private_sqlite_files(&path)?;
            }
            // An in-memory database exists per connection: keep exactly one.
            // It has no write-ahead log, so nothing to checkpoint either.
            let max = if in_memory { 1 } else { max_connections.max(1) };
            let mut pool = SqlitePoolOptions::new().max_connections(max);
            let checkpoints = (!in_memory).then(Checkpoints::new);
            if let Some(checkpoints) = checkpoints {
                pool = pool.after_connect(move |conn, _| Box::pin(checkpoints.install(conn)));
            }
            let pool = pool
                .connect_with(options)
                .await
                .with_context(|| format!("cannot open SQLite database {}", path.display()))?;
            if let Some(checkpoints) = checkpoints {
                tokio::spawn(checkpoints.run(pool.clone()));
            }
            Backend::Sqlite(pool)
        } else {
            let mut options = PgConnectOptions::from_str(url).with_context(|| {
                format!(
                    "database.url is not a valid PostgreSQL URL: {}",
                    redact(url)
                )
            })?;
            if let Some(password) = password {
                options = options.password(password);
            }
            Backend::Postgres(
                PgPoolOptions::new()
                    .max_connections(max_connections.max(1))
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(options)
                    .await
                    .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?,
            )
        };
        Ok(Store {
            backend,
            sqlite_writer: Arc::default(),
            suppression_key: Arc::default(),
        })
    }

    /// Applies the migration set of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                // A migration that rebuilds a table others reference (the way
                // SQLite changes constraints) needs foreign keys off, and
                // SQLite ignores switching them inside the transaction each
                // migration runs in: off on this connection around them.
                let mut conn = pool.acquire().await?;
                sqlx::query("PRAGMA foreign_keys = OFF")
                    .execute(&mut *conn)
                    .await?;
                // `run_direct` on the connection itself: `run(&mut *conn)` goes
                // through `Acquire`, whose lifetime makes the daemon's future
                // not `Send` (it could not be spawned).
                let migrated = sqlx::migrate!("migrations/sqlite")
                    .run_direct(&mut *conn)
                    .await;
                sqlx::query("PRAGMA foreign_keys = ON")
                    .execute(&mut *conn)
                    .await?;
                migrated
            }
            Backend::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await,
        }
        .context("applying database migrations")
    }

    /// Held around write transactions that run concurrently (claims,
    /// results); `None` on PostgreSQL, which has row locks.
    pub(crate) async fn write_guard(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.backend {
            Backend::Sqlite(_) => Some(self.sqlite_writer.lock().await),
            Backend::Postgres(_) => None,
        }
    }

    /// `n` bind placeholders starting at number `from`, comma-separated.
    /// SQLite gets anonymous `?`: sqlx-sqlite resolves each `$N` by name,
    /// which makes statements with thousands of parameters slow.
    pub(crate) fn placeholders(&self, from: usize, n: usize) -> String {
        match self.backend {
            Backend::Sqlite(_) => vec!["?"; n].join(", "),
            Backend::Postgres(_) => numbered(from, n),
        }
    }

    pub fn backend_kind(&self) -> BackendKind {
        match self.backend {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// A cheap round trip, for `/healthz`.
    pub async fn ping(&self) -> Result<()> {
        dispatch!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
            .context("database did not answer")
    }

    /// Frees runs a previous process of a single-daemon (SQLite) setup was planning.
    pub async fn release_planning_leases(&self) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("UPDATE runs SET lease_owner = NULL, lease_until = NULL WHERE state = 'planning'")
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// Ends every session properly (PostgreSQL logs a session that just
    /// vanishes). sqlx 0.8 gives a connection back to the pool in a spawned
    /// task that first pings the server; `close` can return while one is
    /// still on its way and lands idle, or still closing. So: close again
    /// until no connection is left, for at most a second.
    pub async fn close(&self) {
        dispatch!(self, pool => {
            for _ in 0..100 {
                pool.close().await;
                if pool.size() == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    }

    pub async fn kv_get(&self, key: &str) -> Result<Option<String>> {
        let value: Option<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT value FROM kv WHERE key = $1").bind(key).fetch_optional(pool).await
        })?;
        Ok(value.map(|v| v.0))
    }

    pub async fn kv_set(&self, key: &str, value: &str) -> Result<()> {
        dispatch!(self, pool => {
            sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await
                .map(|_| ())
        })
        .with_context(|| format!("storing {key}"))
    }

    /// Proves the database takes a write now (a full disk, a read-only file
    /// system or a read-only PostgreSQL fail here), for `/healthz` and
    /// `status`. Overwrites one small row.
    pub async fn write_probe(&self, at: chrono::DateTime<chrono::Utc>) -> Result<()> {
        self.kv_set("write_probe", &at.to_rfc3339())
            .await
            .context("the database does not take writes")
    }

    /// The SQLite file, if this is SQLite and not in memory (for its free
    /// space, and the send journal beside it).
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                let path = pool.connect_options().get_filename().to_path_buf();
                (path.as_os_str() != ":memory:").then_some(path)
            }
            Backend::Postgres(_) => None,
        }
    }

    /// Moves everything in SQLite's write-ahead log into the database file
    /// and empties the log, so that erased content is gone from both files
    /// (with `secure_delete` the freed space was overwritten). False if a
    /// reader kept part of the log in use; the rest moves at the next
    /// checkpoint. PostgreSQL: nothing to do here (its own vacuum reclaims).
    ///
    /// SQLite runs one checkpoint at a time and answers busy at once to a
    /// second: the commit that erased may just have woken the background
    /// checkpoint (`sqlite_checkpoint`), or a daemon makes one. So a busy
    /// answer is tried again for up to a second before it counts.
    pub async fn checkpoint(&self) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(pool) => {
                for attempt in 1..=CHECKPOINT_TRIES {
                    let (busy, _, _): (i64, i64, i64) =
                        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
                            .fetch_one(pool)
                            .await
                            .context("checkpointing the database")?;
                    if busy == 0 {
                        return Ok(true);
                    }
                    if attempt < CHECKPOINT_TRIES {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                Ok(false)
            }
            Backend::Postgres(_) => Ok(true),
        }
    }

    /// Stores `value` unless the key exists; returns the value now stored
    /// (so two daemons racing to create a key agree on one).
    pub async fn kv_get_or_insert(&self, key: &str, value: &str) -> Result<String> {
        dispatch!(self, pool => {
            sqlx::query("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(key)
                .bind(value)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        self.kv_get(key)
            .await?
            .context("kv value vanished right after insert")
    }
}

/// Creates the database's folder (and any missing parent) as 0700 and the
/// file as 0600, whatever the umask: it holds customers' personal data.
/// SQLite gives its `-wal` and `-shm` files the mode of the database file.
/// A file left readable by others (made by an older version or by hand) is
/// made private.
fn private_sqlite_files(path: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("cannot create database folder {}", dir.display()))?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot create database file {}", path.display()));
        }
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let file = std::path::PathBuf::from(file);
        let Ok(meta) = std::fs::metadata(&file) else {
            continue;
        };
        if meta.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).with_context(
                || {
                    format!(
                        "{} is readable by other users and cannot be made private",
                        file.display()
                    )
                },
            )?;
            tracing::info!(file = %file.display(), "made the database file private (0600)");
        }
    }
    Ok(())
}

/// A database URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// A SQLite store in a folder of its own (gone when the `TempDir` is
/// dropped), with its file and its pool, for the tests of the modules that
/// call SQLite directly.
#[cfg(test)]
async fn temp_sqlite(
    connections: u32,
) -> (tempfile::TempDir, std::path::PathBuf, Store, SqlitePool) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join("outreach.db");
    let store = Store::connect(&format!("sqlite://{}", path.display()), connections)
        .await
        .expect("a new SQLite database");
    let Backend::Sqlite(pool) = &store.backend else {
        unreachable!("a SQLite URL")
    };
    let pool = pool.clone();
    (dir, path, store, pool)
}

#[cfg(test)]
mod tests {
    /// The rule in the module docs: a `RETURNING` statement is read to its
    /// end, so that SQLite reports a commit that failed.
    #[test]
    fn every_returning_statement_is_read_with_fetch_all() {
        let sources = [
            ("call_list.rs", include_str!("call_list.rs")),
            ("control.rs", include_str!("control.rs")),
            ("customers.rs", include_str!("customers.rs")),
            ("messages.rs", include_str!("messages.rs")),
            ("retention.rs", include_str!("retention.rs")),
            ("runs.rs", include_str!("runs.rs")),
            ("send_slots.rs", include_str!("send_slots.rs")),
            ("staff.rs", include_str!("staff.rs")),
            ("suppressions.rs", include_str!("suppressions.rs")),
            ("tasks.rs", include_str!("tasks.rs")),
            ("vouchers.rs", include_str!("vouchers.rs")),
        ];
        let mut checked = 0;
        for (file, text) in sources {
            for (at, _) in text.match_indices("RETURNING") {
                let rest = &text[at..];
                let fetch = rest
                    .find(".fetch")
                    .map(|i| &rest[i..])
                    .unwrap_or_else(|| panic!("{file}: a RETURNING statement is never fetched"));
                assert!(
                    fetch.starts_with(".fetch_all("),
                    "{file}: a RETURNING statement is read with {}",
                    &fetch[..fetch.find('(').unwrap_or(12)]
                );
                checked += 1;
            }
        }
        assert!(checked >= 8, "only {checked} RETURNING statements found");
    }
}
