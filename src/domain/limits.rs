//! Sending limits from `[limits]`: the frequency cap, quiet hours and
//! durations such as `catch_up = "6h"`.

use std::time::Duration;

use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sha2::{Digest, Sha256};

/// Parses `30m`, `6h`, `2d`, `1w` (and anything humantime accepts).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim()).map_err(|e| {
        format!("`{raw}` is not a duration ({e}); write e.g. \"30m\", \"6h\" or \"2d\"")
    })
}

/// At most `max` marketing messages per customer within `window`, across campaigns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrequencyCap {
    pub max: u32,
    pub window: Duration,
}

impl FrequencyCap {
    /// `"2/7d"` → two per seven days; `""` → no cap.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let (count, window) = raw
            .split_once('/')
            .ok_or_else(|| format!("`{raw}` is not a frequency cap; write e.g. \"2/7d\" (two per seven days) or \"\" for none"))?;
        let max = count
            .trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("`{count}` in `{raw}` must be a positive whole number"))?;
        Ok(Some(FrequencyCap {
            max,
            window: parse_duration(window)?,
        }))
    }
}

/// A daily window in the customer's local time during which nothing is sent;
/// messages due inside it wait until it ends. May wrap midnight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    pub start: NaiveTime,
    pub end: NaiveTime,
}

impl QuietHours {
    /// `"20:00-08:00"` → 20:00 to 08:00; `""` → none.
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Ok(None);
        }
        let bad =
            || format!("`{raw}` is not a time window; write e.g. \"20:00-08:00\" or \"\" for none");
        let (start, end) = raw.split_once('-').ok_or_else(bad)?;
        let start = parse_clock(start).map_err(|_| bad())?;
        let end = parse_clock(end).map_err(|_| bad())?;
        if start == end {
            return Err(format!("`{raw}` starts and ends at the same time"));
        }
        Ok(Some(QuietHours { start, end }))
    }

    pub fn contains(&self, t: NaiveTime) -> bool {
        if self.start < self.end {
            t >= self.start && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// `now` if it is outside the window in `tz`, else the instant the window ends.
    pub fn release_at(&self, now: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let local = now.with_timezone(&tz);
        if !self.contains(local.time()) {
            return now;
        }
        let day = if local.time() < self.end {
            local.date_naive()
        } else {
            local.date_naive() + chrono::Days::new(1)
        };
        let end = day.and_time(self.end);
        // A DST gap can swallow the end time: then the first valid instant after it.
        tz.from_local_datetime(&end)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(end + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(now + chrono::Duration::hours(12))
    }
}

/// `"08:30"` → 08:30.
pub fn parse_clock(raw: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(raw.trim(), "%H:%M")
        .map_err(|_| format!("`{raw}` is not a time of day; write it as HH:MM, e.g. \"08:30\""))
}

pub fn sha256_hex(data: impl AsRef<[u8]>) -> String {
    let digest = Sha256::digest(data.as_ref());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_cap_parses_count_and_window() {
        let cap = FrequencyCap::parse("2/7d").unwrap().unwrap();
        assert_eq!(cap.max, 2);
        assert_eq!(cap.window, Duration::from_secs(7 * 86400));
        assert_eq!(FrequencyCap::parse("").unwrap(), None);
        assert!(FrequencyCap::parse("0/7d").is_err());
        assert!(FrequencyCap::parse("weekly").is_err());
    }

    #[test]
    fn quiet_hours_wrap_midnight() {
        let q = QuietHours::parse("20:00-08:00").unwrap().unwrap();
        let t = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
        assert!(q.contains(t(22, 0)));
        assert!(q.contains(t(7, 59)));
        assert!(!q.contains(t(8, 0)));
        assert!(!q.contains(t(12, 0)));
        assert!(QuietHours::parse("8-20").is_err());
    }

    #[test]
    fn quiet_hours_release_at_the_window_end_in_the_customer_zone() {
        let q = QuietHours::parse("20:00-08:00").unwrap().unwrap();
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let at = |h| {
            berlin
                .with_ymd_and_hms(2026, 11, 23, h, 0, 0)
                .unwrap()
                .with_timezone(&Utc)
        };
        assert_eq!(q.release_at(at(12), berlin), at(12));
        let next_morning = berlin
            .with_ymd_and_hms(2026, 11, 24, 8, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(q.release_at(at(21), berlin), next_morning);
        assert_eq!(q.release_at(at(6), berlin), at(8));
        let new_york: Tz = "America/New_York".parse().unwrap();
        // 12:00 in Berlin is 06:00 in New York: quiet there until 08:00 local.
        let ny_eight = new_york
            .with_ymd_and_hms(2026, 11, 23, 8, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(q.release_at(at(12), new_york), ny_eight);
    }
}
