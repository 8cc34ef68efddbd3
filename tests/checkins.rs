//! Personal check-ins, the heart of the product: a check-in rule never emails
//! a customer, it creates call tasks for staff (owner first, least loaded
//! otherwise, within working days, capacity and absences); staff get one
//! digest per working day at their own `digest_at`; outcomes recorded on the
//! task page feed back into the customer; overdue calls escalate, untouched
//! ones expire. On SQLite and PostgreSQL, driven with explicit times.

mod common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use chrono::{DateTime, Duration, NaiveDate, Utc};
use common::app::{TestApp, berlin, body_text};
use common::databases;
use common::mail::Mail;
use outreach::domain::Customer;
use outreach::schedule::start_now;
use outreach::store::Task;
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

#[tokio::test]
async fn a_check_in_run_creates_call_tasks_never_emails_a_customer_and_records_who_was_left_out_and_why()
 {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
            runs[0].detail.contains("3 call task(s), 3 left out"),
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
}

#[tokio::test]
async fn the_owner_gets_the_call_and_customers_without_an_owner_go_to_the_least_loaded_colleague() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

#[tokio::test]
async fn with_least_loaded_the_calls_are_shared_out_whoever_the_owner_is() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

#[tokio::test]
async fn calls_beyond_the_daily_capacity_wait_for_the_next_working_day_and_earlier_ones_keep_their_day()
 {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        let mut due = Vec::new();
        for key in ["P1", "P2", "P3", "P4", "P5"] {
            let task = task_of(&t, key).await;
            assert_eq!(task.staff_id, "paula", "{url}: {key} stays with the owner");
            due.push(task.due_on);
        }
        assert_eq!(
            due,
            [
                day(2026, 11, THU),
                day(2026, 11, THU),
                day(2026, 11, FRI),
                day(2026, 11, FRI),
                day(2026, 11, 30), // not on the weekend: Monday
            ],
            "{url}"
        );
    }
}

#[tokio::test]
async fn a_staff_member_who_does_not_work_mondays_gets_no_monday_calls_and_no_monday_digest() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

#[tokio::test]
async fn absent_staff_get_no_new_calls_and_their_open_calls_move_to_the_least_loaded_colleague() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

// ---- the digest ----

#[tokio::test]
async fn each_staff_member_gets_one_digest_per_working_day_at_digest_at_in_their_own_time_zone() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        assert!(
            text.contains("Warum: Lange nichts gehört – einfach nachfragen, wie es geht."),
            "{text}"
        );
        assert!(
            text.contains("„Wie geht es Ihnen gerade?“"),
            "German talking points: {text}"
        );
        assert!(
            text.contains("wie es Xaver Überall geht"),
            "talking points rendered for the customer: {text}"
        );
        assert!(
            text.contains("Letzte Kontakte: 2026-11-19 news (run"),
            "the newsletter shows as a last contact: {text}"
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
        assert_eq!(ics.matches("BEGIN:VTODO").count(), 2, "{ics}");
        assert!(ics.contains("DUE;VALUE=DATE:20261119"), "{ics}");
        assert!(ics.contains("DUE;VALUE=DATE:20261123"), "{ics}");
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

#[tokio::test]
async fn reached_sets_the_last_personal_contact_closes_the_task_and_adds_the_outcome_tags_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        assert_eq!(done.outcome.as_deref(), Some("reached"));
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
        assert_eq!(task(&t, call.id).await.outcome.as_deref(), Some("reached"));
    }
}

#[tokio::test]
async fn not_reached_is_retried_the_next_working_day_until_max_attempts_closes_the_task() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
            assert_eq!(call.outcome.as_deref(), Some("not_reached"));
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
}

#[tokio::test]
async fn callback_closes_the_task_and_creates_a_call_task_for_the_agreed_day() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
            (tasks[0].state.as_str(), tasks[0].outcome.as_deref()),
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
            ("call", "open", "jonas", day(2026, 11, THU), Some(call.id)),
            "{url}"
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
}

#[tokio::test]
async fn needs_help_hands_a_follow_up_to_the_manager_and_tags_the_customer_for_the_support_voucher()
{
    let dir = tempfile::tempdir().unwrap();
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
    for url in databases(dir.path()).await {
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
}

#[tokio::test]
async fn do_not_call_is_remembered_and_a_later_run_leaves_the_customer_out() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

// ---- the task page ----

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, form: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(form.to_string()))
        .unwrap()
}

#[tokio::test]
async fn the_task_page_from_the_digest_shows_the_call_on_get_and_records_the_outcome_once_on_post()
{
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
                done.outcome.as_deref(),
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
            html.contains("Ergebnis: Erreicht – Gespräch geführt Geht gut, danke"),
            "{html}"
        );
    }
}

/// Staff see a customer's name as it was imported, on the task page and in
/// the digest: a name full of Markdown is text there, never a link, an image,
/// a heading or formatting (the talking points template shows the name).
#[tokio::test]
async fn a_name_full_of_markdown_is_text_on_the_task_page_and_in_the_digest() {
    const NAME: &str = "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** `code` <b>x</b> &amp;\n# Titel\n- Punkt";
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
                assert!(
                    html.contains(
                        "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** `code` &lt;b&gt;x&lt;/b&gt; &amp;amp; # Titel - Punkt"
                    ),
                    "{url}: {what}: the talking points show the name as text: {html}"
                );
                // The template's own list is still a list.
                assert!(html.contains("<li>"), "{url}: {what}: {html}");
            }
            assert!(
                digest
                    .text()
                    .contains("[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** `code` <b>x</b> &amp;"),
                "{url}: the digest's text part has the name verbatim: {}",
                digest.text()
            );
        }
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
    let response = router
        .clone()
        .oneshot(post(
            &format!("/t/{token}"),
            &format!(
                "outcome=callback&callback_on={}",
                (now + Duration::days(3)).date_naive()
            ),
        ))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(tasks_of(&t, "A").await.len(), 2, "the callback is booked");
}

