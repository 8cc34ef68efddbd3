//! Telling running daemons that a person changed something (a run started,
//! approved or stopped, a pause, an absence), so that it takes effect at
//! once instead of at the next tick.
//!
//! PostgreSQL: `NOTIFY` on one channel, which every daemon sharing the
//! database listens on (one extra session each). SQLite: a counter in `kv`
//! is bumped; the daemon watches `PRAGMA data_version` on a connection of its
//! own — a read of shared memory, no table is polled — and only when another
//! connection committed something reads the counter. The daemon's own
//! writes change `data_version` too (while sending, every commit), which is
//! why the counter decides.

use std::time::Duration;

use anyhow::{Context, Result};
use sqlx::Connection;
use tokio::sync::{Notify, watch};
use tracing::warn;

use super::{Backend, Store, dispatch};

/// The PostgreSQL notification channel.
const CHANNEL: &str = "outreach_changes";
/// The `kv` key of the SQLite change counter.
const COUNTER: &str = "changes";
/// How often SQLite's `data_version` is read.
const SQLITE_CHECK: Duration = Duration::from_millis(100);
/// Wait before connecting again after the watch lost its connection.
const RECONNECT: Duration = Duration::from_secs(1);

impl Store {
    /// Tells every daemon on this database that something changed.
    pub async fn announce_change(&self) -> Result<()> {
        dispatch!(self, pool => {
            match self.backend {
                Backend::Postgres(_) => sqlx::query("SELECT pg_notify($1, '')").bind(CHANNEL).execute(pool).await,
                Backend::Sqlite(_) => sqlx::query(
                    "INSERT INTO kv (key, value) VALUES ($1, '1')
                     ON CONFLICT (key) DO UPDATE SET value = CAST(CAST(kv.value AS INTEGER) + 1 AS TEXT)",
                )
                .bind(COUNTER)
                .execute(pool)
                .await,
            }
            .map(|_| ())
        })
        .context("telling the running daemon about the change")
    }

    /// Calls `wake.notify_one()` whenever a change was announced (and after
    /// the watch had to reconnect: it may have missed one), until `stop`.
    pub async fn watch_changes(&self, wake: &Notify, mut stop: watch::Receiver<bool>) {
        loop {
            let result = self.watch_once(wake, &mut stop).await;
            if *stop.borrow() {
                return;
            }
            if let Err(e) = result {
                warn!(error = %format!("{e:#}"), "watching for changes from the command line failed; retrying in 1 s (until then they take effect at the next tick)");
            }
            wake.notify_one();
            tokio::select! {
                _ = tokio::time::sleep(RECONNECT) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    }

    /// Watches on one connection until it fails or the daemon stops.
    async fn watch_once(&self, wake: &Notify, stop: &mut watch::Receiver<bool>) -> Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => {
                // A pool of its own: the listening session is held for good.
                let own = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(1)
                    .connect_with((*pool.connect_options()).clone())
                    .await
                    .context("connecting to listen for changes")?;
                let listen = async {
                    let mut listener = sqlx::postgres::PgListener::connect_with(&own).await?;
                    listener.listen(CHANNEL).await?;
                    // What was announced before we listened is looked at now.
                    wake.notify_one();
                    loop {
                        // `None`: the session was lost and made anew; a change may have been missed.
                        listener.try_recv().await?;
                        wake.notify_one();
                    }
                };
                let result: Result<()> = tokio::select! {
                    r = listen => r,
                    _ = stop.wait_for(|s| *s) => Ok(()),
                };
                // Ends the session properly (PostgreSQL logs one that just vanishes).
                own.close().await;
                result
            }
            Backend::Sqlite(pool) => {
                let mut conn =
                    sqlx::SqliteConnection::connect_with(&pool.connect_options()).await?;
                let poll = async {
                    let mut version: Option<i64> = None;
                    // `None` until first read, which wakes the daemon too: what was
                    // announced before the watch began is looked at then.
                    let mut counter: Option<Option<String>> = None;
                    loop {
                        let (now,): (i64,) = sqlx::query_as("PRAGMA data_version")
                            .fetch_one(&mut conn)
                            .await?;
                        if version != Some(now) {
                            version = Some(now);
                            let value: Option<(String,)> =
                                sqlx::query_as("SELECT value FROM kv WHERE key = $1")
                                    .bind(COUNTER)
                                    .fetch_optional(&mut conn)
                                    .await?;
                            let value = value.map(|v| v.0);
                            if counter.as_ref() != Some(&value) {
                                wake.notify_one();
                            }
                            counter = Some(value);
                        }
                        tokio::time::sleep(SQLITE_CHECK).await;
                    }
                };
                tokio::select! {
                    r = poll => r,
                    _ = stop.wait_for(|s| *s) => Ok(()),
                }
            }
        }
    }
}
