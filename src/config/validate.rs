//! Whole-config validation: what serde cannot check on its own.
//!
//! Every check appends to one list rather than stopping at the first problem,
//! so `outreach check` shows the admin everything to fix in one go.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use chrono::{NaiveTime, Timelike, Weekday};
use chrono_tz::Tz;

use super::model::*;
use super::rules::{Campaign, Checkin, Rules};
use super::{ConfigError, Problem};
use crate::audience::Audience;
use crate::domain::{
    ClosedDays, Email, FrequencyCap, QuietHours, Schedule, parse_clock, parse_duration,
};
use crate::secret::Secret;

/// Values parsed out of [`Settings`] during validation, ready to use.
#[derive(Debug)]
pub struct Resolved {
    pub timezone: Tz,
    /// `business.from` and `business.reply_to`, parsed once (not per email).
    pub from: lettre::message::Mailbox,
    pub reply_to: Option<lettre::message::Mailbox>,
    /// `bounces.return_path`, else the sender's address: tagged per
    /// message so that a bounce names the message it is about.
    pub return_path: lettre::Address,
    /// `[bounces]` with an `imap_url`: the mailbox the daemon polls.
    pub bounce_mailbox: Option<crate::bounces::imap::Mailbox>,
    pub frequency_cap: Option<FrequencyCap>,
    pub quiet_hours: Option<QuietHours>,
    pub catch_up: Duration,
    pub give_up_after: Duration,
    /// `[mail]` and `[mail.smtp]` with the password and CA files read.
    pub mailer: crate::mailer::MailerSettings,
    pub database_password: Option<Secret>,
    /// Signs every email when `[mail.dkim]` is configured.
    pub dkim: Option<crate::message::dkim::Signer>,
    /// Signing key first, then previous keys still accepted.
    pub token_keys: Vec<Secret>,
    /// Keys the suppression list, if `security.suppression_key_file` is set.
    pub suppression_key: Option<Secret>,
    /// Secret files that other users may read: worth fixing, not fatal
    /// (`check` prints them, the daemon logs them at start).
    pub warnings: Vec<Problem>,
    /// `[http]` durations.
    pub http: HttpLimits,
    /// `[retention]` ages.
    pub retention: RetentionAges,
    /// Campaigns and check-in rules, each with its parsed values.
    pub rules: Rules,
    pub staff: HashMap<String, StaffRules>,
    /// `[import.columns]`: which field a header fills.
    pub import_columns: crate::import::ColumnRules,
    /// `business.closed`, parsed.
    pub closed: ClosedDays,
}

/// A staff member's working pattern, parsed.
#[derive(Debug, Clone)]
pub struct StaffRules {
    pub timezone: Tz,
    pub digest_at: NaiveTime,
    pub days: HashSet<Weekday>,
}

/// How long connections may take, parsed from `[http]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
}

/// How long things are kept, parsed from `[retention]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionAges {
    pub outbox_files: Duration,
    pub details: Duration,
}

/// Keys that sign or key something must be at least this long: a shorter
/// one can be guessed.
const MIN_KEY_BYTES: usize = 32;

struct Checker<'a> {
    origin: &'a dyn Fn(&str) -> String,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

impl Checker<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        let key = key.into();
        self.problems.push(Problem {
            origin: (self.origin)(&key),
            key,
            message: message.into(),
        });
    }

    fn ok<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(message) => {
                self.problem(key, message);
                None
            }
        }
    }

    fn secret(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let result =
            Secret::from_file(path).map_err(|e| format!("{e}; create the file or fix the path"));
        let secret = self.ok(key, result)?;
        if let Some(warning) = crate::secret::readable_by_others(path) {
            self.warnings.push(Problem {
                origin: (self.origin)(key),
                key: key.to_string(),
                message: warning,
            });
        }
        Some(secret)
    }

    fn positive_duration(&mut self, key: &str, raw: &str) -> Duration {
        match self.ok(key, parse_duration(raw)) {
            Some(d) if d.is_zero() => {
                self.problem(key, "must be longer than 0");
                d
            }
            d => d.unwrap_or_default(),
        }
    }

    /// A secret file holding a key (random bytes, or their base64).
    fn key(&mut self, key: &str, path: &Path) -> Option<Secret> {
        let secret = self.secret(key, path)?;
        if secret.expose().len() < MIN_KEY_BYTES {
            self.problem(
                key,
                format!(
                    "{} holds {} bytes; a key needs at least {MIN_KEY_BYTES}: \
                     `head -c 32 /dev/urandom | base64 > FILE`",
                    path.display(),
                    secret.expose().len()
                ),
            );
            return None;
        }
        Some(secret)
    }

    fn unique_ids<'b>(
        &mut self,
        section: &str,
        ids: impl Iterator<Item = &'b str>,
    ) -> HashSet<String> {
        let mut seen = HashSet::new();
        for (i, id) in ids.enumerate() {
            if id.trim().is_empty() {
                self.problem(
                    format!("{section}[{i}].id"),
                    "id is empty; give every entry a short unique id",
                );
            } else if !seen.insert(id.to_string()) {
                self.problem(
                    format!("{section}[{i}].id"),
                    format!("duplicate id \"{id}\"; ids must be unique"),
                );
            }
        }
        seen
    }
}

