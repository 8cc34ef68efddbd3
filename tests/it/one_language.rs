//! Every reader gets one language: staff their own (`locale` of their
//! `[[staff]]` entry), customers theirs, and, where there is no text in it,
//! the business language — the same rule for pages, digests and emails.
//! German staff pages and digests hold no English (no states, outcomes or
//! history lines as the program records them), English ones no German, and
//! the talking points fit why a call is made.

use crate::common;

use axum::http::StatusCode;
use chrono::Utc;
use common::app::{TestApp, body_text, get, post};
use common::mail::Mail;
use common::{Db, backend_test};
use outreach::schedule::start_now;
use outreach::tasks::record_outcome;
use outreach::tokens::Purpose;
use tower::ServiceExt;

const CONFIG: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[staff]]
id = "lena"
name = "Lena"
email = "lena@cafe-test.example"
locale = "en"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[staff]]
id = "pierre"
name = "Pierre"
email = "pierre@cafe-test.example"
locale = "fr"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

[[campaign]]
id = "wochenbrief"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"

[[checkin]]
id = "hallo"
audience = "true"
schedule = "0 3 1 1 *"
assign = "owner"
due_in = "0d"
reason = { de = "Lange nichts gehört – einfach nachfragen, wie es geht.", en = "We have not heard from them in a while – just ask how they are." }
template = "checkin"
"#;

const CUSTOMERS: &str = "external_id,email,name,phone,locale,consent,phone_consent,owner\n\
    A,anna@example.de,Anna,+49 221 1,de,yes,yes,jonas\n\
    B,ben@example.de,Ben,+49 221 2,de,yes,yes,maria\n\
    C,cleo@example.com,Cleo,+44 20 3,en,yes,yes,lena\n\
    D,dana@example.de,Dana,+49 221 4,de,yes,yes,pierre\n";

/// English a German reader must not meet: states, outcomes and history as
/// the program records them, and the old page words.
const ENGLISH: [&str; 14] = [
    "callback agreed",
    "needs help",
    "outcome",
    "(task ",
    "(run ",
    " sent",
    "State:",
    "awaiting_approval",
    "Why:",
    "Last contacts",
    "reached",
    "Unsubscribe",
    "You will",
    "Call back",
];

/// German an English reader must not meet.
const GERMAN: [&str; 9] = [
    "Anruf",
    "Rückruf",
    "Letzte Kontakte",
    "fällig",
    "Lange nichts gehört",
    "erreicht",
    "Warum",
    "Abmelden",
    "Sie ",
];

/// Whether any of `words` is in what a person reads of `text` (for HTML:
/// the body without its tags, not form values or class names).
fn assert_none_of(words: &[&str], what: &str, text: &str) {
    let shown = match text.split_once("<body") {
        Some((_, body)) => {
            let mut out = String::new();
            let mut in_tag = true;
            for c in body.chars() {
                match c {
                    '<' => in_tag = true,
                    '>' if in_tag => {
                        in_tag = false;
                        out.push(' ');
                    }
                    c if !in_tag => out.push(c),
                    _ => {}
                }
            }
            out
        }
        None => text.to_string(),
    };
    for word in words {
        assert!(!shown.contains(word), "{what}: `{word}` in\n{shown}");
    }
}

