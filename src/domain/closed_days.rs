//! Days the business is closed (`business.closed`): no calls, digests or
//! callbacks are planned on them, and campaigns that ask for it hold their
//! email until the business is open again.
//!
//! Entries are single days (`"2026-12-24"`), days that repeat every year
//! (`"12-24"`), ranges (`"2026-12-24..2027-01-01"`, both ends included) and
//! `"holidays:de"`, the nine public holidays observed in every German state.
//! The moving ones are computed from Easter, so the list never goes stale and
//! nothing is looked up over the network.

use std::collections::BTreeSet;

use chrono::{Datelike, Days, NaiveDate};

/// The German public holidays common to all states.
pub const GERMAN_FEDERAL_HOLIDAYS: &str = "holidays:de";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedDays {
    dates: BTreeSet<NaiveDate>,
    ranges: Vec<(NaiveDate, NaiveDate)>,
    /// (month, day) closed every year.
    yearly: BTreeSet<(u32, u32)>,
    german_holidays: bool,
}

impl ClosedDays {
    /// Adds one `business.closed` entry; the error says how to write it.
    pub fn add(&mut self, raw: &str) -> Result<(), String> {
        let entry = raw.trim();
        if entry.eq_ignore_ascii_case(GERMAN_FEDERAL_HOLIDAYS) {
            self.german_holidays = true;
            return Ok(());
        }
        let date = |s: &str| NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok();
        if let Some((from, to)) = entry.split_once("..") {
            return match (date(from), date(to)) {
                (Some(from), Some(to)) if from <= to => {
                    self.ranges.push((from, to));
                    Ok(())
                }
                (Some(_), Some(_)) => Err(format!(
                    "\"{raw}\": the range ends before it starts; write the earlier day first"
                )),
                _ => Err(format!(
                    "\"{raw}\" is not a range of days; write e.g. \"2026-12-24..2027-01-01\""
                )),
            };
        }
        if let Some(day) = date(entry) {
            self.dates.insert(day);
            return Ok(());
        }
        // Checked against a leap year, so that "02-29" is accepted.
        if let Some(day) = date(&format!("2024-{entry}")).filter(|_| entry.len() == 5) {
            self.yearly.insert((day.month(), day.day()));
            return Ok(());
        }
        Err(format!(
            "\"{raw}\" is not a closing day; write a date (\"2026-12-24\"), a day every year \
             (\"12-24\"), a range (\"2026-12-24..2027-01-01\") or \"{GERMAN_FEDERAL_HOLIDAYS}\" \
             for the German public holidays"
        ))
    }

    pub fn is_closed(&self, day: NaiveDate) -> bool {
        self.dates.contains(&day)
            || self.yearly.contains(&(day.month(), day.day()))
            || self
                .ranges
                .iter()
                .any(|(from, to)| *from <= day && day <= *to)
            || (self.german_holidays && german_federal_holiday(day).is_some())
    }

    /// The first open day from `day` on (`day` itself if open).
    pub fn next_open(&self, day: NaiveDate) -> NaiveDate {
        // A closed stretch longer than a year is a typo, not a plan.
        (0..=366)
            .map(|i| day + Days::new(i))
            .find(|d| !self.is_closed(*d))
            .unwrap_or(day)
    }
}

/// The name of a German public holiday observed in all states, if `day` is one.
pub fn german_federal_holiday(day: NaiveDate) -> Option<&'static str> {
    let easter = easter_sunday(day.year())?;
    let after_easter = day.signed_duration_since(easter).num_days();
    let moving = match after_easter {
        -2 => Some("Karfreitag"),
        1 => Some("Ostermontag"),
        39 => Some("Christi Himmelfahrt"),
        50 => Some("Pfingstmontag"),
        _ => None,
    };
    moving.or(match (day.month(), day.day()) {
        (1, 1) => Some("Neujahr"),
        (5, 1) => Some("Tag der Arbeit"),
        (10, 3) => Some("Tag der Deutschen Einheit"),
        (12, 25) => Some("1. Weihnachtstag"),
        (12, 26) => Some("2. Weihnachtstag"),
        _ => None,
    })
}

/// Easter Sunday in the Gregorian calendar (the anonymous algorithm
/// published by Nature in 1876, also known as Meeus/Jones/Butcher).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn easter_falls_on_the_published_dates() {
        // Dates as printed in church calendars; 1818 and 2285 are the earliest
        // possible (22 March), 1943 and 2038 the latest (25 April).
        for (year, month, day) in [
            (1818, 3, 22),
            (1943, 4, 25),
            (2000, 4, 23),
            (2019, 4, 21),
            (2024, 3, 31),
            (2025, 4, 20),
            (2026, 4, 5),
            (2027, 3, 28),
            (2028, 4, 16),
            (2038, 4, 25),
            (2285, 3, 22),
        ] {
            assert_eq!(easter_sunday(year), Some(d(year, month, day)), "{year}");
        }
    }

    #[test]
    fn the_german_federal_holidays_of_2027_are_the_nine_in_the_official_list() {
        let holidays: Vec<(NaiveDate, &str)> = (0..365)
            .map(|i| d(2027, 1, 1) + Days::new(i))
            .filter_map(|day| german_federal_holiday(day).map(|name| (day, name)))
            .collect();
        assert_eq!(
            holidays,
            [
                (d(2027, 1, 1), "Neujahr"),
                (d(2027, 3, 26), "Karfreitag"),
                (d(2027, 3, 29), "Ostermontag"),
                (d(2027, 5, 1), "Tag der Arbeit"),
                (d(2027, 5, 6), "Christi Himmelfahrt"),
                (d(2027, 5, 17), "Pfingstmontag"),
                (d(2027, 10, 3), "Tag der Deutschen Einheit"),
                (d(2027, 12, 25), "1. Weihnachtstag"),
                (d(2027, 12, 26), "2. Weihnachtstag"),
            ]
        );
    }

    #[test]
    fn dates_yearly_days_ranges_and_holidays_close_the_business() {
        let mut closed = ClosedDays::default();
        for entry in [
            "2026-11-02",
            "12-24",
            "2027-02-08..2027-02-10",
            "holidays:de",
        ] {
            closed.add(entry).unwrap();
        }
        for open in [d(2026, 11, 3), d(2027, 2, 7), d(2027, 2, 11), d(2026, 4, 4)] {
            assert!(!closed.is_closed(open), "{open}");
        }
        for shut in [
            d(2026, 11, 2),
            d(2026, 12, 24),
            d(2031, 12, 24),
            d(2027, 2, 9),
            d(2026, 4, 3), // Karfreitag
            d(2026, 12, 25),
        ] {
            assert!(closed.is_closed(shut), "{shut}");
        }
        assert_eq!(closed.next_open(d(2026, 12, 24)), d(2026, 12, 27));
        assert_eq!(closed.next_open(d(2026, 12, 23)), d(2026, 12, 23));
        assert!(
            !ClosedDays::default().is_closed(d(2026, 12, 25)),
            "the holidays are opt-in"
        );
    }

    #[test]
    fn a_bad_entry_is_refused_with_the_ways_to_write_one() {
        let mut closed = ClosedDays::default();
        for bad in [
            "24.12.2026",
            "12-32",
            "2027-01-02..2026-12-24",
            "holidays:fr",
            "",
        ] {
            let err = closed.add(bad).unwrap_err();
            assert!(err.contains(&format!("\"{bad}\"")), "{err}");
        }
        assert!(
            closed.add("02-29").is_ok(),
            "a leap day repeats every four years"
        );
    }
}
