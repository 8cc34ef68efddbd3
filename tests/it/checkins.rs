//! Personal check-ins, the heart of the product: a check-in rule never emails
//! a customer, it creates call tasks for staff (owner first, least loaded
//! otherwise, within working days, capacity and absences); staff get one
//! digest per working day at their own `digest_at`; outcomes recorded on the
//! task page feed back into the customer; overdue calls escalate, untouched
//! ones expire. On SQLite and PostgreSQL, driven with explicit times.

use crate::common;

use axum::http::StatusCode;
use base64::Engine;
use chrono::{DateTime, Datelike, Duration, NaiveDate, Utc, Weekday};
use common::app::{TestApp, berlin, body_text, get, post};
use common::mail::Mail;
use common::{Db, backend_test};
use outreach::domain::Customer;
use outreach::schedule::start_now;
use outreach::store::Task;
use outreach::tasks::digest::{SentNow, send_now};
use outreach::tasks::record_outcome;
use outreach::tokens::Purpose;
use tower::ServiceExt;

/// A check-in rule whose schedule never fires during the tests (runs are
/// started by hand), with long escalation and expiry so they stay out of
/// the way unless a test shortens them.
const CHECKIN: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[checkin]]
id = "hallo"
audience = "true"
schedule = "0 3 1 1 *"
assign = "owner"
min_days_between_personal_contacts = 30
due_in = "0d"
escalate_after = "30d"
expire_after = "60d"
max_attempts = 3
reason = "Lange nichts gehört – einfach nachfragen, wie es geht."
template = "checkin"
outcome_tags = { reached = ["angerufen"], needs_help = ["needs-support"] }
"#;

