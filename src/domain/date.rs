//! Calendar days as people write them. One parser serves the customer import
//! and every date on the command line, so `--callback-on 10.12.2026` works
//! wherever a file with the same date would.

use chrono::{Month, NaiveDate};

/// The forms [`parse_date`] accepts, for error messages.
pub const DATE_FORMS: &str = "YYYY-MM-DD or DD.MM.YYYY (DD.MM.YY also works)";

/// `2026-12-10`, `10.12.2026`, `10.12.26` (also without leading zeros,
/// `1.3.2026`). A two-digit year is read as spreadsheets read it: 00–29 are
/// 2000–2029, 30–99 are 1930–1999.
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let text = raw.trim();
    let not_a_date = || format!("\"{text}\" is not a date; write {DATE_FORMS}");
    let numbers = |sep: char| -> Option<Vec<(u32, usize)>> {
        let parts: Vec<&str> = text.split(sep).collect();
        (parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.len() <= 4 && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| {
            parts
                .iter()
                .map(|p| (p.parse().expect("up to four ASCII digits"), p.len()))
                .collect()
        })
    };
    let (year, month, day) = if let Some(n) = numbers('-') {
        match n[..] {
            [(y, 4), (m, 1..=2), (d, 1..=2)] => (y as i32, m, d),
            _ => return Err(not_a_date()),
        }
    } else if let Some(n) = numbers('.') {
        match n[..] {
            [(d, 1..=2), (m, 1..=2), (y, 4)] => (y as i32, m, d),
            [(d, 1..=2), (m, 1..=2), (y, 2)] if y < 30 => (2000 + y as i32, m, d),
            [(d, 1..=2), (m, 1..=2), (y, 2)] => (1900 + y as i32, m, d),
            _ => return Err(not_a_date()),
        }
    } else {
        return Err(not_a_date());
    };
    NaiveDate::from_ymd_opt(year, month, day).ok_or_else(|| {
        let why = match u8::try_from(month)
            .ok()
            .and_then(|m| Month::try_from(m).ok())
        {
            Some(name) => format!("{} {year} has no day {day}", name.name()),
            None => format!("there is no month {month}"),
        };
        format!("\"{text}\" is not a date: {why}; write {DATE_FORMS}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn iso_and_german_forms_are_read() {
        assert_eq!(parse_date("2026-12-10"), Ok(day(2026, 12, 10)));
        assert_eq!(parse_date(" 10.12.2026 "), Ok(day(2026, 12, 10)));
        assert_eq!(parse_date("1.3.2026"), Ok(day(2026, 3, 1)));
        assert_eq!(parse_date("24.12.80"), Ok(day(1980, 12, 24)));
        assert_eq!(parse_date("01.03.24"), Ok(day(2024, 3, 1)));
        assert_eq!(parse_date("31.12.29"), Ok(day(2029, 12, 31)));
        assert_eq!(parse_date("01.01.30"), Ok(day(1930, 1, 1)));
    }

    #[test]
    fn an_impossible_day_says_what_is_wrong_with_it() {
        let err = parse_date("13.13.2020").unwrap_err();
        assert!(
            err.contains("is not a date: there is no month 13;"),
            "{err}"
        );
        let err = parse_date("31.02.1980").unwrap_err();
        assert!(
            err.contains("is not a date: February 1980 has no day 31;"),
            "{err}"
        );
    }

    #[test]
    fn every_error_names_the_accepted_forms() {
        for bad in [
            "10/12/2026",
            "2026-12",
            "12.2026",
            "10.12.226",
            "31.02.1980",
            "2026-13-01",
            "",
            "morgen",
            "+10.12.2026",
        ] {
            let err = parse_date(bad).unwrap_err();
            assert!(err.contains("YYYY-MM-DD or DD.MM.YYYY"), "{bad}: {err}");
            assert!(
                err.starts_with(&format!("\"{}\" is not a date", bad.trim())),
                "{err}"
            );
        }
    }
}
