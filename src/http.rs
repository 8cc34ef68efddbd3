//! The HTTP server: health and metrics for operators, and the pages behind
//! the links in emails — unsubscribe (`/u/`), task outcome (`/t/`) and run
//! approval (`/a/`). It binds to loopback by default; a reverse proxy
//! publishes it (see README).
//!
//! Every link carries a signed token ([`crate::tokens`]), checked once by
//! the extractor for its purpose ([`links`]) before a handler runs. A bad,
//! forged, expired or wrong-purpose token gets a plain error page and no
//! data; every error is a typed [`error::PageError`] that knows its answer.
//! GET never changes anything (mail scanners prefetch links); changes are
//! POSTs.
//!
//! The pages are templates (`task_page`, `approval_page`, `unsubscribe_page`,
//! `error_page`, framed by `_page.html`), in the reader's language: the
//! staff member's on task and approval pages, the customer's on the
//! unsubscribe page, the business's where the reader is unknown.

pub mod error;
pub mod guard;
pub mod health;
pub mod links;
pub mod server;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Result;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Form, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use chrono::{NaiveDate, Utc};
use minijinja::value::Serde;
use minijinja::{Value, context};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::{App, Shared};
use crate::approval::Decision;
use crate::config::{CampaignKind, Staff};
use crate::deliver::Delivery;
use crate::signup::{Answer, SignupForm, SignupGuard, SignupOutcome};
use crate::store::TaskState;
use crate::tasks::OutcomeError;
use crate::tasks::digest::staff_locale;
use crate::tasks::outcomes::HelpGoesTo;
use crate::tasks::roster::Roster;
use crate::tasks::view::CallView;
use crate::tokens::TokenError;
pub use error::error_page_context;
use error::{Cause, PageError, respond};
use links::{ApprovalLink, ConfirmLink, TaskLink, UnsubscribeLink, Unsubscriber};

#[derive(Clone)]
pub struct AppState {
    pub shared: Shared,
    pub delivery: Arc<Delivery>,
    pub health: Arc<health::HealthCache>,
    /// Sign-up counters and the posts per client address.
    pub signups: Arc<SignupGuard>,
}

