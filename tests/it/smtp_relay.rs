//! The relay path hosted providers offer, against a TLS SMTP server with a
//! certificate from a CA made for the test: STARTTLS (port 587 style) and
//! implicit TLS (465 style) with AUTH PLAIN or LOGIN, trusted through
//! `mail.smtp.ca_file`. A certificate that does not verify or a wrong
//! password makes messages wait with the reason, shown by `status` and
//! `/healthz`, with one login attempt per backoff period. Nothing secret,
//! no SMTP exchange and no message body reaches the log, even at trace.

use crate::common;

use std::path::PathBuf;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use common::app::{TestApp, berlin, body_text};
use common::daemon::Daemon;
use common::smtp::{Relay, RelayTls, relay_config, start_relay};
use common::{Env, dkim, http_get, stderr, stdout, wait_for};
use mailin_embedded::AuthMechanism;
use outreach::deliver::deliver_batch;
use outreach::mailer::MailerSettings;
use outreach::schedule::start_now;
use tempfile::TempDir;
use tower::ServiceExt;

const NEWS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"
"#;

const USER: &str = "outreach";
const PASSWORD: &str = "Sommer 2026 Linde!";

fn customers(n: usize) -> String {
    let mut csv = String::from("email,consent\n");
    for i in 0..n {
        csv.push_str(&format!("kunde{i:04}@example.de,yes\n"));
    }
    csv
}

/// The files a relay config points at: the password and, with `trust`,
/// the relay's CA.
struct Secrets {
    dir: TempDir,
    password_file: PathBuf,
}

fn secrets(relay: &Relay, password: &str) -> Secrets {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("smtp-password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    std::fs::write(dir.path().join("relay-ca.pem"), &relay.ca_pem).unwrap();
    Secrets { dir, password_file }
}

impl Secrets {
    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("relay-ca.pem")
    }
}

/// `[mail]` for `relay`, trusting its CA or not.
fn mail_config(relay: &Relay, tls: RelayTls, secrets: &Secrets, trust: bool) -> String {
    let mut mail = relay_config(relay, tls, USER, &secrets.password_file);
    if trust {
        mail.push_str(&format!("ca_file = \"{}\"\n", secrets.ca_file().display()));
    }
    mail
}

/// A run of `n` customers queued at `now` for `relay`, in a database file
/// the CLI can read too.
async fn queued(mail: &str, n: usize, now: DateTime<Utc>) -> (TestApp, i64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
    std::fs::write(dir.path().join("conf.d/10-relay.toml"), mail).unwrap();
    let t = TestApp::in_dir(dir, &url, NEWS).await;
    t.import(&customers(n)).await;
    let run = start_now(&t.app, "news", now).await.unwrap();
    t.tick(now).await;
    (t, run)
}

/// Why the planned messages of a run wait: (reason, count).
async fn waiting(t: &TestApp) -> Vec<(String, i64)> {
    t.app
        .store
        .waiting_reasons(10)
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.reason, w.messages))
        .collect()
}

async fn healthz(t: &TestApp) -> (StatusCode, String) {
    let response = t
        .router()
        .await
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    (response.status(), body_text(response).await)
}

#[tokio::test]
async fn starttls_and_implicit_tls_with_plain_or_login_deliver_through_a_private_ca() {
    for (tls, mechanism, name) in [
        (RelayTls::Starttls, AuthMechanism::Plain, "PLAIN"),
        (RelayTls::Starttls, AuthMechanism::Login, "LOGIN"),
        (RelayTls::Implicit, AuthMechanism::Plain, "PLAIN"),
        (RelayTls::Implicit, AuthMechanism::Login, "LOGIN"),
    ] {
        let relay = start_relay(tls, mechanism, USER, PASSWORD);
        let secrets = secrets(&relay, PASSWORD);
        let now = berlin(2026, 11, 23, 12, 0);
        let (t, run) = queued(&mail_config(&relay, tls, &secrets, true), 3, now).await;
        t.deliver_all(now).await;
        assert_eq!(t.count(run, "sent").await, 3, "{tls:?} {name}");
        assert_eq!(relay.received.total(), 3, "{tls:?} {name}");
        // One session, one login, with the mechanism the relay offers.
        assert_eq!(
            *relay.logins.lock().unwrap(),
            [(name, true)],
            "{tls:?} {name}"
        );
        let (code, health) = healthz(&t).await;
        assert_eq!(code, StatusCode::OK, "{health}");
    }
}

