//! What the product keeps about a person, and for how long: forgetting
//! erases them everywhere (the database file included, on SQLite, and
//! their `.eml` files), the list of forgotten people holds keyed hashes
//! only, and details past `[retention]` are erased by the daily pass.
//! On SQLite and PostgreSQL, with explicit times.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::app::{TestApp, berlin};
use common::{Db, backend_test};
use outreach::domain::{Channel, NewObjection};
use outreach::schedule::start_now;
use outreach::store::{MailReport, ReportKind};
use outreach::tasks::record_outcome;

const CONFIG: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"

[[checkin]]
id = "hallo"
schedule = "0 3 1 1 *"
due_in = "0d"
reason = "Lange nichts gehört – einfach nachfragen, wie es geht."
template = "checkin"
"#;

const ANNA: &str = "annabell.vergessen@example.de";
const NOTE: &str = "Mann im Krankenhaus, Laden zu";

const CSV: &str = "external_id,email,name,phone,consent,phone_consent,do_not_call,is_business,owner
K-ANNA,annabell.vergessen@example.de,Annabell Vergessen,+49 221 5550199,yes,yes,no,no,jonas
K-BOB,bob.bleibt@example.de,Bob Bleibt,+49 221 5550200,yes,yes,no,no,jonas
";

/// Both customers got the newsletter (as files); Anna's call ended in
/// "needs help" with a note, which opened a follow-up for the manager.
async fn with_history(url: &str, fragment: &str, now: DateTime<Utc>) -> TestApp {
    let t = TestApp::with_fragment(url, CONFIG, fragment).await;
    t.import(CSV).await;
    start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    assert_eq!(t.deliver_all(now).await, 2, "{url}");
    start_now(&t.app, "hallo", now).await.unwrap();
    t.tick(now).await;
    let anna = t.app.store.find_customer(ANNA).await.unwrap().unwrap();
    let call = &t.app.store.customer_tasks(anna.id).await.unwrap()[0];
    assert!(
        record_outcome(&t.app, call.id, "needs_help", Some(NOTE), None, now)
            .await
            .unwrap()
    );
    t
}

fn forget(t: &TestApp, key: &str) -> std::process::Output {
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&t.app.config.path)
        .args(["customers", "forget", key])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", common::stderr(&out));
    out
}

backend_test!(forgetting_deletes_their_files_ends_their_tasks_erases_notes_and_leaves_no_trace_in_the_sqlite_file);
async fn forgetting_deletes_their_files_ends_their_tasks_erases_notes_and_leaves_no_trace_in_the_sqlite_file(
    Db { url, .. }: Db,
) {
    let now = berlin(2026, 11, 23, 10, 0);
    let t = with_history(&url, "", now).await;
    let anna = t.app.store.find_customer(ANNA).await.unwrap().unwrap();
    assert_eq!(t.mails_to(ANNA).len(), 1, "{url}");
    let tasks = t.app.store.customer_tasks(anna.id).await.unwrap();
    assert_eq!(
        tasks.len(),
        2,
        "{url}: the call and the manager's follow-up"
    );
    assert_eq!(tasks[1].state, "open");
    // Her own words on an objection, and a bounce quoting her address.
    let objection = NewObjection {
        channel: Channel::Phone,
        kind: None,
        at: now,
        recorded_by: "jonas".into(),
        source: "call outcome".into(),
        note: Some(NOTE.into()),
    };
    assert!(
        t.app
            .store
            .record_objection(anna.id, &objection)
            .await
            .unwrap()
    );
    let bounce = MailReport {
        kind: ReportKind::Permanent,
        customer_id: Some(anna.id),
        message_id: None,
        status: Some("5.1.1"),
        detail: "550 5.1.1 <annabell.vergessen@example.de>: mailbox unknown",
        digest: "privacy-test-bounce",
    };
    t.app.store.record_mail_report(&bounce, now).await.unwrap();

    let out = forget(&t, ANNA);
    assert!(
        common::stdout(&out).contains("1 email file(s) deleted"),
        "{}",
        common::stdout(&out)
    );

    assert!(t.mails_to(ANNA).is_empty(), "{url}: her .eml file is gone");
    assert_eq!(
        t.mails_to("bob.bleibt@example.de").len(),
        1,
        "{url}: Bob's stays"
    );
    for task in t.app.store.customer_tasks(anna.id).await.unwrap() {
        assert_ne!(task.state, "open", "{url}: {task:?}");
        assert_eq!(task.note, None, "{url}");
        assert!(!task.reason.contains("Krankenhaus"), "{url}: {task:?}");
    }
    for event in t.app.store.customer_events(anna.id).await.unwrap() {
        assert_eq!(event.detail, "", "{url}: {event:?}");
    }
    let objections = t.app.store.customer_objections(anna.id).await.unwrap();
    assert_eq!(objections.len(), 1, "{url}: the objection itself stays");
    assert_eq!(objections[0].note, None, "{url}");
    assert_eq!(
        strings(&url, "SELECT detail FROM mail_reports").await,
        [""],
        "{url}: the bounce stays, its text that quoted her goes"
    );
    assert!(
        t.app
            .store
            .tasks(None, true)
            .await
            .unwrap()
            .iter()
            .all(|t| t.customer_id != anna.id)
    );
    // The rest of the database keeps Bob and the counts.
    assert!(t.app.store.find_customer("K-BOB").await.unwrap().is_some());

    if let Some(file) = url.strip_prefix("sqlite://") {
        for suffix in ["", "-wal"] {
            let bytes = std::fs::read(format!("{file}{suffix}")).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for trace in [
                "annabell",
                "Annabell",
                "Vergessen",
                "5550199",
                "Krankenhaus",
                "K-ANNA",
            ] {
                assert!(
                    !text.contains(trace),
                    "`{trace}` is still in {file}{suffix}"
                );
            }
        }
    }
}

