//! The digest's calendar file, read back with a parser written here from
//! RFC 5545 (not the code that writes it): one event a call, on the day it
//! is to be made, with a UID that stays the same from one digest to the
//! next, and customer names that cannot break out of their property.

use crate::common;

use chrono::Utc;
use common::app::TestApp;
use common::mail::Mail;
use common::{Db, backend_test};
use outreach::schedule::start_now;

const CONFIG: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[staff]]
id = "tara"
name = "Tara"
email = "tara@cafe-test.example"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[checkin]]
id = "hallo"
audience = "true"
schedule = "0 3 1 1 *"
assign = "owner"
due_in = "0d"
reason = "Lange nichts gehört; einfach nachfragen, wie es geht."
template = "checkin"
"#;

/// Names with what TEXT values must escape, a line break that would start a
/// property of its own if written raw, and one long enough to fold.
const NAMES: [&str; 3] = [
    "Müller, Anna; \"Büro\" \\ Köln",
    "Anna\rBEGIN:VEVENT\rSUMMARY:gehackt",
    "Dr. Anna-Lena Müller-Lüdenscheidt-Ölberg ☕ vom Bäckerei-Café am Ring",
];

/// Content lines (RFC 5545 §3.1), unfolded: a line break followed by a space
/// or tab continues the line before it.
fn content_lines(ics: &str) -> Vec<(String, String)> {
    let unfolded = ics
        .replace("\r\n", "\n")
        .replace("\n ", "")
        .replace("\n\t", "");
    unfolded
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (name, value) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("not a content line: {l:?}"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// A TEXT value unescaped (RFC 5545 §3.3.11).
fn text(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n' | 'N') => out.push('\n'),
                Some(other) => out.push(other),
                None => panic!("a lone backslash ends {value:?}"),
            }
        } else {
            assert!(
                c != ';' && c != ',',
                "unescaped `{c}` in a TEXT value: {value:?}"
            );
            out.push(c);
        }
    }
    out
}

/// The events of a calendar: each one's properties by name.
fn events(lines: &[(String, String)]) -> Vec<Vec<(String, String)>> {
    let mut events = Vec::new();
    let mut current: Option<Vec<(String, String)>> = None;
    for (name, value) in lines {
        match (name.as_str(), value.as_str()) {
            ("BEGIN", "VEVENT") => {
                assert!(current.is_none(), "an event inside an event");
                current = Some(Vec::new());
            }
            ("END", "VEVENT") => events.push(current.take().expect("END without BEGIN")),
            _ => {
                if let Some(event) = &mut current {
                    event.push((name.clone(), value.clone()));
                }
            }
        }
    }
    events
}

fn one<'a>(event: &'a [(String, String)], name: &str) -> &'a str {
    let found: Vec<&str> = event
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(found.len(), 1, "{name} in {event:?}");
    found[0]
}

/// Sends Tara's digest now (again, if the tick sent one); returns the calendar
/// files of all her digests so far.
async fn digest_calendars(t: &TestApp) -> Vec<String> {
    let tara = t
        .app
        .settings()
        .staff
        .iter()
        .find(|s| s.id == "tara")
        .unwrap()
        .clone();
    assert_eq!(
        outreach::tasks::digest::send_now(&t.app, &tara, true, Utc::now())
            .await
            .unwrap(),
        outreach::tasks::digest::SentNow::Sent
    );
    t.outbox_mails()
        .iter()
        .map(|m| Mail::parse(m))
        .filter(|m| m.to == "tara@cafe-test.example")
        .map(|mail| {
            let (content_type, disposition, ics) = mail
                .parts
                .iter()
                .find(|p| p.0.starts_with("text/calendar"))
                .expect("a calendar file")
                .clone();
            assert!(content_type.contains("method=PUBLISH"), "{content_type}");
            assert!(disposition.contains("anrufe.ics"), "{disposition}");
            ics
        })
        .collect()
}

backend_test!(
    the_calendar_has_an_event_per_call_on_its_day_with_a_stable_uid_and_names_kept_in_their_place
);
async fn the_calendar_has_an_event_per_call_on_its_day_with_a_stable_uid_and_names_kept_in_their_place(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CONFIG).await;
    let mut csv = String::from("external_id,name,phone,phone_consent,owner\n");
    for (i, name) in NAMES.iter().enumerate() {
        csv.push_str(&format!(
            "K{i},\"{}\",+49 221 555 {i},yes,tara\n",
            name.replace('"', "\"\"")
        ));
    }
    t.import(&csv).await;
    // Today, before Tara's digest_at: the test sends the digests itself.
    let now = common::app::berlin_today(6, 0);
    start_now(&t.app, "hallo", now).await.unwrap();
    t.tick(now).await;
    let today = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();

    let ics = digest_calendars(&t).await.pop().unwrap();
    for physical in ics.lines() {
        assert!(
            physical.len() <= 75,
            "{} octets: {physical:?}",
            physical.len()
        );
    }
    let lines = content_lines(&ics);
    let calendar: Vec<&(String, String)> = lines
        .iter()
        .take_while(|(n, v)| !(n == "BEGIN" && v == "VEVENT"))
        .collect();
    for expected in [
        ("VERSION", "2.0"),
        ("METHOD", "PUBLISH"),
        ("BEGIN", "VCALENDAR"),
    ] {
        assert!(
            calendar
                .iter()
                .any(|(n, v)| (n.as_str(), v.as_str()) == expected),
            "{expected:?} in {ics}"
        );
    }
    assert!(!ics.contains("VTODO"), "{ics}");
    let vevents = events(&lines);
    assert_eq!(vevents.len(), NAMES.len(), "{url}: one event a call: {ics}");
    let day = today.format("%Y%m%d").to_string();
    let next = today.succ_opt().unwrap().format("%Y%m%d").to_string();
    let mut uids = Vec::new();
    for (event, name) in vevents.iter().zip(NAMES) {
        assert_eq!(one(event, "DTSTART;VALUE=DATE"), day, "{event:?}");
        assert_eq!(one(event, "DTEND;VALUE=DATE"), next, "{event:?}");
        assert_eq!(one(event, "TRANSP"), "TRANSPARENT");
        let summary = text(one(event, "SUMMARY"));
        let phone = format!("+49 221 555 {}", uids.len());
        // The import made the name one line (its line breaks became
        // spaces); commas, semicolons and backslashes are escaped.
        assert_eq!(summary, format!("☎ {}, {phone}", name.replace('\r', " ")));
        let description = text(one(event, "DESCRIPTION"));
        assert!(
            description.contains("Lange nichts gehört; einfach nachfragen, wie es geht."),
            "{description}"
        );
        assert!(one(event, "URL").starts_with("http://127.0.0.1:8080/t/"));
        assert!(one(event, "DTSTAMP").ends_with('Z'));
        uids.push(one(event, "UID").to_string());
    }
    assert!(
        uids.iter().all(|u| u.ends_with("@cafe-test.example")),
        "{uids:?}"
    );
    let mut unique = uids.clone();
    unique.dedup();
    assert_eq!(unique.len(), uids.len(), "{uids:?}");

    // The next digest describes the same calls: the same UIDs, so a
    // calendar updates its events instead of adding more.
    let both = digest_calendars(&t).await;
    assert_eq!(both.len(), 2, "{url}");
    for ics in both {
        let again: Vec<String> = events(&content_lines(&ics))
            .iter()
            .map(|e| one(e, "UID").to_string())
            .collect();
        assert_eq!(again, uids, "{url}");
    }
}
