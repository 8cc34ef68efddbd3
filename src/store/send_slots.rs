//! The send-rate window (`mail.rate_per_minute`), kept in the database.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::time::Duration;

use super::{Backend, Store, dispatch};

/// Key of the PostgreSQL advisory lock that serializes reservations.
const SEND_SLOTS_LOCK: i64 = 0x6f75_7472_6561_6368; // "outreach"

/// What [`Store::reserve_send_slot`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendSlot {
    /// A slot is reserved: send after this wait.
    Reserved(Duration),
    /// The next minute is full; nothing was reserved: ask again after this.
    Full(Duration),
}

impl Store {
    /// Reserves a send slot under a limit of `limit` sends in any 60
    /// seconds: now while fewer than `limit` slots fall in the last minute,
    /// else when the slot `limit` places back is a minute old — but never
    /// more than a minute ahead ([`SendSlot::Full`] instead), so no stored
    /// slot lies further ahead than that. One that does was written before
    /// the clock stepped back; it is dropped rather than holding every send
    /// back by the size of the step.
    ///
    /// The slots live in the database, so every daemon on one database
    /// shares the limit and a restart does not open a fresh minute.
    /// Reservations are serialized (PostgreSQL: an advisory lock per
    /// transaction; SQLite: its single writer); `clock` is read once they
    /// hold it, so waiting for the lock cannot age a slot early. Daemons
    /// sharing a database keep their clocks in step (NTP), as their
    /// schedules need anyway.
    pub async fn reserve_send_slot(
        &self,
        limit: u32,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<SendSlot> {
        let minute = chrono::Duration::seconds(60);
        let _writer = self.write_guard().await;
        let (now, slot, reserved, ahead) = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            if matches!(self.backend, Backend::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SEND_SLOTS_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let now = clock();
            sqlx::query("DELETE FROM send_slots WHERE at <= $1")
                .bind(now - minute)
                .execute(&mut *tx)
                .await?;
            let ahead = sqlx::query("DELETE FROM send_slots WHERE at > $1")
                .bind(now + minute)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let back: Option<(DateTime<Utc>,)> =
                sqlx::query_as("SELECT at FROM send_slots ORDER BY at DESC LIMIT 1 OFFSET $1")
                    .bind(i64::from(limit.max(1)) - 1)
                    .fetch_optional(&mut *tx)
                    .await?;
            let slot = back.map_or(now, |(at,)| (at + minute).max(now));
            let reserved = slot <= now + minute;
            if reserved {
                sqlx::query("INSERT INTO send_slots (at) VALUES ($1)")
                    .bind(slot)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((now, slot, reserved, ahead))
        })
        .context("reserving a send slot (mail.rate_per_minute)")?;
        if ahead > 0 {
            tracing::warn!(
                slots = ahead,
                "send slots lay over a minute ahead: the clock stepped back; the rate window starts afresh"
            );
        }
        Ok(if reserved {
            SendSlot::Reserved((slot - clock()).to_std().unwrap_or_default())
        } else {
            SendSlot::Full((slot - minute - now).to_std().unwrap_or_default())
        })
    }
}