backend_test!(the_forgotten_are_kept_as_keyed_hashes_and_entries_from_before_keying_still_match);
async fn the_forgotten_are_kept_as_keyed_hashes_and_entries_from_before_keying_still_match(
    Db { url, .. }: Db,
) {
    use sha2::Digest;
    let t = TestApp::new(&url, CONFIG).await;
    t.import(CSV).await;
    forget(&t, ANNA);
    // What an older version wrote: the plain SHA-256 of an address.
    let plain = |address: &str| format!("email:{:x}", sha2::Sha256::digest(address.as_bytes()));
    let old = plain("zoe.frueher@example.de");
    insert_suppression(&url, &old).await;
    let keys = suppression_keys(&url).await;
    assert_eq!(keys.len(), 3, "{url}: {keys:?}");
    assert!(
        !keys.contains(&plain(ANNA)) && keys.iter().filter(|k| k.starts_with("hmac:")).count() == 2,
        "{url}: Anna's email and external id are keyed, not plain hashes: {keys:?}"
    );

    // Until it is keyed, the plain entry still keeps Zoe out …
    let zoe = "external_id,email,name\n,zoe.frueher@example.de,Zoe\n";
    let path = t.dir.path().join("zoe.csv");
    std::fs::write(&path, zoe).unwrap();
    let report = outreach::import::import_customers(
        &t.app.store,
        &path,
        outreach::import::ImportOptions::new(&t.app.config, false),
    )
    .await
    .unwrap();
    assert_eq!(report.forgotten, vec![2], "{url}");

    // … and the next start keys it in place, so no plain hash is left.
    let restarted = outreach::store::Store::connect(&url, 2).await.unwrap();
    outreach::app::App::build(t.app.config.clone(), restarted.clone(), "again".into())
        .await
        .unwrap();
    let keys = suppression_keys(&url).await;
    assert!(
        keys.iter().all(|k| k.starts_with("hmac:")),
        "{url}: {keys:?}"
    );
    assert!(!keys.contains(&old));
    let again = outreach::import::import_customers(
        &restarted,
        &path,
        outreach::import::ImportOptions::new(&t.app.config, false),
    )
    .await
    .unwrap();
    assert_eq!(again.forgotten, vec![2], "{url}: Zoe is still recognised");
    restarted.close().await;
}

#[tokio::test]
async fn a_different_suppression_key_is_refused_once_someone_was_forgotten_with_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let key = dir.path().join("suppression-key");
    std::fs::write(&key, "a".repeat(44)).unwrap();
    let extra = format!(
        "{CONFIG}\n[security]\nsuppression_key_file = \"{}\"\n",
        key.display()
    );
    let t = TestApp::new(&url, &extra).await;
    t.import(CSV).await;
    forget(&t, ANNA);
    std::fs::write(&key, "b".repeat(44)).unwrap();
    let config = outreach::config::Config::load_with_env(&t.app.config.path, Vec::new()).unwrap();
    let store = outreach::store::Store::connect(&url, 2).await.unwrap();
    let err = match outreach::app::App::build(config, store, "new-key".into()).await {
        Ok(_) => panic!("a changed suppression key was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("security.suppression_key_file")
            && err.contains("restore the previous key file"),
        "{err}"
    );
}

async fn insert_suppression(url: &str, key: &str) {
    run_sql(
        url,
        "INSERT INTO suppressions (key, reason, created_at) VALUES ($1, 'forgotten', $2)",
        key,
    )
    .await;
}

async fn suppression_keys(url: &str) -> Vec<String> {
    strings(url, "SELECT key FROM suppressions ORDER BY key").await
}

