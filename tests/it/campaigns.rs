//! Automated campaigns: schedules in a real time zone, catch-up, one run per
//! occurrence across daemons, and who gets what (consent, cap, quiet hours,
//! locale), on SQLite and PostgreSQL.

use crate::common;

use chrono::{Duration, Timelike};
use chrono_tz::Tz;
use common::app::{TestApp, berlin};
use common::{Db, backend_test};
use outreach::schedule::start_now;

const NEWS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "30 2 * * *"
template = "status_update"
"#;

const CUSTOMERS: &str = "external_id,email,name,locale,timezone,consent,tags\n\
    A,anna@example.de,Anna,de,Europe/Berlin,yes,newsletter\n\
    B,ben@example.com,Ben,en,Europe/London,yes,newsletter\n\
    C,clara@example.de,Clara,de,Europe/Berlin,no,newsletter\n\
    D,dora@example.fr,Dora,fr,Europe/Paris,yes,newsletter\n";

async fn step_through(t: &TestApp, from: chrono::DateTime<chrono::Utc>, hours: i64) {
    let mut now = from;
    while now < from + Duration::hours(hours) {
        t.tick(now).await;
        now += Duration::minutes(10);
    }
}

backend_test!(a_time_repeated_at_fall_back_runs_once);
async fn a_time_repeated_at_fall_back_runs_once(Db { url, .. }: Db) {
    let t = TestApp::new(&url, NEWS).await;
    step_through(&t, berlin(2026, 10, 24, 12, 0), 48).await;
    let runs = t.runs_of("news").await;
    let local: Vec<String> = runs
        .iter()
        .map(|r| {
            r.occurrence
                .with_timezone(&"Europe/Berlin".parse::<Tz>().unwrap())
                .format("%d %H:%M %Z")
                .to_string()
        })
        .collect();
    assert_eq!(local, ["25 02:30 CEST", "26 02:30 CET"], "{url}");
    assert!(runs.iter().all(|r| r.trigger == "schedule"));
}

backend_test!(a_time_skipped_at_spring_forward_runs_once_that_day);
async fn a_time_skipped_at_spring_forward_runs_once_that_day(Db { url, .. }: Db) {
    // 02:30 does not exist on 28 March 2027 in Berlin.
    let t = TestApp::new(&url, NEWS).await;
    step_through(&t, berlin(2027, 3, 27, 12, 0), 48).await;
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let spring: Vec<String> = t
        .runs_of("news")
        .await
        .iter()
        .map(|r| {
            r.occurrence
                .with_timezone(&tz)
                .format("%d %H:%M")
                .to_string()
        })
        .collect();
    assert_eq!(
        spring,
        ["28 03:00", "29 02:30"],
        "{url}: once on the day of the gap, at the first valid time"
    );
}

#[tokio::test]
async fn nine_o_clock_stays_nine_o_clock_local_across_the_dst_change() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = TestApp::new(&url, &NEWS.replace("30 2 * * *", "0 9 * * *")).await;
    step_through(&t, berlin(2027, 3, 26, 12, 0), 72).await;
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    let hours: Vec<u32> = t
        .runs_of("news")
        .await
        .iter()
        .map(|r| r.occurrence.with_timezone(&tz).hour())
        .collect();
    assert_eq!(hours, [9, 9, 9]);
    let utc: Vec<u32> = t
        .runs_of("news")
        .await
        .iter()
        .map(|r| r.occurrence.hour())
        .collect();
    assert_eq!(utc, [8, 7, 7], "UTC shifts by an hour after spring-forward");
}

backend_test!(a_run_missed_while_down_is_caught_up_once_and_older_ones_are_skipped);
async fn a_run_missed_while_down_is_caught_up_once_and_older_ones_are_skipped(Db { url, .. }: Db) {
    let t = TestApp::new(&url, &NEWS.replace("30 2 * * *", "0 10 * * *")).await;
    t.tick(berlin(2026, 11, 2, 9, 0)).await; // first sight of the rule
    // Down over 10:00; back at 12:00 (within catch_up = 6h).
    t.tick(berlin(2026, 11, 2, 12, 0)).await;
    t.tick(berlin(2026, 11, 2, 12, 5)).await;
    let runs = t.runs_of("news").await;
    assert_eq!(runs.len(), 1, "{url}: {runs:?}");
    assert_eq!(runs[0].trigger, "catch_up");
    // Down from then until the evening two days later: both 10:00 runs are too old.
    t.tick(berlin(2026, 11, 4, 18, 0)).await;
    let runs = t.runs_of("news").await;
    let states: Vec<(&str, &str)> = runs
        .iter()
        .map(|r| (r.trigger.as_str(), r.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            ("catch_up", "done"),
            ("schedule", "skipped"),
            ("schedule", "skipped")
        ],
        "{url}"
    );
}