/// A status update, so that customers have had an email before a call.
const NEWS: &str = r#"
[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"
"#;

const LENA_IN_NEW_YORK: &str = r#"
[[staff]]
id = "lena"
name = "Lena"
email = "lena@cafe-test.example"
timezone = "America/New_York"
locale = "en"
"#;

const CSV_HEADER: &str =
    "external_id,email,name,phone,consent,phone_consent,do_not_call,is_business,owner\n";

/// One customer who may be called: consent to email and phone.
fn callable(key: &str, name: &str, owner: &str) -> String {
    format!(
        "{key},{}@example.de,{name},+49 221 555 {},yes,yes,no,no,{owner}\n",
        key.to_lowercase(),
        100 + key.bytes().map(u32::from).sum::<u32>()
    )
}

fn day(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

// 2026-11-23 is a Monday.
const MON: u32 = 23;
const TUE: u32 = 24;
const WED: u32 = 25;
const THU: u32 = 26;
const FRI: u32 = 27;
const SAT: u32 = 28;

async fn run_checkin(t: &TestApp, now: DateTime<Utc>) -> i64 {
    let run = start_now(&t.app, "hallo", now).await.unwrap();
    t.tick(now).await;
    run
}

async fn customer(t: &TestApp, key: &str) -> Customer {
    t.app.store.find_customer(key).await.unwrap().unwrap()
}

/// All tasks of a customer, oldest first.
async fn tasks_of(t: &TestApp, key: &str) -> Vec<Task> {
    let c = customer(t, key).await;
    t.app.store.customer_tasks(c.id).await.unwrap()
}

/// The customer's only task.
async fn task_of(t: &TestApp, key: &str) -> Task {
    let tasks = tasks_of(t, key).await;
    assert_eq!(tasks.len(), 1, "{key}: {tasks:?}");
    tasks.into_iter().next().unwrap()
}

async fn task(t: &TestApp, id: i64) -> Task {
    t.app.store.task(id).await.unwrap().unwrap()
}

async fn skip_counts(t: &TestApp, run: i64) -> Vec<(String, i64)> {
    t.app.store.checkin_skip_counts(run).await.unwrap()
}

async fn call_outcomes(t: &TestApp, key: &str) -> Vec<String> {
    let c = customer(t, key).await;
    t.app
        .store
        .customer_events(c.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "call_outcome")
        .map(|e| e.detail)
        .collect()
}

// ---- reading the outbox ----

impl Mail {
    /// The first task link in the plain text.
    fn task_link(&self) -> String {
        let text = self.text();
        let start = text.find("/t/").expect("a task link");
        text[start..].split_whitespace().next().unwrap().to_string()
    }
}

fn mails(t: &TestApp) -> Vec<Mail> {
    t.outbox_mails().iter().map(|m| Mail::parse(m)).collect()
}

fn mails_to(t: &TestApp, address: &str) -> Vec<Mail> {
    mails(t).into_iter().filter(|m| m.to == address).collect()
}

fn digests_to(t: &TestApp, address: &str) -> Vec<Mail> {
    mails_to(t, address)
        .into_iter()
        .filter(|m| m.subject.starts_with("Ihre Anrufe") || m.subject.starts_with("Your calls"))
        .collect()
}

fn escalations(t: &TestApp) -> Vec<Mail> {
    mails(t)
        .into_iter()
        .filter(|m| m.subject.starts_with("Überfällige Anrufe"))
        .collect()
}

const MARIA: &str = "maria@cafe-test.example";
const JONAS: &str = "jonas@cafe-test.example";
const LENA: &str = "lena@cafe-test.example";

// ---- creating tasks ----

backend_test!(
    a_check_in_run_creates_call_tasks_never_emails_a_customer_and_records_who_was_left_out_and_why
);
async fn a_check_in_run_creates_call_tasks_never_emails_a_customer_and_records_who_was_left_out_and_why(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!(
        "{CSV_HEADER}\
         A,anna@example.de,Anna,+49 221 1,yes,yes,no,no,maria\n\
         B,ben@example.de,Ben,+49 221 2,yes,yes,yes,no,maria\n\
         C,clara@example.de,Clara,+49 221 3,yes,no,no,no,maria\n\
         D,dach@example.de,Dachdecker GmbH,+49 221 4,yes,no,no,yes,maria\n\
         E,emil@example.de,Emil,,yes,yes,no,no,maria\n\
         F,frida@example.de,Frida,+49 221 6,yes,yes,no,no,maria\n"
    ))
    .await;
    let monday = berlin(2026, 11, MON, 7, 0);
    let run = run_checkin(&t, monday).await;
    for (key, calls) in [("A", 1), ("B", 0), ("C", 0), ("D", 1), ("E", 0), ("F", 1)] {
        assert_eq!(tasks_of(&t, key).await.len(), calls, "{url}: {key}");
    }
    assert_eq!(
        task_of(&t, "D").await.kind,
        "call",
        "a business needs no phone consent"
    );
    assert_eq!(
        skip_counts(&t, run).await,
        [
            ("do not call".to_string(), 1),
            ("no phone consent (consumer)".to_string(), 1),
            ("no phone number".to_string(), 1),
        ],
        "{url}"
    );
    let runs = t.runs_of("hallo").await;
    assert_eq!(runs[0].state, "done");
    assert!(
        runs[0].detail.contains("3 on the call list, 3 left out"),
        "{}",
        runs[0].detail
    );

    // Frida was reached on Monday; the next run, a day later, leaves her
    // out, and Anna and the roofer still have their open calls.
    let frida = task_of(&t, "F").await;
    assert!(
        record_outcome(
            &t.app,
            frida.id,
            "reached",
            None,
            None,
            monday + Duration::hours(3)
        )
        .await
        .unwrap()
    );
    let tuesday = berlin(2026, 11, TUE, 7, 0);
    let second = run_checkin(&t, tuesday).await;
    assert_eq!(
        skip_counts(&t, second).await,
        [
            ("already has an open call task".to_string(), 2),
            ("do not call".to_string(), 1),
            ("no phone consent (consumer)".to_string(), 1),
            ("no phone number".to_string(), 1),
            ("personal contact within the last 30 days".to_string(), 1),
        ],
        "{url}"
    );
    assert_eq!(tasks_of(&t, "A").await.len(), 1, "no second open call");

    // Whatever the daemon does next, no customer is ever emailed.
    for hour in [8, 9, 12, 18] {
        t.tick(berlin(2026, 11, TUE, hour, 0)).await;
        t.deliver_all(berlin(2026, 11, TUE, hour, 0)).await;
    }
    let queue = t.app.store.queue_counts().await.unwrap();
    assert!(
        queue.iter().all(|(_, n)| *n == 0),
        "{url}: no customer message queued: {queue:?}"
    );
    for m in mails(&t) {
        assert!(
            m.to.ends_with("@cafe-test.example"),
            "{url}: only staff get mail, not {}",
            m.to
        );
    }
    assert!(
        !digests_to(&t, MARIA).is_empty(),
        "the calls reach staff instead"
    );
}

backend_test!(
    the_owner_gets_the_call_and_customers_without_an_owner_go_to_the_least_loaded_colleague
);
async fn the_owner_gets_the_call_and_customers_without_an_owner_go_to_the_least_loaded_colleague(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!(
        "{CSV_HEADER}{}{}{}{}{}{}",
        callable("M1", "Mia", "maria"),
        callable("M2", "Max", "maria"),
        callable("M3", "Mona", "maria"),
        callable("J1", "Jana", "jonas"),
        callable("N1", "Nina", ""),
        callable("N2", "Nils", ""),
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let mut staff = Vec::new();
    for key in ["M1", "M2", "M3", "J1", "N1", "N2"] {
        let task = task_of(&t, key).await;
        assert_eq!(task.due_on, day(2026, 11, MON), "{url}: {key}");
        staff.push(task.staff_id);
    }
    assert_eq!(
        staff,
        ["maria", "maria", "maria", "jonas", "jonas", "jonas"],
        "{url}: owners first; Maria has three calls, so the others go to Jonas"
    );
}

backend_test!(with_least_loaded_the_calls_are_shared_out_whoever_the_owner_is);
async fn with_least_loaded_the_calls_are_shared_out_whoever_the_owner_is(Db { url, .. }: Db) {
    let t = TestApp::new(
        &url,
        &CHECKIN.replace("assign = \"owner\"", "assign = \"least_loaded\""),
    )
    .await;
    t.import(&format!(
        "{CSV_HEADER}{}{}{}{}",
        callable("M1", "Mia", "maria"),
        callable("M2", "Max", "maria"),
        callable("M3", "Mona", "maria"),
        callable("M4", "Moritz", "maria"),
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let maria = t.app.store.tasks(Some("maria"), true).await.unwrap();
    let jonas = t.app.store.tasks(Some("jonas"), true).await.unwrap();
    assert_eq!((maria.len(), jonas.len()), (2, 2), "{url}");
}

backend_test!(calls_beyond_the_daily_capacity_wait_on_the_call_list_for_the_next_working_day);
/// Calls beyond the daily capacity wait on the call list, not as tasks
/// planned days ahead: each day's list is filled in the morning (and, once
/// its digest is out, the next working day's as calls are made), counting
/// the calls still open from earlier days.
async fn calls_beyond_the_daily_capacity_wait_on_the_call_list_for_the_next_working_day(
    Db { url, .. }: Db,
) {
    let extra = format!(
        "{CHECKIN}\n[[staff]]\nid = \"paula\"\nname = \"Paula\"\nemail = \"paula@cafe-test.example\"\ndaily_capacity = 2\n"
    );
    let t = TestApp::new(&url, &extra).await;
    t.import(&format!(
        "{CSV_HEADER}{}{}{}",
        callable("P1", "Pia", "paula"),
        callable("P2", "Paul", "paula"),
        callable("P3", "Petra", "paula"),
    ))
    .await;
    let thursday = berlin(2026, 11, THU, 7, 0);
    run_checkin(&t, thursday).await;
    // Later the same day, two more customers come in.
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("P4", "Peer", "paula"),
        callable("P5", "Pauline", "paula"),
    ))
    .await;
    run_checkin(&t, thursday + Duration::hours(2)).await;
    let planned = |keys: &'static [&'static str]| {
        let t = &t;
        async move {
            let mut out = Vec::new();
            for key in keys {
                out.push(
                    tasks_of(t, key)
                        .await
                        .first()
                        .map(|t| (t.staff_id.clone(), t.due_on)),
                );
            }
            out
        }
    };
    let paula = |d: u32| Some(("paula".to_string(), day(2026, 11, d)));
    assert_eq!(
        planned(&["P1", "P2", "P3", "P4", "P5"]).await,
        [paula(THU), paula(THU), None, None, None],
        "{url}: two for Thursday, the rest wait"
    );
    let waiting = t.app.store.call_list(true).await.unwrap();
    assert_eq!(waiting.len(), 3, "{url}: {waiting:?}");

    // Paula makes one call on Thursday: her Friday list gets one.
    let p1 = task_of(&t, "P1").await;
    record_outcome(
        &t.app,
        p1.id,
        "reached",
        None,
        None,
        berlin(2026, 11, THU, 11, 0),
    )
    .await
    .unwrap();
    t.tick(berlin(2026, 11, THU, 11, 5)).await;
    assert_eq!(
        planned(&["P3", "P4", "P5"]).await,
        [paula(FRI), None, None],
        "{url}: Pia's place goes to Petra on Friday; Paul is still on Friday's list"
    );
    // Friday: the digest brings Paul and Petra, and both are called.
    t.tick(berlin(2026, 11, FRI, 8, 30)).await;
    for key in ["P2", "P3"] {
        let call = task_of(&t, key).await;
        record_outcome(
            &t.app,
            call.id,
            "reached",
            None,
            None,
            berlin(2026, 11, FRI, 10, 0),
        )
        .await
        .unwrap();
    }
    t.tick(berlin(2026, 11, FRI, 10, 5)).await;
    assert_eq!(
        planned(&["P4", "P5"]).await,
        [paula(30), paula(30)], // not on the weekend: Monday
        "{url}"
    );
    assert!(t.app.store.call_list(true).await.unwrap().is_empty());
}

backend_test!(a_staff_member_who_does_not_work_mondays_gets_no_monday_calls_and_no_monday_digest);
async fn a_staff_member_who_does_not_work_mondays_gets_no_monday_calls_and_no_monday_digest(
    Db { url, .. }: Db,
) {
    let extra = format!(
        "{CHECKIN}\n[[staff]]\nid = \"tom\"\nname = \"Tom\"\nemail = \"tom@cafe-test.example\"\ndays = [\"tue\", \"wed\", \"thu\", \"fri\"]\n"
    );
    let t = TestApp::new(&url, &extra).await;
    t.import(&format!("{CSV_HEADER}{}", callable("T1", "Tilda", "tom")))
        .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let task = task_of(&t, "T1").await;
    assert_eq!(
        (task.staff_id.as_str(), task.due_on),
        ("tom", day(2026, 11, TUE)),
        "{url}"
    );
    t.tick(berlin(2026, 11, MON, 12, 0)).await;
    assert!(
        digests_to(&t, "tom@cafe-test.example").is_empty(),
        "{url}: not on his day off"
    );
    t.tick(berlin(2026, 11, TUE, 8, 30)).await;
    assert_eq!(digests_to(&t, "tom@cafe-test.example").len(), 1, "{url}");
}

backend_test!(
    absent_staff_get_no_new_calls_and_their_open_calls_move_to_the_least_loaded_colleague
);
async fn absent_staff_get_no_new_calls_and_their_open_calls_move_to_the_least_loaded_colleague(
    Db { url, .. }: Db,
) {
    let extra = format!(
        "{CHECKIN}\n[[staff]]\nid = \"paula\"\nname = \"Paula\"\nemail = \"paula@cafe-test.example\"\nabsences = [{{ from = 2026-11-24, to = 2026-11-27 }}]\n"
    );
    let t = TestApp::new(&url, &extra).await;
    t.import(&format!(
        "{CSV_HEADER}{}{}{}",
        callable("M1", "Mia", "maria"),
        callable("P1", "Pia", "paula"),
        callable("P2", "Paul", "paula"),
    ))
    .await;
    // Monday: Paula is still here and gets her customers.
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    assert_eq!(task_of(&t, "P1").await.staff_id, "paula", "{url}");
    assert_eq!(task_of(&t, "P2").await.staff_id, "paula");
    t.tick(berlin(2026, 11, MON, 20, 0)).await;
    assert_eq!(task_of(&t, "P1").await.staff_id, "paula", "not absent yet");
    assert_eq!(
        digests_to(&t, "paula@cafe-test.example").len(),
        1,
        "{url}: Monday's digest"
    );

    // Tuesday she is away: the first tick moves her open calls to Jonas,
    // who has less to do than Maria, due that day.
    t.tick(berlin(2026, 11, TUE, 6, 0)).await;
    for key in ["P1", "P2"] {
        let task = task_of(&t, key).await;
        assert_eq!(
            (task.staff_id.as_str(), task.due_on, task.state.as_str()),
            ("jonas", day(2026, 11, TUE), "open"),
            "{url}: {key}"
        );
    }
    assert!(
        t.app
            .store
            .tasks(Some("paula"), true)
            .await
            .unwrap()
            .is_empty()
    );

    // New customers of hers meanwhile go to a colleague who is here.
    t.import(&format!("{CSV_HEADER}{}", callable("P3", "Petra", "paula")))
        .await;
    run_checkin(&t, berlin(2026, 11, WED, 7, 0)).await;
    let p3 = task_of(&t, "P3").await;
    assert_ne!(p3.staff_id, "paula", "{url}");
    assert_eq!(p3.due_on, day(2026, 11, WED));
    // And she gets no digest while away.
    t.tick(berlin(2026, 11, WED, 9, 0)).await;
    assert_eq!(digests_to(&t, "paula@cafe-test.example").len(), 1);
    let jonas = digests_to(&t, JONAS);
    assert_eq!(jonas.len(), 1, "{url}");
    assert!(jonas[0].text().contains("Pia"), "her calls reach Jonas");
}

// ---- the digest ----

backend_test!(
    each_staff_member_gets_one_digest_per_working_day_at_digest_at_in_their_own_time_zone
);
async fn each_staff_member_gets_one_digest_per_working_day_at_digest_at_in_their_own_time_zone(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, &format!("{CHECKIN}{NEWS}{LENA_IN_NEW_YORK}")).await;
    t.import(&format!(
        "{CSV_HEADER}X,xaver@example.de,Xaver Überall,+49 221 987 65,yes,yes,no,no,maria\n"
    ))
    .await;
    // The week before: Xaver got the newsletter, and a call on Thursday
    // that nobody made.
    let thursday = berlin(2026, 11, 19, 7, 0);
    start_now(&t.app, "news", thursday).await.unwrap();
    t.tick(thursday).await;
    t.deliver_all(thursday).await;
    run_checkin(&t, thursday + Duration::minutes(5)).await;
    assert_eq!(task_of(&t, "X").await.due_on, day(2026, 11, 19));

    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("Y", "Yvonne", "maria"),
        callable("Z", "Zoe", "lena"),
    ))
    .await;
    let monday = berlin(2026, 11, MON, 7, 0);
    run_checkin(&t, monday).await;
    assert_eq!(task_of(&t, "Z").await.due_on, day(2026, 11, MON));

    t.tick(berlin(2026, 11, MON, 8, 29)).await;
    assert!(digests_to(&t, MARIA).is_empty(), "{url}: not before 08:30");
    t.tick(berlin(2026, 11, MON, 8, 30)).await;
    let maria = digests_to(&t, MARIA);
    assert_eq!(maria.len(), 1, "{url}");
    assert!(digests_to(&t, LENA).is_empty(), "02:30 in New York");
    assert!(digests_to(&t, JONAS).is_empty(), "Jonas has no calls");

    let m = &maria[0];
    assert_eq!(m.subject, "Ihre Anrufe für heute (2)");
    let text = m.text();
    let (x, y) = (
        text.find("Xaver Überall").unwrap(),
        text.find("Yvonne").unwrap(),
    );
    assert!(x < y, "overdue first: {text}");
    assert!(text.contains("überfällig seit 19.11.2026"), "{text}");
    assert!(text.contains("fällig am 23.11.2026"), "{text}");
    assert_eq!(
        text.matches("Lange nichts gehört – einfach nachfragen, wie es geht.")
            .count(),
        1,
        "the reason heads its calls: {text}"
    );
    assert_eq!(
        text.matches("„Wie geht es Ihnen gerade?“").count(),
        1,
        "the German talking points, once for both calls: {text}"
    );
    assert!(
        text.contains("Letzte Kontakte: 19.11.2026 E-Mail „news“"),
        "the newsletter shows as a last contact, in German: {text}"
    );
    assert!(text.contains("Letzte Kontakte: noch keine"), "{text}");
    assert_eq!(
        text.matches("http://127.0.0.1:8080/t/").count(),
        2,
        "one task link per call: {text}"
    );
    let html = m.html();
    assert!(html.contains("href=\"tel:+4922198765\""), "{html}");
    assert!(
        html.contains("<a href=\"http://127.0.0.1:8080/t/"),
        "{html}"
    );
    let (ics_type, disposition, ics) = m
        .parts
        .iter()
        .find(|p| p.0.starts_with("text/calendar"))
        .expect("an .ics attachment");
    assert!(ics_type.starts_with("text/calendar"));
    assert!(disposition.contains(".ics"), "{disposition}");
    assert!(ics_type.contains("method=PUBLISH"), "{ics_type}");
    assert!(ics.contains("\nMETHOD:PUBLISH\n"), "{ics}");
    assert_eq!(ics.matches("BEGIN:VEVENT").count(), 2, "{ics}");
    assert!(!ics.contains("VTODO"), "{ics}");
    // Both are calls to make today, the overdue one too.
    assert_eq!(
        ics.matches("DTSTART;VALUE=DATE:20261123\n").count(),
        2,
        "{ics}"
    );
    assert!(ics.contains("Xaver Überall"), "{ics}");
    for line in ics.lines() {
        assert!(
            line.len() <= 75,
            "iCalendar lines are folded at 75 octets: {line:?}"
        );
    }
    let unfolded = ics.replace("\n ", "").replace("\r", "");
    assert!(
        unfolded.contains(&format!("URL:http://127.0.0.1:8080{}", m.task_link())),
        "{unfolded}"
    );

    // New York: 08:30 there is 14:30 in Berlin.
    t.tick(berlin(2026, 11, MON, 14, 29)).await;
    assert!(digests_to(&t, LENA).is_empty(), "{url}: 08:29 in New York");
    t.tick(berlin(2026, 11, MON, 14, 30)).await;
    let lena = digests_to(&t, LENA);
    assert_eq!(lena.len(), 1, "{url}");
    let text = lena[0].text();
    assert_eq!(lena[0].subject, "Your calls for today (1)");
    assert!(text.contains("Zoe"), "{text}");
    assert!(
        text.contains("\"How are you doing at the moment?\""),
        "English talking points for an English-speaking colleague: {text}"
    );
    assert!(text.contains("Last contacts: none yet"), "{text}");

    // Later the same day: nothing more.
    for (h, mi) in [(14, 31), (18, 0), (23, 59)] {
        t.tick(berlin(2026, 11, MON, h, mi)).await;
    }
    assert_eq!(digests_to(&t, MARIA).len(), 1, "{url}: once a day");
    assert_eq!(digests_to(&t, LENA).len(), 1);

    // The next working day brings the next digest; the weekend none.
    t.tick(berlin(2026, 11, TUE, 9, 0)).await;
    t.tick(berlin(2026, 11, TUE, 15, 0)).await;
    assert_eq!(digests_to(&t, MARIA).len(), 2, "{url}");
    assert_eq!(digests_to(&t, LENA).len(), 2, "{url}");
    t.tick(berlin(2026, 11, SAT, 9, 0)).await;
    t.tick(berlin(2026, 11, SAT, 16, 0)).await;
    assert_eq!(
        digests_to(&t, MARIA).len(),
        2,
        "{url}: no digest on Saturday"
    );
    assert_eq!(digests_to(&t, LENA).len(), 2, "Lena: Tuesday, not Saturday");
}