fn parse_tz(raw: &str) -> Result<Tz, String> {
    raw.parse::<Tz>().map_err(|_| {
        format!("unknown time zone \"{raw}\"; use an IANA name such as \"Europe/Berlin\"")
    })
}

fn parse_weekday(raw: &str) -> Result<Weekday, String> {
    raw.parse::<Weekday>()
        .map_err(|_| format!("\"{raw}\" is not a weekday; use mon, tue, wed, thu, fri, sat, sun"))
}

/// Checks `settings`; `origin` maps a key path to the file that set it.
pub fn validate(
    settings: &Settings,
    origin: &dyn Fn(&str) -> String,
) -> Result<Resolved, ConfigError> {
    let mut c = Checker {
        origin,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let b = &settings.business;
    let timezone = c
        .ok("business.timezone", parse_tz(&b.timezone))
        .unwrap_or(Tz::UTC);
    if !["de", "en"].contains(&b.locale.as_str()) {
        c.problem(
            "business.locale",
            format!(
                "\"{}\" is not a shipped locale; use \"de\" or \"en\"",
                b.locale
            ),
        );
    }
    let from = c.ok("business.from", parse_mailbox(&b.from));
    let reply_to = b
        .reply_to
        .as_ref()
        .and_then(|r| c.ok("business.reply_to", parse_mailbox(r)));
    let return_path = match &settings.bounces.return_path {
        Some(raw) => c.ok("bounces.return_path", parse_return_path(raw)),
        None => from.as_ref().map(|f| f.email.clone()),
    };
    let bounce_mailbox = bounce_mailbox(&mut c, &settings.bounces);
    if b.postal_address.trim().is_empty() {
        c.problem(
            "business.postal_address",
            "must not be empty: every customer email carries it in the footer",
        );
    }
    if let Err(message) = check_base_url(&b.base_url) {
        c.problem("business.base_url", message);
    }
    for (i, origin) in settings.signup.allowed_origins.iter().enumerate() {
        if let Err(message) = check_origin(origin) {
            c.problem(format!("signup.allowed_origins[{i}]"), message);
        }
    }

    let mut closed = ClosedDays::default();
    for (i, entry) in b.closed.iter().enumerate() {
        let result = closed.add(entry);
        c.ok(&format!("business.closed[{i}]"), result);
    }

    let db = &settings.database.url;
    if !(db.starts_with("sqlite:") || db.starts_with("postgres:") || db.starts_with("postgresql:"))
    {
        c.problem(
            "database.url",
            format!("\"{db}\" is neither sqlite://… nor postgres://…"),
        );
    }
    if settings
        .http
        .listen
        .parse::<std::net::SocketAddr>()
        .is_err()
    {
        c.problem(
            "http.listen",
            format!(
                "\"{}\" is not an address:port such as \"127.0.0.1:8080\"",
                settings.http.listen
            ),
        );
    }

    let frequency_cap = c
        .ok(
            "limits.frequency_cap",
            FrequencyCap::parse(&settings.limits.frequency_cap),
        )
        .flatten();
    let quiet_hours = c
        .ok(
            "limits.quiet_hours",
            QuietHours::parse(&settings.limits.quiet_hours),
        )
        .flatten();
    let catch_up = c
        .ok("limits.catch_up", parse_duration(&settings.limits.catch_up))
        .unwrap_or_default();
    let give_up_after = c
        .ok(
            "mail.give_up_after",
            parse_duration(&settings.mail.give_up_after),
        )
        .unwrap_or_default();

    let mail = &settings.mail;
    if mail.transport == Transport::Smtp && mail.smtp.connections == 0 {
        c.problem("mail.smtp.connections", "must be at least 1");
    }
    let smtp_password = match (&mail.smtp.username, &mail.smtp.password_file) {
        (_, Some(path)) => c.secret("mail.smtp.password_file", path),
        (Some(_), None) if mail.transport == Transport::Smtp => {
            c.problem(
                "mail.smtp.password_file",
                "username is set but no password_file; add the path of a file holding the password",
            );
            None
        }
        _ => None,
    };
    let dkim = mail.dkim.as_ref().and_then(|d| {
        let key = c.secret("mail.dkim.private_key_file", &d.private_key_file)?;
        let signer = crate::message::dkim::Signer::from_pem(key.expose(), &d.domain, &d.selector)
            .map_err(|e| format!("{}: {e}", d.private_key_file.display()));
        c.ok("mail.dkim.private_key_file", signer)
    });
    let smtp_ca = mail
        .smtp
        .ca_file
        .as_ref()
        .and_then(|path| c.ok("mail.smtp.ca_file", read_ca_file(path)));
    let mailer = crate::mailer::MailerSettings {
        transport: mail.transport,
        file_dir: mail.file_dir.clone(),
        smtp: crate::mailer::SmtpServer {
            host: mail.smtp.host.clone(),
            port: mail.smtp.port,
            tls: mail.smtp.tls,
            username: mail.smtp.username.clone(),
            password: smtp_password,
            ca: smtp_ca,
            timeout: Duration::from_secs(mail.smtp.timeout_secs.max(1)),
        },
    };
    let database_password = settings
        .database
        .password_file
        .as_ref()
        .and_then(|path| c.secret("database.password_file", path));
    let mut token_keys = Vec::new();
    if let Some(path) = &settings.security.token_key_file {
        token_keys.extend(c.key("security.token_key_file", path));
    }
    for (i, path) in settings
        .security
        .previous_token_key_files
        .iter()
        .enumerate()
    {
        token_keys.extend(c.key(&format!("security.previous_token_key_files[{i}]"), path));
    }
    let suppression_key = settings
        .security
        .suppression_key_file
        .as_ref()
        .and_then(|path| c.key("security.suppression_key_file", path));
    let http = HttpLimits {
        header_timeout: c.positive_duration("http.header_timeout", &settings.http.header_timeout),
        idle_timeout: c.positive_duration("http.idle_timeout", &settings.http.idle_timeout),
        shutdown_timeout: c
            .positive_duration("http.shutdown_timeout", &settings.http.shutdown_timeout),
    };
    if settings.http.max_connections == 0 {
        c.problem("http.max_connections", "must be at least 1");
    }
    let retention = RetentionAges {
        outbox_files: c
            .positive_duration("retention.outbox_files", &settings.retention.outbox_files),
        details: c.positive_duration("retention.details", &settings.retention.details),
    };

    let staff_ids = c.unique_ids("staff", settings.staff.iter().map(|s| s.id.as_str()));
    let mut staff = HashMap::new();
    for (i, s) in settings.staff.iter().enumerate() {
        let key = |field: &str| format!("staff[{i}].{field}");
        c.ok(&key("email"), Email::parse(&s.email));
        let tz = match &s.timezone {
            Some(raw) => c.ok(&key("timezone"), parse_tz(raw)),
            None => Some(timezone),
        };
        let digest_at = c.ok(&key("digest_at"), parse_clock(&s.digest_at));
        let mut days = HashSet::new();
        for (d, raw) in s.days.iter().enumerate() {
            days.extend(c.ok(&format!("staff[{i}].days[{d}]"), parse_weekday(raw)));
        }
        if let Some(manager) = &s.manager
            && !staff_ids.contains(manager)
        {
            c.problem(
                key("manager"),
                format!("unknown staff id \"{manager}\"; it must be the id of a [[staff]] entry"),
            );
        }
        for (a, absence) in s.absences.iter().enumerate() {
            if absence.to < absence.from {
                c.problem(format!("staff[{i}].absences[{a}]"), "`to` is before `from`");
            }
        }
        if let (Some(timezone), Some(digest_at)) = (tz, digest_at) {
            staff.insert(
                s.id.clone(),
                StaffRules {
                    timezone,
                    digest_at,
                    days,
                },
            );
        }
    }

    if let Some(contact) = &b.contact_staff
        && !staff_ids.contains(contact)
    {
        c.problem(
            "business.contact_staff",
            format!("unknown staff id \"{contact}\"; it must be the id of a [[staff]] entry"),
        );
    }

    let pool_ids = c.unique_ids(
        "voucher_pool",
        settings.voucher_pools.iter().map(|p| p.id.as_str()),
    );
    for (i, p) in settings.voucher_pools.iter().enumerate() {
        if let Some(pattern) = &p.pattern
            && pattern.matches('X').count() < 4
        {
            c.problem(
                format!("voucher_pool[{i}].pattern"),
                format!(
                    "\"{pattern}\" has fewer than 4 `X` placeholders; codes would be guessable"
                ),
            );
        }
        if let Some(problem) = p.value.missing(&b.locale) {
            c.problem(format!("voucher_pool[{i}].value"), problem);
        }
        if p.per_customer == 0 {
            c.problem(
                format!("voucher_pool[{i}].per_customer"),
                "must be at least 1",
            );
        }
    }

    let templates_dir = &settings.templates.dir;
    let check_template = |c: &mut Checker, key: String, name: &str| {
        let path = templates_dir.join(format!("{name}.{}.md", b.locale));
        if !path.is_file() {
            c.problem(
                key,
                format!(
                    "unknown template \"{name}\": {} does not exist",
                    path.display()
                ),
            );
        }
    };

    let mut rules = Rules::default();
    // Campaigns and check-in rules share one id space: `runs start ID` takes either.
    c.unique_ids("campaign", settings.campaigns.iter().map(|x| x.id.as_str()));
    let campaign_ids: HashSet<&str> = settings.campaigns.iter().map(|x| x.id.as_str()).collect();
    c.unique_ids("checkin", settings.checkins.iter().map(|x| x.id.as_str()));
    for (j, rule) in settings.checkins.iter().enumerate() {
        if campaign_ids.contains(rule.id.as_str()) {
            c.problem(
                format!("checkin[{j}].id"),
                format!(
                    "duplicate id \"{}\"; campaigns and check-ins share one id space",
                    rule.id
                ),
            );
        }
    }
    for (i, camp) in settings.campaigns.iter().enumerate() {
        let key = |field: &str| format!("campaign[{i}].{field}");
        // `None` while the schedule or trigger has a problem; `Some(None)`
        // for a campaign run by imports, not by the clock.
        let mut schedule = None;
        match (&camp.schedule, &camp.trigger) {
            (Some(expr), None) => {
                schedule = c
                    .ok(&key("schedule"), Schedule::parse(expr, timezone))
                    .map(Some);
            }
            (None, Some(trigger)) => {
                match (&trigger.anniversary_of, &trigger.attribute_changed) {
                    (Some(_), None) => {}
                    (None, Some(_)) => schedule = Some(None),
                    _ => c.problem(
                        key("trigger"),
                        "set exactly one of anniversary_of or attribute_changed",
                    ),
                }
                // An anniversary is looked for once a day at `at`: a daily schedule,
                // with the same DST handling and catch-up as any other.
                if let Some(at) = c.ok(&key("trigger.at"), parse_clock(&trigger.at))
                    && trigger.anniversary_of.is_some()
                {
                    let daily =
                        Schedule::parse(&format!("{} {} * * *", at.minute(), at.hour()), timezone)
                            .expect("a daily crontab built from a valid time parses");
                    schedule = Some(Some(daily));
                }
            }
            (Some(_), Some(_)) => {
                c.problem(key("schedule"), "set either schedule or trigger, not both")
            }
            (None, None) => c.problem(
                key("schedule"),
                "missing: set a crontab schedule (\"0 9 * * Mon\") or a trigger",
            ),
        }
        let audience = c.ok(&key("audience"), Audience::parse(&camp.audience));
        check_template(&mut c, key("template"), &camp.template);
        for (a, approver) in camp.approvers.iter().enumerate() {
            if !staff_ids.contains(approver) {
                c.problem(
                    format!("campaign[{i}].approvers[{a}]"),
                    format!("unknown staff id \"{approver}\""),
                );
            }
        }
        if camp.approval == ApprovalMode::Required && camp.approvers.is_empty() {
            c.problem(
                key("approvers"),
                "approval = \"required\" needs at least one approver (a staff id)",
            );
        }
        let approval_timeout = c.ok(
            &key("approval_timeout"),
            parse_duration(&camp.approval_timeout),
        );
        match (&camp.voucher_pool, camp.kind) {
            (Some(pool), _) if !pool_ids.contains(pool) => c.problem(
                key("voucher_pool"),
                format!("unknown voucher pool \"{pool}\"; it must be the id of a [[voucher_pool]]"),
            ),
            (None, CampaignKind::Voucher) => {
                c.problem(key("voucher_pool"), "a voucher campaign needs voucher_pool")
            }
            _ => {}
        }
        if let (Some(schedule), Some(audience), Some(approval_timeout)) =
            (schedule, audience, approval_timeout)
        {
            rules.campaigns.push(Campaign {
                id: camp.id.clone(),
                kind: camp.kind,
                schedule,
                trigger: camp.trigger.clone(),
                audience,
                template: camp.template.clone(),
                approval: camp.approval,
                approvers: camp.approvers.clone(),
                approval_timeout,
                voucher_pool: camp.voucher_pool.clone(),
                require_fresh_text: camp.require_fresh_text,
                skip_closed_days: camp.skip_closed_days,
                enabled: camp.enabled,
            });
        }
    }

    for (i, rule) in settings.checkins.iter().enumerate() {
        let key = |field: &str| format!("checkin[{i}].{field}");
        let schedule = c.ok(&key("schedule"), Schedule::parse(&rule.schedule, timezone));
        let audience = c.ok(&key("audience"), Audience::parse(&rule.audience));
        check_template(&mut c, key("template"), &rule.template);
        if let Some(problem) = rule.reason.missing(&b.locale) {
            c.problem(key("reason"), problem);
        }
        let due_in = c.ok(&key("due_in"), parse_duration(&rule.due_in));
        let escalate_after = c.ok(&key("escalate_after"), parse_duration(&rule.escalate_after));
        let expire_after = c.ok(&key("expire_after"), parse_duration(&rule.expire_after));
        if settings.staff.is_empty() {
            c.problem(
                key("assign"),
                "check-ins need at least one [[staff]] member to call customers",
            );
        }
        if let (
            Some(schedule),
            Some(audience),
            Some(due_in),
            Some(escalate_after),
            Some(expire_after),
        ) = (schedule, audience, due_in, escalate_after, expire_after)
        {
            rules.checkins.push(Checkin {
                id: rule.id.clone(),
                audience,
                schedule,
                assign: rule.assign,
                min_days_between_personal_contacts: rule.min_days_between_personal_contacts,
                due_in,
                escalate_after,
                expire_after,
                max_attempts: rule.max_attempts,
                reason: rule.reason.clone(),
                template: rule.template.clone(),
                outcome_tags: rule.outcome_tags.clone(),
                enabled: rule.enabled,
            });
        }
    }

    let import_columns = match crate::import::ColumnRules::parse(&settings.import.columns) {
        Ok(rules) => rules,
        Err(problems) => {
            for (header, message) in problems {
                c.problem(format!("import.columns.\"{header}\""), message);
            }
            Default::default()
        }
    };

    match (from, return_path) {
        (Some(from), Some(return_path)) if c.problems.is_empty() => Ok(Resolved {
            timezone,
            from,
            reply_to,
            return_path,
            bounce_mailbox,
            frequency_cap,
            quiet_hours,
            catch_up,
            give_up_after,
            mailer,
            database_password,
            dkim,
            token_keys,
            suppression_key,
            warnings: c.warnings,
            http,
            retention,
            rules,
            staff,
            import_columns,
            closed,
        }),
        _ => Err(ConfigError(c.problems)),
    }
}

fn bounce_mailbox(
    c: &mut Checker,
    b: &crate::config::model::Bounces,
) -> Option<crate::bounces::imap::Mailbox> {
    use crate::bounces::imap::{Mailbox, Security};
    let raw = b.imap_url.as_ref()?;
    let server = c.ok(
        "bounces.imap_url",
        url::Url::parse(raw)
            .map_err(|e| e.to_string())
            .and_then(|u| {
                let security = match u.scheme() {
                    "imaps" => Security::Tls,
                    "imap" => Security::StartTls,
                    other => return Err(format!("the scheme \"{other}\" is not imaps or imap")),
                };
                let host = u.host_str().ok_or("it names no host")?.to_string();
                let port = u.port().unwrap_or(match security {
                    Security::Tls => 993,
                    Security::StartTls => 143,
                });
                Ok((security, host, port))
            })
            .map_err(|e| {
                format!("\"{raw}\": {e}; write e.g. \"imaps://imap.example.org\" (TLS) or \"imap://imap.example.org\" (STARTTLS)")
            }),
    );
    let username = b.username.clone();
    if username.is_none() {
        c.problem("bounces.username", "the mailbox needs a username to log in");
    }
    let password = match &b.password_file {
        Some(path) => c.secret("bounces.password_file", path),
        None => {
            c.problem(
                "bounces.password_file",
                "the mailbox needs a password; add the path of a file holding it",
            );
            None
        }
    };
    let poll = c.ok("bounces.poll", parse_duration(&b.poll));
    let extra_root = match &b.ca_file {
        Some(path) => c.ok(
            "bounces.ca_file",
            std::fs::read(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))
                .and_then(|pem| crate::bounces::imap::parse_ca(&pem)),
        ),
        None => Some(Vec::new()),
    };
    let ((security, host, port), username, password, poll, extra_roots) =
        (server?, username?, password?, poll?, extra_root?);
    Some(Mailbox {
        security,
        host,
        port,
        username,
        password,
        folder: b.folder.clone(),
        processed_folder: (!b.processed_folder.is_empty()).then(|| b.processed_folder.clone()),
        poll,
        extra_roots,
    })
}

