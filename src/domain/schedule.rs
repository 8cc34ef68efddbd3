//! Crontab schedules evaluated in a real time zone.
//!
//! Occurrences are computed by croner against the zone's rules (not a fixed
//! UTC offset), so "09:00 Europe/Berlin" stays 09:00 across DST changes; a
//! time that does not exist on a spring-forward day runs at the next valid
//! time, and a time that exists twice on a fall-back day runs once.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    tz: Tz,
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
        Ok(Schedule {
            cron,
            tz,
            expression: expression.to_string(),
        })
    }

    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.tz), false)
            .ok()
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

    #[test]
    fn six_fields_take_seconds_and_bad_expressions_are_explained() {
        assert!(Schedule::parse("0 30 9 * * Mon", berlin()).is_ok());
        let err = Schedule::parse("61 9 * * *", berlin()).unwrap_err();
        assert!(err.contains("not a valid crontab"), "{err}");
        let err = Schedule::parse("daily", berlin()).unwrap_err();
        assert!(err.contains("5 (minute hour"), "{err}");
    }
}