backend_test!(two_daemons_on_one_database_run_an_occurrence_once_and_mail_each_customer_once);
async fn two_daemons_on_one_database_run_an_occurrence_once_and_mail_each_customer_once(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, &NEWS.replace("30 2 * * *", "0 10 * * *")).await;
    t.import(CUSTOMERS).await;
    let other = t.sibling("second-daemon").await;
    let first_seen = berlin(2026, 11, 2, 9, 0);
    t.tick(first_seen).await;
    let at = berlin(2026, 11, 2, 10, 0);
    outreach::daemon::tick(&other, &t.delivery, at)
        .await
        .unwrap();
    t.tick(at).await;
    // A restart: the same daemon again.
    let restarted = t.sibling("test").await;
    outreach::daemon::tick(&restarted, &t.delivery, at + Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(t.runs_of("news").await.len(), 1, "{url}");
    t.deliver_all(at).await;
    for address in ["anna@example.de", "ben@example.com", "dora@example.fr"] {
        assert_eq!(t.mails_to(address).len(), 1, "{url}: {address}");
    }
    assert!(
        t.mails_to("clara@example.de").is_empty(),
        "no consent, no mail"
    );
}

backend_test!(only_consenting_customers_are_mailed_and_everyone_else_is_recorded_with_the_reason);
async fn only_consenting_customers_are_mailed_and_everyone_else_is_recorded_with_the_reason(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, NEWS).await;
    t.import(CUSTOMERS).await;
    let ben = t.app.store.find_customer("B").await.unwrap().unwrap();
    t.app
        .store
        .unsubscribe(ben.id, "test", chrono::Utc::now())
        .await
        .unwrap();
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    let counts = t.counts(run).await;
    assert!(
        counts.contains(&("planned".into(), None, 2)),
        "{url}: {counts:?}"
    );
    assert!(
        counts.contains(&("suppressed".into(), Some("no consent".into()), 1)),
        "{counts:?}"
    );
    assert!(
        counts.contains(&("suppressed".into(), Some("unsubscribed".into()), 1)),
        "{counts:?}"
    );
    t.deliver_all(now).await;
    assert_eq!(t.count(run, "sent").await, 2);
    assert_eq!(t.outbox_mails().len(), 2);
}

backend_test!(the_frequency_cap_holds_across_campaigns);
async fn the_frequency_cap_holds_across_campaigns(Db { url, .. }: Db) {
    let extra = NEWS.replace("frequency_cap = \"\"", "frequency_cap = \"2/7d\"")
        + "[[campaign]]\nid = \"second\"\nkind = \"status_update\"\nschedule = \"0 9 * * *\"\ntemplate = \"status_update\"\n"
        + "[[campaign]]\nid = \"third\"\nkind = \"loyalty\"\nschedule = \"0 9 * * *\"\ntemplate = \"points\"\n";
    let t = TestApp::new(&url, &extra).await;
    t.import("email,consent\nanna@example.de,yes\n").await;
    let now = berlin(2026, 11, 23, 12, 0);
    let mut runs = Vec::new();
    for id in ["news", "second", "third"] {
        runs.push(start_now(&t.app, id, now).await.unwrap());
        t.tick(now).await;
        t.deliver_all(now).await;
    }
    assert_eq!(t.count(runs[0], "sent").await, 1, "{url}");
    assert_eq!(t.count(runs[1], "sent").await, 1);
    let third = t.counts(runs[2]).await;
    assert_eq!(
        third,
        [(
            "suppressed".to_string(),
            Some("frequency cap (2 per 7 days)".to_string()),
            1
        )],
        "{url}"
    );
}