// ---- outcomes ----

/// One customer per key, owned by `owner`, each with an open call task from
/// a run on Monday 07:00.
async fn with_calls(url: &str, extra: &str, owner: &str, keys: &[&str]) -> TestApp {
    let t = TestApp::new(url, &format!("{CHECKIN}{extra}")).await;
    let mut csv = CSV_HEADER.to_string();
    for key in keys {
        csv.push_str(&callable(key, &format!("Kunde {key}"), owner));
    }
    t.import(&csv).await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    t
}

backend_test!(
    reached_sets_the_last_personal_contact_closes_the_task_and_adds_the_outcome_tags_once
);
async fn reached_sets_the_last_personal_contact_closes_the_task_and_adds_the_outcome_tags_once(
    Db { url, .. }: Db,
) {
    let t = with_calls(&url, "", "maria", &["A"]).await;
    let call = task_of(&t, "A").await;
    assert!(customer(&t, "A").await.last_personal_contact_at.is_none());
    let at = berlin(2026, 11, MON, 10, 15);
    assert!(
        record_outcome(
            &t.app,
            call.id,
            "reached",
            Some("Geht gut, Tochter hilft"),
            None,
            at
        )
        .await
        .unwrap(),
        "{url}"
    );
    let done = task(&t, call.id).await;
    assert_eq!(done.state, "done");
    assert_eq!(done.outcome.map(|o| o.as_str()), Some("reached"));
    assert_eq!(done.note.as_deref(), Some("Geht gut, Tochter hilft"));
    let anna = customer(&t, "A").await;
    assert_eq!(anna.last_personal_contact_at, Some(at));
    assert_eq!(anna.tags.0, ["angerufen"]);

    // A second submit (another tab, a double click) records nothing.
    assert!(
        !record_outcome(
            &t.app,
            call.id,
            "needs_help",
            None,
            None,
            at + Duration::minutes(1)
        )
        .await
        .unwrap()
    );
    assert_eq!(call_outcomes(&t, "A").await.len(), 1, "{url}");
    assert_eq!(customer(&t, "A").await.tags.0, ["angerufen"]);
    assert_eq!(tasks_of(&t, "A").await.len(), 1, "no follow-up created");
    assert_eq!(
        task(&t, call.id).await.outcome.map(|o| o.as_str()),
        Some("reached")
    );
}

backend_test!(not_reached_is_retried_the_next_working_day_until_max_attempts_closes_the_task);
async fn not_reached_is_retried_the_next_working_day_until_max_attempts_closes_the_task(
    Db { url, .. }: Db,
) {
    let t = with_calls(&url, "", "maria", &["A"]).await;
    let id = task_of(&t, "A").await.id;
    let tries = [
        (berlin(2026, 11, FRI, 11, 0), "open", 1, day(2026, 11, 30)), // Friday → Monday
        (berlin(2026, 11, 30, 11, 0), "open", 2, day(2026, 12, 1)),
        (berlin(2026, 12, 1, 11, 0), "done", 3, day(2026, 12, 1)), // third try: closed
    ];
    for (at, state, attempts, due) in tries {
        assert!(
            record_outcome(&t.app, id, "not_reached", None, None, at)
                .await
                .unwrap(),
            "{url}: {at}"
        );
        let call = task(&t, id).await;
        assert_eq!(
            (call.state.as_str(), call.attempts, call.due_on),
            (state, attempts, due),
            "{url}: after the try at {at}"
        );
        assert_eq!(call.outcome.map(|o| o.as_str()), Some("not_reached"));
    }
    assert!(
        !record_outcome(
            &t.app,
            id,
            "not_reached",
            None,
            None,
            berlin(2026, 12, 2, 9, 0)
        )
        .await
        .unwrap(),
        "closed after max_attempts"
    );
    assert!(
        customer(&t, "A").await.last_personal_contact_at.is_none(),
        "nobody was reached"
    );
    assert_eq!(call_outcomes(&t, "A").await.len(), 3);
}

backend_test!(callback_closes_the_task_and_creates_a_call_task_for_the_agreed_day);
async fn callback_closes_the_task_and_creates_a_call_task_for_the_agreed_day(Db { url, .. }: Db) {
    let t = with_calls(&url, "", "jonas", &["A"]).await;
    let call = task_of(&t, "A").await;
    let at = berlin(2026, 11, MON, 10, 0);
    let err = record_outcome(&t.app, call.id, "callback", None, None, at)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a date"), "{err}");
    let err = record_outcome(
        &t.app,
        call.id,
        "callback",
        None,
        Some(day(2026, 11, 20)),
        at,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("in the past"), "{err}");
    assert_eq!(
        task(&t, call.id).await.state,
        "open",
        "{url}: nothing recorded"
    );

    assert!(
        record_outcome(
            &t.app,
            call.id,
            "callback",
            Some("lieber Donnerstag"),
            Some(day(2026, 11, THU)),
            at
        )
        .await
        .unwrap()
    );
    let tasks = tasks_of(&t, "A").await;
    assert_eq!(tasks.len(), 2, "{url}: {tasks:?}");
    assert_eq!(
        (
            tasks[0].state.as_str(),
            tasks[0].outcome.map(|o| o.as_str())
        ),
        ("done", Some("callback"))
    );
    let again = &tasks[1];
    assert_eq!(
        (
            again.kind.as_str(),
            again.state.as_str(),
            again.staff_id.as_str(),
            again.due_on,
            again.parent_id
        ),
        (
            "callback",
            "open",
            "jonas",
            day(2026, 11, THU),
            Some(call.id)
        ),
        "{url}: marked as an agreed callback"
    );
    assert_eq!(
        (again.agreed_on, again.owner_id.as_str()),
        (Some(day(2026, 11, THU)), "jonas"),
        "{url}: it keeps its day and its owner"
    );
    // The note stays on the call it was written for (and in its history
    // entry, which the callback's page lists); a reason is shown wherever
    // the task is, so it carries none.
    assert_eq!(again.reason, "callback agreed", "{url}");
    assert_eq!(tasks[0].note.as_deref(), Some("lieber Donnerstag"), "{url}");
    // The callback is a call like any other: it shows in Thursday's digest.
    t.tick(berlin(2026, 11, WED, 9, 0)).await;
    assert!(
        digests_to(&t, JONAS).is_empty(),
        "{url}: not due on Wednesday"
    );
    t.tick(berlin(2026, 11, THU, 9, 0)).await;
    assert_eq!(digests_to(&t, JONAS).len(), 1, "{url}");
}

backend_test!(
    needs_help_hands_a_follow_up_to_the_manager_and_tags_the_customer_for_the_support_voucher
);
async fn needs_help_hands_a_follow_up_to_the_manager_and_tags_the_customer_for_the_support_voucher(
    Db { url, .. }: Db,
) {
    let voucher = r#"
[[voucher_pool]]
id = "hilfe"
value = "10 € für Ihren nächsten Besuch"
pattern = "HILFE-XXXX-XXXX"

[[campaign]]
id = "unterstuetzung"
kind = "voucher"
schedule = "0 3 1 1 *"
audience = '"needs-support" in tags'
template = "voucher"
voucher_pool = "hilfe"
"#;
    let t = with_calls(&url, voucher, "jonas", &["A", "B"]).await;
    let call = task_of(&t, "A").await;
    let at = berlin(2026, 11, MON, 10, 0);
    assert!(
        record_outcome(
            &t.app,
            call.id,
            "needs_help",
            Some("Laden zu, Mann krank"),
            None,
            at
        )
        .await
        .unwrap()
    );
    let tasks = tasks_of(&t, "A").await;
    assert_eq!(tasks.len(), 2, "{url}");
    assert_eq!(tasks[0].state, "done");
    let follow_up = &tasks[1];
    assert_eq!(
        (
            follow_up.kind.as_str(),
            follow_up.staff_id.as_str(),
            follow_up.state.as_str(),
            follow_up.due_on,
            follow_up.parent_id
        ),
        (
            "follow_up",
            "maria",
            "open",
            day(2026, 11, TUE),
            Some(call.id)
        ),
        "{url}: Jonas's manager follows up"
    );
    assert_eq!(follow_up.reason, "needs help (call by jonas)", "{url}");
    assert_eq!(tasks[0].note.as_deref(), Some("Laden zu, Mann krank"));
    let anna = customer(&t, "A").await;
    assert!(anna.tags.0.contains(&"needs-support".to_string()), "{url}");
    assert!(anna.last_personal_contact_at.is_some());

    // The support voucher goes to exactly the customers who need it.
    let now = berlin(2026, 11, MON, 12, 0);
    let run = start_now(&t.app, "unterstuetzung", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    assert_eq!(t.count(run, "sent").await, 1, "{url}");
    let to_anna = mails_to(&t, "a@example.de");
    assert_eq!(to_anna.len(), 1);
    assert!(
        to_anna[0].text().contains("HILFE-"),
        "{}",
        to_anna[0].text()
    );
    assert!(mails_to(&t, "b@example.de").is_empty(), "{url}");
}

backend_test!(do_not_call_is_remembered_and_a_later_run_leaves_the_customer_out);
async fn do_not_call_is_remembered_and_a_later_run_leaves_the_customer_out(Db { url, .. }: Db) {
    let extra_rule = CHECKIN
        .replace("[limits]\nfrequency_cap = \"\"\nquiet_hours = \"\"\n", "")
        .replace("id = \"hallo\"", "id = \"oft\"")
        .replace(
            "min_days_between_personal_contacts = 30",
            "min_days_between_personal_contacts = 0",
        );
    let t = with_calls(&url, &extra_rule, "maria", &["A"]).await;
    let call = task_of(&t, "A").await;
    assert!(
        record_outcome(
            &t.app,
            call.id,
            "do_not_call",
            Some("möchte keine Anrufe"),
            None,
            berlin(2026, 11, MON, 10, 0)
        )
        .await
        .unwrap()
    );
    assert!(customer(&t, "A").await.do_not_call, "{url}");
    assert_eq!(task(&t, call.id).await.state, "done");
    // It is an objection: the next import of the list (do_not_call: no) keeps it.
    let report = t
        .import(&format!(
            "{CSV_HEADER}{}",
            callable("A", "Kunde A", "maria")
        ))
        .await;
    assert_eq!(report.kept.len(), 1, "{url}: {:?}", report.kept);
    let a = customer(&t, "A").await;
    assert!(a.do_not_call, "{url}: the import undid the objection");
    let objection = &t.app.store.customer_objections(a.id).await.unwrap()[0];
    assert_eq!(
        (
            objection.recorded_by.as_str(),
            objection.source.as_str(),
            objection.note.as_deref()
        ),
        (
            "maria",
            format!("call outcome (task {})", call.id).as_str(),
            Some("möchte keine Anrufe")
        )
    );
    // Even a rule that would call again at once leaves them out.
    let later = berlin(2026, 11, TUE, 7, 0);
    let run = start_now(&t.app, "oft", later).await.unwrap();
    t.tick(later).await;
    assert_eq!(
        skip_counts(&t, run).await,
        [("do not call".to_string(), 1)],
        "{url}"
    );
    assert_eq!(tasks_of(&t, "A").await.len(), 1);
}

// ---- the task page ----

backend_test!(
    the_task_page_from_the_digest_shows_the_call_on_get_and_records_the_outcome_once_on_post
);
async fn the_task_page_from_the_digest_shows_the_call_on_get_and_records_the_outcome_once_on_post(
    Db { url, .. }: Db,
) {
    // Real time here: the page checks its link against the clock.
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!(
        "{CSV_HEADER}A,anna@example.de,Anna Äpfel,+49 221 123 45,yes,yes,no,no,maria\n"
    ))
    .await;
    let now = Utc::now();
    run_checkin(&t, now).await;
    let call = task_of(&t, "A").await;
    let maria = t.app.settings().staff[0].clone();
    assert!(
        outreach::tasks::digest::send_digest(&t.app, &maria, call.due_on, now)
            .await
            .unwrap()
    );
    let digest = digests_to(&t, MARIA).pop().unwrap();
    let link = digest.task_link();
    assert!(link.starts_with("/t/"), "{link}");
    let router = t.router().await;

    let page = router.clone().oneshot(get(&link)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK, "{url}");
    let html = body_text(page).await;
    assert!(html.contains("Anruf bei Anna Äpfel"), "{html}");
    assert!(html.contains("href=\"tel:+4922112345\""), "{html}");
    assert!(html.contains("Lange nichts gehört"), "{html}");
    assert!(html.contains("Wie geht es Ihnen gerade?"), "{html}");
    assert!(html.contains("<form method=\"post\">"), "{html}");
    for outcome in [
        "reached",
        "not_reached",
        "callback",
        "needs_help",
        "do_not_call",
    ] {
        assert!(html.contains(&format!("value=\"{outcome}\"")), "{outcome}");
    }
    assert!(html.contains("name=\"note\""));
    // Maria leads: her "needs help" goes to the colleague with most room.
    assert!(
        html.contains("Braucht Unterstützung (geht an Jonas)"),
        "{html}"
    );
    assert!(html.contains("name=\"viewport\""), "made for phones");
    let unchanged = task(&t, call.id).await;
    assert_eq!(
        (unchanged.state.as_str(), unchanged.attempts),
        ("open", 0),
        "{url}: GET changes nothing (mail scanners open links)"
    );
    assert!(call_outcomes(&t, "A").await.is_empty());

    let saved = router
        .clone()
        .oneshot(post(&link, "outcome=reached&note=Geht+gut%2C+danke"))
        .await
        .unwrap();
    assert_eq!(saved.status(), StatusCode::OK, "{url}");
    let html = body_text(saved).await;
    assert!(html.contains("Danke, gespeichert."), "{html}");
    assert!(!html.contains("<form"), "no second form: {html}");
    let done = task(&t, call.id).await;
    assert_eq!(
        (
            done.state.as_str(),
            done.outcome.map(|o| o.as_str()),
            done.note.as_deref()
        ),
        ("done", Some("reached"), Some("Geht gut, danke")),
        "{url}"
    );
    assert!(customer(&t, "A").await.last_personal_contact_at.is_some());

    let again = router
        .clone()
        .oneshot(post(&link, "outcome=do_not_call"))
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::OK);
    let html = body_text(again).await;
    assert!(
        html.contains("Das Ergebnis war schon eingetragen."),
        "{html}"
    );
    assert_eq!(
        call_outcomes(&t, "A").await.len(),
        1,
        "{url}: recorded once"
    );
    assert!(!customer(&t, "A").await.do_not_call);

    let later = router.clone().oneshot(get(&link)).await.unwrap();
    let html = body_text(later).await;
    assert!(
        html.contains("<h2>Ergebnis</h2>\n<p>erreicht: „Geht gut, danke“</p>"),
        "{html}"
    );
}

