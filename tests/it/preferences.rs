//! The preference centre behind the unsubscribe link (`/u/…`): the customer
//! sees what they receive by kind, keeps some and ends others, or ends
//! everything; planning honours the choice. A one-click unsubscribe
//! (RFC 8058) ends only the kind of email it came with. On SQLite and
//! PostgreSQL.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::app::{TestApp, berlin, body_text, get, post};
use common::{Db, backend_test};
use outreach::domain::Channel;
use outreach::schedule::start_now;
use outreach::tokens::Purpose;
use tower::ServiceExt;

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

const CUSTOMERS: &str = "email,name,locale,consent\n\
    anna@example.de,Anna,de,yes\n\
    ben@example.com,Ben,en,yes\n";

async fn customer_id(t: &TestApp, email: &str) -> i64 {
    t.app.store.find_customer(email).await.unwrap().unwrap().id
}

/// A link of the kind a `kind` email carries; `None`: a link from before
/// links named their kind.
fn link(t: &TestApp, customer: i64, kind: Option<&str>) -> String {
    let until = Utc::now() + Duration::days(30);
    let token = match kind {
        Some(kind) => t
            .app
            .signer
            .sign_for(Purpose::Unsubscribe, customer, kind, until),
        None => t.app.signer.sign(Purpose::Unsubscribe, customer, until),
    };
    format!("/u/{token}")
}

async fn send(t: &TestApp, request: axum::http::Request<axum::body::Body>) -> (u16, String) {
    let response = t.router().await.oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    (status, body_text(response).await)
}

/// A run of campaign `id` planned at `now`: its counts by state and reason.
async fn plan(t: &TestApp, id: &str, now: DateTime<Utc>) -> Vec<(String, Option<String>, i64)> {
    let run = start_now(&t.app, id, now).await.unwrap();
    t.tick(now).await;
    t.counts(run).await
}

/// The kinds of email a customer objected to (in force), and whether to every email.
async fn objections(t: &TestApp, customer: i64) -> Vec<(Option<String>, String)> {
    t.app
        .store
        .active_objections(&[customer])
        .await
        .unwrap()
        .into_iter()
        .filter(|o| o.channel == Channel::Email)
        .map(|o| (o.kind, o.source))
        .collect()
}