backend_test!(quiet_hours_defer_by_the_customers_own_time_zone_and_never_drop);
async fn quiet_hours_defer_by_the_customers_own_time_zone_and_never_drop(Db { url, .. }: Db) {
    let t = TestApp::new(
        &url,
        &NEWS.replace("quiet_hours = \"\"", "quiet_hours = \"20:00-08:00\""),
    )
    .await;
    t.import("email,consent,timezone\nberlin@example.de,yes,Europe/Berlin\nny@example.com,yes,America/New_York\n").await;
    let now = berlin(2026, 11, 23, 12, 0); // 06:00 in New York
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    assert_eq!(t.mails_to("berlin@example.de").len(), 1, "{url}");
    assert!(
        t.mails_to("ny@example.com").is_empty(),
        "still night in New York"
    );
    assert_eq!(t.count(run, "planned").await, 1);
    t.deliver_all(berlin(2026, 11, 23, 13, 59)).await;
    assert!(t.mails_to("ny@example.com").is_empty(), "07:59 in New York");
    t.deliver_all(berlin(2026, 11, 23, 14, 0)).await;
    assert_eq!(t.mails_to("ny@example.com").len(), 1, "08:00 in New York");
    assert_eq!(t.count(run, "sent").await, 2);
}

#[tokio::test]
async fn each_customer_gets_their_locale_with_fallback_and_the_required_headers() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = TestApp::new(&url, NEWS).await;
    t.import(CUSTOMERS).await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    let ben = &t.mails_to("ben@example.com")[0];
    assert!(ben.contains("Subject: How things are at"), "{ben}");
    let dora = &t.mails_to("dora@example.fr")[0];
    assert!(
        dora.contains("Subject: Wie es uns bei"),
        "French falls back to the business locale: {dora}"
    );
    let dora = common::mail::Mail::parse(dora);
    assert!(
        dora.html().contains("<html lang=\"de\">"),
        "the HTML says the language it is written in: {}",
        dora.html()
    );
    let anna = &t.mails_to("anna@example.de")[0];
    let anna_id = t.app.store.find_customer("A").await.unwrap().unwrap().id;
    assert!(
        anna.contains(&format!(
            "Message-ID: <outreach.{run}.{anna_id}@cafe-test.example>"
        )),
        "{anna}"
    );
    assert!(
        anna.contains("List-Unsubscribe: <http://127.0.0.1:8080/u/"),
        "{anna}"
    );
    assert!(anna.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    assert!(anna.contains("Content-Type: multipart/alternative"));
    assert!(anna.contains("Content-Type: text/html"));
    assert!(anna.contains("Date: "));
    assert!(
        anna.contains("Teststra=C3=9Fe 1, 50667 K=C3=B6ln")
            || anna.contains("Teststraße 1, 50667 Köln"),
        "postal address in the footer: {anna}"
    );
}

#[tokio::test]
async fn a_template_with_an_undefined_variable_fails_check_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(common::repo_path("templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, templates.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        templates.join("typo.de.md"),
        "subject: Hallo\nZeile eins\n\nHallo {{ customer.nmae }}\n",
    )
    .unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let extra = "[[campaign]]\nid = \"typo\"\nkind = \"status_update\"\nschedule = \"0 9 * * *\"\ntemplate = \"typo\"\n";
    let env = common::Env::in_dir(dir, &url, extra);
    let text = std::fs::read_to_string(&env.config).unwrap().replace(
        &common::repo_path("templates").display().to_string(),
        &templates.display().to_string(),
    );
    std::fs::write(&env.config, text).unwrap();
    let out = env.run(&["check"]);
    let err = common::stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("typo.de.md: line 3: undefined value"), "{err}");
}

/// Imports `csv` (customers A and B) and unsubscribes A, so that a page
/// holds a timestamp as well as a missing one.
async fn import_and_unsubscribe_a(t: &TestApp, csv: &str) {
    t.import(csv).await;
    let a = t.app.store.find_customer("A").await.unwrap().unwrap();
    t.app
        .store
        .unsubscribe(a.id, "test", berlin(2026, 5, 1, 10, 0))
        .await
        .unwrap();
}