fn parse_return_path(raw: &str) -> Result<lettre::Address, String> {
    let address: lettre::Address = raw.parse().map_err(|_| {
        format!("\"{raw}\" is not a plain address; write e.g. \"bounces@cafe-linde.de\"")
    })?;
    if address.user().contains('+') {
        return Err(format!(
            "\"{raw}\" already has a \"+\" tag; each email adds its own (\"{}+…@{}\"), so give the address without it",
            address.user().split('+').next().unwrap_or_default(),
            address.domain()
        ));
    }
    Ok(address)
}

/// Links in emails (unsubscribe, tasks, approvals) start with `base_url`.
/// One-click unsubscribe (RFC 8058) and the big mailbox providers' rules
/// for bulk senders require https; plain http is accepted only on a
/// loopback address, where nobody outside this machine follows the links.
fn check_base_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|_| {
        format!("\"{raw}\" is not a URL; write the public https address of the HTTP server, e.g. \"https://outreach.cafe-linde.de\"")
    })?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        "http" => Err(format!(
            "\"{raw}\" is plain http: mailbox providers require one-click unsubscribe over https; publish the HTTP server through a reverse proxy with a certificate and write its https address here (http is accepted only for 127.0.0.1 or localhost, for trying outreach out)"
        )),
        _ => Err(format!(
            "\"{raw}\" is not an https URL; links in emails start with it"
        )),
    }
}

