//! Bounces and complaints that come back by email days later: the tagged
//! return path, `outreach bounces ingest` on the formats real servers send,
//! and what each report changes (and what it must not), on SQLite and
//! PostgreSQL.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::app::{TestApp, berlin};
use common::dovecot::Dovecot;
use common::{Db, Env, backend_test, stderr, stdout};
use outreach::bounces::imap::poll_once;
use outreach::bounces::{Effect, ingest};
use outreach::schedule::start_now;

const NEWS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 9 * * Mon"
template = "status_update"
"#;

const CUSTOMERS: &str = "external_id,email,name,locale,consent\n\
    A,anna@example.de,Anna,de,yes\n\
    B,ben@example.com,Ben,en,yes\n";

/// Anna's sent message: its outbox id, tagged return path and Message-ID.
struct Sent {
    customer_id: i64,
    return_path: String,
    header_id: String,
}

async fn news_sent(t: &TestApp, now: DateTime<Utc>) -> Sent {
    t.import(CUSTOMERS).await;
    start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    assert_eq!(t.deliver_all(now).await, 2);
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let message = &t.app.store.customer_messages(anna.id).await.unwrap()[0];
    assert_eq!(message.state, "sent");
    let mail = &t.mails_to("anna@example.de")[0];
    let header_id = mail
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: "))
        .unwrap()
        .trim()
        .to_string();
    Sent {
        customer_id: anna.id,
        return_path: format!(
            "hallo+{}@cafe-test.example",
            t.app.signer.verp_tag(message.id)
        ),
        header_id,
    }
}

/// A fresh database on the same backend as `url`, for a test that needs
/// one per case.
async fn another_database(dir: &std::path::Path, url: &str) -> String {
    if url.starts_with("sqlite") {
        format!(
            "sqlite://{}",
            dir.join(format!("{}.db", rand::random::<u32>())).display()
        )
    } else {
        common::fresh_postgres(&std::env::var("TEST_POSTGRES_URL").unwrap()).await
    }
}

fn fixture(name: &str, return_path: &str, recipient: &str, header_id: &str) -> Vec<u8> {
    std::fs::read_to_string(common::repo_path(&format!("tests/fixtures/bounces/{name}")))
        .unwrap()
        .replace("{{RETURN_PATH}}", return_path)
        .replace("{{RECIPIENT}}", recipient)
        .replace("{{MESSAGE_ID}}", header_id)
        .into_bytes()
}

fn report(sent: &Sent, name: &str) -> Vec<u8> {
    fixture(name, &sent.return_path, "anna@example.de", &sent.header_id)
}

/// Anna's state in the next run: `None` if she gets it, else the reason.
async fn next_run_for_anna(t: &TestApp, now: DateTime<Utc>) -> Option<String> {
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let m = t
        .app
        .store
        .customer_messages(anna.id)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.run_id == run)
        .unwrap();
    (m.state != "sent").then(|| m.reason.unwrap_or_default())
}