backend_test!(choices_on_the_page_change_what_planning_sends);
async fn choices_on_the_page_change_what_planning_sends(Db { url, .. }: Db) {
    let t = TestApp::new(&url, TWO_KINDS).await;
    t.import(CUSTOMERS).await;
    let anna = customer_id(&t, "anna@example.de").await;
    let page = link(&t, anna, Some("loyalty"));

    // Opening the link shows both kinds, both kept, and changes nothing.
    let (status, html) = send(&t, get(&page)).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("<html lang=\"de\">"), "{html}");
    for kind in ["status_update", "loyalty"] {
        assert!(
            html.contains(&format!(
                "<input type=\"checkbox\" name=\"keep\" value=\"{kind}\" checked>"
            )),
            "{kind}: {html}"
        );
    }
    assert!(html.contains("Treuepunkte und Prämien"), "{html}");
    assert!(
        !html.contains("Gutscheine"),
        "only configured kinds: {html}"
    );
    assert_eq!(objections(&t, anna).await, []);

    // Keep the news, end the loyalty emails.
    let (status, html) = send(&t, post(&page, "keep=status_update&action=save")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Ihre Auswahl ist gespeichert"), "{html}");
    assert!(
        html.contains("<input type=\"checkbox\" name=\"keep\" value=\"loyalty\">"),
        "{html}"
    );
    assert_eq!(
        objections(&t, anna).await,
        [(Some("loyalty".to_string()), "preference centre".to_string())]
    );
    let customer = t.app.store.customers_by_ids(&[anna]).await.unwrap();
    assert!(customer[0].unsubscribed_at.is_none());

    let day = berlin(2026, 12, 7, 12, 0);
    assert_eq!(
        plan(&t, "news", day).await,
        [("planned".to_string(), None, 2)],
        "{url}"
    );
    let loyalty = plan(&t, "punkte", day).await;
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

    // She changes her mind: both again.
    let (status, _) = send(
        &t,
        post(&page, "keep=status_update&keep=loyalty&action=save"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(objections(&t, anna).await, []);
    let history = t.app.store.customer_events(anna).await.unwrap();
    assert!(
        history.iter().any(|e| e.kind == "preferences"
            && e.detail
                .contains("chose loyalty emails again via preference centre")),
        "{history:?}"
    );
    assert_eq!(
        plan(&t, "punkte", day + Duration::days(1)).await,
        [("planned".to_string(), None, 2)]
    );

    // Unticking everything ends each kind, not email as such.
    send(&t, post(&page, "action=save")).await;
    let kinds: Vec<_> = objections(&t, anna)
        .await
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        kinds,
        [
            Some("status_update".to_string()),
            Some("loyalty".to_string())
        ]
    );
    let news = plan(&t, "news", day + Duration::days(2)).await;
    assert!(
        news.contains(&(
            "suppressed".into(),
            Some("no status updates wanted".into()),
            1
        )),
        "{news:?}"
    );
}

backend_test!(the_button_for_everything_ends_all_email_and_the_page_then_says_so);
async fn the_button_for_everything_ends_all_email_and_the_page_then_says_so(Db { url, .. }: Db) {
    let t = TestApp::new(&url, TWO_KINDS).await;
    t.import(CUSTOMERS).await;
    let ben = customer_id(&t, "ben@example.com").await;
    let page = link(&t, ben, Some("status_update"));
    let (status, html) = send(&t, get(&page)).await;
    assert_eq!(status, 200);
    assert!(html.contains("<html lang=\"en\">"), "{html}");
    assert!(html.contains("Your emails from us"), "{html}");
    assert!(html.contains("Unsubscribe from everything"), "{html}");

    let (status, html) = send(&t, post(&page, "keep=loyalty&action=all")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("You will not receive any more emails from Café Test"),
        "{html}"
    );
    assert_eq!(
        objections(&t, ben).await,
        [(None, "preference centre".to_string())]
    );
    let (_, html) = send(&t, get(&page)).await;
    assert!(
        html.contains("You receive no emails from Café Test"),
        "{html}"
    );
    assert!(!html.contains("<form"), "{html}");

    let bad = send(&t, post(&page, "action=everything")).await;
    assert_eq!(bad.0, 422);
}

backend_test!(one_click_ends_only_the_kind_of_the_email_it_came_with);
async fn one_click_ends_only_the_kind_of_the_email_it_came_with(Db { url, .. }: Db) {
    let t = TestApp::new(&url, TWO_KINDS).await;
    t.import(CUSTOMERS).await;
    let anna = customer_id(&t, "anna@example.de").await;
    let ben = customer_id(&t, "ben@example.com").await;

    // The loyalty email as sent: its List-Unsubscribe link names its kind.
    let day = berlin(2026, 12, 7, 12, 0);
    plan(&t, "punkte", day).await;
    assert_eq!(t.deliver_all(day).await, 2);
    let mail = t.mails_to("anna@example.de").pop().unwrap();
    let unfolded = mail.replace("\r\n ", "").replace("\r\n\t", "");
    let header = unfolded
        .lines()
        .find_map(|l| l.strip_prefix("List-Unsubscribe: <"))
        .unwrap_or_else(|| panic!("{mail}"));
    let url = header.split('>').next().unwrap();
    let path = &url[url.find("/u/").unwrap()..];
    let (status, _) = send(&t, post(path, "List-Unsubscribe=One-Click")).await;
    assert_eq!(status, 200);
    assert_eq!(
        objections(&t, anna).await,
        [(Some("loyalty".to_string()), "unsubscribe link".to_string())]
    );
    let next = day + Duration::days(1);
    assert_eq!(
        plan(&t, "news", next).await,
        [("planned".to_string(), None, 2)]
    );

    // A link from before links named their kind stands for every email.
    let (status, _) = send(&t, post(&link(&t, ben, None), "List-Unsubscribe=One-Click")).await;
    assert_eq!(status, 200);
    assert_eq!(
        objections(&t, ben).await,
        [(None, "unsubscribe link".to_string())]
    );
    let news = plan(&t, "news", next + Duration::days(1)).await;
    assert!(
        news.contains(&("suppressed".into(), Some("unsubscribed".into()), 1)),
        "{news:?}"
    );

    // A token naming no kind we know is refused, changing nothing.
    let forged = link(&t, anna, Some("newsletter"));
    let (status, _) = send(&t, post(&forged, "List-Unsubscribe=One-Click")).await;
    assert_eq!(status, 404);
    assert_eq!(objections(&t, anna).await.len(), 1);
}

backend_test!(the_sample_link_of_an_approval_acts_on_nobody);
async fn the_sample_link_of_an_approval_acts_on_nobody(Db { url, .. }: Db) {
    let t = TestApp::new(&url, TWO_KINDS).await;
    t.import(CUSTOMERS).await;
    for body in [
        "action=all",
        "action=save",
        "List-Unsubscribe=One-Click",
        "",
    ] {
        let (status, html) = send(&t, post("/u/sample", body)).await;
        assert_eq!(status, 200);
        assert!(html.contains("Beispiel"), "{html}");
    }
    for email in ["anna@example.de", "ben@example.com"] {
        let id = customer_id(&t, email).await;
        assert_eq!(objections(&t, id).await, [], "{email}");
    }
}