backend_test!(a_name_full_of_markdown_is_text_on_the_task_page_and_in_the_digest);
/// Staff see a customer's name as it was imported, on the task page and in
/// the digest: a name full of Markdown is text there, never a link, an image,
/// a heading or formatting.
async fn a_name_full_of_markdown_is_text_on_the_task_page_and_in_the_digest(Db { url, .. }: Db) {
    const NAME: &str = "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** `code` <b>x</b> &amp;\n# Titel\n- Punkt";
    let t = TestApp::new(&url, &format!("{CHECKIN}{LENA_IN_NEW_YORK}")).await;
    t.import(&format!(
        "{CSV_HEADER}A,anna@example.de,\"{NAME}\",+49 221 123 45,yes,yes,no,no,maria\n\
         B,ben@example.com,\"{NAME}\",+49 221 123 46,yes,yes,no,no,lena\n"
    ))
    .await;
    let now = Utc::now();
    run_checkin(&t, now).await;
    let router = t.router().await;
    for (key, staff, address) in [("A", 0, MARIA), ("B", 2, LENA)] {
        let call = task_of(&t, key).await;
        let member = t.app.settings().staff[staff].clone();
        assert_eq!(member.email, address);
        assert!(
            outreach::tasks::digest::send_digest(&t.app, &member, call.due_on, now)
                .await
                .unwrap(),
            "{url}: {address}"
        );
        let digest = digests_to(&t, address).pop().unwrap();
        let page = router
            .clone()
            .oneshot(get(&digest.task_link()))
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{url}");
        let page = body_text(page).await;
        for (what, html) in [("digest", digest.html()), ("task page", page.as_str())] {
            for made in [
                "href=\"http://evil.example",
                "<img",
                "<strong>fett",
                "<code>",
                "<h1>Titel",
                "<li>Punkt",
                "<b>x",
                "\\",
            ] {
                assert!(!html.contains(made), "{url}: {what}: `{made}` in {html}");
            }
            // The import made the name one line (a line break in a name
            // splits every list that shows it); still no heading or list.
            // The page's heading is text with minijinja's HTML escaping.
            let shown = match what {
                "digest" => {
                    "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** `code` &lt;b&gt;x&lt;/b&gt; &amp;amp; # Titel - Punkt"
                }
                _ => {
                    "[Klick hier](http:&#x2f;&#x2f;evil.example) ![](http:&#x2f;&#x2f;track.example&#x2f;p.gif) **fett** `code` &lt;b&gt;x&lt;&#x2f;b&gt; &amp;amp; # Titel - Punkt</h1>"
                }
            };
            assert!(
                html.contains(shown),
                "{url}: {what}: the name shows as text: {html}"
            );
            // The template's own list is still a list.
            assert!(html.contains("<li>"), "{url}: {what}: {html}");
        }
        // Verbatim, but for where the text part wraps its lines.
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            words(digest.text()).contains(&words(NAME)),
            "{url}: the digest's text part has the name verbatim: {}",
            digest.text()
        );
    }
}

#[tokio::test]
async fn the_task_form_refuses_an_unknown_outcome_and_a_callback_without_a_date() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
        .await;
    let now = Utc::now();
    run_checkin(&t, now).await;
    let call = task_of(&t, "A").await;
    let token = t
        .app
        .signer
        .sign(Purpose::Task, call.id, now + Duration::days(7));
    let router = t.router().await;
    for form in ["outcome=sold_something", "outcome=callback&callback_on="] {
        let response = router
            .clone()
            .oneshot(post(&format!("/t/{token}"), form))
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{form}"
        );
    }
    assert_eq!(task(&t, call.id).await.state, "open");
    // Three days on, or the Monday after if that is a weekend: Maria works Monday to Friday.
    let mut callback_on = (now + Duration::days(3)).date_naive();
    while matches!(callback_on.weekday(), Weekday::Sat | Weekday::Sun) {
        callback_on = callback_on.succ_opt().unwrap();
    }
    let response = router
        .clone()
        .oneshot(post(
            &format!("/t/{token}"),
            &format!("outcome=callback&callback_on={callback_on}"),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tasks_of(&t, "A").await.len(), 2, "the callback is booked");
}

backend_test!(forged_expired_or_wrong_purpose_task_links_get_an_error_page_without_data);
async fn forged_expired_or_wrong_purpose_task_links_get_an_error_page_without_data(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("A", "Anna", "maria"),
        callable("B", "Bertram", "maria")
    ))
    .await;
    let now = Utc::now();
    run_checkin(&t, now).await;
    let (anna, bertram) = (task_of(&t, "A").await, task_of(&t, "B").await);
    let signer = &t.app.signer;
    // Anna's genuine token with its payload swapped for Bertram's task.
    let genuine = signer.sign(Purpose::Task, anna.id, now + Duration::days(7));
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload =
        String::from_utf8(b64.decode(genuine.split('.').next().unwrap()).unwrap()).unwrap();
    let forged = format!(
        "{}.{}",
        b64.encode(payload.replace(&format!("t.{}.", anna.id), &format!("t.{}.", bertram.id))),
        genuine.split('.').nth(1).unwrap()
    );
    let expired = signer.sign(Purpose::Task, anna.id, now - Duration::minutes(1));
    let unsubscribe = signer.sign(Purpose::Unsubscribe, anna.id, now + Duration::days(7));
    let approval = signer.sign(Purpose::Approval, anna.id, now + Duration::days(7));
    let router = t.router().await;
    for (bad, status) in [
        (forged.as_str(), StatusCode::NOT_FOUND),
        (expired.as_str(), StatusCode::GONE),
        (unsubscribe.as_str(), StatusCode::NOT_FOUND),
        (approval.as_str(), StatusCode::NOT_FOUND),
        ("garbage", StatusCode::NOT_FOUND),
    ] {
        for request in [
            get(&format!("/t/{bad}")),
            post(&format!("/t/{bad}"), "outcome=do_not_call&note=x"),
        ] {
            let method = request.method().clone();
            let response = router.clone().oneshot(request).await.unwrap();
            assert_eq!(response.status(), status, "{url}: {method} {bad}");
            let html = body_text(response).await;
            for secret in ["Anna", "Bertram", "+49", "tel:", "<form"] {
                assert!(!html.contains(secret), "{method} {bad}: {html}");
            }
        }
    }
    for key in ["A", "B"] {
        assert_eq!(task_of(&t, key).await.state, "open", "{url}: {key}");
        assert!(!customer(&t, key).await.do_not_call);
    }
}

// ---- escalation and expiry ----