/// The page of a task, as its staff member opens it.
async fn task_page(t: &TestApp, router: &axum::Router, task: i64) -> String {
    let token = t
        .app
        .signer
        .sign(Purpose::Task, task, Utc::now() + chrono::Duration::days(1));
    let response = router
        .clone()
        .oneshot(get(&format!("/t/{token}")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    body_text(response).await
}

/// The open tasks of a staff member, oldest first.
async fn open_tasks(t: &TestApp, staff: &str) -> Vec<outreach::store::Task> {
    t.app.store.tasks(Some(staff), true).await.unwrap()
}

/// Sends a staff member's digest for the day their last open call is due, and returns it.
async fn digest(t: &TestApp, staff: &str) -> Mail {
    let member = t
        .app
        .settings()
        .staff
        .iter()
        .find(|s| s.id == staff)
        .unwrap()
        .clone();
    let day = open_tasks(t, staff)
        .await
        .iter()
        .map(|t| t.due_on)
        .max()
        .unwrap();
    assert!(
        outreach::tasks::digest::send_digest(&t.app, &member, day, Utc::now())
            .await
            .unwrap()
    );
    let mut digests: Vec<Mail> = t
        .outbox_mails()
        .iter()
        .map(|m| Mail::parse(m))
        .filter(|m| m.to == member.email)
        .collect();
    assert_eq!(digests.len(), 1, "one digest to {}", member.email);
    digests.pop().unwrap()
}

backend_test!(staff_read_their_own_language_everywhere_and_the_talking_points_fit_the_reason);
async fn staff_read_their_own_language_everywhere_and_the_talking_points_fit_the_reason(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, CONFIG).await;
    t.import(CUSTOMERS).await;
    // Today, before anyone's digest_at: the test sends the digests itself.
    let now = common::app::berlin_today(6, 0);
    start_now(&t.app, "wochenbrief", now).await.unwrap();
    t.tick(now).await;
    assert_eq!(t.deliver_all(now).await, 4, "{url}");
    start_now(&t.app, "hallo", now).await.unwrap();
    t.tick(now).await;
    let today = now.with_timezone(&chrono_tz::Europe::Berlin).date_naive();

    // Jonas finds Anna needs help (Maria, his manager, takes it on); Maria
    // agrees a call back with Ben.
    let anna = open_tasks(&t, "jonas").await[0].id;
    record_outcome(
        &t.app,
        anna,
        "needs_help",
        Some("Lieferung fehlt"),
        None,
        now,
    )
    .await
    .unwrap();
    let ben = open_tasks(&t, "maria").await[0].id;
    record_outcome(
        &t.app,
        ben,
        "callback",
        Some("nach dem Arzttermin"),
        Some(today),
        now,
    )
    .await
    .unwrap();
    let maria = open_tasks(&t, "maria").await;
    assert_eq!(maria.len(), 2, "{url}: {maria:?}");
    let router = t.router().await;

    let of_kind = |kind: &str| maria.iter().find(|t| t.kind == kind).unwrap().id;
    let help = task_page(&t, &router, of_kind("follow_up")).await;
    assert!(help.contains("<html lang=\"de\">"), "{help}");
    assert!(
        help.contains(
            "Jonas hat angerufen und meint, hier wird Unterstützung gebraucht: „Lieferung fehlt“"
        ),
        "{help}"
    );
    assert!(
        help.contains("Anruf von Jonas – braucht Unterstützung"),
        "{help}"
    );
    let call_back = task_page(&t, &router, of_kind("callback")).await;
    assert!(
        call_back.contains("Rückruf, wie vereinbart („nach dem Arzttermin“)."),
        "{call_back}"
    );
    assert!(
        call_back.contains("Anruf von Maria – Rückruf vereinbart"),
        "{call_back}"
    );
    assert!(call_back.contains("E-Mail „wochenbrief“"), "{call_back}");
    for (what, page) in [("help", &help), ("call back", &call_back)] {
        assert_none_of(&ENGLISH, what, page);
        // A call back is not a call after a long silence.
        assert!(
            !page.contains("lange nichts voneinander gehört"),
            "{what}: {page}"
        );
    }
    let mail = digest(&t, "maria").await;
    assert_eq!(mail.subject, "Ihre Anrufe für heute (2)");
    // A whole HTML document, not a fragment.
    assert!(
        mail.html()
            .starts_with("<!DOCTYPE html>\n<html lang=\"de\">"),
        "{}",
        mail.html()
    );
    assert!(
        mail.html()
            .contains("<title>Ihre Anrufe für heute (2)</title>"),
        "{}",
        mail.html()
    );
    for part in [mail.text(), mail.html()] {
        assert_none_of(&ENGLISH, "Maria's digest", part);
        assert!(!part.contains("lange nichts voneinander gehört"), "{part}");
    }
    assert!(
        mail.text()
            .contains("Sie rufen zurück, wie es beim letzten Gespräch vereinbart wurde."),
        "{}",
        mail.text()
    );

    // Lena reads English, the rule's reason too.
    let cleo = open_tasks(&t, "lena").await[0].id;
    let page = task_page(&t, &router, cleo).await;
    assert!(page.contains("<html lang=\"en\">"), "{page}");
    assert!(
        page.contains("We have not heard from them in a while – just ask how they are."),
        "{page}"
    );
    assert!(page.contains("email “wochenbrief”"), "{page}");
    assert_none_of(&GERMAN, "Lena's page", &page);
    let mail = digest(&t, "lena").await;
    assert_eq!(mail.subject, "Your calls for today (1)");
    assert_none_of(&GERMAN, "Lena's digest", mail.text());
    assert_none_of(&GERMAN, "Lena's digest", mail.html());
    let calendar = &mail
        .parts
        .iter()
        .find(|p| p.0.starts_with("text/calendar"))
        .unwrap()
        .2;
    assert!(
        calendar.contains("We have not heard from them"),
        "{calendar}"
    );

    // Nothing is written in French: Pierre gets the business language, all of it.
    let dana = open_tasks(&t, "pierre").await[0].id;
    let page = task_page(&t, &router, dana).await;
    assert!(page.contains("<html lang=\"de\">"), "{page}");
    assert!(page.contains("Wie geht es Ihnen gerade?"), "{page}");
    assert_none_of(&ENGLISH, "Pierre's page", &page);
    let mail = digest(&t, "pierre").await;
    assert_eq!(mail.subject, "Ihre Anrufe für heute (1)");
    assert!(
        mail.html().contains("<html lang=\"de\">"),
        "{}",
        mail.html()
    );
    assert_none_of(&ENGLISH, "Pierre's digest", mail.text());
}

#[tokio::test]
async fn the_unsubscribe_page_speaks_the_customers_language_before_and_after_and_bad_links_the_business_language()
 {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let t = TestApp::new(&url, CONFIG).await;
    t.import(CUSTOMERS).await;
    let router = t.router().await;
    for (key, lang, words, foreign) in [
        (
            "B",
            "de",
            ["Ihre E-Mails von uns", "Abgemeldet"],
            &ENGLISH[..],
        ),
        (
            "C",
            "en",
            ["Your emails from us", "Unsubscribed"],
            &GERMAN[..],
        ),
    ] {
        let id = t.app.store.find_customer(key).await.unwrap().unwrap().id;
        let token = t.app.signer.sign(
            Purpose::Unsubscribe,
            id,
            Utc::now() + chrono::Duration::days(1),
        );
        let path = format!("/u/{token}");
        let ask = body_text(router.clone().oneshot(get(&path)).await.unwrap()).await;
        let done = body_text(router.clone().oneshot(post(&path, "")).await.unwrap()).await;
        for (page, title) in [(&ask, words[0]), (&done, words[1])] {
            assert!(page.contains(&format!("<html lang=\"{lang}\">")), "{page}");
            assert!(page.contains(&format!("<h1>{title}</h1>")), "{page}");
            // The page words, not the button's label (German "Abmelden" is one).
            let text = page.split("<main>").nth(1).unwrap();
            let foreign: Vec<&str> = foreign
                .iter()
                .copied()
                .filter(|w| !words.contains(w))
                .collect();
            assert_none_of(&foreign, key, text);
        }
        let customer = t.app.store.find_customer(key).await.unwrap().unwrap();
        assert!(customer.unsubscribed_at.is_some(), "{key}");
    }
    let bad = body_text(router.clone().oneshot(get("/u/garbage")).await.unwrap()).await;
    assert!(bad.contains("<html lang=\"de\">"), "{bad}");
    assert!(bad.contains("Dieser Link funktioniert nicht"), "{bad}");
    assert_none_of(&ENGLISH, "the error page", &bad);
}