async fn history_kinds(t: &TestApp, customer_id: i64) -> Vec<String> {
    t.app
        .store
        .customer_events(customer_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

backend_test!(a_permanent_bounce_arriving_a_day_later_suppresses_the_address);
async fn a_permanent_bounce_arriving_a_day_later_suppresses_the_address(Db { dir, url }: Db) {
    for name in ["postfix-dsn.eml", "exim-text.eml", "exchange-dsn.eml"] {
        let url = another_database(dir.path(), &url).await;
        let t = TestApp::new(&url, NEWS).await;
        let sent_at = berlin(2026, 12, 10, 9, 0);
        let sent = news_sent(&t, sent_at).await;
        let effect = ingest(&t.app, &report(&sent, name), sent_at + Duration::days(1))
            .await
            .unwrap();
        assert_eq!(
            effect,
            Effect::AddressBounced {
                customer_id: sent.customer_id
            },
            "{name} on {url}"
        );
        assert_eq!(
            next_run_for_anna(&t, sent_at + Duration::days(2))
                .await
                .as_deref(),
            Some("address bounced"),
            "{name} on {url}"
        );
        assert!(
            history_kinds(&t, sent.customer_id)
                .await
                .contains(&"address_bounced".to_string()),
            "{name}"
        );
        let metrics = common::app::body_text(
            tower::ServiceExt::oneshot(
                t.router().await,
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap(),
        )
        .await;
        assert!(
            metrics.contains("outreach_mail_reports_total{kind=\"permanent\"} 1"),
            "{metrics}"
        );
    }
}

backend_test!(three_temporary_bounces_within_thirty_days_count_as_permanent);
async fn three_temporary_bounces_within_thirty_days_count_as_permanent(Db { url, .. }: Db) {
    let t = TestApp::new(&url, NEWS).await;
    let day0 = berlin(2026, 12, 10, 9, 0);
    let sent = news_sent(&t, day0).await;
    // Each report is its own email (the relay's retries end on
    // different days); an identical one would be "read before".
    let mut n = 0;
    let mut expired = || {
        n += 1;
        [
            format!("X-Report: {n}\r\n").into_bytes(),
            report(&sent, "gmail-expired.eml"),
        ]
        .concat()
    };
    let soft = |n| Effect::SoftBounce {
        customer_id: sent.customer_id,
        in_window: n,
    };
    // One long ago, outside the window, then two within it: still soft.
    assert_eq!(ingest(&t.app, &expired(), day0).await.unwrap(), soft(1));
    let later = day0 + Duration::days(40);
    assert_eq!(ingest(&t.app, &expired(), later).await.unwrap(), soft(1));
    assert_eq!(
        ingest(&t.app, &expired(), later + Duration::days(10))
            .await
            .unwrap(),
        soft(2)
    );
    assert_eq!(
        next_run_for_anna(&t, later + Duration::days(11)).await,
        None
    );
    // The third within 30 days bounces the address.
    assert_eq!(
        ingest(&t.app, &expired(), later + Duration::days(20))
            .await
            .unwrap(),
        Effect::AddressBounced {
            customer_id: sent.customer_id
        }
    );
    assert_eq!(
        next_run_for_anna(&t, later + Duration::days(21))
            .await
            .as_deref(),
        Some("address bounced"),
        "{url}"
    );
}

backend_test!(a_spam_complaint_ends_marketing_email);
async fn a_spam_complaint_ends_marketing_email(Db { url, .. }: Db) {
    let t = TestApp::new(&url, NEWS).await;
    let sent_at = berlin(2026, 12, 10, 9, 0);
    let sent = news_sent(&t, sent_at).await;
    // The complaint's copy of the email has the recipient redacted; the
    // return path still names the message.
    let effect = ingest(
        &t.app,
        &report(&sent, "arf-abuse.eml"),
        sent_at + Duration::days(3),
    )
    .await
    .unwrap();
    assert_eq!(
        effect,
        Effect::Complaint {
            customer_id: sent.customer_id
        }
    );
    assert_eq!(
        next_run_for_anna(&t, sent_at + Duration::days(4))
            .await
            .as_deref(),
        Some("unsubscribed"),
        "{url}"
    );
    let events = t.app.store.customer_events(sent.customer_id).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.kind == "unsubscribed" && e.detail.contains("spam complaint")),
        "{events:?}"
    );
}

backend_test!(delays_auto_replies_and_reports_that_cannot_be_trusted_change_nothing);
async fn delays_auto_replies_and_reports_that_cannot_be_trusted_change_nothing(Db { url, .. }: Db) {
    let t = TestApp::new(&url, NEWS).await;
    let sent_at = berlin(2026, 12, 10, 9, 0);
    let sent = news_sent(&t, sent_at).await;
    let (tag_id, mac) = sent
        .return_path
        .trim_start_matches("hallo+")
        .split_once('@')
        .unwrap()
        .0
        .split_once('-')
        .unwrap();
    let flipped: String = mac
        .chars()
        .map(|c| if c == '0' { '1' } else { '0' })
        .collect();
    let forged = format!("hallo+{tag_id}-{flipped}@cafe-test.example");
    // Ben's message id with a genuine tag, but a report naming Anna.
    let ben = t
        .app
        .store
        .find_customer("ben@example.com")
        .await
        .unwrap()
        .unwrap();
    let ben_message = t.app.store.customer_messages(ben.id).await.unwrap()[0].id;
    let ben_path = format!(
        "hallo+{}@cafe-test.example",
        t.app.signer.verp_tag(ben_message)
    );
    let never_sent = format!(
        "hallo+{}@cafe-test.example",
        t.app.signer.verp_tag(ben_message + 1000)
    );
    let cases = [
        (report(&sent, "gmail-delay.eml"), "without a failure"),
        (report(&sent, "auto-reply.eml"), "automatic reply"),
        (
            fixture(
                "postfix-dsn.eml",
                &forged,
                "anna@example.de",
                &sent.header_id,
            ),
            "not genuine",
        ),
        (
            fixture(
                "postfix-dsn.eml",
                &ben_path,
                "anna@example.de",
                &sent.header_id,
            ),
            "another recipient",
        ),
        (
            fixture(
                "postfix-dsn.eml",
                &never_sent,
                "anna@example.de",
                &sent.header_id,
            ),
            "no message with this tag was sent",
        ),
        (
            fixture(
                "postfix-dsn.eml",
                "someone@else.example",
                "anna@example.de",
                &sent.header_id,
            ),
            "no return-path tag",
        ),
        (report(&sent, "postfix-dsn.eml"), "more than 180 days ago"),
    ];
    let last = cases.len() - 1;
    for (i, (raw, why)) in cases.iter().enumerate() {
        let at = if i == last {
            sent_at + Duration::days(181)
        } else {
            sent_at + Duration::days(1)
        };
        match ingest(&t.app, raw, at).await.unwrap() {
            Effect::Ignored(reason) => assert!(reason.contains(why), "{reason} / {why}"),
            other => panic!("case {i} ({why}) acted: {other:?}"),
        }
    }
    assert_eq!(
        next_run_for_anna(&t, sent_at + Duration::days(182)).await,
        None,
        "{url}"
    );
    assert!(
        !history_kinds(&t, sent.customer_id)
            .await
            .iter()
            .any(|k| k == "address_bounced" || k == "unsubscribed")
    );
    let counts = t.app.store.mail_report_counts().await.unwrap();
    assert_eq!(
        counts,
        vec![(outreach::store::ReportKind::Ignored, cases.len() as i64)]
    );
}

backend_test!(customer_email_goes_out_with_a_return_path_that_names_its_message);
async fn customer_email_goes_out_with_a_return_path_that_names_its_message(Db { url, .. }: Db) {
    let (port, received) = common::smtp::start(None);
    let t = TestApp::with_fragment(&url, NEWS, &common::smtp::smtp_config(port)).await;
    received.senders.lock().unwrap().clear();
    let now = berlin(2026, 12, 10, 9, 0);
    t.import(CUSTOMERS).await;
    start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    let senders = received.senders.lock().unwrap().clone();
    assert_eq!(senders.len(), 2, "{senders:?}");
    for sender in senders {
        let tag = sender
            .trim_matches(['<', '>'])
            .strip_prefix("hallo+")
            .and_then(|s| s.strip_suffix("@cafe-test.example"))
            .unwrap_or_else(|| panic!("not a tagged return path: {sender}"));
        let id = t.app.signer.verify_verp(tag).unwrap();
        let info = t.app.store.sent_message(id).await.unwrap();
        assert!(info.is_some(), "{sender} names no sent message");
    }
}

#[test]
fn the_ingest_command_exits_0_for_what_it_used_or_ignored_and_1_for_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
    let env = Env::in_dir(dir, &url, NEWS);
    let auto_reply = env.write(
        "auto-reply.eml",
        &String::from_utf8(fixture(
            "auto-reply.eml",
            "hallo+1-00@cafe-test.example",
            "anna@example.de",
            "<x@y>",
        ))
        .unwrap(),
    );
    let out = env.run(&["bounces", "ingest", auto_reply.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ignored: an automatic reply"),
        "{}",
        stdout(&out)
    );

    let mut child = env
        .command(&["bounces", "ingest", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"\x00\x01 this is no email at all")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an email: it has no From"),
        "{}",
        stderr(&out)
    );

    let empty = env.write("empty.eml", "\n\n");
    let out = env.run(&["bounces", "ingest", empty.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("empty"), "{}", stderr(&out));
}

/// `[bounces]` reading the test Dovecot's mailbox.
fn mailbox_config(dovecot: &Dovecot, dir: &std::path::Path, url: &str, processed: &str) -> String {
    let password = dir.join("imap-password");
    std::fs::write(&password, common::dovecot::PASSWORD).unwrap();
    format!(
        "[bounces]\nimap_url = \"{url}\"\nusername = \"{}\"\npassword_file = \"{}\"\nprocessed_folder = \"{processed}\"\npoll = \"1m\"\nca_file = \"{}\"\n",
        common::dovecot::USER,
        password.display(),
        dovecot.ca_file().display()
    )
}

backend_test!(the_bounce_mailbox_is_read_over_tls_and_each_email_acted_on_once);
async fn the_bounce_mailbox_is_read_over_tls_and_each_email_acted_on_once(Db { dir, url }: Db) {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    for (imap_url, processed) in [
        (
            format!("imaps://127.0.0.1:{}", dovecot.imaps_port),
            "Processed",
        ),
        (format!("imap://127.0.0.1:{}", dovecot.imap_port), ""),
    ] {
        let db = another_database(dir.path(), &url).await;
        let t = TestApp::with_fragment(
            &db,
            NEWS,
            &mailbox_config(&dovecot, dir.path(), &imap_url, processed),
        )
        .await;
        let sent_at = berlin(2026, 12, 10, 9, 0);
        let sent = news_sent(&t, sent_at).await;
        let moved_before = dovecot.count("Processed");
        dovecot.deliver(&report(&sent, "postfix-dsn.eml"));
        dovecot.deliver(&report(&sent, "auto-reply.eml"));
        dovecot.deliver(b"\x00\x01 not an email at all");
        let mailbox = t.app.config.resolved.bounce_mailbox.clone().unwrap();
        let polled = poll_once(&t.app, &mailbox).await.unwrap();
        assert_eq!((polled.read, polled.unreadable), (2, 1), "{imap_url}");
        assert_eq!(dovecot.count("INBOX"), 0, "{imap_url}");
        let moved = dovecot.count("Processed") - moved_before;
        assert_eq!(
            moved,
            if processed.is_empty() { 0 } else { 3 },
            "{imap_url}"
        );
        assert_eq!(
            next_run_for_anna(&t, sent_at + Duration::days(1))
                .await
                .as_deref(),
            Some("address bounced"),
            "{imap_url} on {url}"
        );
        // Nothing is read twice, also when the same email arrives again.
        assert_eq!(poll_once(&t.app, &mailbox).await.unwrap().read, 0);
        dovecot.deliver(&report(&sent, "postfix-dsn.eml"));
        assert_eq!(poll_once(&t.app, &mailbox).await.unwrap().read, 1);
        let reports = t.app.store.mail_report_counts().await.unwrap();
        assert!(
            reports.contains(&(outreach::store::ReportKind::Permanent, 1)),
            "{reports:?}"
        );
    }
}

#[tokio::test]
async fn an_untrusted_certificate_or_a_wrong_password_reads_nothing() {
    let Some(dovecot) = Dovecot::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
    let imap_url = format!("imaps://127.0.0.1:{}", dovecot.imaps_port);
    let config = mailbox_config(&dovecot, dir.path(), &imap_url, "Processed");
    let t = TestApp::with_fragment(&url, NEWS, &config).await;
    dovecot.deliver(b"From: a@b.example\r\nSubject: x\r\n\r\nhello\r\n");

    let mut untrusted = t.app.config.resolved.bounce_mailbox.clone().unwrap();
    untrusted.extra_roots.clear();
    let e = format!("{:#}", poll_once(&t.app, &untrusted).await.unwrap_err());
    assert!(e.contains("TLS") && e.contains("certificate"), "{e}");

    let mut wrong = t.app.config.resolved.bounce_mailbox.clone().unwrap();
    wrong.password = outreach::secret::Secret::from_bytes(b"wrong".to_vec());
    let e = format!("{:#}", poll_once(&t.app, &wrong).await.unwrap_err());
    assert!(
        e.contains("logging in as bounces@cafe-test.example failed"),
        "{e}"
    );
    assert!(!e.contains("wrong"), "the password must not be shown: {e}");

    assert_eq!(dovecot.count("INBOX"), 1);
}

#[test]
fn check_names_the_bounce_settings_that_are_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
    let env = Env::in_dir(
        dir,
        &url,
        &format!(
            "{NEWS}\n[bounces]\nreturn_path = \"bounces+x@cafe-test.example\"\nimap_url = \"pop3://mail.example\"\npoll = \"often\"\n"
        ),
    );
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    for expected in [
        "bounces.return_path: \"bounces+x@cafe-test.example\" already has a \"+\" tag",
        "bounces.imap_url: \"pop3://mail.example\": the scheme \"pop3\" is not imaps or imap",
        "bounces.username: the mailbox needs a username",
        "bounces.password_file: the mailbox needs a password",
        "bounces.poll: `often` is not a duration",
    ] {
        assert!(err.contains(expected), "missing {expected:?} in:\n{err}");
    }
}

backend_test!(a_regular_whose_address_bounces_for_good_joins_the_call_list);
async fn a_regular_whose_address_bounces_for_good_joins_the_call_list(Db { dir, url }: Db) {
    for (update, joins) in [
        // Maria's regular, who may be called: staff ask for a working address.
        (
            "external_id,phone,phone_consent,owner\nA,+49 221 555 0101,yes,maria\n",
            true,
        ),
        // No phone consent: email just stops, nobody calls.
        (
            "external_id,phone,phone_consent,owner\nA,+49 221 555 0101,no,maria\n",
            false,
        ),
        // Nobody's regular: no call either.
        (
            "external_id,phone,phone_consent\nA,+49 221 555 0101,yes\n",
            false,
        ),
    ] {
        let url = another_database(dir.path(), &url).await;
        let t = TestApp::new(&url, NEWS).await;
        let sent_at = berlin(2026, 12, 10, 9, 0);
        let sent = news_sent(&t, sent_at).await;
        t.import(update).await;
        let effect = ingest(
            &t.app,
            &report(&sent, "postfix-dsn.eml"),
            sent_at + Duration::days(1),
        )
        .await
        .unwrap();
        assert_eq!(
            effect,
            Effect::AddressBounced {
                customer_id: sent.customer_id
            }
        );
        let waiting = t.app.store.call_list(true).await.unwrap();
        let entry = waiting.iter().find(|e| e.customer_id == sent.customer_id);
        assert_eq!(entry.is_some(), joins, "{update} on {url}: {waiting:?}");
        let events = t.app.store.customer_events(sent.customer_id).await.unwrap();
        let noted = events
            .iter()
            .any(|e| e.kind == "call_list" && e.detail.contains("staff ask for a working one"));
        assert_eq!(noted, joins, "{update}: {events:?}");
        if let Some(entry) = entry {
            assert_eq!(entry.reason, outreach::store::ListReason::BadAddress);
            assert!(
                entry
                    .detail
                    .as_deref()
                    .is_some_and(|d| d.contains("nach einer Adresse fragen")),
                "{entry:?}"
            );
            // The same report again changes nothing: one entry, one event.
            ingest(
                &t.app,
                &report(&sent, "postfix-dsn.eml"),
                sent_at + Duration::days(2),
            )
            .await
            .unwrap();
            assert_eq!(t.app.store.call_list(true).await.unwrap().len(), 1);
            // The call is planned for her owner like any call.
            t.tick(berlin(2026, 12, 14, 7, 0)).await;
            let tasks = t.app.store.tasks(None, true).await.unwrap();
            assert!(
                tasks.iter().any(|task| task.customer_id == sent.customer_id
                    && task.staff_id == "maria"
                    && task.reason.contains("nach einer Adresse fragen")),
                "{tasks:?}"
            );
        }
    }
}