backend_test!(a_call_overdue_longer_than_escalate_after_goes_to_the_manager_once);
async fn a_call_overdue_longer_than_escalate_after_goes_to_the_manager_once(Db { url, .. }: Db) {
    let t = TestApp::new(
        &url,
        &CHECKIN.replace("escalate_after = \"30d\"", "escalate_after = \"2d\""),
    )
    .await;
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("J", "Jakob", "jonas"),
        callable("M", "Margot", "maria")
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await; // due Monday; overdue from Tuesday 00:00
    t.tick(berlin(2026, 11, WED, 23, 59)).await;
    assert!(escalations(&t).is_empty(), "{url}: overdue for 1d 23h 59m");
    t.tick(berlin(2026, 11, THU, 0, 0)).await;
    let sent = escalations(&t);
    assert_eq!(sent.len(), 2, "{url}: {sent:#?}");
    let to_maria = sent
        .iter()
        .find(|m| m.to == MARIA)
        .expect("to Jonas's manager");
    assert_eq!(to_maria.subject, "Überfällige Anrufe (1)");
    let text = to_maria.text();
    assert!(text.contains("Jakob, bei Jonas"), "{text}");
    assert!(text.contains("überfällig seit 23.11.2026"), "{text}");
    assert!(text.contains("http://127.0.0.1:8080/t/"), "{text}");
    assert!(!text.contains("Margot"), "{text}");
    // Maria has no manager: her overdue call goes to the business's address.
    let other = sent.iter().find(|m| m.to != MARIA).unwrap();
    assert!(other.to.contains("hallo@cafe-test.example"), "{}", other.to);
    assert!(other.text().contains("Margot"));

    for at in [
        berlin(2026, 11, THU, 0, 5),
        berlin(2026, 11, FRI, 9, 0),
        berlin(2026, 11, 30, 9, 0),
    ] {
        t.tick(at).await;
    }
    assert_eq!(escalations(&t).len(), 2, "{url}: not twice");
    assert!(task_of(&t, "J").await.escalated_at.is_some());
}

backend_test!(
    an_overdue_call_goes_back_on_the_call_list_expire_after_its_day_once_the_manager_knows
);
/// Expiry counts from a call's day, not from when the task was made, and a
/// call only goes back to the call list after the manager was told, never in
/// the same pass. It comes back with its history, for a colleague.
async fn an_overdue_call_goes_back_on_the_call_list_expire_after_its_day_once_the_manager_knows(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(
        &url,
        &CHECKIN.replace("expire_after = \"60d\"", "expire_after = \"5d\""),
    )
    .await;
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("A", "Anna", "maria"),
        callable("B", "Bruno", "maria")
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    // Bruno was not reached on Wednesday: his call is due again on Thursday.
    let bruno = task_of(&t, "B").await;
    record_outcome(
        &t.app,
        bruno.id,
        "not_reached",
        None,
        None,
        berlin(2026, 11, WED, 10, 0),
    )
    .await
    .unwrap();

    // Anna's call is overdue since Tuesday 00:00: five days later is Sunday 00:00.
    t.tick(berlin(2026, 11, SAT, 23, 59)).await;
    assert_eq!(task_of(&t, "A").await.state, "open", "{url}: 4d 23h 59m");
    assert!(escalations(&t).is_empty(), "{url}");
    t.tick(berlin(2026, 11, 29, 0, 0)).await;
    let told = escalations(&t);
    assert_eq!(told.len(), 1, "{url}: the manager is told first");
    assert!(
        told[0].to.contains("hallo@cafe-test.example"),
        "{}",
        told[0].to
    );
    // Words, not line breaks: the plain text is wrapped.
    let text = told[0]
        .text()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(text.contains("Anna") && !text.contains("Bruno"), "{text}");
    assert!(
        text.contains("geht jetzt zurück auf die Anrufliste"),
        "{text}"
    );
    assert_eq!(
        task_of(&t, "A").await.state,
        "open",
        "{url}: not in the same pass"
    );
    t.tick(berlin(2026, 11, 29, 0, 1)).await;
    let anna = tasks_of(&t, "A").await;
    assert_eq!(anna[0].state, "expired", "{url}");
    assert!(
        anna[0]
            .note
            .as_deref()
            .unwrap_or("")
            .contains("expired: overdue since 2026-11-24"),
        "{anna:?}"
    );
    assert!(anna[0].outcome_at.is_some());
    // Back on the call list, and planned at once for a colleague's next list.
    assert_eq!(anna.len(), 2, "{url}: {anna:?}");
    assert_eq!(
        (
            anna[1].staff_id.as_str(),
            anna[1].state.as_str(),
            anna[1].due_on,
            anna[1].parent_id
        ),
        ("jonas", "open", day(2026, 11, 30), Some(anna[0].id)),
        "{url}: not Maria, who left it"
    );
    let entry = t
        .app
        .store
        .customer_call_list(anna[0].customer_id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (entry.from_task_id, entry.task_id, entry.state.as_str()),
        (Some(anna[0].id), Some(anna[1].id), "planned"),
        "{url}"
    );
    assert!(
        call_outcomes(&t, "A").await.is_empty(),
        "no outcome was invented"
    );
    let history = outreach::history::customer_history(&t.app.store, anna[0].customer_id)
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.kind == "call_list" && h.detail.contains("not made")),
        "{history:?}"
    );

    // Bruno's call was due Thursday: overdue since Friday, back on Wednesday.
    t.tick(berlin(2026, 12, 1, 23, 59)).await;
    assert_eq!(task_of(&t, "B").await.state, "open", "{url}");
    t.tick(berlin(2026, 12, 2, 0, 0)).await;
    t.tick(berlin(2026, 12, 2, 0, 1)).await;
    let bruno = tasks_of(&t, "B").await;
    assert_eq!(bruno[0].state, "expired", "{url}");
    assert_eq!(escalations(&t).len(), 2);
    assert_eq!(
        (bruno[1].staff_id.as_str(), bruno[1].attempts),
        ("jonas", 1),
        "{url}: the try on Wednesday is remembered"
    );
}

// ---- the customer's history ----

backend_test!(customers_show_lists_messages_tasks_and_outcomes_in_time_order);
async fn customers_show_lists_messages_tasks_and_outcomes_in_time_order(Db { url, .. }: Db) {
    let t = TestApp::new(&url, &format!("{CHECKIN}{NEWS}")).await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
        .await;
    // The history is kept in real time (the import is stamped with the clock).
    let base = Utc::now() + Duration::minutes(1);
    let news = start_now(&t.app, "news", base).await.unwrap();
    t.tick(base).await;
    t.deliver_all(base).await;
    run_checkin(&t, base + Duration::minutes(1)).await;
    let call = task_of(&t, "A").await;
    record_outcome(
        &t.app,
        call.id,
        "reached",
        Some("alles gut"),
        None,
        base + Duration::minutes(2),
    )
    .await
    .unwrap();

    let history = outreach::history::customer_history(&t.app.store, customer(&t, "A").await.id)
        .await
        .unwrap();
    let kinds: Vec<&str> = history.iter().map(|h| h.kind.as_str()).collect();
    let pos = |kind: &str| {
        kinds
            .iter()
            .position(|k| *k == kind)
            .unwrap_or_else(|| panic!("no {kind} in {kinds:?}"))
    };
    assert!(pos("email") < pos("call_task"), "{url}: {kinds:?}");
    assert!(pos("call_task") < pos("call_outcome"), "{kinds:?}");
    assert!(history.windows(2).all(|w| w[0].at <= w[1].at));

    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&t.app.config.path)
        .args(["customers", "show", "A"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = common::stdout(&out);
    assert!(out.status.success(), "{url}: {}", common::stderr(&out));
    let line = |needle: &str| {
        text.find(needle)
            .unwrap_or_else(|| panic!("{needle:?} not in:\n{text}"))
    };
    let email = line(&format!("news (run {news}) sent"));
    let task_line = line(&format!("task {} for maria due", call.id));
    let outcome = line(&format!("reached (task {}, maria): alles gut", call.id));
    assert!(email < task_line && task_line < outcome, "{url}:\n{text}");
    assert!(text.contains("last personal contact: 20"), "{text}");
}

// ---- robustness ----

backend_test!(an_escalation_that_cannot_be_delivered_holds_up_neither_digests_nor_other_calls_and_keeps_its_call, flavor = "multi_thread");
async fn an_escalation_that_cannot_be_delivered_holds_up_neither_digests_nor_other_calls_and_keeps_its_call(
    Db { url, .. }: Db,
) {
    let (port, received) = common::smtp::start(None);
    // Paula's manager has an address the server refuses for good (550).
    let extra = CHECKIN
        .replace("escalate_after = \"30d\"", "escalate_after = \"1d\"")
        .replace("expire_after = \"60d\"", "expire_after = \"2d\"")
        + "\n[[staff]]\nid = \"chefin\"\nname = \"Chefin\"\nemail = \"nouser@cafe-test.example\"\n\
           \n[[staff]]\nid = \"paula\"\nname = \"Paula\"\nemail = \"paula@cafe-test.example\"\nmanager = \"chefin\"\n";
    let t = TestApp::with_fragment(&url, &extra, &common::smtp::smtp_config(port)).await;
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("P", "Pia", "paula"),
        callable("O", "Olga", "maria")
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    t.import(&format!("{CSV_HEADER}{}", callable("M", "Mia", "maria")))
        .await;
    run_checkin(&t, berlin(2026, 11, WED, 7, 0)).await;
    // Wednesday 08:30: both calls are overdue for 1d 8h and escalated;
    // the escalation to Paula's manager fails.
    let result = outreach::daemon::tick(&t.app, &t.delivery, berlin(2026, 11, WED, 8, 30)).await;
    assert!(result.is_ok(), "{url}: {result:?}");
    assert_eq!(
        received.count_to(MARIA),
        2,
        "{url}: Maria's digest goes out all the same, and (as Jonas's manager) her weekly summary"
    );
    assert_eq!(
        received.count_to("paula@cafe-test.example"),
        1,
        "{url}: and Paula's, with Pia's call"
    );
    assert_eq!(received.count_to("hallo@cafe-test.example"), 1, "{url}");
    // Thursday 00:30: overdue for two days. Olga's call goes back on the
    // call list; Pia's stays with Paula until her manager has been told.
    let result = outreach::daemon::tick(&t.app, &t.delivery, berlin(2026, 11, THU, 0, 30)).await;
    assert!(result.is_ok(), "{url}: {result:?}");
    assert_eq!(tasks_of(&t, "O").await[0].state, "expired", "{url}");
    let pia = task_of(&t, "P").await;
    assert_eq!(pia.state, "open", "{url}: not before the manager knows");
    assert!(
        pia.escalated_at.is_none(),
        "not marked as escalated: it is tried again"
    );
}

backend_test!(a_digest_sent_by_hand_replaces_that_days_scheduled_one);
async fn a_digest_sent_by_hand_replaces_that_days_scheduled_one(Db { url, .. }: Db) {
    let t = with_calls(&url, "", "maria", &["A"]).await;
    let maria = t.app.settings().staff[0].clone();
    let early = berlin(2026, 11, MON, 7, 30);
    assert_eq!(
        send_now(&t.app, &maria, false, early).await.unwrap(),
        SentNow::Sent
    );
    assert_eq!(digests_to(&t, MARIA).len(), 1, "{url}");
    t.tick(berlin(2026, 11, MON, 8, 30)).await;
    t.tick(berlin(2026, 11, MON, 12, 0)).await;
    assert_eq!(
        digests_to(&t, MARIA).len(),
        1,
        "{url}: `tasks digest` sends it instead of at digest_at, not as well"
    );
    // Asked for again by hand, it is not sent twice, unless asked to;
    // the next day as usual.
    let later = early + Duration::hours(6);
    assert_eq!(
        send_now(&t.app, &maria, false, later).await.unwrap(),
        SentNow::AlreadySent(early),
        "{url}"
    );
    assert_eq!(digests_to(&t, MARIA).len(), 1, "{url}");
    assert_eq!(
        send_now(&t.app, &maria, true, later).await.unwrap(),
        SentNow::Sent
    );
    t.tick(berlin(2026, 11, TUE, 8, 30)).await;
    assert_eq!(digests_to(&t, MARIA).len(), 3, "{url}");
    let jonas = t.app.settings().staff[1].clone();
    assert_eq!(
        send_now(&t.app, &jonas, false, early).await.unwrap(),
        SentNow::NothingDue,
        "nothing due, nothing sent"
    );
}

backend_test!(an_outcome_sent_for_an_expired_task_says_so_instead_of_already_recorded);
async fn an_outcome_sent_for_an_expired_task_says_so_instead_of_already_recorded(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(
        &url,
        &CHECKIN.replace("expire_after = \"60d\"", "expire_after = \"5d\""),
    )
    .await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
        .await;
    // Planned ten days ago (for the next working day at the latest), so
    // overdue for more than five days: escalated, then back on the list.
    let now = Utc::now();
    run_checkin(&t, now - Duration::days(10)).await;
    t.tick(now - Duration::minutes(1)).await;
    t.tick(now).await;
    let call = tasks_of(&t, "A").await.remove(0);
    assert_eq!(call.state, "expired", "{url}");
    let token = t
        .app
        .signer
        .sign(Purpose::Task, call.id, now + Duration::days(7));
    let response = t
        .router()
        .await
        .oneshot(post(&format!("/t/{token}"), "outcome=do_not_call"))
        .await
        .unwrap();
    let html = body_text(response).await;
    assert!(!html.contains("schon eingetragen"), "{url}: {html}");
    assert!(html.contains("abgelaufen"), "{html}");
    assert!(!customer(&t, "A").await.do_not_call);
}

#[tokio::test]
async fn a_call_counts_as_overdue_by_the_staff_members_own_calendar() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = with_calls(&url, LENA_IN_NEW_YORK, "lena", &["A"]).await;
    let call = task_of(&t, "A").await;
    assert_eq!(call.due_on, day(2026, 11, MON));
    // Monday 20:00 in New York is already Tuesday in UTC and in Berlin.
    let evening = berlin(2026, 11, TUE, 2, 0);
    assert!(!outreach::tasks::is_overdue(&t.app, &call, evening));
    assert!(outreach::tasks::is_overdue(
        &t.app,
        &call,
        berlin(2026, 11, TUE, 6, 0)
    ));
}

