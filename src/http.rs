//! The HTTP server: health and metrics for operators, and the pages behind
//! the links in emails — unsubscribe (`/u/`), task outcome (`/t/`) and run
//! approval (`/a/`). It binds to loopback by default; a reverse proxy
//! publishes it (see README).
//!
//! Every link carries a signed token ([`crate::tokens`]). A bad, forged,
//! expired or wrong-purpose token gets a plain error page and no data. GET
//! never changes anything (mail scanners prefetch links); changes are POSTs.

pub mod guard;
pub mod health;
pub mod server;

use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, Shared};
use crate::deliver::Delivery;
use crate::tasks::digest::{staff_locale, talking_points, words};
use crate::templates::escape_html as esc;
use crate::tokens::{Purpose, TokenError};

#[derive(Clone)]
pub struct AppState {
    pub shared: Shared,
    pub delivery: Arc<Delivery>,
    pub health: Arc<health::HealthCache>,
}

impl AppState {
    pub fn new(shared: Shared, delivery: Arc<Delivery>) -> Self {
        AppState {
            shared,
            delivery,
            health: Arc::default(),
        }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/metrics", get(metrics))
        .route("/u/{token}", get(unsubscribe_page).post(unsubscribe))
        .route("/t/{token}", get(task_page).post(task_outcome))
        .route("/a/{token}", get(approval_page).post(approval_decision))
        // A link cut or mangled on its way (e.g. a `/` in the token): the same plain page as a bad token.
        .fallback(|| async { token_error(TokenError::Malformed) })
        // Forms here are a few hundred bytes; refuse anything large early.
        .layer(DefaultBodyLimit::max(16 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::pages,
        ))
        .with_state(state)
}

/// Serves until `stop` turns true, then drains ([`server`]).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    stop: watch::Receiver<bool>,
) -> Result<()> {
    let limits = server::Limits::from_config(&state.shared.current().config);
    server::serve(listener, router(state), limits, stop).await
}

fn page(lang: &str, title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html><html lang=\"{lang}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:0 auto;padding:1rem;line-height:1.5;color:#222}}\
         h1{{font-size:1.4rem}}a.tel{{font-size:1.3rem}}label{{display:block;padding:.6rem;margin:.3rem 0;border:1px solid #ccc;border-radius:.5rem}}\
         textarea,input[type=date]{{width:100%;box-sizing:border-box;font-size:1rem;font-family:inherit;padding:.5rem}}\
         button{{font-size:1.1rem;padding:.7rem 1.2rem;margin:.5rem .5rem .5rem 0;border-radius:.5rem;border:1px solid #555;background:#2d5a3d;color:#fff}}\
         button.secondary{{background:#fff;color:#222}}.muted{{color:#666;font-size:.9rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    )
}

/// A plain page for a link that does not work; it says nothing about what the link was for.
fn token_error(e: TokenError) -> Response {
    let status = if e == TokenError::Expired {
        StatusCode::GONE
    } else {
        StatusCode::NOT_FOUND
    };
    let body = format!("<p>{e}. / Dieser Link ist ungültig oder abgelaufen.</p>");
    (status, Html(page("en", "Link not valid", &body))).into_response()
}

fn server_error(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "request failed");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(page(
            "en",
            "Something went wrong",
            "<p>Please try again later.</p>",
        )),
    )
        .into_response()
}

async fn metrics(State(state): State<AppState>) -> Response {
    let app = state.shared.current();
    match render_metrics(&app, &state.delivery).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => server_error(e),
    }
}

async fn render_metrics(app: &App, delivery: &Delivery) -> Result<String> {
    let mut out = String::from(
        "# HELP outreach_messages Outbox messages by state.\n# TYPE outreach_messages gauge\n",
    );
    let queue = app.store.queue_counts().await?;
    for state in [
        "planned",
        "sending",
        "sent",
        "failed",
        "suppressed",
        "unknown",
    ] {
        let n = queue
            .iter()
            .find(|(s, _)| s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        out.push_str(&format!("outreach_messages{{state=\"{state}\"}} {n}\n"));
    }
    let now = Utc::now();
    let open = app.store.tasks(None, true).await?;
    out.push_str("# HELP outreach_open_tasks Open call tasks.\n# TYPE outreach_open_tasks gauge\n");
    out.push_str(&format!("outreach_open_tasks {}\n", open.len()));
    out.push_str("# HELP outreach_overdue_tasks Open call tasks past their due day.\n# TYPE outreach_overdue_tasks gauge\n");
    out.push_str(&format!(
        "outreach_overdue_tasks {}\n",
        open.iter()
            .filter(|t| crate::tasks::is_overdue(app, t, now))
            .count()
    ));
    delivery.metrics.render(&mut out);
    Ok(out)
}

// ---- unsubscribe ----

async fn unsubscribe_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Unsubscribe, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    let customer = match app.store.customers_by_ids(&[id]).await {
        Ok(mut c) => c.pop(),
        Err(e) => return server_error(e),
    };
    let lang = customer
        .as_ref()
        .and_then(|c| c.locale.clone())
        .unwrap_or_else(|| app.settings().business.locale.clone());
    let name = esc(&app.settings().business.name);
    let body = if lang == "de" {
        format!(
            "<p>Möchten Sie keine E-Mails von {name} mehr erhalten?</p><form method=\"post\"><button>Ja, abmelden</button></form>"
        )
    } else {
        format!(
            "<p>Do you no longer want to receive emails from {name}?</p><form method=\"post\"><button>Yes, unsubscribe</button></form>"
        )
    };
    Html(page(
        &lang,
        if lang == "de" {
            "Abmelden"
        } else {
            "Unsubscribe"
        },
        &body,
    ))
    .into_response()
}