impl AppState {
    pub fn new(shared: Shared, delivery: Arc<Delivery>) -> Self {
        AppState {
            shared,
            delivery,
            health: Arc::default(),
            signups: Arc::default(),
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
        .route("/s", get(signup_page).post(signup_post))
        .route("/c/{token}", get(confirm_page).post(confirm_post))
        // A link cut or mangled on its way (e.g. a `/` in the token): the same plain page as a bad token.
        .fallback(|State(state): State<AppState>| async move {
            respond(&state.shared.current(), Cause::Link(TokenError::Malformed))
        })
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

/// A page from its template, or, should the template fail, the error page.
fn page(app: &App, status: StatusCode, name: &str, locale: Option<&str>, ctx: Value) -> Response {
    match app.templates.render_page(name, locale, &ctx) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => respond(app, Cause::Failed(e)),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let app = state.shared.current();
    match render_metrics(&app, &state.delivery, &state.signups).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => respond(&app, Cause::Failed(e)),
    }
}

async fn render_metrics(app: &App, delivery: &Delivery, signups: &SignupGuard) -> Result<String> {
    let mut out = String::from(
        "# HELP outreach_messages Outbox messages by state.\n# TYPE outreach_messages gauge\n",
    );
    let queue = app.store.queue_counts().await?;
    for state in crate::domain::MessageState::ALL {
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
    out.push_str("# HELP outreach_mail_reports Bounces and complaints read from email, by what they did (ignored: read, not acted on).\n# TYPE outreach_mail_reports counter\n");
    let reports = app.store.mail_report_counts().await?;
    for kind in crate::store::ReportKind::ALL {
        let n = reports
            .iter()
            .find(|(k, _)| *k == kind)
            .map_or(0, |(_, n)| *n);
        out.push_str(&format!(
            "outreach_mail_reports_total{{kind=\"{}\"}} {n}\n",
            kind.as_str()
        ));
    }
    let holds = crate::control::Holds::load(app, now).await?;
    out.push_str("# HELP outreach_customer_email_held 1 while all email to customers is paused (`outreach pause`).\n# TYPE outreach_customer_email_held gauge\n");
    out.push_str(&format!(
        "outreach_customer_email_held {}\n",
        u8::from(holds.everything().is_some())
    ));
    out.push_str("# HELP outreach_rule_paused Campaigns and check-in rules paused or disabled in the config.\n# TYPE outreach_rule_paused gauge\n");
    for (id, _) in holds.paused_rules(app) {
        out.push_str(&format!("outreach_rule_paused{{rule=\"{id}\"}} 1\n"));
    }
    delivery.metrics.render(&mut out);
    signups.render(&mut out);
    Ok(out)
}

// ---- unsubscribe and preferences ----

/// What the unsubscribe page shows (`state` in the `unsubscribe_page` template).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreferencesState {
    /// The link was opened: what the customer gets, by kind, to keep or end.
    Choose,
    /// The choices were saved; the form shows them again.
    Saved,
    /// Every email was ended (the button, or a link from before kinds).
    Done,
    /// One kind was ended by a one-click unsubscribe (RFC 8058).
    KindDone,
    /// The link was opened, but the customer gets no email from us at all.
    Off,
    /// The link in an approval sample: it acts on nobody.
    Sample,
}

impl PreferencesState {
    pub const ALL: [PreferencesState; 6] = [
        PreferencesState::Choose,
        PreferencesState::Saved,
        PreferencesState::Done,
        PreferencesState::KindDone,
        PreferencesState::Off,
        PreferencesState::Sample,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PreferencesState::Choose => "choose",
            PreferencesState::Saved => "saved",
            PreferencesState::Done => "done",
            PreferencesState::KindDone => "kind_done",
            PreferencesState::Off => "off",
            PreferencesState::Sample => "sample",
        }
    }
}

async fn unsubscribe_page(link: UnsubscribeLink) -> Result<Response, PageError> {
    match link.reader {
        Unsubscriber::Sample => Ok(sample_unsubscribe(&link.app)),
        Unsubscriber::Customer { id, kind } => {
            preferences_response(&link.app, id, kind, PreferencesState::Choose).await
        }
    }
}

fn sample_unsubscribe(app: &App) -> Response {
    let ctx = unsubscribe_page_context(
        PreferencesState::Sample,
        &app.settings().business.name,
        &[],
        None,
    );
    page(app, StatusCode::OK, "unsubscribe_page", None, ctx)
}

/// The page in `state` for the link's customer, in their language, with
/// what they get now.
async fn preferences_response(
    app: &Arc<App>,
    customer_id: i64,
    link_kind: Option<CampaignKind>,
    state: PreferencesState,
) -> Result<Response, PageError> {
    let ids = [customer_id];
    let (mut customers, objections) = tokio::try_join!(
        app.store.customers_by_ids(&ids),
        app.store.active_objections(&ids)
    )
    .map_err(PageError::failed(app))?;
    let customer = customers.pop();
    let off = customer
        .as_ref()
        .is_none_or(|c| c.unsubscribed_at.is_some() || c.forgotten_at.is_some());
    let state = match state {
        PreferencesState::Choose | PreferencesState::Saved if off => PreferencesState::Off,
        other => other,
    };
    let kinds: Vec<(CampaignKind, bool)> = crate::signup::configured_kinds(app)
        .into_iter()
        .map(|k| {
            let declined = objections.iter().any(|o| {
                o.channel == crate::domain::Channel::Email && o.kind.as_deref() == Some(k.as_str())
            });
            (k, !declined)
        })
        .collect();
    let locale = customer.and_then(|c| c.locale);
    let ctx = unsubscribe_page_context(state, &app.settings().business.name, &kinds, link_kind);
    Ok(page(
        app,
        StatusCode::OK,
        "unsubscribe_page",
        locale.as_deref(),
        ctx,
    ))
}

/// Where an objection made on the page or by the link comes from.
const PREFERENCE_CENTRE: &str = "preference centre";
const ONE_CLICK: &str = "unsubscribe link";

/// POST to `/u/…`: from the page (`action=save` with the kinds to keep as
/// `keep`, or `action=all`), or RFC 8058 one-click
/// (`List-Unsubscribe=One-Click`, no `action`), which ends only the kind of
/// email the link came with — every email for links without a kind. Answers
/// 200, no redirect. The body is taken as bytes (one-click senders use
/// either form encoding), which also applies the body limit. The sample's
/// link (in approval requests) changes nothing.
async fn unsubscribe(
    State(state): State<AppState>,
    link: UnsubscribeLink,
    body: axum::body::Bytes,
) -> Result<Response, PageError> {
    let app = &link.app;
    let (id, link_kind) = match link.reader {
        Unsubscriber::Sample => return Ok(sample_unsubscribe(app)),
        Unsubscriber::Customer { id, kind } => (id, kind),
    };
    // A body that is not a form (a multipart one-click) has no action.
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let action = fields
        .iter()
        .find(|(k, _)| k == "action")
        .map(|(_, v)| v.as_str());
    let now = Utc::now();
    let result = match (action, link_kind) {
        (Some("all"), _) | (None, None) => {
            let how = if action.is_some() {
                PREFERENCE_CENTRE
            } else {
                ONE_CLICK
            };
            state.delivery.note_unsubscribe(id);
            app.store
                .unsubscribe(id, how, now)
                .await
                .map(|_| PreferencesState::Done)
        }
        (None, Some(kind)) => app
            .store
            .set_email_preferences(id, &[kind], &[], ONE_CLICK, now)
            .await
            .map(|_| PreferencesState::KindDone),
        (Some("save"), _) => {
            let keep: Vec<CampaignKind> = fields
                .iter()
                .filter(|(k, _)| k == "keep")
                .filter_map(|(_, v)| CampaignKind::parse(v))
                .collect();
            let (kept, declined): (Vec<_>, Vec<_>) = crate::signup::configured_kinds(app)
                .into_iter()
                .partition(|k| keep.contains(k));
            app.store
                .set_email_preferences(id, &declined, &kept, PREFERENCE_CENTRE, now)
                .await
                .map(|_| PreferencesState::Saved)
        }
        (Some(_), _) => {
            return Err(PageError::new(
                app,
                Cause::BadField("action must be save or all"),
            ));
        }
    };
    let state = result.map_err(PageError::failed(app))?;
    preferences_response(app, id, link_kind, state).await
}

// ---- sign-up (double opt-in) ----

#[derive(Deserialize)]
struct SignupQuery {
    lang: Option<String>,
}

/// The hosted sign-up form; `?lang=en` for English (default: the business language).
async fn signup_page(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<SignupQuery>,
) -> Response {
    let app = state.shared.current();
    if !app.settings().signup.enabled {
        return respond(&app, Cause::Link(TokenError::Malformed));
    }
    signup_response(
        &app,
        StatusCode::OK,
        query.lang.as_deref(),
        SignupState::Form,
        None,
        &SignupForm::default(),
    )
}

/// What the `signup_page` template shows (`state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignupState {
    Form,
    Sent,
    TooMany,
}

