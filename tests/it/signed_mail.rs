//! What receiving mail servers check: every kind of email the daemon sends
//! (customer mail, approval request, digest, escalation, admin notice)
//! carries a DKIM signature that an independent verifier accepts, with
//! RSA and Ed25519 keys; a Date and a Message-ID; the unsubscribe headers
//! on customer mail only (with an https link); `Auto-Submitted` on staff
//! mail. Keys that cannot sign are refused by `check` and `run`, naming the
//! file.

use crate::common;

use common::app::{TestApp, berlin};
use common::mail::Mail;
use common::{Env, dkim, stderr, stdout};
use outreach::schedule::start_now;

const EVERY_KIND: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"

[[campaign]]
id = "wochenbrief"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"
approval = "required"
approvers = ["maria"]

[[voucher_pool]]
id = "dank"
value = "10 € auf Ihren nächsten Besuch"
valid_days = 5

[[campaign]]
id = "gutschein"
kind = "voucher"
schedule = "0 3 1 1 *"
template = "voucher"
voucher_pool = "dank"

[[checkin]]
id = "hallo"
audience = "true"
schedule = "0 3 1 1 *"
assign = "owner"
min_days_between_personal_contacts = 30
due_in = "0d"
escalate_after = "2d"
expire_after = "60d"
max_attempts = 3
reason = "Lange nichts gehört – einfach nachfragen, wie es geht."
template = "checkin"
"#;

/// Links in customer mail must be https; the admin gets the notices.
const PUBLIC: &str = "[business]\nbase_url = \"https://outreach.cafe-test.example\"\nadmin_email = \"chef@cafe-test.example\"\n";

const CUSTOMERS: &str = "external_id,email,name,phone,consent,phone_consent,owner\n\
    A,anna@example.de,Anna,+49 221 555 101,yes,yes,maria\n\
    B,ben@example.com,Ben,+49 221 555 102,yes,yes,jonas\n";

/// Makes one of each kind of email with `[mail.dkim]` set to `key` and
/// returns the outbox.
async fn every_kind_of_email(key: &str) -> (TestApp, Vec<String>) {
    let fragment = format!("{PUBLIC}{}", dkim::config(key));
    let t = TestApp::with_fragment("sqlite::memory:", EVERY_KIND, &fragment).await;
    t.import(CUSTOMERS).await;
    // 2026-11-23 is a Monday.
    let now = berlin(2026, 11, 23, 7, 0);
    for campaign in ["news", "gutschein", "wochenbrief", "hallo"] {
        start_now(&t.app, campaign, now).await.unwrap();
        t.tick(now).await;
        t.deliver_all(now).await;
    }
    // The digests, then the calls are overdue and escalate.
    t.tick(berlin(2026, 11, 23, 9, 0)).await;
    t.tick(berlin(2026, 11, 26, 0, 0)).await;
    let mails = t.outbox_mails();
    (t, mails)
}

/// What kind of email this is, told by its subject and recipient.
fn kind(mail: &Mail) -> &'static str {
    let subject = &mail.subject;
    if subject.contains("Freigabe") || subject.to_lowercase().contains("approval") {
        "approval request"
    } else if subject.starts_with("Ihre Anrufe") || subject.starts_with("Your calls") {
        "digest"
    } else if subject.starts_with("Überfällige Anrufe") || subject.starts_with("Overdue calls") {
        "escalation"
    } else if subject.starts_with("Anrufliste") || subject.starts_with("Call list") {
        "weekly summary"
    } else if subject.starts_with("Keine Gutscheincodes") || subject.starts_with("No voucher codes")
    {
        "notice"
    } else if mail.to.contains("@example.") {
        "customer"
    } else {
        panic!("an email of an unknown kind: {mail:#?}")
    }
}

#[tokio::test]
async fn every_kind_of_email_is_signed_and_verifies_with_rsa_and_ed25519_keys() {
    for (key, record) in [
        ("rsa2048-pkcs1", "rsa2048"),
        ("rsa2048-pkcs8", "rsa2048"),
        ("ed25519", "ed25519"),
    ] {
        let (_t, mails) = every_kind_of_email(key).await;
        let mut kinds: Vec<&str> = mails.iter().map(|m| kind(&Mail::parse(m))).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(
            kinds,
            [
                "approval request",
                "customer",
                "digest",
                "escalation",
                "notice",
                "weekly summary"
            ],
            "{key}"
        );
        for raw in &mails {
            let mail = Mail::parse(raw);
            let signature = mail.header("dkim-signature").unwrap_or_default();
            assert!(
                signature.contains("c=relaxed/relaxed")
                    && signature.contains("d=cafe-test.example"),
                "{key}, {}: {signature}",
                kind(&mail)
            );
            if let Err(e) = dkim::verify(raw.as_bytes(), &dkim::record(record)).await {
                panic!(
                    "{key}, {}: the signature does not verify: {e}\n{raw}",
                    kind(&mail)
                );
            }
        }
    }
}