/// POST from our page or RFC 8058 one-click (`List-Unsubscribe=One-Click`): 200, no redirect.
/// The body is not needed, but taking it applies the body limit: an oversized POST gets 413.
async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    _body: axum::body::Bytes,
) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Unsubscribe, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    state.delivery.note_unsubscribe(id);
    if let Err(e) = app
        .store
        .unsubscribe(id, "unsubscribe link", Utc::now())
        .await
    {
        return server_error(e);
    }
    let body = "<p>Sie erhalten keine E-Mails mehr von uns. / You will not receive any more emails from us.</p>";
    Html(page("de", "Abgemeldet / Unsubscribed", body)).into_response()
}

// ---- task page ----

async fn task_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Task, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    match render_task_page(&app, id, None).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(e),
    }
}

#[derive(Deserialize)]
struct OutcomeForm {
    outcome: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    callback_on: String,
}

async fn task_outcome(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<OutcomeForm>,
) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Task, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    let callback = NaiveDate::parse_from_str(form.callback_on.trim(), "%Y-%m-%d").ok();
    let note =
        (!form.note.trim().is_empty()).then(|| form.note.chars().take(4000).collect::<String>());
    let message = match crate::tasks::record_outcome(
        &app,
        id,
        &form.outcome,
        note.as_deref(),
        callback,
        Utc::now(),
    )
    .await
    {
        Ok(true) => "saved",
        Ok(false) => "already",
        Err(e)
            if e.to_string().contains("callback") || e.to_string().contains("unknown outcome") =>
        {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(page(
                    "en",
                    "Please check the form",
                    &format!("<p>{}</p><p><a href=\"\">Back</a></p>", esc(&e.to_string())),
                )),
            )
                .into_response();
        }
        Err(e) => return server_error(e),
    };
    match render_task_page(&app, id, Some(message)).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(e),
    }
}

/// The outcomes as the form offers them: (value, German, English).
const OUTCOME_LABELS: [(&str, &str, &str); 5] = [
    (
        "reached",
        "Erreicht – Gespräch geführt",
        "Reached – we talked",
    ),
    (
        "not_reached",
        "Nicht erreicht (morgen erneut)",
        "Not reached (try again next working day)",
    ),
    ("callback", "Rückruf vereinbart am …", "Call back on …"),
    (
        "needs_help",
        "Braucht Unterstützung (an Leitung)",
        "Needs help (to the manager)",
    ),
    (
        "do_not_call",
        "Möchte nicht angerufen werden",
        "Does not want to be called",
    ),
];