backend_test!(every_audience_name_reads_the_same_value_from_its_columns_as_from_the_whole_row);
/// Planning reads only the columns its audience needs (`columns_read_by`):
/// every name an audience can read must give the same value from those
/// columns as from the whole row, or an audience would silently match wrong.
async fn every_audience_name_reads_the_same_value_from_its_columns_as_from_the_whole_row(
    Db { url, .. }: Db,
) {
    use outreach::context::{columns_read_by, customer_value_on};
    use outreach::store::CustomerColumns;
    let t = TestApp::new(&url, NEWS).await;
    import_and_unsubscribe_a(
        &t,
        "external_id;email;name;phone;locale;timezone;consent;phone_consent;do_not_call;is_business;owner;tags;points;tier;customer_since;birthday;stadtteil\n\
         A;anna@example.de;Anna;+49 221 1;de;Europe/Berlin;ja;ja;nein;nein;;newsletter;120;Gold;2019-03-04;1980-02-29;Ehrenfeld\n\
         B;ben@example.com;Ben;;en;Europe/London;nein;nein;ja;ja;;stammgast;0;;;;Nippes\n",
    )
    .await;
    let day = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
    let full = t
        .app
        .store
        .customers_page(0, 10, &CustomerColumns::all())
        .await
        .unwrap();
    assert_eq!(full.len(), 2, "{url}");
    // Pages are read by position, not by `FromRow`: the whole row must be
    // the customer a lookup by name reads.
    for (external_id, paged) in ["A", "B"].iter().zip(&full) {
        let looked_up = t.app.store.find_customer(external_id).await.unwrap();
        assert_eq!(
            looked_up.as_ref(),
            Some(paged),
            "{url}: customer {external_id}"
        );
    }
    let names: Vec<String> = customer_value_on(&full[0], day)
        .try_iter()
        .unwrap()
        .map(|k| k.to_string())
        .collect();
    assert!(names.iter().any(|n| n == "stadtteil"), "{names:?}");
    for name in &names {
        let columns =
            CustomerColumns::only(std::iter::once("id").chain(columns_read_by([name.as_str()])));
        let partial = t.app.store.customers_page(0, 10, &columns).await.unwrap();
        for (whole, part) in full.iter().zip(&partial) {
            let expected = customer_value_on(whole, day).get_attr(name).unwrap();
            let got = customer_value_on(part, day).get_attr(name).unwrap();
            assert_eq!(got, expected, "{url}: `{name}` of customer {}", whole.id);
        }
    }
}

/// SQLite's pages are read straight through its C interface, which decodes
/// only the forms outreach writes; a page with a value in another form (a
/// timestamp set by hand, a number where a date belongs) must still read
/// as sqlx reads it, and a broken value must still be an error.
#[tokio::test]
async fn a_sqlite_page_reads_every_column_and_values_in_other_forms_as_a_lookup_does() {
    use outreach::store::CustomerColumns;
    let Db { url, .. } = Db::sqlite();
    let t = TestApp::new(&url, NEWS).await;
    import_and_unsubscribe_a(
        &t,
        "external_id;email;salutation;first_name;last_name;name;company;note;phone;locale;timezone;consent;consent_source;phone_consent;do_not_call;is_business;owner;tags;points;tier;customer_since;birthday;stadtteil\n\
         A;anna@example.de;Frau;Anna;Berg;Anna Berg;Berg GmbH;ruft abends zurück;+49 221 1;de;Europe/Berlin;ja;Tresen;ja;nein;ja;maria;newsletter;120;Gold;2019-03-04;1980-02-29;Ehrenfeld\n\
         B;ben@example.com;;;;Ben;;;;en;Europe/London;nein;;nein;ja;nein;;;0;;;;\n",
    )
    .await;
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let store = &t.app.store;
    /// The page of all columns, each customer checked against a lookup.
    async fn page(
        store: &outreach::store::Store,
    ) -> anyhow::Result<Vec<outreach::domain::Customer>> {
        let page = store.customers_page(0, 10, &CustomerColumns::all()).await?;
        for (external_id, paged) in ["A", "B"].iter().zip(&page) {
            let looked_up = store.find_customer(external_id).await.unwrap();
            assert_eq!(looked_up.as_ref(), Some(paged), "customer {external_id}");
        }
        Ok(page)
    }
    assert_eq!(page(store).await.unwrap().len(), 2);

    // Forms sqlx reads but outreach does not write: without `T` or zone,
    // without seconds, with `Z`.
    sqlx::query(
        "UPDATE customers SET created_at = '2025-06-01 12:00:00', consent_at = '2025-06-01T12:00',
                last_personal_contact_at = '2026-04-30T08:00:00Z' WHERE external_id = 'B'",
    )
    .execute(&pool)
    .await
    .unwrap();
    let read = page(store).await.unwrap();
    let ben = &read[1];
    let noon = chrono::DateTime::parse_from_rfc3339("2025-06-01T12:00:00Z").unwrap();
    assert_eq!(ben.created_at, noon);
    assert_eq!(ben.consent_at, Some(noon.into()));
    assert_eq!(
        ben.last_personal_contact_at,
        Some(
            chrono::DateTime::parse_from_rfc3339("2026-04-30T08:00:00Z")
                .unwrap()
                .into()
        )
    );

    // Broken JSON in a column is an error, as it was before.
    sqlx::query("UPDATE customers SET tags = 'kaputt' WHERE external_id = 'A'")
        .execute(&pool)
        .await
        .unwrap();
    let err = page(store).await.unwrap_err();
    assert!(format!("{err:#}").contains("reading customers"), "{err:#}");
}

