//! Delivery over real SMTP (an in-process server): one copy per customer,
//! retries after 4xx, 5xx fails only that message, unknown outcomes are held,
//! unsubscribes take effect even within a running batch; and the
//! unsubscribe endpoint itself.

use crate::common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::Duration;
use common::app::{TestApp, berlin, body_text};
use common::smtp::{self, smtp_config};
use common::{Db, backend_test};
use outreach::schedule::start_now;
use outreach::tokens::Purpose;
use tower::ServiceExt;

const CAMPAIGN: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 9 * * Thu"
template = "status_update"
"#;

fn customers(addresses: &[&str]) -> String {
    let mut csv = String::from("email,consent\n");
    for a in addresses {
        csv.push_str(&format!("{a},yes\n"));
    }
    csv
}

async fn start_run(t: &TestApp, now: chrono::DateTime<chrono::Utc>) -> i64 {
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    run
}

/// Two customers queued in a run started at `now`, to be sent to a test
/// SMTP server with `rate_per_minute`.
struct Queued {
    t: TestApp,
    received: smtp::Received,
    run: i64,
    now: chrono::DateTime<chrono::Utc>,
}

async fn two_queued(url: &str, rate_per_minute: u32) -> Queued {
    let (port, received) = smtp::start(None);
    let mail = smtp_config(port).replace(
        "rate_per_minute = 0",
        &format!("rate_per_minute = {rate_per_minute}"),
    );
    let t = TestApp::with_fragment(url, CAMPAIGN, &mail).await;
    t.import(&customers(&["a@example.de", "b@example.de"]))
        .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    Queued {
        t,
        received,
        run,
        now,
    }
}

async fn message_state(t: &TestApp, email: &str) -> (String, Option<String>) {
    let c = t.app.store.find_customer(email).await.unwrap().unwrap();
    let m = t
        .app
        .store
        .customer_messages(c.id)
        .await
        .unwrap()
        .pop()
        .unwrap();
    (m.state.to_string(), m.smtp_reply.or(m.reason))
}