async fn render_task_page(app: &App, task_id: i64, flash: Option<&str>) -> Result<String> {
    let task = app
        .store
        .task(task_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("task {task_id} vanished"))?;
    let customer = app
        .store
        .customers_by_ids(&[task.customer_id])
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("customer of task {task_id} vanished"))?;
    let staff = app.settings().staff.iter().find(|s| s.id == task.staff_id);
    let lang = staff
        .map(|s| staff_locale(app, s))
        .unwrap_or(&app.settings().business.locale)
        .to_string();
    let de = lang == "de";
    let w = words(&lang);
    let phone = customer.phone.clone().unwrap_or_default();
    let mut body = String::new();
    match flash {
        Some("saved") => body.push_str(if de {
            "<p><b>Danke, gespeichert.</b></p>"
        } else {
            "<p><b>Thank you, saved.</b></p>"
        }),
        // Closed by expiry, not by anyone: what was just sent was not saved.
        Some(_) if task.state == "expired" => body.push_str(if de {
            "<p><b>Diese Aufgabe ist abgelaufen; das Ergebnis wurde nicht gespeichert.</b> \
             Bitte geben Sie es an Ihre Leitung weiter.</p>"
        } else {
            "<p><b>This task has expired; the outcome was not saved.</b> \
             Please pass it on to your manager.</p>"
        }),
        Some(_) => body.push_str(if de {
            "<p><b>Das Ergebnis war schon eingetragen.</b></p>"
        } else {
            "<p><b>The outcome had already been recorded.</b></p>"
        }),
        None => {}
    }
    body.push_str(&format!(
        "<p><a class=\"tel\" href=\"tel:{}\">☎ {}</a></p><p><b>{}:</b> {}</p><p class=\"muted\">{} {}</p>",
        esc(&phone.replace(' ', "")),
        esc(&phone),
        w.why,
        esc(&task.reason),
        w.due,
        crate::render::local_date(task.due_on, &lang)
    ));
    body.push_str(&talking_points(app, &task, &customer, &lang)?.html);
    let contacts = crate::history::last_contacts(&app.store, customer.id, 5).await?;
    body.push_str(&format!(
        "<h2 style=\"font-size:1.1rem\">{}</h2><ul>",
        w.last_contacts
    ));
    if contacts.is_empty() {
        body.push_str(&format!("<li>{}</li>", w.no_contacts));
    }
    for c in contacts {
        body.push_str(&format!(
            "<li>{} — {}</li>",
            c.at.date_naive(),
            esc(&c.detail)
        ));
    }
    body.push_str("</ul>");
    if task.state == "open" {
        body.push_str("<form method=\"post\">");
        for (value, label_de, label_en) in OUTCOME_LABELS {
            body.push_str(&format!(
                "<label><input type=\"radio\" name=\"outcome\" value=\"{value}\" required> {}</label>",
                if de { label_de } else { label_en }
            ));
        }
        body.push_str(&format!(
            "<p><label style=\"border:none;padding:0\">{}<input type=\"date\" name=\"callback_on\"></label></p>\
             <p><label style=\"border:none;padding:0\">{}<textarea name=\"note\" rows=\"4\"></textarea></label></p>\
             <button type=\"submit\">{}</button></form>",
            if de { "Rückruf am (nur bei Rückruf):" } else { "Call back on (only for call back):" },
            if de { "Notiz (wie geht es, was wurde besprochen?)" } else { "Note (how are they, what did you talk about?)" },
            if de { "Speichern" } else { "Save" },
        ));
    } else {
        // The label staff chose from, not the internal value.
        let outcome = task.outcome.as_deref().unwrap_or(&task.state);
        let label = OUTCOME_LABELS
            .iter()
            .find(|(value, _, _)| *value == outcome)
            .map(|(_, label_de, label_en)| if de { *label_de } else { *label_en })
            .unwrap_or(outcome);
        body.push_str(&format!(
            "<p class=\"muted\">{}: {} {}</p>",
            if de { "Ergebnis" } else { "Outcome" },
            esc(label),
            esc(task.note.as_deref().unwrap_or(""))
        ));
    }
    let title = format!(
        "{} {}",
        if de { "Anruf bei" } else { "Call" },
        customer.label()
    );
    Ok(page(&lang, &esc(&title), &body))
}

// ---- approval ----

async fn approval_page(State(state): State<AppState>, Path(token): Path<String>) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Approval, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    match render_approval_page(&app, id, None).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(e),
    }
}

#[derive(Deserialize)]
struct DecisionForm {
    action: String,
}

async fn approval_decision(
    State(state): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<DecisionForm>,
) -> Response {
    let app = state.shared.current();
    let id = match app.signer.verify(&token, Purpose::Approval, Utc::now()) {
        Ok(id) => id,
        Err(e) => return token_error(e),
    };
    let approve = match form.action.as_str() {
        "approve" => true,
        "cancel" => false,
        _ => {
            return (
                StatusCode::UNPROCESSABLE_ENTITY,
                "action must be approve or cancel",
            )
                .into_response();
        }
    };
    let flash = match crate::approval::decide(&app, id, approve, "approval link", Utc::now()).await
    {
        Ok(to) => {
            state.delivery.wake.notify_waiters();
            format!("Run {id}: {to}")
        }
        Err(e) => e.to_string(),
    };
    match render_approval_page(&app, id, Some(&flash)).await {
        Ok(html) => Html(html).into_response(),
        Err(e) => server_error(e),
    }
}

async fn render_approval_page(app: &App, run_id: i64, flash: Option<&str>) -> Result<String> {
    let run = app
        .store
        .run(run_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
    let campaign = app
        .campaign(&run.rule_id)
        .ok_or_else(|| anyhow::anyhow!("campaign {} is no longer configured", run.rule_id))?;
    let (_, preview) =
        crate::approval::preview_text(app, &run, campaign, &run.detail, Utc::now()).await?;
    let mut body = String::new();
    if let Some(f) = flash {
        body.push_str(&format!("<p><b>{}</b></p>", esc(f)));
    }
    body.push_str(&format!("<p>State: <b>{}</b></p>", esc(&run.state)));
    if run.state == "awaiting_approval" {
        body.push_str(
            "<form method=\"post\"><button name=\"action\" value=\"approve\">Freigeben / Approve</button>\
             <button class=\"secondary\" name=\"action\" value=\"cancel\">Abbrechen / Cancel</button></form>",
        );
    }
    body.push_str(&preview);
    Ok(page(
        &app.settings().business.locale,
        &esc(&format!("{} — run {run_id}", campaign.id)),
        &body,
    ))
}