#[tokio::test]
async fn due_in_gives_staff_days_to_make_the_call_before_it_is_overdue() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let config = format!(
        "{}{LENA_IN_NEW_YORK}",
        CHECKIN.replace("due_in = \"0d\"", "due_in = \"2d\"")
    );
    let t = TestApp::new(&url, &config).await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Kunde A", "lena")))
        .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let call = task_of(&t, "A").await;
    assert_eq!(call.due_on, day(2026, 11, MON));
    assert_eq!(
        outreach::tasks::deadline(&t.app, &call),
        day(2026, 11, MON + 2)
    );
    // Wednesday evening in New York: still on time; Thursday morning: overdue.
    assert!(!outreach::tasks::is_overdue(
        &t.app,
        &call,
        berlin(2026, 11, MON + 3, 2, 0)
    ));
    assert!(outreach::tasks::is_overdue(
        &t.app,
        &call,
        berlin(2026, 11, MON + 3, 12, 0)
    ));
}

backend_test!(the_gdpr_export_holds_call_notes_and_forgetting_erases_them);
async fn the_gdpr_export_holds_call_notes_and_forgetting_erases_them(Db { url, .. }: Db) {
    let t = with_calls(&url, "", "maria", &["A"]).await;
    let call = task_of(&t, "A").await;
    let now = berlin(2026, 11, MON, 10, 0);
    assert!(
        outreach::tasks::record_outcome(
            &t.app,
            call.id,
            "reached",
            Some("Sorgen um den Job"),
            None,
            now
        )
        .await
        .unwrap()
    );
    let cli = |args: &[&str]| {
        std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&t.app.config.path)
            .args(args)
            .output()
            .unwrap()
    };
    let export = cli(&["customers", "export", "A"]);
    assert!(export.status.success(), "{}", common::stderr(&export));
    let doc: serde_json::Value = serde_json::from_slice(&export.stdout).unwrap();
    assert_eq!(doc["call_tasks"][0]["note"], "Sorgen um den Job", "{url}");
    assert_eq!(doc["customer"]["name"], "Kunde A");
    assert!(cli(&["customers", "forget", "A"]).status.success());
    let erased = t.app.store.task(call.id).await.unwrap().unwrap();
    assert_eq!(erased.note, None, "{url}: call notes are personal data");
    let customer = t
        .app
        .store
        .customers_by_ids(&[call.customer_id])
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(
        (customer.name, customer.email, customer.phone),
        (None, None, None)
    );
    assert!(customer.forgotten_at.is_some());
}

// ---- promises kept over weeks ----
//
// Each test below shows one way the old planning lost a promise made to a
// customer, or kept nobody informed, and what happens now.

/// A `[[staff]]` entry with extra keys (capacity, days, absences, manager).
fn member(id: &str, keys: &str) -> String {
    format!(
        "\n[[staff]]\nid = \"{id}\"\nname = \"{}\"\nemail = \"{id}@cafe-test.example\"\n{keys}\n",
        id[..1].to_uppercase() + &id[1..]
    )
}

/// Customers `{prefix}1`..`{prefix}{n}` owned by `owner`, as CSV.
fn many(prefix: &str, n: usize, owner: &str) -> String {
    let mut csv = CSV_HEADER.to_string();
    for i in 1..=n {
        csv.push_str(&callable(
            &format!("{prefix}{i}"),
            &format!("Kunde {prefix}{i}"),
            owner,
        ));
    }
    csv
}

/// Records an outcome at `at`, which must be accepted.
async fn outcome(
    t: &TestApp,
    task: &Task,
    what: &str,
    callback_on: Option<NaiveDate>,
    at: DateTime<Utc>,
) {
    assert!(
        record_outcome(&t.app, task.id, what, None, callback_on, at)
            .await
            .unwrap(),
        "{what} for task {}",
        task.id
    );
}

/// The open calls on a staff member's list for a day (due then or earlier).
async fn list_of(t: &TestApp, staff: &str, on: NaiveDate) -> Vec<Task> {
    t.app
        .store
        .tasks(Some(staff), true)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.due_on <= on)
        .collect()
}

/// Days from `from` to `to`, both included.
fn days(from: NaiveDate, to: NaiveDate) -> impl Iterator<Item = NaiveDate> {
    from.iter_days().take_while(move |d| *d <= to)
}

fn at(d: NaiveDate, h: u32, m: u32) -> DateTime<Utc> {
    berlin(d.year(), d.month(), d.day(), h, m)
}

backend_test!(a_run_plans_nothing_weeks_ahead_and_no_call_expires_before_its_day);
/// Before: one run made every call at once, planned weeks ahead, and the
/// expiry (counted from when a task was made) closed them before their day.
async fn a_run_plans_nothing_weeks_ahead_and_no_call_expires_before_its_day(Db { url, .. }: Db) {
    let extra = CHECKIN.replace("expire_after = \"60d\"", "expire_after = \"14d\"")
        + &member("paula", "daily_capacity = 2");
    let t = TestApp::new(&url, &extra).await;
    t.import(&many("P", 20, "paula")).await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let open = t.app.store.tasks(None, true).await.unwrap();
    assert_eq!(
        open.len(),
        2,
        "{url}: one day's capacity, not all 20: {open:#?}"
    );
    assert!(open.iter().all(|t| t.due_on == day(2026, 11, MON)), "{url}");
    assert_eq!(
        t.app.store.call_list(true).await.unwrap().len(),
        18,
        "{url}"
    );
    // Paula calls her list every working morning: everyone is called
    // within ten working days, and nothing expires on the way.
    for d in days(day(2026, 11, MON), day(2026, 12, 11)) {
        t.tick(at(d, 8, 30)).await;
        for call in list_of(&t, "paula", d).await {
            outcome(&t, &call, "reached", None, at(d, 10, 0)).await;
        }
        t.tick(at(d, 10, 5)).await;
    }
    let all = t.app.store.tasks(None, false).await.unwrap();
    assert_eq!(all.len(), 20, "{url}");
    assert!(all.iter().all(|t| t.state == "done"), "{url}: {all:#?}");
    assert!(
        all.iter().all(|t| t.due_on <= day(2026, 12, 4)),
        "{url}: ten working days"
    );
}

backend_test!(a_callback_weeks_ahead_keeps_its_day_and_is_in_that_days_digest_marked_as_agreed);
/// Before: a callback agreed three weeks ahead expired after 14 days and
/// never reached a digest.
async fn a_callback_weeks_ahead_keeps_its_day_and_is_in_that_days_digest_marked_as_agreed(
    Db { url, .. }: Db,
) {
    let extra = CHECKIN
        .replace("expire_after = \"60d\"", "expire_after = \"14d\"")
        .replace("escalate_after = \"30d\"", "escalate_after = \"3d\"");
    let t = TestApp::new(&url, &extra).await;
    t.import(&format!(
        "{CSV_HEADER}{}",
        callable("A", "Kunde A", "jonas")
    ))
    .await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let call = task_of(&t, "A").await;
    let agreed = day(2026, 12, 17);
    outcome(
        &t,
        &call,
        "callback",
        Some(agreed),
        berlin(2026, 11, MON, 10, 0),
    )
    .await;
    for d in days(day(2026, 11, TUE), day(2026, 12, 16)) {
        t.tick(at(d, 9, 0)).await;
    }
    let callback = tasks_of(&t, "A").await.pop().unwrap();
    assert_eq!(
        (
            callback.kind.as_str(),
            callback.state.as_str(),
            callback.due_on,
            callback.owner_id.as_str()
        ),
        ("callback", "open", agreed, "jonas"),
        "{url}"
    );
    assert!(escalations(&t).is_empty(), "{url}: nothing is overdue");
    assert!(
        digests_to(&t, JONAS).is_empty(),
        "{url}: nothing was due before"
    );
    t.tick(at(agreed, 9, 0)).await;
    let digest = digests_to(&t, JONAS);
    assert_eq!(digest.len(), 1, "{url}");
    let text = digest[0].text();
    assert!(text.contains("Kunde A"), "{text}");
    assert!(
        text.contains("Rückruf vereinbart für heute"),
        "{url}: {text}"
    );
}