/// A run of the campaign `news`, started by hand, in planning.
async fn planning_run(store: &outreach::store::Store, now: chrono::DateTime<chrono::Utc>) -> i64 {
    use outreach::domain::{RuleKind, RunState};
    store
        .create_run(
            &outreach::store::NewRun {
                rule_id: "news",
                rule_kind: RuleKind::Campaign,
                occurrence: now,
                trigger: "manual",
                state: RunState::Planning,
                detail: "",
            },
            now,
        )
        .await
        .unwrap()
        .unwrap()
}

backend_test!(a_plan_that_meets_rows_it_did_not_expect_writes_nothing_and_the_retry_keeps_them);
/// A run that had no rows when planning began is written without
/// `ON CONFLICT` (`ExistingRows::Refuse`): should rows appear all the same
/// (a second daemon took over a plan whose lease ran out), the batch fails
/// whole, and the next attempt, which sees them, keeps them.
async fn a_plan_that_meets_rows_it_did_not_expect_writes_nothing_and_the_retry_keeps_them(
    Db { url, .. }: Db,
) {
    use outreach::domain::{MessageState, RunState};
    use outreach::store::{ExistingRows, NewMessage};
    let t = TestApp::new(&url, NEWS).await;
    t.import(
        "external_id;email;consent\n\
         A;anna@example.de;ja\n\
         B;ben@example.de;ja\n\
         C;cem@example.de;ja\n",
    )
    .await;
    let now = berlin(2026, 6, 1, 10, 0);
    let store = &t.app.store;
    let customers = store
        .customers_page(0, 10, &outreach::store::CustomerColumns::only(["id"]))
        .await
        .unwrap();
    let [a, b, c] = [0, 1, 2].map(|i| customers[i].id);
    let run = planning_run(store, now).await;
    let insert = |ids: [i64; 2], state: MessageState, existing: ExistingRows| {
        let rows: Vec<NewMessage> = ids
            .iter()
            .map(|&customer_id| NewMessage {
                customer_id,
                state,
                reason: None,
                not_before: now,
                voucher_code: None,
            })
            .collect();
        async move {
            store
                .insert_messages(run, &rows, "x.example", existing, now)
                .await
        }
    };
    let counts = || async {
        let mut counts: Vec<(String, i64)> = store
            .run_counts(&[run])
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.state.to_string(), c.n))
            .collect();
        counts.sort();
        counts
    };
    insert([a, b], MessageState::Planned, ExistingRows::Refuse)
        .await
        .unwrap();
    let refused = insert([b, c], MessageState::Suppressed, ExistingRows::Refuse).await;
    assert!(
        refused.is_err(),
        "{url}: a row planned twice must fail the batch"
    );
    assert_eq!(
        counts().await,
        [("planned".to_string(), 2)],
        "{url}: nothing of the failed batch"
    );
    insert([b, c], MessageState::Suppressed, ExistingRows::Keep)
        .await
        .unwrap();
    assert_eq!(
        counts().await,
        [("planned".to_string(), 2), ("suppressed".to_string(), 1)],
        "{url}: the customer planned twice keeps the row it had"
    );
    // The Message-IDs are built by the database from the run and customer.
    store
        .transition_run(run, &[RunState::Planning], RunState::Sending, None, now)
        .await
        .unwrap();
    let mut claimed = store
        .claim_messages("test", now, now + chrono::Duration::minutes(10), 10)
        .await
        .unwrap();
    claimed.sort_by_key(|c| c.customer_id);
    let ids: Vec<String> = claimed.into_iter().map(|c| c.message_id).collect();
    assert_eq!(
        ids,
        [a, b].map(|c| format!("<outreach.{run}.{c}@x.example>")),
        "{url}"
    );
}