#[tokio::test]
async fn a_certificate_that_does_not_verify_makes_messages_wait_with_the_reason() {
    for tls in [RelayTls::Starttls, RelayTls::Implicit] {
        let relay = start_relay(tls, AuthMechanism::Plain, USER, PASSWORD);
        let secrets = secrets(&relay, PASSWORD);
        let now = berlin(2026, 11, 23, 12, 0);
        // The relay's CA is not trusted: its certificate does not verify.
        let (t, run) = queued(&mail_config(&relay, tls, &secrets, false), 2, now).await;
        t.deliver_all(now).await;
        assert_eq!(relay.received.total(), 0, "{tls:?}");
        assert!(
            relay.logins.lock().unwrap().is_empty(),
            "{tls:?}: no password goes to a server we cannot verify"
        );
        assert_eq!(t.count(run, "planned").await, 2, "{tls:?}: they wait");
        let reasons = waiting(&t).await;
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        let (reason, n) = &reasons[0];
        assert_eq!(*n, 2);
        assert!(
            reason.starts_with(&format!("TLS with localhost:{} failed", relay.port))
                && reason.contains("certificate")
                && reason.contains("mail.smtp.ca_file"),
            "{tls:?}: {reason}"
        );
        let (code, health) = healthz(&t).await;
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{health}");
        assert!(health.contains("smtp: TLS with localhost"), "{health}");
    }
}