/// An allowed origin is what a browser sends as `Origin`: scheme, host and
/// port if not the default, nothing else.
fn check_origin(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|_| {
        format!("\"{raw}\" is not an origin; write the address of the website with the form, e.g. \"https://www.cafe-linde.example\"")
    })?;
    let origin = url.origin().ascii_serialization();
    if origin != raw {
        return Err(format!(
            "\"{raw}\" is not an origin (scheme and host only, no path or trailing slash); write \"{origin}\""
        ));
    }
    Ok(())
}

/// Whether a URL points at this machine only.
fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => false,
    }
}

/// A PEM file with at least one certificate (a private CA for the SMTP relay).
fn read_ca_file(path: &Path) -> Result<Vec<u8>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let pem = std::fs::read(path)
        .map_err(|e| format!("cannot read {}: {e}; fix the path", path.display()))?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate file ({e})", path.display()))?;
    if certificates.is_empty() {
        return Err(format!(
            "{}: holds no certificate (\"-----BEGIN CERTIFICATE-----\"); use the PEM file of the CA that signed the relay's certificate",
            path.display()
        ));
    }
    Ok(pem)
}

fn parse_mailbox(raw: &str) -> Result<lettre::message::Mailbox, String> {
    raw.parse().map_err(|_| {
        format!(
            "\"{raw}\" is not a sender address; write e.g. \"Café Linde <hallo@cafe-linde.de>\""
        )
    })
}
