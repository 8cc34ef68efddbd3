//! Prints a schedule's next occurrences, for comparing our DST rule with an
//! independent cron implementation (`tests/schedules/compare_croniter.py`).
//!
//! Reads lines `EXPRESSION<TAB>ZONE<TAB>FROM<TAB>COUNT` (FROM in RFC 3339) and
//! writes, per line, the occurrences in UTC (RFC 3339), tab-separated; a line
//! that cannot be read gets `error: …` in its place.

use std::io::{BufRead, Write};

use chrono::{DateTime, Utc};
use outreach::domain::Schedule;

fn occurrences(line: &str) -> Result<String, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    let [expr, zone, from, count] = fields[..] else {
        return Err(format!(
            "expected 4 tab-separated fields, got {}",
            fields.len()
        ));
    };
    let tz = zone.parse().map_err(|e| format!("zone {zone}: {e}"))?;
    let from: DateTime<Utc> = DateTime::parse_from_rfc3339(from)
        .map_err(|e| format!("from {from}: {e}"))?
        .with_timezone(&Utc);
    let count = count.parse().map_err(|e| format!("count {count}: {e}"))?;
    let times = Schedule::parse(expr, tz)?.upcoming(from, count);
    Ok(times
        .iter()
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .collect::<Vec<_>>()
        .join("\t"))
}

fn main() {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin is readable");
        let answer = occurrences(&line).unwrap_or_else(|e| format!("error: {e}"));
        writeln!(out, "{answer}").expect("stdout is writable");
    }
}
