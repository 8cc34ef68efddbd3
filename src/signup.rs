//! Signing up by double opt-in: a form (on the business's own website, or
//! the hosted one at `/s`) asks for an address and the kinds of email; a
//! confirmation email with a link valid 48 hours goes to the address; only
//! the click on the button behind that link (`/c/…`, a POST: link scanners
//! confirm nothing) records consent, with the source "double opt-in", when
//! it was asked for and confirmed, and which text and kinds were agreed to.
//!
//! Whatever is posted, the answer is the same "look in your inbox" page:
//! it never tells whether an address is known. Bad input (not an address, a
//! filled honeypot field, an address mailed within the last 24 hours, a
//! forgotten person) changes nothing and is logged in one line without the
//! address, and counted in `/metrics`. One client address may post only a
//! few times an hour. Requests not confirmed within 7 days are deleted.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, Result};
use chrono::{DateTime, Duration, Utc};
use minijinja::context;
use tracing::{info, warn};

use crate::app::App;
use crate::config::CampaignKind;
use crate::context::business_value;
use crate::domain::Email;
use crate::mailer::{MailerSettings, SendResult};
use crate::message::render::local_datetime;
use crate::store::{Confirmed, DOUBLE_OPT_IN, NewSignup};
use crate::tokens::Purpose;

/// How long the link in a confirmation email works.
pub const CONFIRM_VALID_HOURS: i64 = 48;
/// How long an unconfirmed request is kept.
pub const UNCONFIRMED_KEPT_DAYS: i64 = 7;
/// At most one confirmation email per address within this many hours.
pub const ONE_EMAIL_PER_HOURS: i64 = 24;

/// The templates whose text a person saw and agreed to, for the fingerprint.
const AGREED_TEXT: [(&str, &str); 2] = [("signup_page", "html"), ("confirm", "md")];

/// What became of one post to `/s` or `/c/…`, counted in `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignupOutcome {
    /// A confirmation email went out.
    Mailed,
    BadAddress,
    NoKinds,
    /// The address got a confirmation email within the last 24 hours.
    Duplicate,
    /// The hidden field was filled in (a robot).
    Honeypot,
    /// The address belongs to a forgotten person.
    Forgotten,
    /// Too many posts from one client address.
    RateLimited,
    /// Posted by a form on a website not allowed to.
    ForeignOrigin,
    /// Consent recorded by the confirmation button.
    Confirmed,
}

impl SignupOutcome {
    pub const ALL: [SignupOutcome; 9] = [
        SignupOutcome::Mailed,
        SignupOutcome::BadAddress,
        SignupOutcome::NoKinds,
        SignupOutcome::Duplicate,
        SignupOutcome::Honeypot,
        SignupOutcome::Forgotten,
        SignupOutcome::RateLimited,
        SignupOutcome::ForeignOrigin,
        SignupOutcome::Confirmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SignupOutcome::Mailed => "mailed",
            SignupOutcome::BadAddress => "bad_address",
            SignupOutcome::NoKinds => "no_kinds",
            SignupOutcome::Duplicate => "duplicate",
            SignupOutcome::Honeypot => "honeypot",
            SignupOutcome::Forgotten => "forgotten",
            SignupOutcome::RateLimited => "rate_limited",
            SignupOutcome::ForeignOrigin => "foreign_origin",
            SignupOutcome::Confirmed => "confirmed",
        }
    }

    /// The log line for an ignored post; it never names the address.
    fn why_ignored(self) -> &'static str {
        match self {
            SignupOutcome::BadAddress => "not an email address",
            SignupOutcome::NoKinds => "no kind of email chosen",
            SignupOutcome::Duplicate => {
                "the address got a confirmation email within the last 24 hours"
            }
            SignupOutcome::Honeypot => "the hidden field was filled in",
            SignupOutcome::Forgotten => "the address belongs to a forgotten person",
            SignupOutcome::RateLimited => "too many sign-ups from one client address",
            SignupOutcome::ForeignOrigin => "posted from a website that is not allowed",
            SignupOutcome::Mailed | SignupOutcome::Confirmed => "",
        }
    }
}

