//! Objections stick: "no more emails" or "do not call" — by the link in an
//! email, told to staff (`customers unsubscribe|do-not-call`), or a "no" in
//! an imported list — is kept with who recorded it, how and when, and the
//! next import of a list saying "yes" does not undo it. Only a consent
//! dated after the objection does, and the import says so.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use common::app::{TestApp, berlin};
use common::{Db, Env, backend_test, stderr, stdout};
use outreach::domain::{Channel, NewObjection};
use outreach::schedule::start_now;
use outreach::store::Store;
use outreach::tokens::Purpose;
use serde_json::Value;
use tower::ServiceExt;

fn show(env: &Env, key: &str) -> Value {
    let out = env.run(&["customers", "show", key, "--json"]);
    assert!(out.status.success(), "show {key}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

fn import(env: &Env, name: &str, csv: &str) -> String {
    let file = env.write(name, csv);
    let out = env.run(&["import", "customers", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    stdout(&out)
}

const MASTER: &str = "E-Mail;Vorname;Newsletter;Telefon;Telefoneinwilligung;Nicht anrufen\n\
    anna@example.de;Anna;ja;+49 221 555 0101;ja;nein\n\
    ben@example.de;Ben;ja;+49 221 555 0102;ja;nein\n";

backend_test!(objections_told_to_staff_survive_the_next_import_of_the_master_list);
async fn objections_told_to_staff_survive_the_next_import_of_the_master_list(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    import(&env, "stamm.csv", MASTER);
    // Anna calls: no more emails, and no more calls either.
    let out = env.run(&[
        "customers",
        "unsubscribe",
        "anna@example.de",
        "--note",
        "am Telefon",
        "--by",
        "maria",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(
            "no more emails (recorded by maria via outreach customers unsubscribe): am Telefon; later imports do not undo it"
        ),
        "{}",
        stdout(&out)
    );
    let out = env
        .command(&["customers", "do-not-call", "anna@example.de"])
        .env("USER", "jonas")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("do not call (recorded by jonas via outreach customers do-not-call)"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let twice = env.run(&["customers", "unsubscribe", "anna@example.de"]);
    assert!(
        stdout(&twice).contains("already recorded on "),
        "{}",
        stdout(&twice)
    );

    // The master list again, still saying yes to both.
    let text = import(&env, "stamm.csv", MASTER);
    assert!(
        text.starts_with(
            "imported 0, updated 0, unchanged 2, rejected 0, skipped as forgotten 0, objections kept 2"
        ),
        "{url}: {text}"
    );
    assert!(
        text.contains("line 2: objection kept: says yes to email, but the customer objected on "),
        "{text}"
    );
    assert!(
        text.contains(
            "line 2: objection kept: says do_not_call no, but the customer objected to calls on "
        ),
        "{text}"
    );
    let anna = show(&env, "anna@example.de");
    assert!(anna["customer"]["unsubscribed_at"].is_string(), "{anna}");
    assert_eq!(anna["customer"]["do_not_call"], true);
    let objections = anna["objections"].as_array().unwrap();
    let who: Vec<(&str, &str, &str, Option<&str>)> = objections
        .iter()
        .map(|o| {
            (
                o["channel"].as_str().unwrap(),
                o["recorded_by"].as_str().unwrap(),
                o["source"].as_str().unwrap(),
                o["note"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            (
                "email",
                "maria",
                "outreach customers unsubscribe",
                Some("am Telefon")
            ),
            ("phone", "jonas", "outreach customers do-not-call", None)
        ]
    );
    let plain = stdout(&env.run(&["customers", "show", "anna@example.de"]));
    assert!(
        plain.contains("objection: no more emails since ")
            && plain.contains(", recorded by maria via outreach customers unsubscribe: am Telefon"),
        "{plain}"
    );
    // Ben said nothing: his yes stands.
    let ben = show(&env, "ben@example.de");
    assert_eq!(ben["customer"]["consent"], true);
    assert!(ben["customer"]["unsubscribed_at"].is_null());
}

backend_test!(only_a_consent_dated_after_the_objection_lifts_it_and_the_import_lists_the_row);
async fn only_a_consent_dated_after_the_objection_lifts_it_and_the_import_lists_the_row(
    Db { url, .. }: Db,
) {
    let env = Env::new(&url, "");
    import(&env, "stamm.csv", MASTER);
    let store = Store::connect(&url, 1).await.unwrap();
    let anna = store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 1, 10, 0, 0).unwrap();
    for channel in [Channel::Email, Channel::Phone] {
        let objection = NewObjection {
            channel,
            kind: None,
            at,
            recorded_by: "maria".into(),
            source: "counter".into(),
            note: None,
        };
        assert!(store.record_objection(anna.id, &objection).await.unwrap());
    }
    store.close().await;

    let older = import(
        &env,
        "alt.csv",
        "email;consent;phone_consent\nanna@example.de;01.03.2026;2026-02-01\n",
    );
    assert!(older.contains("objections kept 2"), "{url}: {older}");
    assert!(
        older.contains(
            "line 2: objection kept: consent dated 2026-03-01 is not later than the objection of 2026-03-01 via counter; it stays in force"
        ),
        "{older}"
    );
    assert!(show(&env, "anna@example.de")["customer"]["unsubscribed_at"].is_string());

    let newer = import(
        &env,
        "neu.csv",
        "email;consent;phone_consent\nanna@example.de;15.03.2026;15.03.2026\n",
    );
    assert!(newer.contains("re-subscribed 2"), "{newer}");
    assert!(
        newer.contains(
            "line 2: re-subscribed: consent dated 2026-03-15 is later than the objection of 2026-03-01 via counter: lifted"
        ),
        "{newer}"
    );
    assert!(
        newer.contains(
            "line 2: re-subscribed: phone consent dated 2026-03-15 is later than the objection"
        ),
        "{newer}"
    );
    let anna = show(&env, "anna@example.de");
    let c = &anna["customer"];
    assert!(c["unsubscribed_at"].is_null(), "{anna}");
    assert_eq!(c["consent"], true);
    assert!(c["consent_at"].as_str().unwrap().starts_with("2026-03-15"));
    assert_eq!(c["do_not_call"], false);
    for o in anna["objections"].as_array().unwrap() {
        assert!(o["lifted_at"].is_string(), "{o}");
        assert!(
            o["lifted_because"]
                .as_str()
                .unwrap()
                .ends_with("dated 2026-03-15 in import line 2 of neu.csv"),
            "{o}"
        );
    }
}

backend_test!(a_no_in_the_list_records_its_source_and_a_later_yes_does_not_undo_it);
async fn a_no_in_the_list_records_its_source_and_a_later_yes_does_not_undo_it(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    import(
        &env,
        "a.csv",
        "email;consent;consent_source\nben@example.de;ja;Website\n",
    );
    let file = env.write(
        "nein.csv",
        "email;consent;consent_source\nben@example.de;nein;Anruf 12.3.\n",
    );
    let out = env
        .command(&["import", "customers", file.to_str().unwrap()])
        .env("USER", "kasse")
        .env_remove("SUDO_USER")
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("imported 0, updated 1"),
        "{}",
        stdout(&out)
    );
    let ben = show(&env, "ben@example.de");
    assert_eq!(ben["customer"]["consent"], false);
    assert_eq!(ben["customer"]["consent_source"], "Anruf 12.3.");
    let objection = &ben["objections"][0];
    assert_eq!(
        objection["source"],
        "import line 2 of nein.csv (Anruf 12.3.)"
    );
    assert_eq!(objection["recorded_by"], "kasse");
    // The shop system's next export still says yes.
    let text = import(
        &env,
        "a.csv",
        "email;consent;consent_source\nben@example.de;ja;Website\n",
    );
    assert!(text.contains("objections kept 1"), "{url}: {text}");
    assert_eq!(show(&env, "ben@example.de")["customer"]["consent"], false);
}

backend_test!(an_unsubscribe_by_link_survives_a_reimport);
async fn an_unsubscribe_by_link_survives_a_reimport(Db { url, .. }: Db) {
    let t = TestApp::new(&url, "").await;
    t.import("email,consent\nanna@example.de,yes\n").await;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let token = t.app.signer.sign(
        Purpose::Unsubscribe,
        anna.id,
        Utc::now() + chrono::Duration::days(30),
    );
    let response = t
        .router()
        .await
        .oneshot(
            Request::post(format!("/u/{token}"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from("List-Unsubscribe=One-Click"))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let report = t.import("email,consent\nanna@example.de,yes\n").await;
    assert_eq!(report.kept.len(), 1, "{url}: {:?}", report.kept);
    assert!(
        report.kept[0].1.contains("via unsubscribe link"),
        "{:?}",
        report.kept
    );
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    assert!(anna.mailable().is_err());
    let objections = t.app.store.customer_objections(anna.id).await.unwrap();
    assert_eq!(objections[0].recorded_by, "the customer");
}

backend_test!(an_import_restores_what_an_objection_says_if_the_customer_row_lost_it);
async fn an_import_restores_what_an_objection_says_if_the_customer_row_lost_it(Db { url, .. }: Db) {
    let t = TestApp::new(&url, "").await;
    t.import("email,consent,phone_consent\nanna@example.de,yes,yes\n")
        .await;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    for channel in [Channel::Email, Channel::Phone] {
        let objection = NewObjection {
            channel,
            kind: None,
            at: berlin(2026, 3, 1, 10, 0),
            recorded_by: "maria".into(),
            source: "counter".into(),
            note: None,
        };
        assert!(
            t.app
                .store
                .record_objection(anna.id, &objection)
                .await
                .unwrap()
        );
    }
    // What a full-row write of a concurrent import would leave behind.
    let mut stale = anna.clone();
    stale.updated_at = Utc::now();
    let write = outreach::store::CustomerWrite {
        customer: stale,
        events: Vec::new(),
        objections: Vec::new(),
        lifted: Vec::new(),
    };
    t.app
        .store
        .write_customers(&[write], Utc::now())
        .await
        .unwrap();
    assert!(
        t.app
            .store
            .find_customer("anna@example.de")
            .await
            .unwrap()
            .unwrap()
            .mailable()
            .is_ok()
    );

    t.import("email,tier\nanna@example.de,Gold\n").await;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(anna.mailable(), Err("unsubscribed"), "{url}");
    assert_eq!(anna.unsubscribed_at, Some(berlin(2026, 3, 1, 10, 0)));
    assert!(anna.do_not_call);
}

const TWO_KINDS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 9 * * *"
template = "status_update"

[[campaign]]
id = "punkte"
kind = "loyalty"
schedule = "0 9 * * *"
template = "points"
"#;

async fn plan(t: &TestApp, id: &str, now: DateTime<Utc>) -> Vec<(String, Option<String>, i64)> {
    let run = start_now(&t.app, id, now).await.unwrap();
    t.tick(now).await;
    t.counts(run).await
}

backend_test!(an_objection_to_one_kind_of_email_holds_back_only_that_kind);
async fn an_objection_to_one_kind_of_email_holds_back_only_that_kind(Db { url, .. }: Db) {
    let t = TestApp::new(&url, TWO_KINDS).await;
    t.import("email,consent\nanna@example.de,yes\nben@example.de,yes\n")
        .await;
    let env = common::Env {
        dir: tempfile::tempdir().unwrap(),
        config: t.app.config.path.clone(),
    };
    let out = env.run(&[
        "customers",
        "unsubscribe",
        "anna@example.de",
        "--kind",
        "loyalty",
    ]);
    assert!(
        stdout(&out).contains("no more loyalty emails (recorded by"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let now = berlin(2026, 11, 23, 12, 0);
    assert_eq!(
        plan(&t, "news", now).await,
        [("planned".to_string(), None, 2)],
        "{url}"
    );
    let loyalty = plan(&t, "punkte", now).await;
    assert!(
        loyalty.contains(&("planned".into(), None, 1)),
        "{loyalty:?}"
    );
    assert!(
        loyalty.contains(&(
            "suppressed".into(),
            Some("no loyalty emails wanted".into()),
            1
        )),
        "{loyalty:?}"
    );
    let wrong = env.run(&[
        "customers",
        "unsubscribe",
        "anna@example.de",
        "--kind",
        "gutscheine",
    ]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(
        stderr(&wrong).contains(
            "--kind \"gutscheine\" is not a campaign kind; use one of status_update, loyalty, voucher"
        ),
        "{}",
        stderr(&wrong)
    );
}

/// Runs the migrations before this change on an empty database.
async fn migrate_before_objections<DB>(pool: &sqlx::Pool<DB>, backend: &str)
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
{
    let mut old = sqlx::migrate::Migrator::new(common::repo_path(&format!("migrations/{backend}")))
        .await
        .unwrap();
    old.migrations = old
        .migrations
        .iter()
        .filter(|m| m.version < 8)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    old.run(pool).await.unwrap();
}

/// Customers as the code before objections left them: Anna unsubscribed by
/// the link, Ben not to be called.
const OLD_ROWS: &str = "
INSERT INTO customers (email, consent, unsubscribed_at, do_not_call, created_at, updated_at)
VALUES ('anna@example.de', TRUE, '2026-03-01T10:00:00+00:00', FALSE, '2026-01-01T00:00:00+00:00', '2026-03-01T10:00:00+00:00'),
       ('ben@example.de', TRUE, NULL, TRUE, '2026-01-01T00:00:00+00:00', '2026-02-01T09:00:00+00:00');
INSERT INTO customer_events (customer_id, at, kind, detail)
SELECT id, '2026-03-01T10:00:00+00:00', 'unsubscribed', 'unsubscribe link' FROM customers WHERE email = 'anna@example.de';
";

backend_test!(an_old_database_keeps_its_unsubscribes_and_do_not_calls_as_objections);
async fn an_old_database_keeps_its_unsubscribes_and_do_not_calls_as_objections(Db { url, .. }: Db) {
    if url.starts_with("sqlite") {
        let options = url
            .parse::<sqlx::sqlite::SqliteConnectOptions>()
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        migrate_before_objections(&pool, "sqlite").await;
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        migrate_before_objections(&pool, "postgres").await;
        sqlx::raw_sql(OLD_ROWS).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let env = Env::new(&url, "");
    assert!(env.run(&["migrate"]).status.success());
    let anna = show(&env, "anna@example.de");
    let o = &anna["objections"][0];
    assert_eq!(
        (&o["channel"], &o["recorded_by"], &o["source"]),
        (
            &Value::from("email"),
            &Value::from("the customer"),
            &Value::from("unsubscribe link")
        ),
        "{url}: {anna}"
    );
    assert!(
        o["at"].as_str().unwrap().starts_with("2026-03-01T10:00:00"),
        "{o}"
    );
    let ben = show(&env, "ben@example.de");
    assert_eq!(ben["objections"][0]["channel"], "phone", "{ben}");
    assert!(
        ben["objections"][0]["at"]
            .as_str()
            .unwrap()
            .starts_with("2026-02-01T09:00:00")
    );
    // And they stick like new ones.
    let text = import(
        &env,
        "stamm.csv",
        "email,consent,do_not_call\nanna@example.de,ja,\nben@example.de,,nein\n",
    );
    assert!(text.contains("objections kept 2"), "{url}: {text}");
    assert_eq!(
        show(&env, "ben@example.de")["customer"]["do_not_call"],
        true
    );
}
