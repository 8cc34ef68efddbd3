//! The send-rate window (`mail.rate_per_minute`), kept in the database.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;

use super::{Backend, Store, dispatch};

/// Key of the PostgreSQL advisory lock that serializes reservations.
const SEND_SLOTS_LOCK: i64 = 0x6f75_7472_6561_6368; // "outreach"

/// Slots lie at most a minute ahead of the clock that reserved them. One
/// more than this further ahead was reserved before the clock stepped back.
/// Less is left alone: daemons' clocks differ a little, and one a second
/// behind must not take another's slots for a step.
const CLOCK_STEP: chrono::Duration = chrono::Duration::minutes(5);

/// What [`Store::reserve_send_slots`] got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendSlots {
    /// Slots reserved, in order: send one message at each of these times.
    Reserved(Vec<DateTime<Utc>>),
    /// The next minute is full; nothing was reserved: ask again after this.
    Full(Duration),
}

impl Store {
    /// Reserves up to `want` send slots under a limit of `limit` sends in
    /// any 60 seconds. Slots are numbered in the order handed out; each lies
    /// a minute after the one `limit` places back (or now, if that one is
    /// over a minute old) — but never more than a minute ahead: reservation
    /// stops there, and with none reserved the answer is
    /// [`SendSlots::Full`]. So a slot much further ahead ([`CLOCK_STEP`])
    /// was written before the clock stepped back, and is dropped rather than
    /// holding every send back by the step.
    ///
    /// The slots live in the database, so every daemon on one database
    /// shares the limit and a restart does not open a fresh minute.
    /// Reservations are serialized (PostgreSQL: an advisory lock per
    /// transaction; SQLite: this daemon's writer lock, and one daemon per
    /// file); `clock` is read once they hold it, so waiting for the lock
    /// cannot age a slot early. Daemons
    /// sharing a database keep their clocks in step (NTP), as their
    /// schedules need anyway.
    pub async fn reserve_send_slots(
        &self,
        limit: u32,
        want: u32,
        clock: &(dyn Fn() -> DateTime<Utc> + Sync),
    ) -> Result<SendSlots> {
        let minute = chrono::Duration::seconds(60);
        let (limit, want) = (i64::from(limit.max(1)), i64::from(want.max(1)));
        let _writer = self.write_guard().await;
        let (now, slots, ahead) = dispatch!(self, pool => {
            let mut tx = pool.begin().await?;
            if matches!(self.backend, Backend::Postgres(_)) {
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(SEND_SLOTS_LOCK)
                    .execute(&mut *tx)
                    .await?;
            }
            let now = clock();
            let ahead = sqlx::query("DELETE FROM send_slots WHERE at > $1")
                .bind(now + minute + CLOCK_STEP)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("DELETE FROM send_slots WHERE at <= $1")
                .bind(now - minute)
                .execute(&mut *tx)
                .await?;
            let last: Option<(i64, DateTime<Utc>)> =
                sqlx::query_as("SELECT seq, at FROM send_slots ORDER BY seq DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (last_seq, last_at) = last.map_or((0, None), |(seq, at)| (seq, Some(at)));
            // The slots `limit` places back of those to hand out now.
            let back: HashMap<i64, DateTime<Utc>> =
                sqlx::query_as("SELECT seq, at FROM send_slots WHERE seq > $1 AND seq <= $2")
                    .bind(last_seq - limit)
                    .bind(last_seq - limit + want)
                    .fetch_all(&mut *tx)
                    .await?
                    .into_iter()
                    .collect();
            let mut slots: Vec<DateTime<Utc>> = Vec::new();
            let mut first_refused = None;
            for seq in last_seq + 1..=last_seq + want {
                let back_seq = seq - limit;
                let back_at = if back_seq > last_seq {
                    slots.get((back_seq - last_seq - 1) as usize).copied()
                } else {
                    back.get(&back_seq).copied()
                };
                // Never before the slot handed out last: the order stays the
                // order in time, which is what "places back" relies on.
                let slot = [Some(now), back_at.map(|b| b + minute), slots.last().copied().or(last_at)]
                    .into_iter()
                    .flatten()
                    .max()
                    .expect("now is there");
                if slot > now + minute {
                    first_refused = Some(slot);
                    break;
                }
                slots.push(slot);
            }
            if !slots.is_empty() {
                let values: Vec<String> = (0..slots.len())
                    .map(|i| format!("({})", self.placeholders(2 * i + 1, 2)))
                    .collect();
                let sql = format!("INSERT INTO send_slots (seq, at) VALUES {}", values.join(", "));
                let mut insert = sqlx::query(&sql);
                for (seq, at) in (last_seq + 1..).zip(&slots) {
                    insert = insert.bind(seq).bind(*at);
                }
                insert.execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok::<_, sqlx::Error>((now, (slots, first_refused), ahead))
        })
        .context("reserving send slots (mail.rate_per_minute)")?;
        if ahead > 0 {
            tracing::warn!(
                slots = ahead,
                "send slots lay minutes ahead: the clock stepped back; the rate window starts afresh"
            );
        }
        Ok(match slots {
            (slots, _) if !slots.is_empty() => SendSlots::Reserved(slots),
            (_, refused) => SendSlots::Full(
                (refused.unwrap_or(now + minute) - minute - now)
                    .to_std()
                    .unwrap_or_default(),
            ),
        })
    }
}