/// Counts outcomes and remembers recent posts per client address; one per
/// daemon (the counters start at zero with it, as Prometheus counters may).
#[derive(Debug, Default)]
pub struct SignupGuard {
    counts: Mutex<HashMap<SignupOutcome, u64>>,
    clients: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl SignupGuard {
    pub fn count(&self, outcome: SignupOutcome) {
        *self
            .counts
            .lock()
            .expect("sign-up counters")
            .entry(outcome)
            .or_insert(0) += 1;
    }

    /// Counts an ignored post and logs it in one line.
    pub fn ignore(&self, outcome: SignupOutcome) {
        self.count(outcome);
        info!(
            outcome = outcome.as_str(),
            "sign-up ignored: {}",
            outcome.why_ignored()
        );
    }

    /// Whether `client` may post once more (and notes that it did).
    pub fn allow(&self, client: &str, per_hour: u32, now: Instant) -> bool {
        let hour = StdDuration::from_secs(3600);
        let mut clients = self.clients.lock().expect("sign-up clients");
        clients.retain(|_, seen| {
            while seen.front().is_some_and(|t| now.duration_since(*t) >= hour) {
                seen.pop_front();
            }
            !seen.is_empty()
        });
        let seen = clients.entry(client.to_string()).or_default();
        if seen.len() >= per_hour as usize {
            return false;
        }
        seen.push_back(now);
        true
    }

    /// The counters for `/metrics`.
    pub fn render(&self, out: &mut String) {
        out.push_str("# HELP outreach_signups Posts to the sign-up form and confirmations, by what became of them.\n# TYPE outreach_signups counter\n");
        let counts = self.counts.lock().expect("sign-up counters");
        for outcome in SignupOutcome::ALL {
            out.push_str(&format!(
                "outreach_signups_total{{outcome=\"{}\"}} {}\n",
                outcome.as_str(),
                counts.get(&outcome).copied().unwrap_or(0)
            ));
        }
    }
}

/// What was posted to `/s`.
#[derive(Debug, Clone, Default)]
pub struct SignupForm {
    pub email: String,
    pub name: String,
    pub language: String,
    pub kinds: Vec<String>,
    /// The honeypot: hidden from people, filled in by robots.
    pub website: String,
}

impl SignupForm {
    /// From form fields (`kinds` may repeat).
    pub fn from_fields(fields: &[(String, String)]) -> Self {
        let mut form = SignupForm::default();
        for (key, value) in fields {
            match key.as_str() {
                "email" => form.email = value.clone(),
                "name" => form.name = value.clone(),
                "language" => form.language = value.clone(),
                "kinds" => form.kinds.push(value.clone()),
                "website" => form.website = value.clone(),
                _ => {}
            }
        }
        form
    }
}

/// What the person who posted is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// "Look in your inbox" — also for whatever was ignored.
    Sent,
    /// The form again: the address is not one.
    BadAddress,
    /// The form again: no kind of email was chosen.
    NoKinds,
}

/// The campaign kinds of the config, in a fixed order: what a customer can
/// choose between.
pub fn configured_kinds(app: &App) -> Vec<CampaignKind> {
    CampaignKind::ALL
        .into_iter()
        .filter(|k| app.rules().campaigns.iter().any(|c| c.kind == *k))
        .collect()
}

