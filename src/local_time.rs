//! Times and days as people read them on the command line, in status text
//! and in logs meant for them: in the business's (or a staff member's) time
//! zone, with the zone named. The database keeps UTC. Also spans of time
//! (`7 days`), as the same readers see them.

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;

use crate::app::App;

/// A span as people write it: whole days as `7 days` or `1 day`, whole
/// hours as `5 hours`, anything else in humantime's compact form (`1h 30m`).
pub fn spoken_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    let unit = |n: u64, one: &str, many: &str| format!("{n} {}", if n == 1 { one } else { many });
    match secs {
        0 => humantime::format_duration(d).to_string(),
        s if s % 86_400 == 0 && d.subsec_nanos() == 0 => unit(s / 86_400, "day", "days"),
        s if s % 3_600 == 0 && d.subsec_nanos() == 0 => unit(s / 3_600, "hour", "hours"),
        _ => humantime::format_duration(d).to_string(),
    }
}

/// `2026-12-03 10:00 Europe/Berlin`.
pub fn time_in(t: DateTime<Utc>, tz: Tz) -> String {
    format!(
        "{} {}",
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
        tz.name()
    )
}

/// `2026-12-03 10:00`, for tables whose heading names the zone.
pub fn bare_time_in(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// A time in the business's zone, the zone named.
pub fn business_time(app: &App, t: DateTime<Utc>) -> String {
    time_in(t, app.config.resolved.timezone)
}

/// The day in the business's zone.
pub fn business_day(app: &App, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&app.config.resolved.timezone).date_naive()
}

/// A day written the business's way (`07.01.2027` in German).
pub fn business_date(app: &App, day: NaiveDate) -> String {
    crate::message::render::local_date(day, &app.settings().business.locale)
}

/// The instant `day` begins in the business's zone (the first valid
/// instant, should a DST change swallow midnight).
pub fn start_of_business_day(app: &App, day: NaiveDate) -> DateTime<Utc> {
    let tz = app.config.resolved.timezone;
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    (0..=120)
        .find_map(|m| {
            tz.from_local_datetime(&(midnight + chrono::Duration::minutes(m)))
                .earliest()
        })
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| midnight.and_utc())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::spoken_duration;

    #[test]
    fn spans_read_as_people_write_them() {
        assert_eq!(spoken_duration(Duration::from_secs(7 * 86_400)), "7 days");
        assert_eq!(spoken_duration(Duration::from_secs(86_400)), "1 day");
        assert_eq!(spoken_duration(Duration::from_secs(48 * 3_600)), "2 days");
        assert_eq!(spoken_duration(Duration::from_secs(3_600)), "1 hour");
        assert_eq!(spoken_duration(Duration::from_secs(5_400)), "1h 30m");
    }
}
