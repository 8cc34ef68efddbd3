//! The send-rate window (`mail.rate_per_minute`), kept in the database.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{Backend, Store, dispatch};

/// Key of the PostgreSQL advisory lock that serializes reservations.
const SEND_SLOTS_LOCK: i64 = 0x6f75_7472_6561_6368; // "outreach"

impl Store {
    /// Reserves the next send slot under a limit of `limit` sends in any
    /// 60 seconds and returns how long to wait before using it: zero while
    /// fewer than `limit` slots fall in the last minute, else until the slot
    /// `limit` places back is a minute old. The slots live in the database,
    /// so every daemon on one database shares the limit and a restart does
    /// not open a fresh minute. Reservations are serialized (PostgreSQL: an
    /// advisory lock per transaction; SQLite: its single writer), and `now`
    /// is the caller's clock: daemons that share a database keep theirs in
    /// step (NTP), as their schedules need anyway.
    pub async fn reserve_send_slot(&self, limit: u32, now: DateTime<Utc>) -> Result<Duration> {
        let minute = chrono::Duration::seconds(60);
        let _writer = self.write_guard().await;
        let slot = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            if matches!(self.backend, Backend::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SEND_SLOTS_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            sqlx::query("DELETE FROM send_slots WHERE at <= $1")
                .bind(now - minute)
                .execute(&mut *tx)
                .await?;
            let back: Option<(DateTime<Utc>,)> =
                sqlx::query_as("SELECT at FROM send_slots ORDER BY at DESC LIMIT 1 OFFSET $1")
                    .bind(i64::from(limit.max(1)) - 1)
                    .fetch_optional(&mut *tx)
                    .await?;
            let slot = back.map_or(now, |(at,)| (at + minute).max(now));
            sqlx::query("INSERT INTO send_slots (at) VALUES ($1)")
                .bind(slot)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(slot)
        })
        .context("reserving a send slot (mail.rate_per_minute)")?;
        Ok((slot - now).to_std().unwrap_or_default())
    }
}