/// A name as given, or none: trimmed, without control characters, at most
/// 100 characters.
fn clean_name(raw: &str) -> Option<String> {
    let name: String = raw.chars().filter(|c| !c.is_control()).take(100).collect();
    let name = name.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// Acts on a post to `/s` (the client's rate and the origin are checked
/// before): records the request and sends the confirmation email, or
/// ignores the post.
pub async fn request(
    app: &App,
    guard: &SignupGuard,
    form: &SignupForm,
    now: DateTime<Utc>,
) -> Result<Answer> {
    if !form.website.trim().is_empty() {
        guard.ignore(SignupOutcome::Honeypot);
        return Ok(Answer::Sent);
    }
    let Ok(email) = Email::parse(&form.email) else {
        guard.ignore(SignupOutcome::BadAddress);
        return Ok(Answer::BadAddress);
    };
    let offered = configured_kinds(app);
    let kinds: Vec<CampaignKind> = offered
        .iter()
        .copied()
        .filter(|k| form.kinds.iter().any(|chosen| chosen == k.as_str()))
        .collect();
    if kinds.is_empty() {
        guard.ignore(SignupOutcome::NoKinds);
        return Ok(Answer::NoKinds);
    }
    let forgotten = app
        .store
        .suppressed_keys(&[email.suppression_key()])
        .await?;
    if !forgotten.is_empty() {
        guard.ignore(SignupOutcome::Forgotten);
        return Ok(Answer::Sent);
    }
    if app
        .store
        .signup_mailed_since(&email, now - Duration::hours(ONE_EMAIL_PER_HOURS))
        .await?
    {
        guard.ignore(SignupOutcome::Duplicate);
        return Ok(Answer::Sent);
    }
    let locale = app
        .templates
        .locale_for("confirm", "md", Some(form.language.as_str()));
    let signup = NewSignup {
        email: email.clone(),
        name: clean_name(&form.name),
        locale: locale.clone(),
        kinds: kinds.clone(),
        text_fingerprint: app.templates.fingerprint_of(&AGREED_TEXT),
    };
    let id = app.store.insert_signup(&signup, now).await?;
    let until = now + Duration::hours(CONFIRM_VALID_HOURS);
    let token = app.signer.sign(Purpose::Confirm, id, until);
    let ctx = context! {
        business => business_value(&app.settings().business),
        confirm_url => app.link(&format!("/c/{token}")),
        valid_until => local_datetime(&app.config, until, &locale),
        kinds => kinds.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
    };
    let rendered = app
        .templates
        .render_notice("confirm", Some(&locale), &ctx)
        .context("the confirmation email of a sign-up")?;
    let message = crate::message::compose::notice_email(
        &app.config,
        email.as_str(),
        &rendered.subject,
        &rendered.text,
        &rendered.html,
    )?;
    guard.count(SignupOutcome::Mailed);
    // Sent in the background: how long the answer takes must not tell
    // whether an email went out.
    let settings = MailerSettings::from_config(&app.config);
    tokio::spawn(async move {
        let result = match settings.open() {
            Ok(mut mailer) => mailer.send(&message).await,
            Err(e) => {
                warn!(signup = id, error = %format!("{e:#}"), "could not send a sign-up's confirmation email");
                return;
            }
        };
        // The server's reply may quote the address: only its kind is logged.
        let failed = match result {
            SendResult::Sent(_) => {
                info!(signup = id, "sign-up confirmation email sent");
                return;
            }
            SendResult::Temporary(_) => "the mail server refused it for now",
            SendResult::Permanent(_) => "the mail server refused it",
            SendResult::Unavailable { .. } => "no session with the mail server",
            SendResult::Ambiguous(_) => "the connection broke while it was sent",
        };
        warn!(
            signup = id,
            "could not send a sign-up's confirmation email: {failed}"
        );
    });
    Ok(Answer::Sent)
}

/// Confirms request `id` (the button behind the link): consent for the
/// kinds chosen, objections to the others.
pub async fn confirm(app: &App, guard: &SignupGuard, id: i64, now: DateTime<Utc>) -> Result<()> {
    match app.store.confirm_signup(id, now).await? {
        Confirmed::Customer(customer_id) => {
            let signup = app
                .store
                .signup(id)
                .await?
                .context("the confirmed sign-up vanished")?;
            let agreed = signup.kinds();
            let others: Vec<CampaignKind> = configured_kinds(app)
                .into_iter()
                .filter(|k| !agreed.contains(k))
                .collect();
            app.store
                .set_email_preferences(customer_id, &others, &agreed, DOUBLE_OPT_IN, now)
                .await?;
            guard.count(SignupOutcome::Confirmed);
            info!(signup = id, customer = customer_id, "sign-up confirmed");
        }
        Confirmed::Already => {}
        Confirmed::Forgotten => guard.ignore(SignupOutcome::Forgotten),
    }
    Ok(())
}

/// Deletes requests nobody confirmed within 7 days.
pub async fn housekeeping(app: &App, now: DateTime<Utc>) -> Result<()> {
    let deleted = app
        .store
        .delete_unconfirmed_signups(now - Duration::days(UNCONFIRMED_KEPT_DAYS))
        .await?;
    if deleted > 0 {
        info!(requests = deleted, "unconfirmed sign-ups deleted");
    }
    Ok(())
}
