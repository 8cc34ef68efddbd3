//! Signing up by double opt-in over HTTP: the form (`/s`, hosted or on the
//! business's own website), the confirmation email, the button behind its
//! link (`/c/…`), and what bad input, repeats, forgotten people, other
//! websites and busy clients get. On SQLite and PostgreSQL.

use crate::common;

use axum::body::Body;
use axum::http::Request;
use chrono::{Duration, Utc};
use common::app::{TestApp, berlin, body_text, get};
use common::{Db, backend_test};
use outreach::config::CampaignKind;
use outreach::domain::Email;
use outreach::schedule::start_now;
use tower::ServiceExt;

const CONFIG: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[signup]
enabled = true
allowed_origins = ["https://www.cafe-test.example"]
per_client_per_hour = 20

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

/// A post to `/s` from the business's website, from client `client`.
fn signup(form: &str, client: &str) -> Request<Body> {
    Request::post("/s")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://www.cafe-test.example")
        .header("x-forwarded-for", client)
        .body(Body::from(form.to_string()))
        .unwrap()
}

fn post(path: &str) -> Request<Body> {
    Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::empty())
        .unwrap()
}

async fn send(router: &axum::Router, request: Request<Body>) -> (u16, String) {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, body_text(response).await)
}

/// The mails to `address` once `n` have arrived (the confirmation is sent
/// in the background); panics after 10 seconds.
async fn mails(t: &TestApp, address: &str, n: usize) -> Vec<String> {
    for _ in 0..200 {
        let found = t.mails_to(address);
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("no {n} mails to {address}: {:?}", t.outbox_mails());
}

/// The path of the confirmation link in a mail (`/c/…`).
fn confirm_path(mail: &str) -> String {
    let text = mail.replace("=\r\n", "").replace("=3D", "=");
    let start = text.find("/c/").unwrap_or_else(|| panic!("{mail}"));
    text[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "/-_.".contains(*c))
        .collect::<String>()
        .trim_end_matches('.')
        .to_string()
}

async fn metrics(router: &axum::Router) -> String {
    send(router, get("/metrics")).await.1
}

backend_test!(a_sign_up_is_confirmed_by_the_button_behind_the_emailed_link);
async fn a_sign_up_is_confirmed_by_the_button_behind_the_emailed_link(Db { url, .. }: Db) {
    let t = TestApp::new(&url, CONFIG).await;
    t.import("email,name,consent\nanna@example.de,Anna,yes\n")
        .await;
    let router = t.router().await;

    // The hosted form, in the business language or the one asked for.
    let (status, html) = send(&router, get("/s")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    assert!(html.contains("name=\"website\""), "{html}");
    let (_, html) = send(&router, get("/s?lang=en")).await;
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    for kind in ["status_update", "loyalty"] {
        assert!(html.contains(&format!("value=\"{kind}\"")), "{html}");
    }

    let (status, html) = send(
        &router,
        signup(
            "email=Nina.Neu%40Example.org&name=Nina+Neu&language=en&kinds=loyalty&website=",
            "203.0.113.5",
        ),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Almost done"), "{html}");
    let mail = mails(&t, "nina.neu@example.org", 1).await.remove(0);
    assert!(
        mail.contains("Subject: Please confirm your sign-up with"),
        "{mail}"
    );
    assert!(!mail.contains("List-Unsubscribe"), "{mail}");
    assert!(
        !mail.contains("Nina"),
        "the posted name is not echoed: {mail}"
    );
    let link = confirm_path(&mail);

    // Nobody is added before the button; opening the link changes nothing.
    assert!(
        t.app
            .store
            .find_customer("nina.neu@example.org")
            .await
            .unwrap()
            .is_none()
    );
    let (status, html) = send(&router, get(&link)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Yes, confirm my sign-up"), "{html}");
    assert!(
        t.app
            .store
            .find_customer("nina.neu@example.org")
            .await
            .unwrap()
            .is_none()
    );

    let (status, html) = send(&router, post(&link)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Your sign-up is confirmed"), "{html}");
    let nina = t
        .app
        .store
        .find_customer("nina.neu@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(nina.consent);
    assert_eq!(nina.consent_source.as_deref(), Some("double opt-in"));
    assert_eq!(nina.locale.as_deref(), Some("en"));
    assert_eq!(nina.name.as_deref(), Some("Nina Neu"));
    let proof = t.app.store.customer_signups(nina.id).await.unwrap();
    assert_eq!(proof.len(), 1);
    assert_eq!(proof[0].kinds(), [CampaignKind::Loyalty]);
    assert_eq!(proof[0].text_fingerprint.len(), 64);
    assert!(proof[0].confirmed_at.unwrap() >= proof[0].requested_at);
    assert_eq!(nina.consent_at, proof[0].confirmed_at);
    let history = t.app.store.customer_events(nina.id).await.unwrap();
    assert!(
        history.iter().any(|e| e.kind == "consent"
            && e.detail.contains("double opt-in")
            && e.detail.contains("kinds loyalty")),
        "{history:?}"
    );

    // The proof is part of what she can ask to see.
    let env = common::Env {
        dir: tempfile::tempdir().unwrap(),
        config: t.app.config.path.clone(),
    };
    let out = env.run(&["customers", "export", "nina.neu@example.org"]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    let export: serde_json::Value = serde_json::from_str(&common::stdout(&out)).unwrap();
    assert_eq!(export["signups"][0]["kinds"], "loyalty", "{export}");
    assert!(export["signups"][0]["confirmed_at"].is_string(), "{export}");

    // She chose loyalty emails only: planning keeps to it.
    let day = berlin(2026, 12, 7, 12, 0);
    let news = start_now(&t.app, "news", day).await.unwrap();
    let punkte = start_now(&t.app, "punkte", day).await.unwrap();
    t.tick(day).await;
    let news = t.counts(news).await;
    assert!(
        news.contains(&(
            "suppressed".into(),
            Some("no status updates wanted".into()),
            1
        )),
        "{news:?}"
    );
    assert_eq!(t.counts(punkte).await, [("planned".to_string(), None, 2)]);

    // The button again changes nothing.
    let (status, html) = send(&router, post(&link)).await;
    assert_eq!(status, 200);
    assert!(html.contains("Your sign-up is confirmed"), "{html}");
    let consents = t
        .app
        .store
        .customer_events(nina.id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == "consent")
        .count();
    assert_eq!(consents, 1);
    let metrics = metrics(&router).await;
    for line in [
        "outreach_signups_total{outcome=\"mailed\"} 1",
        "outreach_signups_total{outcome=\"confirmed\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
}

backend_test!(bad_input_repeats_and_forgotten_people_change_nothing_and_get_the_same_answer);
async fn bad_input_repeats_and_forgotten_people_change_nothing_and_get_the_same_answer(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CONFIG).await;
    t.import("email,name,consent\nanna@example.de,Anna,yes\nfritz@example.de,Fritz,yes\n")
        .await;
    let fritz = t
        .app
        .store
        .find_customer("fritz@example.de")
        .await
        .unwrap()
        .unwrap();
    let key = Email::parse("fritz@example.de").unwrap().suppression_key();
    t.app
        .store
        .forget_customer(fritz.id, &[key], Utc::now())
        .await
        .unwrap();
    let router = t.router().await;
    let form = |email: &str| {
        format!("email={email}&language=de&kinds=loyalty&kinds=status_update&website=")
    };

    let (status, first) = send(&router, signup(&form("neu%40example.org"), "198.51.100.1")).await;
    assert_eq!(status, 200, "{first}");
    mails(&t, "neu@example.org", 1).await;
    // The same address again within 24 hours, a known customer, a
    // forgotten person, a robot: all told the same.
    for (what, body) in [
        ("repeat", form("neu%40example.org")),
        ("known", form("anna%40example.de")),
        ("forgotten", form("fritz%40example.de")),
        (
            "honeypot",
            "email=bot%40example.org&language=de&kinds=loyalty&website=http%3A%2F%2Fspam.example"
                .to_string(),
        ),
    ] {
        let (status, html) = send(&router, signup(&body, "198.51.100.1")).await;
        assert_eq!((status, &html), (200, &first), "{what}");
    }
    mails(&t, "anna@example.de", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(
        t.mails_to("neu@example.org").len(),
        1,
        "one email per 24 hours"
    );
    assert!(t.mails_to("fritz@example.de").is_empty());
    assert!(t.mails_to("bot@example.org").is_empty());
    assert!(
        t.app
            .store
            .find_customer("bot@example.org")
            .await
            .unwrap()
            .is_none()
    );

    // Not an address, no kind: the form again, saying what to fix.
    let (status, html) = send(&router, signup(&form("neu%40"), "198.51.100.1")).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("Bitte prüfen Sie die E-Mail-Adresse"),
        "{html}"
    );
    let (status, html) = send(
        &router,
        signup(
            "email=x%40example.org&language=de&kinds=birthday",
            "198.51.100.1",
        ),
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("mindestens eine Art"), "{html}");

    // A form on another website is refused.
    let request = Request::post("/s")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "https://evil.example")
        .body(Body::from(form("evil%40example.org")))
        .unwrap();
    let (status, _) = send(&router, request).await;
    assert_eq!(status, 403);
    // So is an opaque origin the browser does not vouch for…
    let request = Request::post("/s")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "null")
        .body(Body::from(form("opaque%40example.org")))
        .unwrap();
    let (status, _) = send(&router, request).await;
    assert_eq!(status, 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(t.mails_to("evil@example.org").is_empty());
    assert!(t.mails_to("opaque@example.org").is_empty());
    // …while the hosted form itself, sent under no-referrer with
    // `Origin: null`, is taken by the browser's `Sec-Fetch-Site`.
    let request = Request::post("/s")
        .header("content-type", "application/x-www-form-urlencoded")
        .header("origin", "null")
        .header("sec-fetch-site", "same-origin")
        .header("x-forwarded-for", "198.51.100.77")
        .body(Body::from(form("hosted%40example.org")))
        .unwrap();
    let (status, html) = send(&router, request).await;
    assert_eq!(status, 200, "{html}");

    let metrics = metrics(&router).await;
    for line in [
        "outreach_signups_total{outcome=\"mailed\"} 3",
        "outreach_signups_total{outcome=\"duplicate\"} 1",
        "outreach_signups_total{outcome=\"forgotten\"} 1",
        "outreach_signups_total{outcome=\"honeypot\"} 1",
        "outreach_signups_total{outcome=\"bad_address\"} 1",
        "outreach_signups_total{outcome=\"no_kinds\"} 1",
        "outreach_signups_total{outcome=\"foreign_origin\"} 2",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }

    // Anna is forgotten before she confirms: nobody is added back.
    let mail = t.mails_to("anna@example.de").remove(0);
    let link = confirm_path(&mail);
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap();
    let key = Email::parse("anna@example.de").unwrap().suppression_key();
    t.app
        .store
        .forget_customer(anna.id, &[key], Utc::now())
        .await
        .unwrap();
    let (status, _) = send(&router, post(&link)).await;
    assert_eq!(status, 200);
    assert!(
        t.app
            .store
            .find_customer("anna@example.de")
            .await
            .unwrap()
            .is_none()
    );
    let erased = t.app.store.customers_by_ids(&[anna.id]).await.unwrap();
    assert!(
        erased[0].forgotten_at.is_some() && !erased[0].consent,
        "{erased:?}"
    );
}

backend_test!(one_client_address_may_post_only_so_often);
async fn one_client_address_may_post_only_so_often(Db { url, .. }: Db) {
    let t = TestApp::new(
        &url,
        &CONFIG.replace("per_client_per_hour = 20", "per_client_per_hour = 2"),
    )
    .await;
    let router = t.router().await;
    for n in 0..2 {
        let (status, _) = send(
            &router,
            signup(
                &format!("email=p{n}%40example.org&kinds=loyalty"),
                "192.0.2.7",
            ),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, html) = send(
        &router,
        signup("email=p3%40example.org&kinds=loyalty", "192.0.2.7"),
    )
    .await;
    assert_eq!(status, 429, "{html}");
    // Another client is not held back.
    let (status, _) = send(
        &router,
        signup("email=p4%40example.org&kinds=loyalty", "192.0.2.8"),
    )
    .await;
    assert_eq!(status, 200);
    mails(&t, "p4@example.org", 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(t.mails_to("p3@example.org").is_empty());
    assert!(
        metrics(&router)
            .await
            .contains("outreach_signups_total{outcome=\"rate_limited\"} 1")
    );
}

backend_test!(an_unconfirmed_request_is_deleted_after_a_week_and_its_link_then_says_so);
async fn an_unconfirmed_request_is_deleted_after_a_week_and_its_link_then_says_so(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CONFIG).await;
    let router = t.router().await;
    let (status, _) = send(
        &router,
        signup(
            "email=spaet%40example.org&kinds=loyalty&language=de",
            "192.0.2.9",
        ),
    )
    .await;
    assert_eq!(status, 200);
    let mail = mails(&t, "spaet@example.org", 1).await.remove(0);
    let link = confirm_path(&mail);
    let token = link.trim_start_matches("/c/");
    let id = t
        .app
        .signer
        .verify(token, outreach::tokens::Purpose::Confirm, Utc::now())
        .unwrap();
    // The link works 48 hours.
    assert_eq!(
        t.app.signer.verify(
            token,
            outreach::tokens::Purpose::Confirm,
            Utc::now() + Duration::hours(49)
        ),
        Err(outreach::tokens::TokenError::Expired)
    );
    t.tick(Utc::now() + Duration::days(6)).await;
    assert!(t.app.store.signup(id).await.unwrap().is_some());
    t.tick(Utc::now() + Duration::days(8)).await;
    assert!(t.app.store.signup(id).await.unwrap().is_none());
    let (status, _) = send(&router, get(&link)).await;
    assert_eq!(status, 410);
    let (status, _) = send(&router, post(&link)).await;
    assert_eq!(status, 410);
    assert!(
        t.app
            .store
            .find_customer("spaet@example.org")
            .await
            .unwrap()
            .is_none()
    );
}

backend_test!(without_signup_enabled_the_form_is_not_there);
async fn without_signup_enabled_the_form_is_not_there(Db { url, .. }: Db) {
    let t = TestApp::new(&url, &CONFIG.replace("enabled = true", "enabled = false")).await;
    let router = t.router().await;
    assert_eq!(send(&router, get("/s")).await.0, 404);
    let (status, _) = send(
        &router,
        signup("email=a%40example.org&kinds=loyalty", "192.0.2.1"),
    )
    .await;
    assert_eq!(status, 404);
}