#[tokio::test]
async fn a_wrong_password_shows_authentication_failed_and_logins_back_off() {
    let relay = start_relay(RelayTls::Starttls, AuthMechanism::Plain, USER, PASSWORD);
    let secrets = secrets(&relay, "Winter 2025 Linde!");
    let start = berlin(2026, 11, 23, 12, 0);
    // Three batches' worth: each batch would have opened a session.
    let n = 250;
    let (t, run) = queued(
        &mail_config(&relay, RelayTls::Starttls, &secrets, true),
        n,
        start,
    )
    .await;
    // One worker's transport, kept across batches as the daemon keeps it,
    // driven through an hour in 10-second steps.
    let mut mailer = MailerSettings::from_config(&t.app.config).open().unwrap();
    let mut logins_at = Vec::new();
    for step in 0..=360 {
        let now = start + chrono::Duration::seconds(10 * step);
        let before = relay.logins.lock().unwrap().len();
        while deliver_batch(&t.app, &t.delivery, &mut mailer, now)
            .await
            .unwrap()
            > 0
        {}
        let after = relay.logins.lock().unwrap().len();
        assert!(after - before <= 1, "one login per step at most");
        if after > before {
            logins_at.push((now - start).num_seconds());
        }
    }
    // 30 s, doubling, at most 10 minutes apart: not a login per batch.
    assert_eq!(
        logins_at,
        [0, 30, 90, 210, 450, 930, 1530, 2130, 2730, 3330],
        "seconds after the start"
    );
    assert!(relay.logins.lock().unwrap().iter().all(|l| !l.1));
    assert_eq!(relay.received.total(), 0);
    // An hour of failed logins is no attempt at the messages: past
    // `give_up_after` (1 h here), none has failed.
    assert_eq!(t.count(run, "planned").await, n as i64, "all still wait");
    let reasons = waiting(&t).await;
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(
        reasons[0].0.starts_with("authentication failed:") && reasons[0].1 == n as i64,
        "{reasons:?}"
    );
    let (code, health) = healthz(&t).await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{health}");
    assert!(health.contains("smtp: authentication failed"), "{health}");
    let status = std::process::Command::new(common::BIN)
        .args(["--config", t.app.config.path.to_str().unwrap(), "status"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let text = stdout(&status);
    assert!(status.status.success(), "{}", stderr(&status));
    let line = text
        .lines()
        .find(|l| l.contains("authentication failed"))
        .unwrap_or_else(|| panic!("status does not say why messages wait:\n{text}"));
    assert!(line.trim_start().starts_with("250"), "{line}");
    assert!(
        !text.contains(PASSWORD) && !text.contains("Winter 2025"),
        "{text}"
    );
}

#[test]
fn healthz_tells_a_wrong_password_or_an_untrusted_certificate_before_any_message() {
    let relay = start_relay(RelayTls::Starttls, AuthMechanism::Plain, USER, PASSWORD);
    for (password, trust, says) in [
        ("Winter 2025 Linde!", true, "smtp: authentication failed"),
        (PASSWORD, false, "smtp: TLS with localhost"),
        (PASSWORD, true, "reachable"),
    ] {
        let secrets = secrets(&relay, password);
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/db.sqlite", dir.path().display());
        let env = Env::in_dir(dir, &url, "");
        env.write(
            "conf.d/10-relay.toml",
            &mail_config(&relay, RelayTls::Starttls, &secrets, trust),
        );
        let daemon = Daemon::start(&env, "daemon", &[]);
        let port = daemon.port;
        // Nothing is queued: the daemon checked the session when it started.
        wait_for(says, Duration::from_secs(30), || {
            http_get(port, "/healthz").is_some_and(|(_, text)| text.contains(says))
        });
        let (code, health) = http_get(port, "/healthz").unwrap();
        let expected = if says == "reachable" { 200 } else { 503 };
        assert_eq!(code, expected, "{health}");
        let log = daemon.log();
        assert!(!log.contains(password), "{log}");
    }
}

/// Every form the password could take on the wire or in a log.
fn password_forms(user: &str, password: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    vec![
        password.to_string(),
        b64(password),
        b64(&format!("\0{user}\0{password}")),
        b64(&format!("{user}\0{user}\0{password}")),
    ]
}

#[test]
fn nothing_secret_and_no_smtp_exchange_reaches_the_log_even_at_trace() {
    let relay = start_relay(RelayTls::Starttls, AuthMechanism::Plain, USER, PASSWORD);
    let secrets = secrets(&relay, PASSWORD);
    let token_key = secrets.dir.path().join("token-key");
    std::fs::write(&token_key, "a-token-key-nobody-may-see-0123456789\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::in_dir(
        dir,
        &url,
        &format!(
            "{NEWS}\n[security]\ntoken_key_file = \"{}\"\n",
            token_key.display()
        ),
    );
    env.write(
        "conf.d/10-relay.toml",
        &(mail_config(&relay, RelayTls::Starttls, &secrets, true) + &dkim::config("rsa2048-pkcs1")),
    );
    let csv = env.write("customers.csv", &customers(2));
    let import = env.run(&["import", "customers", csv.to_str().unwrap()]);
    assert!(import.status.success(), "{}", stderr(&import));
    let mut daemon = Daemon::start(&env, "daemon", &[("RUST_LOG", "trace".into())]);
    let started = env.run(&["runs", "start", "news"]);
    assert!(started.status.success(), "{}", stderr(&started));
    wait_for("both messages", Duration::from_secs(60), || {
        relay.received.total() == 2
    });
    wait_for("recorded as sent", Duration::from_secs(30), || {
        let status = env.run(&["status", "--json"]);
        serde_json::from_slice::<serde_json::Value>(&status.stdout)
            .is_ok_and(|s| s["queue"]["sent"] == 2)
    });
    daemon.kill9();
    let log = daemon.log();
    // The log is at trace and about this send.
    assert!(
        log.contains("TRACE rustls") && log.matches("outreach::deliver: sent").count() == 2,
        "{log}"
    );

    let mut secret = password_forms(USER, PASSWORD);
    secret.push("a-token-key-nobody-may-see".into());
    // The DKIM key: any line of its base64.
    let key = std::fs::read_to_string(dkim::key_file("rsa2048-pkcs1")).unwrap();
    secret.extend(
        key.lines()
            .filter(|l| !l.starts_with("-----"))
            .map(str::to_string),
    );
    // What went over the wire: the exchange, the recipients, the bodies
    // with their unsubscribe tokens.
    let mut wire = vec![
        "AUTH".to_string(),
        "RCPT TO".to_string(),
        "MAIL FROM".to_string(),
        "DKIM-Signature".to_string(),
    ];
    for (to, raw) in relay.received.messages.lock().unwrap().iter() {
        wire.extend(to.iter().cloned());
        let mail = common::mail::Mail::parse(raw);
        let unsubscribe = mail.header("list-unsubscribe").unwrap();
        let token = unsubscribe
            .split("/u/")
            .nth(1)
            .and_then(|t| t.split('>').next())
            .unwrap();
        wire.push(token.to_string());
        // Every long enough line of the text part.
        wire.extend(
            mail.text()
                .lines()
                .filter(|l| l.trim().len() > 30)
                .map(|l| l.trim().to_string()),
        );
    }
    for needle in secret.iter().chain(&wire) {
        assert!(
            !log.contains(needle.as_str()),
            "the log holds `{needle}`:\n{log}"
        );
    }
}