#[tokio::test]
async fn forged_expired_or_wrong_purpose_task_links_get_an_error_page_without_data() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

// ---- escalation and expiry ----

#[tokio::test]
async fn a_call_overdue_longer_than_escalate_after_goes_to_the_manager_once() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        assert!(text.contains("Jakob") && text.contains("jonas"), "{text}");
        assert!(text.contains("fällig am 23.11.2026"), "{text}");
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
}

#[tokio::test]
async fn a_call_untouched_for_expire_after_closes_as_expired_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        // Bruno's call was tried on Wednesday: that counts as touched.
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

        t.tick(berlin(2026, 11, SAT, 6, 59)).await;
        assert_eq!(task_of(&t, "A").await.state, "open", "{url}: 4d 23h 59m");
        t.tick(berlin(2026, 11, SAT, 7, 1)).await;
        let anna = task_of(&t, "A").await;
        assert_eq!(anna.state, "expired", "{url}");
        assert!(
            anna.note
                .as_deref()
                .unwrap_or("")
                .contains("expired: untouched for 5days"),
            "{anna:?}"
        );
        assert!(anna.outcome_at.is_some());
        assert_eq!(task_of(&t, "B").await.state, "open", "touched on Wednesday");
        t.tick(berlin(2026, 11, 30, 10, 1)).await;
        assert_eq!(task_of(&t, "B").await.state, "expired", "{url}");

        // An expired call is no open call: the next run may suggest it again.
        let run = run_checkin(&t, berlin(2026, 12, 1, 7, 0)).await;
        assert!(skip_counts(&t, run).await.is_empty(), "{url}");
        assert_eq!(tasks_of(&t, "A").await.len(), 2);
    }
}

// ---- the customer's history ----

#[tokio::test]
async fn customers_show_lists_messages_tasks_and_outcomes_in_time_order() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}

// ---- robustness ----

#[tokio::test(flavor = "multi_thread")]
async fn an_escalation_that_cannot_be_delivered_holds_up_neither_digests_nor_expiry() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
        // Wednesday 08:30: Pia's call is overdue for 1d 8h; Olga's is 2d old.
        let result =
            outreach::daemon::tick(&t.app, &t.delivery, berlin(2026, 11, WED, 8, 30)).await;
        assert!(result.is_ok(), "{url}: {result:?}");
        assert_eq!(task_of(&t, "O").await.state, "expired", "{url}");
        assert_eq!(
            received.count_to(MARIA),
            1,
            "{url}: Maria's digest goes out all the same"
        );
        assert_eq!(
            received.count_to("paula@cafe-test.example"),
            0,
            "hers expired"
        );
        assert!(
            task_of(&t, "P").await.escalated_at.is_none(),
            "not marked as escalated: it is tried again"
        );
    }
}

#[tokio::test]
async fn a_digest_sent_by_hand_replaces_that_days_scheduled_one() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
        let t = with_calls(&url, "", "maria", &["A"]).await;
        let maria = t.app.settings().staff[0].clone();
        let early = berlin(2026, 11, MON, 7, 30);
        assert!(
            outreach::tasks::digest::send_now(&t.app, &maria, early)
                .await
                .unwrap()
        );
        assert_eq!(digests_to(&t, MARIA).len(), 1, "{url}");
        t.tick(berlin(2026, 11, MON, 8, 30)).await;
        t.tick(berlin(2026, 11, MON, 12, 0)).await;
        assert_eq!(
            digests_to(&t, MARIA).len(),
            1,
            "{url}: `tasks digest` sends it instead of at digest_at, not as well"
        );
        // Asked for again by hand, it is sent again; the next day as usual.
        assert!(
            outreach::tasks::digest::send_now(&t.app, &maria, early + Duration::hours(6))
                .await
                .unwrap()
        );
        t.tick(berlin(2026, 11, TUE, 8, 30)).await;
        assert_eq!(digests_to(&t, MARIA).len(), 3, "{url}");
        let jonas = t.app.settings().staff[1].clone();
        assert!(
            !outreach::tasks::digest::send_now(&t.app, &jonas, early)
                .await
                .unwrap(),
            "nothing due, nothing sent"
        );
    }
}

#[tokio::test]
async fn an_outcome_sent_for_an_expired_task_says_so_instead_of_already_recorded() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
        let t = TestApp::new(
            &url,
            &CHECKIN.replace("expire_after = \"60d\"", "expire_after = \"5d\""),
        )
        .await;
        t.import(&format!("{CSV_HEADER}{}", callable("A", "Anna", "maria")))
            .await;
        let now = Utc::now();
        run_checkin(&t, now - Duration::days(6)).await;
        t.tick(now).await;
        let call = task_of(&t, "A").await;
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

#[tokio::test]
async fn the_gdpr_export_holds_call_notes_and_forgetting_erases_them() {
    let dir = tempfile::tempdir().unwrap();
    for url in databases(dir.path()).await {
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
}