impl SignupState {
    pub const ALL: [SignupState; 3] = [SignupState::Form, SignupState::Sent, SignupState::TooMany];

    pub fn as_str(self) -> &'static str {
        match self {
            SignupState::Form => "form",
            SignupState::Sent => "sent",
            SignupState::TooMany => "too_many",
        }
    }
}

/// What the `signup_page` template sees: the state, the business, the kinds
/// of email offered, what to fix (`problem`: "email" or "kinds") and what
/// was posted (`form.email`, `form.name`), to fill the form in again.
pub fn signup_page_context(
    state: SignupState,
    business: &str,
    kinds: &[CampaignKind],
    problem: Option<&str>,
    form: &SignupForm,
) -> Value {
    context! {
        state => state.as_str(),
        business,
        kinds => kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        problem,
        form => context! { email => &form.email, name => &form.name },
    }
}

fn signup_response(
    app: &App,
    status: StatusCode,
    locale: Option<&str>,
    state: SignupState,
    problem: Option<&str>,
    form: &SignupForm,
) -> Response {
    let kinds = crate::signup::configured_kinds(app);
    let ctx = signup_page_context(state, &app.settings().business.name, &kinds, problem, form);
    page(app, status, "signup_page", locale, ctx)
}

/// The client a request comes from: behind the reverse proxy the daemon is
/// published through, the address the proxy added last to
/// `X-Forwarded-For`; else the peer of the connection.
fn client_address(request: &axum::extract::Request) -> String {
    if let Some(forwarded) = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        && let Some(last) = forwarded.rsplit(',').next().map(str::trim)
        && !last.is_empty()
    {
        return last.to_string();
    }
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string())
}

