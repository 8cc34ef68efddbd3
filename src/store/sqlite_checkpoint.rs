//! SQLite's checkpoints, moved off the connection that commits.
//!
//! In WAL mode a commit appends pages to the write-ahead log, and a
//! checkpoint copies them back into the database file. SQLite's own rule
//! makes every commit that leaves 1000 pages or more in the log do that
//! copy before it returns. Planning a large run is one long series of
//! commits on one connection, and there the copies took a sixth of the
//! time (benches/README.md). Here such a commit only wakes a task. That
//! task checkpoints on another of the pool's connections, and so on
//! another thread, while the writer goes on. The checkpoint is PASSIVE: it
//! never waits for a writer or a reader, and blocks neither. SQLite runs
//! one checkpoint at a time, so another one started meanwhile is answered
//! busy ([`super::Store::checkpoint`] tries again).
//!
//! The log starts over only when it has been copied whole between two
//! transactions. A writer that never pauses can keep the task one step
//! behind, so at [`INLINE_PAGES`] the committing connection checkpoints
//! itself, as SQLite would have: that bounds the log.

// SQLite's C interface: every call carries a SAFETY comment.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_void};

use libsqlite3_sys as ffi;
use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::Notify;
use tracing::debug;

/// Pages in the log at which a commit wakes the checkpoint task (SQLite's
/// own threshold for a checkpoint).
const BACKGROUND_PAGES: c_int = 1000;
/// Pages in the log at which the committing connection checkpoints itself
/// (40 MB with SQLite's 4 KiB pages).
const INLINE_PAGES: c_int = 10_000;

/// The checkpoint task of one database, and what wakes it.
pub(super) struct Checkpoints {
    wake: Notify,
}

impl Checkpoints {
    /// One per opened database. It lives as long as the process: SQLite
    /// calls it from connections, which may outlive the store that opened
    /// them (a few bytes per database opened).
    pub fn new() -> &'static Checkpoints {
        Box::leak(Box::new(Checkpoints {
            wake: Notify::new(),
        }))
    }

    /// Makes a new connection's commits wake the task instead of
    /// checkpointing themselves (this replaces SQLite's own rule).
    pub async fn install(&'static self, conn: &mut SqliteConnection) -> sqlx::Result<()> {
        let mut locked = conn.lock_handle().await?;
        let db = locked.as_raw_handle();
        let context: *const Checkpoints = self;
        // SAFETY: `db` is an open connection, locked for us (sqlx's thread
        // makes no call on it meanwhile); the context is `'static` and
        // `after_commit` only reads it.
        unsafe {
            ffi::sqlite3_wal_hook(db.as_ptr(), Some(after_commit), context as *mut c_void);
        }
        Ok(())
    }

    /// Checkpoints each time a commit asks for it. A wake after the pool
    /// was closed ends it; without one it waits, holding no connection.
    pub async fn run(&'static self, pool: SqlitePool) {
        loop {
            self.wake.notified().await;
            if pool.is_closed() {
                return;
            }
            // Failing here only leaves the pages in the log a while longer:
            // the next commit asks again, and the inline rule bounds the log.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                debug!(error = %e, "a background checkpoint failed");
            }
        }
    }
}

/// SQLite's hook after each commit in WAL mode, with the log's size in pages.
extern "C" fn after_commit(
    context: *mut c_void,
    db: *mut ffi::sqlite3,
    name: *const c_char,
    pages: c_int,
) -> c_int {
    // SAFETY: the context is the `&'static Checkpoints` given in `install`.
    let checkpoints = unsafe { &*(context as *const Checkpoints) };
    if pages >= INLINE_PAGES {
        // SAFETY: SQLite calls the hook on the connection's own call, after
        // the commit, where a checkpoint of the named database is allowed
        // (its default hook does this). A checkpoint that cannot be made
        // now is left to the next commit, as SQLite's own rule leaves it.
        unsafe {
            ffi::sqlite3_wal_checkpoint(db, name);
        }
    } else if pages >= BACKGROUND_PAGES {
        checkpoints.wake.notify_one();
    }
    ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    use sqlx::Sqlite;
    use sqlx::pool::PoolConnection;

    use super::*;

    /// A file database with `connections` connections and a table to fill.
    /// With one, the checkpoint task cannot run while the test holds it.
    async fn database(connections: u32) -> (tempfile::TempDir, std::path::PathBuf, SqlitePool) {
        let (dir, path, _, pool) = crate::store::temp_sqlite(connections).await;
        sqlx::query("CREATE TABLE pages (b BLOB)")
            .execute(&pool)
            .await
            .unwrap();
        (dir, path, pool)
    }

    /// Commits about `pages` pages of new rows.
    async fn write_pages(conn: &mut PoolConnection<Sqlite>, pages: u32) {
        sqlx::query(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $1)
             INSERT INTO pages SELECT randomblob(4000) FROM n",
        )
        .bind(pages)
        .execute(&mut **conn)
        .await
        .unwrap();
    }

    fn size(path: &std::path::Path) -> u64 {
        std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
    }

    /// Waits up to 10 s for the database file to reach `bytes`; `what`
    /// names the copy that should have made it so.
    async fn copied(path: &std::path::Path, bytes: u64, what: &str) {
        let grown = async {
            while size(path) < bytes {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(10), grown)
            .await
            .unwrap_or_else(|_| panic!("{what}: the file has {} bytes", size(path)));
    }

    #[tokio::test]
    async fn a_commit_leaves_the_copy_to_the_task() {
        let (_dir, path, pool) = database(1).await;
        let mut conn = pool.acquire().await.unwrap();
        write_pages(&mut conn, 1200).await;
        // SQLite's own rule would have copied the pages before the commit returned.
        assert!(
            size(&path) < 1_000_000,
            "the commit checkpointed itself: {} bytes",
            size(&path)
        );
        drop(conn);
        copied(
            &path,
            1200 * 4000,
            "the task copies the log into the database file",
        )
        .await;
    }

    #[tokio::test]
    async fn a_writer_that_never_pauses_still_bounds_the_log() {
        let (_dir, path, pool) = database(1).await;
        let wal = path.with_extension("db-wal");
        let mut conn = pool.acquire().await.unwrap();
        for _ in 0..60 {
            write_pages(&mut conn, 250).await;
        }
        // The log restarts after a checkpoint: its file never grows past
        // the bound and one commit (frames of a page and a 24-byte header).
        let most = (INLINE_PAGES as u64 + 300) * (4096 + 24);
        assert!(size(&wal) > 0, "no log at {}", wal.display());
        assert!(size(&wal) < most, "log of {} bytes", size(&wal));
        assert!(size(&path) > 8_000 * 4000, "the pages were copied");
    }

    /// Planning's case: the writer keeps its connection throughout, and the
    /// task copies the log on the other connection. The commits stay under
    /// [`INLINE_PAGES`] in all, so only the task can have copied anything.
    #[tokio::test]
    async fn the_task_copies_beside_a_writer_that_keeps_its_connection() {
        let (_dir, path, pool) = database(2).await;
        let mut writer = pool.acquire().await.unwrap();
        for _ in 0..32 {
            write_pages(&mut writer, 250).await;
        }
        copied(
            &path,
            7_000 * 4000,
            "the task copies the log while the writer holds its connection",
        )
        .await;
        drop(writer);
    }
}