backend_test!(a_batch_of_every_kind_of_row_is_written_as_given);
/// The outbox insert takes rows apart by what they share (SQLite groups
/// rows that differ only in their customer): whatever the mix — more
/// distinct send times than groups, suppressions with reasons, voucher
/// codes — every row is written exactly as given, and a batch whose last
/// row is refused writes none of its rows.
async fn a_batch_of_every_kind_of_row_is_written_as_given(Db { url, .. }: Db) {
    use outreach::domain::MessageState;
    use outreach::store::{ExistingRows, NewMessage};
    let t = TestApp::new(&url, NEWS).await;
    let mut csv = String::from("external_id;email;consent\n");
    for i in 0..20 {
        csv.push_str(&format!("K{i};kunde{i}@example.de;ja\n"));
    }
    t.import(&csv).await;
    let now = berlin(2026, 6, 1, 10, 0);
    let store = &t.app.store;
    let ids: Vec<i64> = store
        .customers_page(0, 100, &outreach::store::CustomerColumns::only(["id"]))
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    let run = planning_run(store, now).await;
    // Customers 0–11: twelve send times, some shared; 12–14 suppressed for
    // two reasons; 15–17 with voucher codes.
    let row = |i: usize| {
        let customer_id = ids[i];
        match i {
            0..12 => NewMessage {
                customer_id,
                state: MessageState::Planned,
                reason: None,
                not_before: now + Duration::minutes((i % 10) as i64 * 7),
                voucher_code: None,
            },
            12..15 => NewMessage {
                customer_id,
                state: MessageState::Suppressed,
                reason: Some(
                    if i == 13 {
                        "frequency cap"
                    } else {
                        "no consent"
                    }
                    .into(),
                ),
                not_before: now,
                voucher_code: None,
            },
            _ => NewMessage {
                customer_id,
                state: MessageState::Planned,
                reason: None,
                not_before: now,
                voucher_code: Some(format!("CODE-{i}")),
            },
        }
    };
    let rows: Vec<NewMessage> = (0..18).map(row).collect();
    store
        .insert_messages(run, &rows, "x.example", ExistingRows::Refuse, now)
        .await
        .unwrap();
    // New customers first, the last row one already written (in the part
    // that is not grouped): nothing of it may stay.
    let mut refused: Vec<NewMessage> = (18..20)
        .map(|i| NewMessage {
            customer_id: ids[i],
            ..row(0)
        })
        .collect();
    refused.push(row(17));
    assert!(
        store
            .insert_messages(run, &refused, "x.example", ExistingRows::Refuse, now)
            .await
            .is_err(),
        "{url}: a row written twice must fail its batch"
    );

    type Row = (
        i64,
        String,
        Option<String>,
        chrono::DateTime<chrono::Utc>,
        Option<String>,
        String,
    );
    const SQL: &str = "SELECT customer_id, state, reason, not_before, voucher_code, message_id
                       FROM messages WHERE run_id = $1 ORDER BY customer_id";
    let written: Vec<Row> = if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
        sqlx::query_as(SQL)
            .bind(run)
            .fetch_all(&pool)
            .await
            .unwrap()
    } else {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        sqlx::query_as(SQL)
            .bind(run)
            .fetch_all(&pool)
            .await
            .unwrap()
    };
    let expected: Vec<Row> = rows
        .iter()
        .map(|m| {
            (
                m.customer_id,
                m.state.to_string(),
                m.reason.as_deref().map(str::to_string),
                m.not_before,
                m.voucher_code.clone(),
                format!("<outreach.{run}.{}@x.example>", m.customer_id),
            )
        })
        .collect();
    assert_eq!(written, expected, "{url}");
}