/// A sign-up posted by the hosted form or a form on the business's website.
async fn signup_post(State(state): State<AppState>, request: axum::extract::Request) -> Response {
    let app = state.shared.current();
    let settings = &app.settings().signup;
    if !settings.enabled {
        return respond(&app, Cause::Link(TokenError::Malformed));
    }
    if guard::cross_site(
        request.headers(),
        &app.settings().business.base_url,
        &settings.allowed_origins,
    )
    .is_some()
    {
        state.signups.ignore(SignupOutcome::ForeignOrigin);
        return respond(&app, Cause::ForeignOrigin);
    }
    let client = client_address(&request);
    let body = match axum::body::to_bytes(request.into_body(), 16 * 1024).await {
        Ok(body) => body,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "the form is too large").into_response(),
    };
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let form = SignupForm::from_fields(&fields);
    let locale = Some(form.language.as_str()).filter(|l| !l.is_empty());
    if !state.signups.allow(
        &client,
        settings.per_client_per_hour,
        std::time::Instant::now(),
    ) {
        state.signups.ignore(SignupOutcome::RateLimited);
        return signup_response(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            locale,
            SignupState::TooMany,
            None,
            &SignupForm::default(),
        );
    }
    match crate::signup::request(&app, &state.signups, &form, Utc::now()).await {
        Ok(Answer::Sent) => signup_response(
            &app,
            StatusCode::OK,
            locale,
            SignupState::Sent,
            None,
            &SignupForm::default(),
        ),
        Ok(Answer::BadAddress) => signup_response(
            &app,
            StatusCode::UNPROCESSABLE_ENTITY,
            locale,
            SignupState::Form,
            Some("email"),
            &form,
        ),
        Ok(Answer::NoKinds) => signup_response(
            &app,
            StatusCode::UNPROCESSABLE_ENTITY,
            locale,
            SignupState::Form,
            Some("kinds"),
            &form,
        ),
        Err(e) => respond(&app, Cause::Failed(e)),
    }
}

/// What the `confirm_page` template sees; `state` is "ask" or "done".
pub fn confirm_page_context(state: &str, business: &str) -> Value {
    context! { state, business }
}

async fn confirm_page(link: ConfirmLink) -> Response {
    let shown = if link.signup.confirmed_at.is_some() {
        "done"
    } else {
        "ask"
    };
    confirm_response(&link, shown)
}

async fn confirm_post(
    State(state): State<AppState>,
    link: ConfirmLink,
) -> Result<Response, PageError> {
    crate::signup::confirm(&link.app, &state.signups, link.signup.id, Utc::now())
        .await
        .map_err(PageError::failed(&link.app))?;
    Ok(confirm_response(&link, "done"))
}