backend_test!(
    an_absence_recorded_later_moves_only_the_calls_inside_it_on_their_day_and_ownership_stays
);
/// Before: an absence moved every open call of the absent staff member,
/// agreed callbacks after their return included, to a colleague on the
/// first free day, and with them the customers' calls for good.
async fn an_absence_recorded_later_moves_only_the_calls_inside_it_on_their_day_and_ownership_stays(
    Db { url, .. }: Db,
) {
    let paula = member("paula", "manager = \"maria\"");
    let t = with_calls(&url, &paula, "paula", &["P1", "P2", "P3"]).await;
    let monday = berlin(2026, 11, MON, 10, 0);
    let (p1, p2, p3) = (
        task_of(&t, "P1").await,
        task_of(&t, "P2").await,
        task_of(&t, "P3").await,
    );
    outcome(&t, &p1, "callback", Some(day(2026, 11, THU)), monday).await;
    outcome(&t, &p2, "not_reached", None, monday).await; // again on Tuesday
    outcome(&t, &p3, "callback", Some(day(2026, 11, 30)), monday).await; // after her return
    // Then her absence from Tuesday to Friday is recorded.
    let away = CHECKIN.to_string()
        + &member(
            "paula",
            "manager = \"maria\"\nabsences = [{ from = 2026-11-24, to = 2026-11-27 }]",
        );
    std::fs::write(
        &t.app.config.path,
        common::base_config(&url, &t.outbox()) + &away,
    )
    .unwrap();
    let reloaded = t.sibling("after-reload").await;
    outreach::daemon::tick(&reloaded, &t.delivery, berlin(2026, 11, MON, 12, 0))
        .await
        .unwrap();
    let now_of = |key: &'static str| {
        let t = &t;
        async move { tasks_of(t, key).await.pop().unwrap() }
    };
    let (c1, r2, c3) = (now_of("P1").await, now_of("P2").await, now_of("P3").await);
    assert_ne!(
        c1.staff_id, "paula",
        "{url}: Thursday's callback goes to a colleague"
    );
    assert_eq!(
        (
            c1.kind.as_str(),
            c1.due_on,
            c1.agreed_on,
            c1.owner_id.as_str()
        ),
        (
            "callback",
            day(2026, 11, THU),
            Some(day(2026, 11, THU)),
            "paula"
        ),
        "{url}: on its day, and still hers"
    );
    assert_ne!(r2.staff_id, "paula", "{url}");
    assert_eq!(
        (r2.id, r2.due_on, r2.owner_id.as_str(), r2.attempts),
        (p2.id, day(2026, 11, TUE), "paula", 1),
        "{url}: the retry moves on its day, with its history"
    );
    assert_eq!(
        (c3.staff_id.as_str(), c3.due_on, c3.owner_id.as_str()),
        ("paula", day(2026, 11, 30), "paula"),
        "{url}: after her return, hers"
    );
    for key in ["P1", "P2", "P3"] {
        assert_eq!(
            customer(&t, key).await.owner.as_deref(),
            Some("paula"),
            "{url}"
        );
    }
    // A week on, with her back, nothing more has moved.
    for d in days(day(2026, 11, TUE), day(2026, 11, 30)) {
        outreach::daemon::tick(&reloaded, &t.delivery, at(d, 7, 0))
            .await
            .unwrap();
    }
    assert_eq!(now_of("P3").await.staff_id, "paula", "{url}");
}

backend_test!(retries_and_callbacks_count_against_the_days_capacity);
/// Before: retries, callbacks and follow-ups came on top of the daily
/// capacity.
async fn retries_and_callbacks_count_against_the_days_capacity(Db { url, .. }: Db) {
    let extra = CHECKIN.to_string() + &member("paula", "daily_capacity = 3");
    let t = TestApp::new(&url, &extra).await;
    t.import(&many("P", 8, "paula")).await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    t.tick(berlin(2026, 11, MON, 8, 30)).await;
    let monday = list_of(&t, "paula", day(2026, 11, MON)).await;
    assert_eq!(monday.len(), 3, "{url}");
    let ten = berlin(2026, 11, MON, 10, 0);
    outcome(&t, &monday[0], "not_reached", None, ten).await;
    outcome(&t, &monday[1], "callback", Some(day(2026, 11, TUE)), ten).await;
    outcome(&t, &monday[2], "reached", None, ten).await;
    t.tick(berlin(2026, 11, MON, 10, 5)).await;
    t.tick(berlin(2026, 11, TUE, 8, 30)).await;
    let tuesday = list_of(&t, "paula", day(2026, 11, TUE)).await;
    assert_eq!(
        tuesday.len(),
        3,
        "{url}: the retry and the callback take two of three places: {tuesday:#?}"
    );
    let digests = digests_to(&t, "paula@cafe-test.example");
    assert_eq!(digests.len(), 2, "{url}");
    let digest = digests
        .iter()
        .find(|m| m.text().contains("24.11.2026"))
        .expect("Tuesday's digest");
    assert_eq!(digest.subject, "Ihre Anrufe für heute (3)", "{url}");
    let text = digest.text();
    assert!(text.contains("2. Versuch"), "{text}");
    assert!(text.contains("Rückruf vereinbart für heute"), "{text}");
}

backend_test!(a_colleague_who_never_calls_gets_no_new_calls_and_theirs_go_to_colleagues_after_the_manager_is_told);
/// Before: a colleague who calls nobody got a day's capacity of new calls
/// every day, and their digest grew and grew.
async fn a_colleague_who_never_calls_gets_no_new_calls_and_theirs_go_to_colleagues_after_the_manager_is_told(
    Db { url, .. }: Db,
) {
    let extra = CHECKIN.replace("escalate_after = \"30d\"", "escalate_after = \"2d\"")
        + &member("sam", "daily_capacity = 2\nmanager = \"maria\"");
    let t = TestApp::new(&url, &extra).await;
    t.import(&many("S", 10, "sam")).await;
    run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let mut sizes = Vec::new();
    for d in days(day(2026, 11, MON), day(2026, 11, FRI)) {
        t.tick(at(d, 6, 0)).await;
        t.tick(at(d, 8, 30)).await;
        sizes.push(list_of(&t, "sam", d).await.len());
        // Maria and Jonas make their calls.
        for staff in ["maria", "jonas"] {
            for call in list_of(&t, staff, d).await {
                outcome(&t, &call, "reached", None, at(d, 10, 0)).await;
            }
        }
        t.tick(at(d, 10, 5)).await;
    }
    assert!(sizes.iter().all(|n| *n <= 2), "{url}: {sizes:?}");
    let sams = digests_to(&t, "sam@cafe-test.example");
    assert!(
        sams.iter().all(|m| m.subject.ends_with("(2)")),
        "{url}: {:?}",
        sams.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    // Each of his unmade calls went to Maria first, then back on the list.
    let told = escalations(&t);
    let gone: Vec<Task> = t
        .app
        .store
        .tasks(Some("sam"), false)
        .await
        .unwrap()
        .into_iter()
        .filter(|t| t.state == "expired")
        .collect();
    assert!(!gone.is_empty(), "{url}");
    for task in &gone {
        assert!(
            task.escalated_at.unwrap() < task.outcome_at.unwrap(),
            "{task:?}"
        );
        let c = t
            .app
            .store
            .customers_by_ids(&[task.customer_id])
            .await
            .unwrap();
        assert!(
            told.iter()
                .any(|m| m.to == MARIA && m.text().contains(&c[0].label())),
            "{url}: Maria was told about {}",
            c[0].label()
        );
    }
    let mut reached = 0;
    for i in 1..=10 {
        if customer(&t, &format!("S{i}"))
            .await
            .last_personal_contact_at
            .is_some()
        {
            reached += 1;
        }
    }
    assert!(
        reached >= 6,
        "{url}: colleagues called his customers ({reached})"
    );
}

backend_test!(a_customer_not_reached_three_times_keeps_their_place_in_line);
/// Before: a customer not reached three times went to the back of a queue
/// planned weeks ahead.
async fn a_customer_not_reached_three_times_keeps_their_place_in_line(Db { url, .. }: Db) {
    let extra = CHECKIN.replace("schedule = \"0 3 1 1 *\"", "schedule = \"0 7 * * Mon\"")
        + &member("paula", "daily_capacity = 1");
    let t = TestApp::new(&url, &extra).await;
    t.import(&many("P", 9, "paula")).await;
    t.tick(berlin(2026, 11, 22, 20, 0)).await; // the daemon runs from Sunday
    let mut tries = 0;
    for d in days(day(2026, 11, MON), day(2026, 11, 30)) {
        t.tick(at(d, 7, 0)).await;
        t.tick(at(d, 8, 30)).await;
        for call in list_of(&t, "paula", d).await {
            let what = if call.customer_id == customer(&t, "P1").await.id {
                tries += 1;
                "not_reached"
            } else {
                "reached"
            };
            outcome(&t, &call, what, None, at(d, 10, 0)).await;
        }
        t.tick(at(d, 10, 5)).await;
    }
    assert_eq!(tries, 3, "{url}");
    // Monday's run put P1 back on the list in her old place, ahead of
    // everyone still waiting: hers is the next free place, Tuesday's.
    let p1 = tasks_of(&t, "P1").await;
    assert_eq!(p1.len(), 2, "{url}: {p1:#?}");
    assert_eq!(p1[1].due_on, day(2026, 12, 1), "{url}");
    for key in ["P7", "P8", "P9"] {
        assert!(tasks_of(&t, key).await.is_empty(), "{url}: {key} after her");
    }
}

backend_test!(no_calls_digests_or_callbacks_on_closing_days);
/// Before: there were no public holidays, so calls were planned on
/// Christmas Day; a callback on a closing day was accepted.
async fn no_calls_digests_or_callbacks_on_closing_days(Db { url, .. }: Db) {
    let t = TestApp::with_fragment(
        &url,
        CHECKIN,
        "[business]\nclosed = [\"holidays:de\", \"12-24\"]\n",
    )
    .await;
    t.import(&format!(
        "{CSV_HEADER}{}{}",
        callable("A", "Anna", "maria"),
        callable("B", "Ben", "maria")
    ))
    .await;
    // Wednesday 23 December: calls for today.
    let wednesday = berlin(2026, 12, 23, 9, 0);
    t.tick(wednesday).await;
    run_checkin(&t, wednesday).await;
    for key in ["A", "B"] {
        assert_eq!(task_of(&t, key).await.due_on, day(2026, 12, 23), "{url}");
    }
    let anna = task_of(&t, "A").await;
    for (closed, next) in [
        (day(2026, 12, 24), day(2026, 12, 28)), // Christmas Eve, then the holidays and a weekend
        (day(2027, 1, 1), day(2027, 1, 4)),     // New Year's Day
    ] {
        let err = record_outcome(&t.app, anna.id, "callback", None, Some(closed), wednesday)
            .await
            .unwrap_err();
        assert_eq!(
            err.downcast_ref::<outreach::tasks::OutcomeError>(),
            Some(&outreach::tasks::OutcomeError::ClosedDay {
                day: closed,
                next: Some(next)
            }),
            "{url}: {err}"
        );
    }
    let ben = task_of(&t, "B").await;
    outcome(&t, &ben, "not_reached", None, berlin(2026, 12, 23, 11, 0)).await;
    assert_eq!(
        task_of(&t, "B").await.due_on,
        day(2026, 12, 28),
        "{url}: the retry skips them"
    );
    for d in days(day(2026, 12, 24), day(2026, 12, 27)) {
        t.tick(at(d, 9, 0)).await;
    }
    assert_eq!(digests_to(&t, MARIA).len(), 1, "{url}: only Wednesday's");
    t.tick(berlin(2026, 12, 28, 9, 0)).await;
    assert_eq!(digests_to(&t, MARIA).len(), 2, "{url}");
}

backend_test!(
    a_callback_on_a_day_off_is_refused_with_the_next_possible_day_on_the_page_and_the_command_line
);
/// Before: a callback on the staff member's day off was accepted without a
/// word, on the task page and on the command line.
async fn a_callback_on_a_day_off_is_refused_with_the_next_possible_day_on_the_page_and_the_command_line(
    Db { url, .. }: Db,
) {
    // Real time here: the page checks its link against the clock.
    let t = TestApp::new(&url, CHECKIN).await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
        .await;
    let now = Utc::now();
    run_checkin(&t, now).await;
    let call = task_of(&t, "A").await;
    // Maria works Monday to Friday: the next Saturday is refused, Monday offered.
    let mut saturday = (now + Duration::days(1)).date_naive();
    while saturday.weekday() != Weekday::Sat {
        saturday = saturday.succ_opt().unwrap();
    }
    let monday = saturday + chrono::Days::new(2);
    let token = t
        .app
        .signer
        .sign(Purpose::Task, call.id, now + Duration::days(7));
    let page = t
        .router()
        .await
        .oneshot(post(
            &format!("/t/{token}"),
            &format!("outcome=callback&callback_on={saturday}"),
        ))
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::UNPROCESSABLE_ENTITY, "{url}");
    let html = body_text(page).await;
    let local = |d: NaiveDate| d.format("%d.%m.%Y").to_string();
    assert!(
        html.contains(&format!("Maria arbeitet am {} nicht", local(saturday))),
        "{html}"
    );
    assert!(
        html.contains(&format!("Nächster möglicher Tag: {}", local(monday))),
        "{html}"
    );
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&t.app.config.path)
        .args([
            "tasks",
            "done",
            &call.id.to_string(),
            "--outcome",
            "callback",
            "--callback-on",
        ])
        .arg(saturday.to_string())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{url}: {}",
        common::stdout(&out)
    );
    let err = common::stderr(&out);
    assert!(
        err.contains(&format!("Maria does not work on {saturday}")),
        "{err}"
    );
    assert!(
        err.contains(&format!("the next possible day is {monday}")),
        "{err}"
    );
    assert_eq!(
        task(&t, call.id).await.state,
        "open",
        "{url}: nothing recorded"
    );
    assert_eq!(tasks_of(&t, "A").await.len(), 1);
}