/// The one text column `sql` selects, every row.
async fn strings(url: &str, sql: &str) -> Vec<String> {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query_scalar(sql).fetch_all(&mut conn).await.unwrap()
    }
}

async fn run_sql(url: &str, sql: &str, value: &str) {
    use sqlx::Connection;
    let now = Utc::now();
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .bind(value)
            .bind(now)
            .execute(&mut conn)
            .await
            .unwrap();
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql)
            .bind(value)
            .bind(now)
            .execute(&mut conn)
            .await
            .unwrap();
    }
}

/// The `.eml` files in the outbox folder.
fn mail_files(t: &TestApp) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(t.outbox())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "eml"))
        .collect()
}

/// Sets a file's modification time, as if written at `at`.
fn written_at(path: &std::path::Path, at: DateTime<Utc>) {
    let file = std::fs::File::options().append(true).open(path).unwrap();
    file.set_modified(at.into()).unwrap();
}

backend_test!(
    the_daily_pass_deletes_old_mail_files_and_erases_old_details_but_keeps_dates_kinds_and_outcomes
);
async fn the_daily_pass_deletes_old_mail_files_and_erases_old_details_but_keeps_dates_kinds_and_outcomes(
    Db { url, .. }: Db,
) {
    let retention = "[retention]\noutbox_files = \"14d\"\ndetails = \"180d\"\n";
    let sent = berlin(2026, 3, 2, 10, 0);
    let t = with_history(&url, retention, sent).await;
    let old = mail_files(&t);
    assert!(old.len() >= 2, "{url}: the newsletters are files");
    for file in &old {
        written_at(file, sent);
    }
    let anna = t.app.store.find_customer(ANNA).await.unwrap().unwrap();
    let bounce = MailReport {
        kind: ReportKind::Temporary,
        customer_id: Some(anna.id),
        message_id: None,
        status: Some("4.2.2"),
        detail: "452 4.2.2 <annabell.vergessen@example.de>: mailbox full",
        digest: "retention-test-bounce",
    };
    t.app.store.record_mail_report(&bounce, sent).await.unwrap();

    // 13 days on: nothing is old enough. (Later ticks send digests: new files.)
    t.tick(sent + Duration::days(13)).await;
    assert!(old.iter().all(|f| f.exists()), "{url}");
    // 15 days on: they go; a file that turns up later that day waits for the next day's pass.
    t.tick(sent + Duration::days(15)).await;
    assert!(old.iter().all(|f| !f.exists()), "{url}");
    let late = t.outbox().join("late.eml");
    std::fs::write(&late, "To: x@example.de\r\n\r\nx").unwrap();
    written_at(&late, sent);
    t.tick(sent + Duration::days(15) + Duration::hours(6)).await;
    assert!(late.exists(), "{url}: one pass a day");
    t.tick(sent + Duration::days(16)).await;
    assert!(!late.exists(), "{url}");
    // The note is still there before its time …
    let tasks = t.app.store.customer_tasks(anna.id).await.unwrap();
    assert_eq!(tasks[0].note.as_deref(), Some(NOTE), "{url}");
    assert_eq!(
        strings(&url, "SELECT detail FROM mail_reports").await,
        [bounce.detail],
        "{url}"
    );

    // … and gone after it; dates, kinds, outcomes and the proof of consent stay.
    t.tick(sent + Duration::days(181)).await;
    let tasks = t.app.store.customer_tasks(anna.id).await.unwrap();
    assert_eq!(tasks[0].note, None, "{url}: {tasks:?}");
    assert_eq!(tasks[0].outcome.map(|o| o.as_str()), Some("needs_help"));
    assert!(tasks[0].outcome_at.is_some());
    let events = t.app.store.customer_events(anna.id).await.unwrap();
    for e in &events {
        match e.kind.as_str() {
            "consent_given" => assert!(e.detail.contains("source"), "{url}: {e:?}"),
            _ => assert!(!e.detail.contains("Krankenhaus"), "{url}: {e:?}"),
        }
    }
    assert!(events.iter().any(|e| e.kind == "call_outcome"), "{url}");
    let messages = t.app.store.customer_messages(anna.id).await.unwrap();
    assert_eq!(messages[0].state, "sent");
    assert!(messages[0].sent_at.is_some());
    assert_eq!(messages[0].smtp_reply, None, "{url}");
    assert_eq!(
        strings(&url, "SELECT status FROM mail_reports").await,
        ["4.2.2"],
        "{url}: the bounce stays"
    );
    assert_eq!(
        strings(&url, "SELECT detail FROM mail_reports").await,
        [""],
        "{url}: its text that quoted her goes"
    );
}