/// The confirmation page, in the language the sign-up was made in.
fn confirm_response(link: &ConfirmLink, shown: &str) -> Response {
    let ctx = confirm_page_context(shown, &link.app.settings().business.name);
    page(
        &link.app,
        StatusCode::OK,
        "confirm_page",
        Some(&link.signup.locale),
        ctx,
    )
}

// ---- task page ----

async fn task_page(link: TaskLink) -> Result<Response, PageError> {
    task_response(&link.app, link.task, StatusCode::OK, None, None).await
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
    TaskLink { app, task: id }: TaskLink,
    Form(form): Form<OutcomeForm>,
) -> Result<Response, PageError> {
    let callback = NaiveDate::parse_from_str(form.callback_on.trim(), "%Y-%m-%d").ok();
    let note =
        (!form.note.trim().is_empty()).then(|| form.note.chars().take(4000).collect::<String>());
    let flash = match crate::tasks::record_outcome(
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
        // A mistake the staff member can fix is a typed value; anything else failed.
        Err(e) => match e.downcast::<OutcomeError>() {
            Ok(mistake) => {
                let status = StatusCode::UNPROCESSABLE_ENTITY;
                return task_response(&app, id, status, None, Some(&mistake)).await;
            }
            Err(e) => return Err(PageError::new(&app, Cause::Failed(e))),
        },
    };
    task_response(&app, id, StatusCode::OK, Some(flash), None).await
}

/// The task page: `flash` says what just happened, `problem` what to fix in the form.
async fn task_response(
    app: &Arc<App>,
    task_id: i64,
    status: StatusCode,
    flash: Option<&str>,
    mistake: Option<&OutcomeError>,
) -> Result<Response, PageError> {
    let (locale, ctx) = task_context(app, task_id, flash, mistake)
        .await
        .map_err(PageError::failed(app))?;
    Ok(page(app, status, "task_page", Some(&locale), ctx))
}

/// The task page's language and values.
async fn task_context(
    app: &App,
    task_id: i64,
    flash: Option<&str>,
    mistake: Option<&OutcomeError>,
) -> Result<(String, Value)> {
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
    let locale = app
        .templates
        .locale_for("task_page", "html", staff.map(|s| staff_locale(app, s)));
    let now = Utc::now();
    let today = match app.config.resolved.staff.get(&task.staff_id) {
        Some(rules) => now.with_timezone(&rules.timezone).date_naive(),
        None => now
            .with_timezone(&app.config.resolved.timezone)
            .date_naive(),
    };
    let call = CallView::build(
        app,
        &task,
        &customer,
        &locale,
        today,
        TASK_PAGE_CONTACTS,
        now,
    )
    .await?;
    // Closed by expiry, not by anyone: what was just sent was not saved.
    let flash = match flash {
        Some("already") if matches!(task.state, TaskState::Expired | TaskState::Returned) => {
            Some("expired")
        }
        other => other,
    };
    let problem = mistake.map(|m| m.page_problem(&locale));
    // Only an open task has the form that names it.
    let helper = if call.open {
        let roster = Roster::load(app, now).await?;
        match HelpGoesTo::decide(app, &roster, &task.staff_id, today) {
            HelpGoesTo::Colleague(m, _) => Some(m.staff.name.clone()),
            HelpGoesTo::CallList { .. } => None,
        }
    } else {
        None
    };
    Ok((
        locale,
        task_page_context(&call, flash, problem, helper.as_deref()),
    ))
}

/// What the `task_page` template sees; `helper`: who "needs help" would
/// go to (none: nobody else, it waits on the call list).
pub fn task_page_context(
    call: &CallView,
    flash: Option<&str>,
    problem: Option<Value>,
    helper: Option<&str>,
) -> Value {
    context! {
        call => Value::from(Serde(call)),
        talking_points => &call.talking_points,
        flash,
        problem,
        helper,
    }
}