#[tokio::test]
async fn a_signature_fails_once_a_signed_header_or_the_body_is_changed_or_with_another_key() {
    // The verifier really checks: the same mail, altered after signing.
    let (_t, mails) = every_kind_of_email("ed25519").await;
    let raw = mails
        .iter()
        .find(|m| Mail::parse(m).to == "anna@example.de")
        .unwrap();
    let record = dkim::record("ed25519");
    dkim::verify(raw.as_bytes(), &record).await.unwrap();
    let to = format!("To: {}", Mail::parse(raw).to);
    assert!(raw.contains(&to), "{raw}");
    let other_recipient = raw.replacen(&to, "To: eve@example.de", 1);
    assert!(
        dkim::verify(other_recipient.as_bytes(), &record)
            .await
            .is_err()
    );
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let other_body = format!("{head}\r\n\r\n{}", body.replacen("Anna", "Hanna", 1));
    assert_ne!(&other_body, raw, "the greeting names her");
    assert!(dkim::verify(other_body.as_bytes(), &record).await.is_err());
    let other_key = dkim::verify(raw.as_bytes(), &dkim::record("rsa2048")).await;
    assert!(other_key.is_err());
}

#[tokio::test]
async fn every_email_has_date_and_message_id_and_the_headers_of_its_kind() {
    let (_t, mails) = every_kind_of_email("ed25519").await;
    let mut ids = Vec::new();
    for raw in &mails {
        let mail = Mail::parse(raw);
        let what = kind(&mail);
        let date = mail.header("date").unwrap_or_default();
        assert!(
            chrono::DateTime::parse_from_rfc2822(date).is_ok(),
            "{what}: Date {date:?}"
        );
        let id = mail.header("message-id").unwrap_or_default();
        assert!(
            id.starts_with('<') && id.ends_with("@cafe-test.example>"),
            "{what}: Message-ID {id:?}"
        );
        ids.push(id.to_string());
        let unsubscribe = mail.header("list-unsubscribe");
        let one_click = mail.header("list-unsubscribe-post");
        let auto = mail.header("auto-submitted");
        if what == "customer" {
            let link = unsubscribe.unwrap_or_default();
            assert!(
                link.starts_with("<https://outreach.cafe-test.example/u/"),
                "{link}"
            );
            assert_eq!(one_click, Some("List-Unsubscribe=One-Click"));
            assert_eq!(auto, None, "customer mail is not auto-submitted");
        } else {
            assert_eq!(unsubscribe, None, "{what}: staff cannot unsubscribe");
            assert_eq!(one_click, None, "{what}");
            assert_eq!(auto, Some("auto-generated"), "{what}");
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "Message-IDs are unique");
}

fn check_with_key(key: &std::path::Path) -> (std::process::Output, Env) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::in_dir(
        dir,
        &url,
        &format!(
            "\n[mail.dkim]\nselector = \"outreach\"\ndomain = \"cafe-test.example\"\nprivate_key_file = \"{}\"\n",
            key.display()
        ),
    );
    (env.run(&["check"]), env)
}

#[test]
fn check_prints_the_dns_record_that_matches_the_key() {
    for (key, record) in [
        ("rsa2048-pkcs1", "rsa2048"),
        ("rsa2048-pkcs8", "rsa2048"),
        ("ed25519", "ed25519"),
    ] {
        let (out, _env) = check_with_key(&dkim::key_file(key));
        assert!(out.status.success(), "{key}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("outreach._domainkey.cafe-test.example"),
            "{text}"
        );
        // The same record openssl makes from the key.
        assert!(text.contains(&dkim::record(record)), "{key}: {text}");
    }
}

#[test]
fn keys_that_cannot_sign_are_refused_by_check_and_run_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("not-a-key.pem");
    std::fs::write(&garbage, "hello\n").unwrap();
    for (key, says) in [
        (dkim::key_file("rsa1024"), "shorter than 2048 bits"),
        (
            dkim::key_file("ec-p256"),
            "DKIM signs with RSA or Ed25519 only",
        ),
        (
            dkim::key_file("ec-p256-sec1"),
            "DKIM signs with RSA or Ed25519 only",
        ),
        (dkim::key_file("encrypted"), "passphrase"),
        (garbage, "no PEM private key"),
        (dir.path().join("missing.pem"), "cannot read"),
    ] {
        let (out, env) = check_with_key(&key);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{}: {err}", key.display());
        for piece in [
            "mail.dkim.private_key_file",
            &key.display().to_string(),
            says,
        ] {
            assert!(err.contains(piece), "`{piece}` missing in: {err}");
        }
        let run = env.run(&["run"]);
        assert_eq!(run.status.code(), Some(1), "run refuses it too");
        assert!(stderr(&run).contains(&key.display().to_string()));
    }
}