backend_test!(needs_help_always_reaches_someone_else);
/// Before: "needs help" from someone without a manager became a follow-up
/// for that same person.
async fn needs_help_always_reaches_someone_else(Db { url, .. }: Db) {
    // Maria has no manager: without a business contact, a colleague.
    let t = with_calls(&url, "", "maria", &["A"]).await;
    let call = task_of(&t, "A").await;
    outcome(&t, &call, "needs_help", None, berlin(2026, 11, MON, 10, 0)).await;
    let follow_up = tasks_of(&t, "A").await.pop().unwrap();
    assert_eq!(
        (follow_up.kind.as_str(), follow_up.staff_id.as_str()),
        ("follow_up", "jonas"),
        "{url}"
    );
    t.tick(berlin(2026, 11, TUE, 8, 30)).await;
    let digest = digests_to(&t, JONAS).pop().unwrap();
    assert!(
        digest.text().contains("Nachfassen: braucht Unterstützung"),
        "{}",
        digest.text()
    );

    // With a business contact, the contact.
    let t = TestApp::with_fragment(
        &url,
        &format!("{CHECKIN}{LENA_IN_NEW_YORK}"),
        "[business]\ncontact_staff = \"lena\"\n",
    )
    .await;
    t.import(&format!("{CSV_HEADER}{}", callable("B", "Ben", "maria")))
        .await;
    run_checkin(&t, berlin(2026, 11, WED, 7, 0)).await;
    let call = task_of(&t, "B").await;
    outcome(&t, &call, "needs_help", None, berlin(2026, 11, WED, 10, 0)).await;
    let follow_up = tasks_of(&t, "B").await.pop().unwrap();
    assert_eq!(
        (follow_up.kind.as_str(), follow_up.staff_id.as_str()),
        ("follow_up", "lena"),
        "{url}"
    );
}

/// Before: `outreach tasks list --open | head -3` panicked with "failed
/// printing to stdout: Broken pipe".
#[test]
fn output_to_a_closed_pipe_ends_quietly_for_every_command() {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = common::Env::in_dir(dir, &url, CHECKIN);
    assert!(env.run(&["migrate"]).status.success());
    for args in [
        &["tasks", "list", "--open"][..],
        &["status"],
        &["runs", "list"],
        &["check"],
        &["tasks", "list", "--json"],
    ] {
        // The reading end is closed before the command prints anything.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.command(args).stdout(writer).output().unwrap();
        let err = common::stderr(&out);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        assert!(
            out.status.success() || out.status.signal() == Some(13),
            "{args:?}: {:?}",
            out.status
        );
    }
}

backend_test!(
    status_runs_show_and_the_weekly_summary_show_the_call_list_and_when_all_will_have_been_called
);
/// Before: nothing showed how many regulars were waiting, nor when the
/// team would have reached them.
async fn status_runs_show_and_the_weekly_summary_show_the_call_list_and_when_all_will_have_been_called(
    Db { url, .. }: Db,
) {
    let extra = CHECKIN.to_string() + &member("paula", "daily_capacity = 2");
    let t = TestApp::new(&url, &extra).await;
    t.import(&(many("P", 10, "paula") + "X,x@example.de,Xaver,+49 221 9,yes,yes,yes,no,\n"))
        .await;
    let run = run_checkin(&t, berlin(2026, 11, MON, 7, 0)).await;
    let nine = berlin(2026, 11, MON, 9, 0);
    t.tick(nine).await;
    // Two for Monday; eight wait, two a day from Tuesday: Friday.
    let summary = outreach::tasks::summary::summarize(&t.app, nine)
        .await
        .unwrap();
    assert_eq!(summary.waiting, 8, "{url}: {summary:?}");
    assert_eq!(
        summary
            .by_reason
            .iter()
            .map(|(r, n)| (r.as_str(), *n))
            .collect::<Vec<_>>(),
        [("regular", 8)],
        "{url}"
    );
    assert_eq!(summary.all_called_by, Some(day(2026, 11, FRI)), "{url}");
    // Maria manages Jonas: her weekly summary says the same.
    let weekly: Vec<Mail> = mails_to(&t, MARIA)
        .into_iter()
        .filter(|m| m.subject == "Anrufliste: Wochenüberblick")
        .collect();
    assert_eq!(weekly.len(), 1, "{url}");
    let text = weekly[0].text();
    assert!(
        text.contains("Auf der Anrufliste warten 8 Menschen:"),
        "{text}"
    );
    assert!(
        text.contains("- Stammgäste mit Ansprechperson: 8"),
        "{text}"
    );
    assert!(text.contains("alle bis zum 27.11.2026 angerufen"), "{text}");
    t.tick(berlin(2026, 11, TUE, 9, 0)).await;
    assert_eq!(
        mails_to(&t, MARIA)
            .iter()
            .filter(|m| m.subject.starts_with("Anrufliste"))
            .count(),
        1,
        "{url}: once a week"
    );

    let cli = |args: &[&str]| {
        let out = std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&t.app.config.path)
            .args(args)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", common::stderr(&out));
        common::stdout(&out)
    };
    let status = cli(&["status"]);
    assert!(status.contains("Call list:"), "{status}");
    assert!(status.contains("8 waiting on the call list:"), "{status}");
    assert!(
        status.contains("check-in, regular of a staff member: 8"),
        "{status}"
    );
    assert!(
        status.contains("everyone will have been called by"),
        "{status}"
    );
    let json: serde_json::Value = serde_json::from_str(&cli(&["status", "--json"])).unwrap();
    assert_eq!(json["call_list"]["waiting"], 8, "{json}");
    let show = cli(&["runs", "show", &run.to_string()]);
    for line in [
        "planned as calls: 2",
        "waiting on the call list: 8",
        "check-in, regular of a staff member: 8",
        "Left out: 1",
        "do not call: 1",
    ] {
        assert!(show.contains(line), "{url}: `{line}` in:\n{show}");
    }
}

backend_test!(a_campaign_that_skips_closing_days_holds_its_email_until_the_business_is_open);
/// A campaign may say that its email waits while the business is closed.
async fn a_campaign_that_skips_closing_days_holds_its_email_until_the_business_is_open(
    Db { url, .. }: Db,
) {
    let quiet = NEWS.replace("id = \"news\"", "id = \"ruhig\"") + "skip_closed_days = true\n";
    let t = TestApp::with_fragment(
        &url,
        &format!("{CHECKIN}{NEWS}{quiet}"),
        "[business]\nclosed = [\"holidays:de\"]\n",
    )
    .await;
    t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
        .await;
    let christmas = berlin(2026, 12, 25, 10, 0);
    let news = start_now(&t.app, "news", christmas).await.unwrap();
    let held = start_now(&t.app, "ruhig", christmas).await.unwrap();
    t.tick(christmas).await;
    t.deliver_all(christmas).await;
    assert_eq!(t.count(news, "sent").await, 1, "{url}: no say, no wait");
    assert_eq!(t.count(held, "planned").await, 1, "{url}");
    t.deliver_all(berlin(2026, 12, 26, 23, 59)).await;
    assert_eq!(
        t.count(held, "sent").await,
        0,
        "{url}: the 26th is a holiday too"
    );
    t.deliver_all(berlin(2026, 12, 27, 0, 1)).await;
    assert_eq!(t.count(held, "sent").await, 1, "{url}");
}

backend_test!(an_old_database_migrates_forward_with_its_callbacks_marked);
/// A database an older version left (callbacks stored as plain calls)
/// migrates forward: callbacks are marked with their day and owner, and
/// nothing is lost.
async fn an_old_database_migrates_forward_with_its_callbacks_marked(Db { url, .. }: Db) {
    const OLD_ROWS: &str = "
        INSERT INTO customers (name, phone, phone_consent, created_at, updated_at)
            VALUES ('Anna', '+49 1', TRUE, '2026-11-20T09:00:00+00:00', '2026-11-20T09:00:00+00:00'),
                   ('Ben', '+49 2', TRUE, '2026-11-20T09:00:00+00:00', '2026-11-20T09:00:00+00:00');
        INSERT INTO tasks (rule_id, customer_id, staff_id, kind, state, reason, due_on, attempts, outcome, outcome_at, created_at, updated_at)
            VALUES ('hallo', 1, 'jonas', 'call', 'done', 'Lange nichts gehört', '2026-11-23', 1, 'callback', '2026-11-23T10:00:00+00:00', '2026-11-20T09:00:00+00:00', '2026-11-23T10:00:00+00:00');
        INSERT INTO tasks (rule_id, customer_id, staff_id, kind, state, reason, due_on, parent_id, created_at, updated_at)
            VALUES ('hallo', 1, 'jonas', 'call', 'open', 'callback agreed: lieber Donnerstag', '2026-12-17', 1, '2026-11-23T10:00:00+00:00', '2026-11-23T10:00:00+00:00'),
                   ('hallo', 2, 'maria', 'call', 'open', 'Lange nichts gehört', '2026-11-24', NULL, '2026-11-20T09:00:00+00:00', '2026-11-20T09:00:00+00:00');";
    let backend = if url.starts_with("sqlite") {
        "sqlite"
    } else {
        "postgres"
    };
    let old = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::repo_path(&format!("migrations/{backend}"))).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0007" {
            std::fs::copy(&path, old.path().join(&name)).unwrap();
        }
    }
    // (A fresh database: the rows get ids 1, 2, 3 in order.)
    let migrator = sqlx::migrate::Migrator::new(old.path()).await.unwrap();
    if backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(&format!("{url}?mode=rwc"))
            .await
            .unwrap();
        migrator.run(&pool).await.unwrap();
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        migrator.run(&pool).await.unwrap();
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let store = outreach::store::Store::connect(&url, 2).await.unwrap();
    store.migrate().await.unwrap();
    let callback = store.task(2).await.unwrap().unwrap();
    assert_eq!(
        (
            callback.kind.as_str(),
            callback.agreed_on,
            callback.owner_id.as_str(),
            callback.state.as_str()
        ),
        ("callback", Some(day(2026, 12, 17)), "jonas", "open"),
        "{url}"
    );
    let call = store.task(3).await.unwrap().unwrap();
    assert_eq!(
        (call.kind.as_str(), call.owner_id.as_str(), call.agreed_on),
        ("call", "maria", None),
        "{url}"
    );
    assert_eq!(
        store.tasks(None, false).await.unwrap().len(),
        3,
        "{url}: nothing lost"
    );
    assert_eq!(
        store.customers_with_open_call().await.unwrap().len(),
        2,
        "{url}: an open callback is an open call"
    );
    assert!(store.call_list(false).await.unwrap().is_empty());
    store.close().await;
}