/// What the `unsubscribe_page` template sees: the page's state, the
/// business, the kinds of email with whether the customer gets them
/// (`kinds`: `[{kind: "voucher", wanted: true}, …]`), and the kind of email
/// the link came with (`link_kind`, none for links from before kinds).
pub fn unsubscribe_page_context(
    state: PreferencesState,
    business: &str,
    kinds: &[(CampaignKind, bool)],
    link_kind: Option<CampaignKind>,
) -> Value {
    let kinds: Vec<Value> = kinds
        .iter()
        .map(|(kind, wanted)| context! { kind => kind.as_str(), wanted => *wanted })
        .collect();
    context! {
        state => state.as_str(),
        business,
        kinds,
        link_kind => link_kind.map(CampaignKind::as_str),
    }
}

/// What the `approval_page` template sees, besides the preview's values.
pub fn approval_page_context(preview: Value, approver: Option<&str>, flash: Option<&str>) -> Value {
    context! { approver, flash, ..preview }
}

/// How many of a customer's last contacts the task page shows.
const TASK_PAGE_CONTACTS: usize = 5;

// ---- approval ----

async fn approval_page(link: ApprovalLink) -> Result<Response, PageError> {
    approval_response(&link.app, link.run, link.approver.as_ref(), None).await
}

#[derive(Deserialize)]
struct DecisionForm {
    action: String,
}

async fn approval_decision(
    State(state): State<AppState>,
    ApprovalLink {
        app,
        run: id,
        approver,
    }: ApprovalLink,
    Form(form): Form<DecisionForm>,
) -> Result<Response, PageError> {
    let decision = match form.action.as_str() {
        "approve" => Decision::Approve,
        "approve_unchanged" => Decision::ApproveUnchanged,
        "cancel" => Decision::Cancel,
        _ => {
            return Err(PageError::new(
                &app,
                Cause::BadField("action must be approve, approve_unchanged or cancel"),
            ));
        }
    };
    let by = approver.as_ref().map_or("approval link", |s| s.id.as_str());
    let flash = match crate::approval::decide(&app, id, decision, by, Utc::now()).await {
        Ok(_) => {
            state.delivery.wake.notify_waiters();
            // Other daemons on the database start sending at once too.
            if let Err(e) = app.store.announce_change().await {
                tracing::warn!(error = %format!("{e:#}"), "could not tell other daemons about the decision");
            }
            if decision == Decision::Cancel {
                "cancelled"
            } else {
                "approved"
            }
        }
        // Decided before (by someone else, or expired): the page says so.
        Err(e) => match app.store.run(id).await {
            Ok(Some(run)) if run.state != crate::domain::RunState::AwaitingApproval => {
                tracing::info!(run = id, error = %format!("{e:#}"), "approval decision not taken");
                "already"
            }
            _ => return Err(PageError::new(&app, Cause::Failed(e))),
        },
    };
    approval_response(&app, id, approver.as_ref(), Some(flash)).await
}

async fn approval_response(
    app: &Arc<App>,
    run_id: i64,
    approver: Option<&Staff>,
    flash: Option<&str>,
) -> Result<Response, PageError> {
    let (locale, ctx) = approval_context(app, run_id, approver, flash)
        .await
        .map_err(PageError::failed(app))?;
    Ok(page(
        app,
        StatusCode::OK,
        "approval_page",
        Some(&locale),
        ctx,
    ))
}

async fn approval_context(
    app: &App,
    run_id: i64,
    approver: Option<&Staff>,
    flash: Option<&str>,
) -> Result<(String, Value)> {
    let run = app
        .store
        .run(run_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("run {run_id} vanished"))?;
    let campaign = app
        .campaign(&run.rule_id)
        .ok_or_else(|| anyhow::anyhow!("campaign {} is no longer configured", run.rule_id))?;
    let locale = app.templates.locale_for(
        "approval_page",
        "html",
        approver.map(|s| staff_locale(app, s)),
    );
    let preview = crate::approval::Preview::build(app, &run, campaign, Utc::now()).await?;
    let ctx = approval_page_context(
        preview.value(&app.config, &run, &locale),
        approver.map(|s| s.name.as_str()),
        flash,
    );
    Ok((locale, ctx))
}