backend_test!(
    every_customer_gets_exactly_one_copy_and_the_reply_is_recorded,
    flavor = "multi_thread"
);
async fn every_customer_gets_exactly_one_copy_and_the_reply_is_recorded(Db { url, .. }: Db) {
    let (port, received) = smtp::start(None);
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    let addresses: Vec<String> = (0..120).map(|i| format!("kunde{i}@example.de")).collect();
    t.import(&customers(
        &addresses.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    t.deliver_all(now).await;
    t.deliver_all(now + Duration::minutes(5)).await; // nothing left to send twice
    assert_eq!(received.total(), 120, "{url}");
    for a in &addresses {
        assert_eq!(received.count_to(a), 1, "{a}");
    }
    assert_eq!(t.count(run, "sent").await, 120);
    let (state, reply) = message_state(&t, "kunde7@example.de").await;
    assert_eq!(state, "sent");
    assert!(
        reply.unwrap().starts_with("250"),
        "the server's 250 reply is stored"
    );
    let mail = &received.messages.lock().unwrap()[0].1;
    assert!(mail.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
}

backend_test!(
    a_451_is_retried_later_and_a_550_fails_only_that_message,
    flavor = "multi_thread"
);
async fn a_451_is_retried_later_and_a_550_fails_only_that_message(Db { url, .. }: Db) {
    let (port, received) = smtp::start(None);
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    t.import(&customers(&[
        "tempfail-1@example.de",
        "nouser@example.de",
        "block@example.de",
        "ok1@example.de",
        "ok2@example.de",
    ]))
    .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    t.deliver_all(now).await;
    assert_eq!(received.count_to("ok1@example.de"), 1, "{url}");
    assert_eq!(received.count_to("ok2@example.de"), 1);
    let (state, reply) = message_state(&t, "nouser@example.de").await;
    assert_eq!(
        (
            state.as_str(),
            reply.as_deref().map(|r| r.contains("5.1.1"))
        ),
        ("failed", Some(true))
    );
    let (state, reply) = message_state(&t, "block@example.de").await;
    assert_eq!(state, "failed");
    assert!(reply.unwrap().contains("554"));
    let (state, reply) = message_state(&t, "tempfail-1@example.de").await;
    assert_eq!(state, "planned", "451 is temporary");
    assert!(reply.unwrap().contains("451"));
    // Not before its backoff…
    t.deliver_all(now + Duration::seconds(10)).await;
    assert_eq!(received.count_to("tempfail-1@example.de"), 0);
    // …but after it.
    t.deliver_all(now + Duration::minutes(2)).await;
    assert_eq!(received.count_to("tempfail-1@example.de"), 1);
    assert_eq!(message_state(&t, "tempfail-1@example.de").await.0, "sent");
    assert_eq!(t.count(run, "sent").await, 3);
    assert_eq!(t.count(run, "failed").await, 2);
    // The 5.1.1 address is bad now: a later run suppresses it.
    let later = now + Duration::days(1);
    let run2 = start_run(&t, later).await;
    let counts = t.counts(run2).await;
    assert!(
        counts.contains(&("suppressed".into(), Some("address bounced".into()), 1)),
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn temporary_failures_give_up_after_the_configured_age() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let (port, received) = smtp::start(None);
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    t.import(&customers(&["tempfail-99@example.de"])).await;
    let now = berlin(2026, 11, 23, 12, 0);
    start_run(&t, now).await;
    let mut at = now;
    for _ in 0..8 {
        t.deliver_all(at).await;
        at += Duration::minutes(20);
    }
    let (state, reply) = message_state(&t, "tempfail-99@example.de").await;
    assert_eq!(state, "failed");
    assert!(
        reply.unwrap().starts_with("gave up after 1 hour"),
        "give_up_after = 1h in the test config"
    );
    assert_eq!(received.total(), 0);
}

backend_test!(
    a_connection_dropped_after_the_data_leaves_the_message_unknown_and_it_is_not_resent,
    flavor = "multi_thread"
);
async fn a_connection_dropped_after_the_data_leaves_the_message_unknown_and_it_is_not_resent(
    Db { url, .. }: Db,
) {
    let (port, taken) = smtp::start_dropping();
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    t.import(&customers(&["anna@example.de"])).await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    t.deliver_all(now).await;
    assert_eq!(
        message_state(&t, "anna@example.de").await.0,
        "unknown",
        "{url}"
    );
    t.deliver_all(now + Duration::hours(1)).await;
    assert_eq!(taken.total(), 1, "never resent on its own");
    // The admin decides to resend.
    assert_eq!(t.app.store.retry_unknown(run, now).await.unwrap(), 1);
    assert_eq!(t.count(run, "planned").await, 1);
}

backend_test!(
    messages_claimed_by_a_daemon_that_died_become_unknown_after_their_lease,
    flavor = "multi_thread"
);
async fn messages_claimed_by_a_daemon_that_died_become_unknown_after_their_lease(
    Db { url, .. }: Db,
) {
    let (port, received) = smtp::start(None);
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    t.import(&customers(&[
        "a@example.de",
        "b@example.de",
        "c@example.de",
    ]))
    .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    // A daemon claims a batch and dies before recording anything.
    let claimed = t
        .app
        .store
        .claim_messages("dead-daemon", now, now + outreach::timings::get().lease, 2)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2);
    t.deliver_all(now).await; // the live daemon sends what is not claimed
    assert_eq!(received.total(), 1, "{url}");
    t.tick(now + outreach::timings::get().lease + Duration::minutes(1))
        .await;
    assert_eq!(t.count(run, "unknown").await, 2);
    t.deliver_all(now + Duration::hours(1)).await;
    assert_eq!(received.total(), 1, "unknown messages are held, not resent");
}

/// Runs one statement on the test database behind the daemon's back.
async fn execute(url: &str, sql: &str) {
    use sqlx::Connection;
    if url.starts_with("sqlite:") {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    } else {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
    }
}

backend_test!(
    a_live_daemon_does_not_expire_its_own_claims_when_its_clock_jumps_ahead,
    flavor = "multi_thread"
);
async fn a_live_daemon_does_not_expire_its_own_claims_when_its_clock_jumps_ahead(
    Db { url, .. }: Db,
) {
    let Queued { t, run, now, .. } = two_queued(&url, 0).await;
    let claimed = t
        .app
        .store
        .claim_messages(
            &t.app.instance,
            now,
            now + outreach::timings::get().lease,
            2,
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 2, "{url}");
    // The clock steps past the lease while this daemon is still sending.
    let later = now + outreach::timings::get().lease + Duration::minutes(5);
    t.tick(later).await;
    assert_eq!(t.count(run, "sending").await, 2, "{url}: own claims kept");
    // Another daemon at that time takes them for a dead daemon's.
    let other = t.sibling("other").await;
    outreach::daemon::tick(&other, &t.delivery, later)
        .await
        .unwrap();
    assert_eq!(t.count(run, "unknown").await, 2, "{url}");
}

backend_test!(
    a_batch_that_cannot_be_prepared_is_given_back_unsent_not_left_to_become_unknown,
    flavor = "multi_thread"
);
async fn a_batch_that_cannot_be_prepared_is_given_back_unsent_not_left_to_become_unknown(
    Db { url, .. }: Db,
) {
    let Queued {
        t,
        received,
        run,
        now,
    } = two_queued(&url, 0).await;
    // Reading the batch's customers fails after the claim.
    execute(&url, "ALTER TABLE customers RENAME TO customers_away").await;
    let mut mailer = outreach::mailer::MailerSettings::from_config(&t.app.config)
        .open()
        .unwrap();
    let failed = outreach::deliver::deliver_batch(&t.app, &t.delivery, &mut mailer, now).await;
    assert!(failed.is_err(), "{url}");
    execute(&url, "ALTER TABLE customers_away RENAME TO customers").await;
    assert_eq!(t.count(run, "planned").await, 2, "{url}: given back");
    assert_eq!(t.count(run, "sending").await, 0, "{url}");
    assert_eq!(received.total(), 0, "{url}");
    // The next attempt sends them, once each.
    t.deliver_all(now).await;
    assert_eq!(t.count(run, "sent").await, 2, "{url}");
    assert_eq!(received.total(), 2, "{url}");
}

backend_test!(
    a_send_slot_that_cannot_be_reserved_makes_the_batch_wait_not_fail,
    flavor = "multi_thread"
);
async fn a_send_slot_that_cannot_be_reserved_makes_the_batch_wait_not_fail(Db { url, .. }: Db) {
    let Queued {
        t,
        received,
        run,
        now,
    } = two_queued(&url, 600).await;
    // The rate window cannot be read: nothing goes out, nothing fails.
    execute(&url, "ALTER TABLE send_slots RENAME TO send_slots_away").await;
    t.deliver_all(now).await;
    execute(&url, "ALTER TABLE send_slots_away RENAME TO send_slots").await;
    assert_eq!(received.total(), 0, "{url}");
    assert_eq!(t.count(run, "planned").await, 2, "{url}: waiting");
    // They wait half a minute, as when the SMTP server is away (not
    // given back to be claimed again at once), and then go out, once each.
    t.deliver_all(now + Duration::seconds(10)).await;
    assert_eq!(received.total(), 0, "{url}: not due yet");
    t.deliver_all(now + Duration::seconds(31)).await;
    assert_eq!(t.count(run, "sent").await, 2, "{url}");
    assert_eq!(received.total(), 2, "{url}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unsubscribe_during_a_running_batch_stops_the_messages_not_yet_sent() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    // The HTTP server runs on a real port; the SMTP server unsubscribes the
    // last customer (one-click POST) the moment it accepts the first message.
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let token: Arc<std::sync::Mutex<String>> = Arc::default();
    let hook_token = token.clone();
    let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hook = Arc::new(move |_to: &[String]| {
        if fired.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", http_port)).unwrap();
        let body = "List-Unsubscribe=One-Click";
        let path = format!("/u/{}", hook_token.lock().unwrap());
        write!(s, "POST {path} HTTP/1.0\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        assert!(
            reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200"),
            "{reply}"
        );
    });
    let (port, received) = smtp::start(Some(hook));
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    t.import(&customers(&[
        "first@example.de",
        "second@example.de",
        "last@example.de",
    ]))
    .await;
    let last = t
        .app
        .store
        .find_customer("last@example.de")
        .await
        .unwrap()
        .unwrap();
    let now = berlin(2026, 11, 23, 12, 0);
    *token.lock().unwrap() = t.app.signer.sign(
        Purpose::Unsubscribe,
        last.id,
        chrono::Utc::now() + Duration::days(1),
    );
    let router = t.router().await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", http_port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let run = start_run(&t, now).await;
    t.deliver_all(now).await;
    assert_eq!(received.count_to("first@example.de"), 1);
    assert_eq!(received.count_to("second@example.de"), 1);
    assert_eq!(
        received.count_to("last@example.de"),
        0,
        "unsubscribed mid-batch"
    );
    assert!(
        t.counts(run)
            .await
            .contains(&("suppressed".into(), Some("unsubscribed".into()), 1))
    );
}

backend_test!(unsubscribe_links_confirm_on_get_act_on_post_and_refuse_bad_tokens);
async fn unsubscribe_links_confirm_on_get_act_on_post_and_refuse_bad_tokens(Db { url, .. }: Db) {
    let t = TestApp::new(&url, CAMPAIGN).await;
    t.import(&customers(&["anna@example.de"])).await;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let now = chrono::Utc::now();
    let token = t
        .app
        .signer
        .sign(Purpose::Unsubscribe, anna.id, now + Duration::days(30));
    let router = t.router().await;
    let get = router
        .clone()
        .oneshot(
            Request::get(format!("/u/{token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::OK);
    assert!(body_text(get).await.contains("<form method=\"post\">"));
    let still = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    assert!(
        still.unsubscribed_at.is_none(),
        "{url}: GET must not change anything (link scanners)"
    );

    let post = Request::post(format!("/u/{token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("List-Unsubscribe=One-Click"))
        .unwrap();
    let response = router.clone().oneshot(post).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::OK,
        "one-click answers 200, no redirect"
    );
    let gone = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    assert!(gone.unsubscribed_at.is_some());

    let forged = format!("{}x", &token[..token.len() - 1]);
    let task_token = t
        .app
        .signer
        .sign(Purpose::Task, anna.id, now + Duration::days(1));
    let expired = t
        .app
        .signer
        .sign(Purpose::Unsubscribe, anna.id, now - Duration::days(1));
    for (bad, status) in [
        (forged.as_str(), StatusCode::NOT_FOUND),
        (task_token.as_str(), StatusCode::NOT_FOUND),
        (expired.as_str(), StatusCode::GONE),
        ("garbage", StatusCode::NOT_FOUND),
    ] {
        let response = router
            .clone()
            .oneshot(
                Request::get(format!("/u/{bad}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{bad}");
        let text = body_text(response).await;
        assert!(!text.contains("anna"), "no data on an error page");
    }
}

#[tokio::test]
async fn metrics_show_the_queue_by_state() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = TestApp::new(&url, CAMPAIGN).await;
    t.import(&customers(&["a@example.de", "b@example.de"]))
        .await;
    let now = berlin(2026, 11, 23, 12, 0);
    start_run(&t, now).await;
    t.deliver_all(now).await;
    let response = t
        .router()
        .await
        .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let text = body_text(response).await;
    assert!(
        text.contains("outreach_messages{state=\"sent\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("outreach_send_attempts_total{result=\"sent\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("outreach_send_latency_seconds_count 2"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pipelining_server_gets_one_copy_each_and_a_rejected_recipient_does_not_derail_the_session()
 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let (port, received) = smtp::start_pipelining();
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(port)).await;
    let mut addresses: Vec<String> = (0..30).map(|i| format!("kunde{i}@example.de")).collect();
    addresses.insert(7, "nouser@example.de".into());
    addresses.insert(12, "rejectdata@example.de".into());
    t.import(&customers(
        &addresses.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    t.deliver_all(now).await;
    assert_eq!(received.total(), 30);
    for a in addresses
        .iter()
        .filter(|a| !a.starts_with("nouser") && !a.starts_with("rejectdata"))
    {
        assert_eq!(received.count_to(a), 1, "{a}");
    }
    assert_eq!(t.count(run, "sent").await, 30);
    let (state, reply) = message_state(&t, "nouser@example.de").await;
    assert_eq!(state, "failed");
    assert!(reply.unwrap().contains("5.1.1"));
    // Refused after its data, with the next envelope already under way:
    // only this message fails, the next one goes out once.
    let (state, reply) = message_state(&t, "rejectdata@example.de").await;
    assert_eq!(state, "failed");
    assert!(reply.unwrap().contains("5.7.1"));
    let (_, reply) = message_state(&t, "kunde8@example.de").await;
    assert!(
        reply.unwrap().starts_with("250 2.0.0 queued"),
        "the final reply is stored"
    );
}

backend_test!(
    send_slots_never_put_more_than_the_limit_in_any_minute,
    flavor = "multi_thread"
);
/// The rate window in the database: `limit` slots in any 60 seconds, the
/// same window for a second connection (another daemon on the database),
/// reserved at most a minute ahead, one or several at a time, and reset by
/// a clock stepped back.
async fn send_slots_never_put_more_than_the_limit_in_any_minute(Db { url, .. }: Db) {
    use outreach::store::{SendSlots, Store};
    let store = Store::connect(&url, 4).await.unwrap();
    store.migrate().await.unwrap();
    let other = Store::connect(&url, 4).await.unwrap();
    let t0 = berlin(2026, 11, 23, 10, 0);
    let at = move |s: i64| move || t0 + Duration::seconds(s);
    let secs = |slots: &[chrono::DateTime<chrono::Utc>]| -> Vec<i64> {
        slots.iter().map(|s| (*s - t0).num_seconds()).collect()
    };
    // Twelve at once from two "daemons": three now, three a minute
    // later, and the rest told to ask again in a minute.
    let tries = (0..12).map(|i| {
        let daemon = if i % 2 == 0 { &store } else { &other }.clone();
        tokio::spawn(async move { daemon.reserve_send_slots(3, 1, &at(0)).await })
    });
    let (mut all, mut full) = (Vec::new(), 0);
    for reply in futures::future::join_all(tries).await {
        match reply.unwrap().unwrap() {
            SendSlots::Reserved(slots) => all.extend(secs(&slots)),
            SendSlots::Full(retry) => {
                assert_eq!(retry.as_secs(), 60, "{url}");
                full += 1;
            }
        }
    }
    all.sort();
    assert_eq!(
        (all.as_slice(), full),
        (&[0, 0, 0, 60, 60, 60][..], 6),
        "{url}"
    );
    let full = store.reserve_send_slots(3, 1, &at(30)).await.unwrap();
    assert_eq!(
        full,
        SendSlots::Full(std::time::Duration::from_secs(30)),
        "{url}"
    );
    // Once the first three are a minute old: several at once, as far
    // as a minute ahead reaches.
    let Ok(SendSlots::Reserved(block)) = other.reserve_send_slots(3, 5, &at(61)).await else {
        panic!("{url}: nothing reserved at 61 s");
    };
    assert_eq!(secs(&block), [120, 120, 120], "{url}");
    all.extend(secs(&block));
    for start in &all {
        let n = all
            .iter()
            .filter(|t| (*start..start + 60).contains(t))
            .count();
        assert!(
            n <= 3,
            "{url}: {n} slots in the minute from {start} s: {all:?}"
        );
    }
    // A daemon whose clock is 1.5 s behind sees the newest slots (120 s)
    // a little over a minute ahead: they stay, and the minute is full.
    let behind = move || t0 + Duration::seconds(61) - Duration::milliseconds(1500);
    let full = store.reserve_send_slots(3, 1, &behind).await.unwrap();
    assert_eq!(
        full,
        SendSlots::Full(std::time::Duration::from_millis(60_500)),
        "{url}"
    );
    let Ok(SendSlots::Reserved(next)) = other.reserve_send_slots(3, 1, &at(121)).await else {
        panic!("{url}: nothing reserved at 121 s");
    };
    assert_eq!(secs(&next), [180], "{url}: the slots at 120 s were kept");
    // The clock stepped back an hour: slots ahead of it are dropped
    // rather than holding every send back for an hour.
    let after_step = store.reserve_send_slots(3, 1, &at(-3600)).await.unwrap();
    assert_eq!(
        after_step,
        SendSlots::Reserved(vec![t0 - Duration::seconds(3600)]),
        "{url}"
    );
    store.close().await;
    other.close().await;
}

/// A message's state and claim, by id.
async fn state_of(t: &TestApp, claimed: &outreach::store::Claimed) -> String {
    let messages = t
        .app
        .store
        .customer_messages(claimed.customer_id)
        .await
        .unwrap();
    messages
        .into_iter()
        .find(|m| m.id == claimed.id)
        .map(|m| m.state.to_string())
        .unwrap()
}

/// A journal as a daemon killed mid-send leaves it: written, unlocked, not removed.
fn dead_journal(
    dir: &std::path::Path,
    instance: &str,
    database: &str,
) -> outreach::journal::Journal {
    outreach::journal::Journal::open(dir, instance, database).unwrap()
}

fn abandon(journal: outreach::journal::Journal) {
    let segment = journal.segment().unwrap();
    segment.keep();
    drop(segment);
    drop(journal);
}

backend_test!(
    a_dead_daemons_send_journal_settles_its_claims_and_reconciling_again_changes_nothing,
    flavor = "multi_thread"
);
async fn a_dead_daemons_send_journal_settles_its_claims_and_reconciling_again_changes_nothing(
    Db { url, .. }: Db,
) {
    use outreach::journal::{self, Reconciled};
    use outreach::store::Outcome;
    use std::os::unix::fs::PermissionsExt;
    let t = TestApp::with_fragment(&url, CAMPAIGN, &smtp_config(1)).await;
    let addresses: Vec<String> = (0..5).map(|i| format!("j{i}@example.de")).collect();
    t.import(&customers(
        &addresses.iter().map(String::as_str).collect::<Vec<_>>(),
    ))
    .await;
    let now = berlin(2026, 11, 23, 12, 0);
    let run = start_run(&t, now).await;
    let dead = "dead-host-1-abcd";
    let claimed = t
        .app
        .store
        .claim_messages(dead, now, now + outreach::timings::get().lease, 5)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5, "{url}");
    let folder = tempfile::tempdir().unwrap();
    let jdir = folder.path().join("journal");
    let database = journal::database_id(&t.app.store).await.unwrap();
    assert_eq!(journal::database_id(&t.app.store).await.unwrap(), database);

    let written = dead_journal(&jdir, dead, &database);
    let segment = written.segment().unwrap();
    // 0: sent; 1: refused; 2: on the wire when killed; 3: claimed, never
    // started; 4: retried earlier in the daemon's life, on the wire again.
    let sent = Outcome::Sent {
        reply: "250 2.0.0 Ok: queued as 1".into(),
    };
    let refused = Outcome::Failed {
        reply: "550 5.1.1 no such user".into(),
    };
    segment.wire(claimed[0].id).unwrap();
    segment.result(claimed[0].id, &sent).unwrap();
    segment.wire(claimed[1].id).unwrap();
    segment.result(claimed[1].id, &refused).unwrap();
    segment.wire(claimed[4].id).unwrap();
    segment
        .result(
            claimed[4].id,
            &Outcome::Retry {
                at: now,
                reply: Some("451 later".into()),
            },
        )
        .unwrap();
    segment.wire(claimed[4].id).unwrap();
    segment.wire(claimed[2].id).unwrap();
    drop(segment);
    abandon(written);
    let files: Vec<_> = std::fs::read_dir(&jdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&files[0]), 0o600);
    assert_eq!(mode(&jdir), 0o700);
    // A power loss may leave half a line at the end.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&files[0])
        .unwrap();
    std::io::Write::write_all(&mut file, b"{\"result\":{\"id\":").unwrap();
    drop(file);
    let saved = std::fs::read(&files[0]).unwrap();

    // A live daemon's journal and another database's are left alone.
    let live = dead_journal(&jdir, "live-host-2-beef", &database);
    abandon(dead_journal(&jdir, "other-host-3-cafe", "another database"));

    let summary = journal::reconcile(&t.app.store, &jdir, &database)
        .await
        .unwrap();
    assert_eq!(
        summary,
        Reconciled {
            daemons: 1,
            recorded: 2,
            unknown: 2,
            given_back: 1,
            rebooted: 0
        },
        "{url}"
    );
    let mut states = Vec::new();
    for c in &claimed {
        states.push(state_of(&t, c).await);
    }
    assert_eq!(
        states,
        ["sent", "failed", "unknown", "planned", "unknown"],
        "{url}"
    );
    assert!(!files[0].exists(), "{url}: a reconciled journal is removed");
    let left = std::fs::read_dir(&jdir).unwrap().count();
    assert_eq!(left, 2, "{url}: the live and the foreign journal stay");

    // Cut short before the removal, then run again after a new daemon
    // claimed the message given back: nothing changes.
    let again = t
        .app
        .store
        .claim_messages(
            "new-host-4-f00d",
            now,
            now + outreach::timings::get().lease,
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|c| c.id).collect::<Vec<_>>(),
        [claimed[3].id]
    );
    std::fs::write(&files[0], &saved).unwrap();
    let summary = journal::reconcile(&t.app.store, &jdir, &database)
        .await
        .unwrap();
    assert_eq!(
        summary,
        Reconciled {
            daemons: 1,
            ..Reconciled::default()
        },
        "{url}"
    );
    let mut after = Vec::new();
    for c in &claimed {
        after.push(state_of(&t, c).await);
    }
    assert_eq!(
        after,
        ["sent", "failed", "unknown", "sending", "unknown"],
        "{url}"
    );
    assert_eq!(t.count(run, "sent").await, 1);
    drop(live);
}
