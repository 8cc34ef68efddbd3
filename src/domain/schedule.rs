//! Crontab schedules evaluated in a real time zone.
//!
//! An expression names wall-clock times in the business's zone, so "09:00
//! Europe/Berlin" stays 09:00 across DST changes. croner matches the
//! expression against local wall-clock times only (evaluated in a zone
//! without transitions); turning a wall-clock time into an instant is done
//! here, because that is where the DST rule lives:
//! - a time that does not exist (the hour skipped in spring) runs at the
//!   first valid time after the gap, and several skipped times of one gap run
//!   once there (`*/30 2 * * *` runs once at 03:00 in Berlin that night);
//!   a schedule that runs in every hour of the day (`59 * * * *`) just goes
//!   on with the next hour, since the skipped hour is not one it picked out;
//! - a time that exists twice (the hour repeated in autumn) runs once, at its
//!   first occurrence.
//!
//! croner applied to zoned times directly got the spring night wrong: `59 1`
//! fired again at 03:00, `*/30 2` not at all, `15 1-3` dropped 02:15.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
    /// The hour field matches every hour: skipped times are dropped.
    every_hour: bool,
    expression: String,
}

impl Schedule {
    /// Standard 5 fields (`30 9 * * Mon`), or 6 with seconds first.
    pub fn parse(expression: &str, tz: Tz) -> Result<Self, String> {
        let fields = expression.split_whitespace().count();
        if !(5..=6).contains(&fields) {
            return Err(format!(
                "`{expression}` has {fields} fields; a crontab needs 5 (minute hour day month weekday, e.g. \"30 9 * * Mon\") or 6 with seconds first"
            ));
        }
        let cron = Cron::from_str(expression)
            .map_err(|e| format!("`{expression}` is not a valid crontab expression: {e}"))?;
        let every_hour = (0..24).all(|h| cron.pattern.hour_match(h).unwrap_or(false));
        Ok(Schedule {
            cron,
            tz,
            every_hour,
            expression: expression.to_string(),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wall = after.with_timezone(&self.tz).naive_local();
        // Wall-clock times whose instant is not after `after` are skipped:
        // the rest of a spring gap already run at its end, and the second
        // pass of an autumn hour. Both are bounded by a day's worth of
        // seconds; the limit only guards against a zone gone wrong.
        for _ in 0..200_000 {
            wall = self
                .cron
                .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
                .ok()?
                .naive_utc();
            if let Some(at) = self.instant(wall)
                && at > after
            {
                return Some(at);
            }
        }
        None
    }

    /// The instant a wall-clock time in the zone runs at: its first
    /// occurrence, or the first valid time after a gap it falls into
    /// (`None`: skipped, for a schedule that runs every hour).
    fn instant(&self, wall: NaiveDateTime) -> Option<DateTime<Utc>> {
        if let Some(t) = self.tz.from_local_datetime(&wall).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        if self.every_hour {
            return None;
        }
        // Inside a gap: gaps end on a whole minute in every zone in use, and
        // the longest (a skipped calendar day) is 24 hours.
        let minute = wall.with_second(0)?;
        (1..=48 * 60)
            .map(|m| minute + chrono::Duration::minutes(m))
            .find_map(|w| self.tz.from_local_datetime(&w).earliest())
            .map(|t| t.with_timezone(&Utc))
    }

    /// The occurrences after `after`, computed one at a time as asked for.
    pub fn occurrences(&self, after: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(after), |t| self.next_after(*t))
    }

    /// The next `n` occurrences after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, n: usize) -> Vec<DateTime<Utc>> {
        self.occurrences(after).take(n).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn berlin() -> Tz {
        "Europe/Berlin".parse().unwrap()
    }

    fn local(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        berlin()
            .with_ymd_and_hms(y, mo, d, h, mi, 0)
            .earliest()
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn nine_o_clock_stays_nine_o_clock_across_spring_forward() {
        let s = Schedule::parse("0 9 * * *", berlin()).unwrap();
        let times = s.upcoming(local(2026, 3, 28, 10, 0), 2);
        assert_eq!(times[0], local(2026, 3, 29, 9, 0));
        assert_eq!(times[0].format("%H").to_string(), "07"); // UTC+2 now
        assert_eq!(times[1], local(2026, 3, 30, 9, 0));
    }

    #[test]
    fn a_time_in_the_spring_gap_fires_once_that_day() {
        let s = Schedule::parse("30 2 * * *", berlin()).unwrap();
        let times = s.upcoming(local(2026, 3, 28, 12, 0), 2);
        let days: Vec<String> = times
            .iter()
            .map(|t| t.with_timezone(&berlin()).format("%d").to_string())
            .collect();
        assert_eq!(days, ["29", "30"]);
    }

    #[test]
    fn a_time_repeated_at_fall_back_fires_once() {
        let s = Schedule::parse("30 2 * * *", berlin()).unwrap();
        let times = s.upcoming(local(2026, 10, 24, 12, 0), 3);
        let days: Vec<String> = times
            .iter()
            .map(|t| t.with_timezone(&berlin()).format("%d %H:%M").to_string())
            .collect();
        assert_eq!(days, ["25 02:30", "26 02:30", "27 02:30"]);
    }

    /// Wall-clock times (zone-local "dd HH:MM") of the next `n` occurrences.
    fn walls(expr: &str, zone: &str, from: (i32, u32, u32), n: usize) -> Vec<String> {
        let tz: Tz = zone.parse().unwrap();
        let start = tz
            .with_ymd_and_hms(from.0, from.1, from.2, 12, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        Schedule::parse(expr, tz)
            .unwrap()
            .upcoming(start, n)
            .iter()
            .map(|t| t.with_timezone(&tz).format("%d %H:%M").to_string())
            .collect()
    }

    #[test]
    fn the_spring_night_runs_each_time_once_and_skipped_times_at_the_end_of_the_gap() {
        // Berlin, 2027-03-28: 02:00 becomes 03:00.
        let berlin = "Europe/Berlin";
        assert_eq!(
            walls("59 1 * * *", berlin, (2027, 3, 27), 2),
            ["28 01:59", "29 01:59"]
        );
        assert_eq!(
            walls("*/30 2 * * *", berlin, (2027, 3, 27), 3),
            ["28 03:00", "29 02:00", "29 02:30"]
        );
        assert_eq!(
            walls("15 1-3 * * *", berlin, (2027, 3, 27), 4),
            ["28 01:15", "28 03:00", "28 03:15", "29 01:15"]
        );
        assert_eq!(
            walls("0 2,3 * * *", berlin, (2027, 3, 27), 3),
            ["28 03:00", "29 02:00", "29 03:00"]
        );
        // Every hour: the skipped hour is simply not there.
        assert_eq!(
            walls("59 * * * *", berlin, (2027, 3, 27), 15)[12..],
            ["28 00:59", "28 01:59", "28 03:59"]
        );
        // New York, 2027-03-14, the same rule an ocean away.
        assert_eq!(
            walls("59 1 * * *", "America/New_York", (2027, 3, 13), 2),
            ["14 01:59", "15 01:59"]
        );
    }

    #[test]
    fn the_autumn_night_runs_a_repeated_time_once() {
        // Berlin, 2027-10-31: 03:00 becomes 02:00 again.
        assert_eq!(
            walls("*/30 2 * * *", "Europe/Berlin", (2027, 10, 30), 4),
            ["31 02:00", "31 02:30", "01 02:00", "01 02:30"]
        );
    }

    #[test]
    fn half_hour_shifts_and_midnight_transitions_follow_the_same_rule() {
        // Lord Howe Island, 2027-10-03: 02:00 becomes 02:30.
        assert_eq!(
            walls("10 2 * * *", "Australia/Lord_Howe", (2027, 10, 2), 2),
            ["03 02:30", "04 02:10"]
        );
        // Havana, 2027-03-14: midnight becomes 01:00, so the day has no 00:00.
        assert_eq!(
            walls("0 0 * * *", "America/Havana", (2027, 3, 12), 3),
            ["13 00:00", "14 01:00", "15 00:00"]
        );
        // Havana, 2027-11-07: 01:00 becomes 00:00 again; midnight runs once.
        assert_eq!(
            walls("30 0 * * *", "America/Havana", (2027, 11, 6), 2),
            ["07 00:30", "08 00:30"]
        );
    }

    #[test]
    fn six_fields_take_seconds_and_bad_expressions_are_explained() {
        assert!(Schedule::parse("0 30 9 * * Mon", berlin()).is_ok());
        let err = Schedule::parse("61 9 * * *", berlin()).unwrap_err();
        assert!(err.contains("not a valid crontab"), "{err}");
        let err = Schedule::parse("daily", berlin()).unwrap_err();
        assert!(err.contains("5 (minute hour"), "{err}");
    }
}
