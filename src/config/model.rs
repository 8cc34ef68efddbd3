//! The shape of `outreach.toml`: one struct per section, unknown keys refused.
//!
//! These are the raw values as the admin wrote them; [`super::validate`]
//! checks what serde cannot (cron syntax, references between sections, time
//! zones, secret files) and reports every problem with its file and key.

use std::path::PathBuf;

use serde::Deserialize;

use crate::domain::LocalText;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub business: Business,
    #[serde(default)]
    pub database: Database,
    #[serde(default)]
    pub mail: Mail,
    #[serde(default)]
    pub http: Http,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub security: Security,
    #[serde(default)]
    pub retention: Retention,
    #[serde(default)]
    pub import: Import,
    #[serde(default)]
    pub bounces: Bounces,
    #[serde(default)]
    pub signup: Signup,
    #[serde(default)]
    pub templates: Templates,
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub staff: Vec<Staff>,
    #[serde(default, rename = "voucher_pool")]
    pub voucher_pools: Vec<VoucherPool>,
    /// As written; the program reads them resolved ([`super::Rules`]).
    #[serde(default, rename = "campaign")]
    pub(super) campaigns: Vec<CampaignEntry>,
    #[serde(default, rename = "checkin")]
    pub(super) checkins: Vec<CheckinEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Business {
    pub name: String,
    #[serde(default = "default_timezone")]
    pub timezone: String,
    #[serde(default = "default_locale")]
    pub locale: String,
    /// Sender of every customer email, e.g. `"Café Linde <hallo@cafe-linde.de>"`.
    pub from: String,
    #[serde(default)]
    pub reply_to: Option<String>,
    /// Printed in the footer of every customer email (legally required in many countries).
    pub postal_address: String,
    /// Public address of the HTTP server, for links in emails.
    pub base_url: String,
    /// Who gets notices meant for the admin (e.g. an empty voucher pool);
    /// defaults to `reply_to`, else `from`.
    #[serde(default)]
    pub admin_email: Option<String>,
    /// How German emails address customers: "Sie" or "du" (the `greeting`).
    #[serde(default)]
    pub address_form: AddressForm,
    /// Days without calls, digests or callbacks: dates, yearly days
    /// (`"12-24"`), ranges and `"holidays:de"` (German public holidays).
    #[serde(default)]
    pub closed: Vec<String>,
    /// The staff member who takes "needs help" follow-ups from anyone
    /// without a manager (and gets the weekly call list summary).
    #[serde(default)]
    pub contact_staff: Option<String>,
}

/// The German forms of address; English emails follow it too (first name
/// with "du", title and last name with "Sie").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum AddressForm {
    #[default]
    #[serde(rename = "Sie", alias = "sie")]
    Sie,
    #[serde(rename = "du", alias = "Du")]
    Du,
}

impl Business {
    pub fn admin_email(&self) -> String {
        self.admin_email
            .clone()
            .or_else(|| self.reply_to.clone())
            .unwrap_or_else(|| self.from.clone())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Database {
    #[serde(default = "default_database_url")]
    pub url: String,
    /// Unset: [`Database::connections`] picks by backend.
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// PostgreSQL password, read from a file so that `url` holds no secret.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl Default for Database {
    fn default() -> Self {
        Database {
            url: default_database_url(),
            max_connections: None,
            password_file: None,
        }
    }
}

impl Database {
    /// The pool's size: as set, else 4 on SQLite and 8 on PostgreSQL.
    /// SQLite writes one at a time, and each of its connections is a thread
    /// with its own cache and statements (about half a megabyte), which an
    /// idle daemon would keep.
    pub fn connections(&self) -> u32 {
        let default = if self.url.starts_with("sqlite:") {
            4
        } else {
            8
        };
        self.max_connections.unwrap_or(default)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    File,
    Smtp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mail {
    #[serde(default)]
    pub transport: Transport,
    #[serde(default = "default_outbox")]
    pub file_dir: PathBuf,
    /// Messages per minute across all connections; 0 = unlimited.
    #[serde(default = "default_rate")]
    pub rate_per_minute: u32,
    /// How long temporary failures (4xx, connection errors) are retried before `failed`.
    #[serde(default = "default_give_up_after")]
    pub give_up_after: String,
    /// Optional `mailto:` for the List-Unsubscribe header, beside the HTTPS link.
    #[serde(default)]
    pub unsubscribe_mailto: Option<String>,
    #[serde(default)]
    pub smtp: Smtp,
    #[serde(default)]
    pub dkim: Option<Dkim>,
    /// Folder of the send journal (see docs/sending.md). Default: `journal`
    /// beside a SQLite database file; with PostgreSQL `journal` in
    /// `$STATE_DIRECTORY`, else `data/journal` in the working directory.
    #[serde(default)]
    pub journal_dir: Option<PathBuf>,
}

impl Mail {
    /// Delivery workers: one per SMTP connection; the file transport needs one.
    pub fn workers(&self) -> u32 {
        match self.transport {
            Transport::Smtp => self.smtp.connections.max(1),
            Transport::File => 1,
        }
    }
}

impl Default for Mail {
    fn default() -> Self {
        Mail {
            transport: Transport::File,
            file_dir: default_outbox(),
            rate_per_minute: default_rate(),
            give_up_after: default_give_up_after(),
            unsubscribe_mailto: None,
            smtp: Smtp::default(),
            dkim: None,
            journal_dir: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Tls {
    #[default]
    Starttls,
    Tls,
    None,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Smtp {
    #[serde(default = "default_smtp_host")]
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub tls: Tls,
    #[serde(default)]
    pub username: Option<String>,
    /// Read at start-up; never logged.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM file of a private CA that signed the relay's certificate
    /// (trusted besides the public roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_connections")]
    pub connections: u32,
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for Smtp {
    fn default() -> Self {
        Smtp {
            host: default_smtp_host(),
            port: default_smtp_port(),
            tls: Tls::Starttls,
            username: None,
            password_file: None,
            ca_file: None,
            connections: default_connections(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dkim {
    pub selector: String,
    pub domain: String,
    pub private_key_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Http {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Open connections at most; more are answered 503 and closed at once.
    /// Lowered to what the open-file limit leaves after what the database,
    /// the outbox and SMTP need.
    #[serde(default = "default_max_connections_http")]
    pub max_connections: u32,
    /// A client must send a request's headers within this time (also
    /// between requests on a kept-alive connection).
    #[serde(default = "default_header_timeout")]
    pub header_timeout: String,
    /// A connection on which nothing moves this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: String,
    /// On stop, requests being answered get this long; then every
    /// connection is closed.
    #[serde(default = "default_shutdown_timeout")]
    pub shutdown_timeout: String,
}

impl Default for Http {
    fn default() -> Self {
        Http {
            listen: default_listen(),
            max_connections: default_max_connections_http(),
            header_timeout: default_header_timeout(),
            idle_timeout: default_idle_timeout(),
            shutdown_timeout: default_shutdown_timeout(),
        }
    }
}

/// How long personal data is kept (GDPR: no longer than needed).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Retention {
    /// `.eml` files in `mail.file_dir` older than this are deleted.
    #[serde(default = "default_retention_outbox_files")]
    pub outbox_files: String,
    /// What was written about a contact beyond its date, kind and outcome
    /// (call notes, SMTP replies, imported values that changed) is erased
    /// after this long. Proofs of consent stay.
    #[serde(default = "default_retention_details")]
    pub details: String,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            outbox_files: default_retention_outbox_files(),
            details: default_retention_details(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default = "default_frequency_cap")]
    pub frequency_cap: String,
    #[serde(default = "default_quiet_hours")]
    pub quiet_hours: String,
    #[serde(default = "default_catch_up")]
    pub catch_up: String,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frequency_cap: default_frequency_cap(),
            quiet_hours: default_quiet_hours(),
            catch_up: default_catch_up(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// Key that signs links in emails. Without it, a random key is generated
    /// once and kept in the database.
    #[serde(default)]
    pub token_key_file: Option<PathBuf>,
    /// Old keys still accepted for verification after a rotation.
    #[serde(default)]
    pub previous_token_key_files: Vec<PathBuf>,
    /// Keys the hashes on the list of forgotten people. Without it, a random
    /// key is generated once and kept in the database. Never change it once
    /// someone was forgotten: their hashes would stop matching.
    #[serde(default)]
    pub suppression_key_file: Option<PathBuf>,
}

/// Signing up by email with double opt-in (`/s`): a form on the
/// business's own website, or the hosted one.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signup {
    /// Off by default: `/s` then answers like an unknown link.
    #[serde(default)]
    pub enabled: bool,
    /// Websites whose forms may post to `/s` besides the daemon's own
    /// (`business.base_url`), as origins: "https://www.cafe-linde.example".
    /// A browser says where a form was posted from (`Origin`); a post from
    /// anywhere else is refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// Sign-ups one client address may post per hour.
    #[serde(default = "default_signups_per_client")]
    pub per_client_per_hour: u32,
}

impl Default for Signup {
    fn default() -> Self {
        Signup {
            enabled: false,
            allowed_origins: Vec::new(),
            per_client_per_hour: default_signups_per_client(),
        }
    }
}

fn default_signups_per_client() -> u32 {
    5
}

/// Where bounces and complaints come back, and how they are read.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounces {
    /// The envelope sender of customer emails, tagged per message as
    /// `local+TAG@domain`. Default: the address in `business.from`.
    #[serde(default)]
    pub return_path: Option<String>,
    /// The mailbox the reports arrive in, polled by the daemon:
    /// `imaps://host[:993]` (TLS) or `imap://host[:143]` (STARTTLS).
    #[serde(default)]
    pub imap_url: Option<String>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The folder read.
    #[serde(default = "default_bounce_folder")]
    pub folder: String,
    /// Where read emails go, so that a restart never reads them again;
    /// `""` deletes them instead.
    #[serde(default = "default_processed_folder")]
    pub processed_folder: String,
    #[serde(default = "default_bounce_poll")]
    pub poll: String,
    /// A CA certificate (PEM) to trust besides the public ones, for a mail
    /// server with a private certificate.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl Default for Bounces {
    fn default() -> Self {
        Bounces {
            return_path: None,
            imap_url: None,
            username: None,
            password_file: None,
            folder: default_bounce_folder(),
            processed_folder: default_processed_folder(),
            poll: default_bounce_poll(),
            ca_file: None,
        }
    }
}

fn default_bounce_folder() -> String {
    "INBOX".into()
}

fn default_processed_folder() -> String {
    "outreach-processed".into()
}

fn default_bounce_poll() -> String {
    "5m".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Import {
    /// Recorded as the consent source when the CSV has no `consent_source` column.
    #[serde(default = "default_consent_source")]
    pub default_consent_source: String,
    /// Column header → field (`"Treuepunkte" = "points"`), beyond the
    /// built-in German and English names; see `import::columns`.
    #[serde(default)]
    pub columns: std::collections::BTreeMap<String, String>,
}

impl Default for Import {
    fn default() -> Self {
        Import {
            default_consent_source: default_consent_source(),
            columns: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Templates {
    #[serde(default = "default_templates_dir")]
    pub dir: PathBuf,
}

impl Default for Templates {
    fn default() -> Self {
        Templates {
            dir: default_templates_dir(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Plain text on a terminal, journald-friendly (no timestamps) under systemd.
    #[default]
    Auto,
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Log {
    #[serde(default)]
    pub format: LogFormat,
    #[serde(default = "default_log_level")]
    pub level: String,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: LogFormat::Auto,
            level: default_log_level(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Absence {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Staff {
    pub id: String,
    pub name: String,
    pub email: String,
    /// Defaults to the business time zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Defaults to the business locale; used for the digest and task page.
    #[serde(default)]
    pub locale: Option<String>,
    #[serde(default = "default_capacity")]
    pub daily_capacity: u32,
    #[serde(default = "default_digest_at")]
    pub digest_at: String,
    #[serde(default = "default_days")]
    pub days: Vec<String>,
    #[serde(default)]
    pub absences: Vec<Absence>,
    #[serde(default)]
    pub manager: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoucherPool {
    pub id: String,
    /// What the voucher is worth, as shown to the customer: one text, or one
    /// per language (`{ de = "10 € auf Ihren nächsten Einkauf", en = "€10 off your next visit" }`).
    pub value: LocalText,
    #[serde(default = "default_valid_days")]
    pub valid_days: u32,
    /// Generate codes from this pattern instead of importing them: `X` is a
    /// random letter or digit, everything else is literal ("LINDE-XXXX-XXXX").
    #[serde(default)]
    pub pattern: Option<String>,
    /// How many codes one customer may receive from this pool.
    #[serde(default = "default_per_customer")]
    pub per_customer: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignKind {
    StatusUpdate,
    Loyalty,
    Voucher,
}

impl CampaignKind {
    pub const ALL: [CampaignKind; 3] = [
        CampaignKind::StatusUpdate,
        CampaignKind::Loyalty,
        CampaignKind::Voucher,
    ];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CampaignKind::StatusUpdate => "status_update",
            CampaignKind::Loyalty => "loyalty",
            CampaignKind::Voucher => "voucher",
        }
    }

    /// Why a customer who turned this kind down gets no message of a run of
    /// it: "no vouchers wanted".
    pub fn declined_reason(self) -> &'static str {
        match self {
            CampaignKind::StatusUpdate => "no status updates wanted",
            CampaignKind::Loyalty => "no loyalty emails wanted",
            CampaignKind::Voucher => "no vouchers wanted",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalMode {
    #[default]
    None,
    Required,
}

/// A date trigger: the anniversary of a date field, checked daily at `at`;
/// or an attribute change seen by an import.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    #[serde(default)]
    pub anniversary_of: Option<String>,
    #[serde(default)]
    pub attribute_changed: Option<String>,
    /// With `attribute_changed`: only when the new value is this one.
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default = "default_trigger_at")]
    pub at: String,
}

/// A `[[campaign]]` as written; validation makes it a [`super::Campaign`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CampaignEntry {
    pub id: String,
    pub kind: CampaignKind,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub trigger: Option<Trigger>,
    #[serde(default = "default_audience")]
    pub audience: String,
    pub template: String,
    #[serde(default)]
    pub approval: ApprovalMode,
    /// Staff ids who receive the approval request.
    #[serde(default)]
    pub approvers: Vec<String>,
    #[serde(default = "default_approval_timeout")]
    pub approval_timeout: String,
    #[serde(default)]
    pub voucher_pool: Option<String>,
    /// Hold a run whose template did not change since the last run and ask the approvers to update it.
    #[serde(default)]
    pub require_fresh_text: bool,
    /// Hold messages due on a day the business is closed (`business.closed`) until it opens.
    #[serde(default)]
    pub skip_closed_days: bool,
    /// `false` pauses the campaign for good (see `outreach campaigns pause`).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Assign {
    #[default]
    Owner,
    LeastLoaded,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutcomeTags {
    #[serde(default)]
    pub reached: Vec<String>,
    #[serde(default)]
    pub not_reached: Vec<String>,
    #[serde(default)]
    pub callback: Vec<String>,
    #[serde(default)]
    pub needs_help: Vec<String>,
    #[serde(default)]
    pub do_not_call: Vec<String>,
}

/// A `[[checkin]]` as written; validation makes it a [`super::Checkin`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckinEntry {
    pub id: String,
    #[serde(default = "default_audience")]
    pub audience: String,
    pub schedule: String,
    #[serde(default)]
    pub assign: Assign,
    #[serde(default = "default_min_days")]
    pub min_days_between_personal_contacts: u32,
    #[serde(default = "default_due_in")]
    pub due_in: String,
    #[serde(default = "default_escalate_after")]
    pub escalate_after: String,
    /// An overdue call goes back to the call list this long after its last
    /// day on time (always after its manager was told).
    #[serde(default = "default_expire_after")]
    pub expire_after: String,
    /// How often a `not_reached` call is retried before the task closes.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// Why the call is suggested, shown to staff: one text, or one per language.
    pub reason: LocalText,
    /// Talking points for staff (template name, per locale).
    pub template: String,
    /// Tags added to the customer for each outcome.
    #[serde(default)]
    pub outcome_tags: OutcomeTags,
    /// `false` pauses the rule for good (see `outreach campaigns pause`).
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_timezone() -> String {
    "Europe/Berlin".into()
}
fn default_locale() -> String {
    "de".into()
}
fn default_database_url() -> String {
    "sqlite://data/outreach.db".into()
}
fn default_outbox() -> PathBuf {
    "data/outbox".into()
}
fn default_rate() -> u32 {
    600
}
fn default_give_up_after() -> String {
    "3d".into()
}
fn default_smtp_host() -> String {
    "127.0.0.1".into()
}
fn default_smtp_port() -> u16 {
    587
}
fn default_connections() -> u32 {
    4
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_max_connections_http() -> u32 {
    2048
}
fn default_header_timeout() -> String {
    "10s".into()
}
fn default_idle_timeout() -> String {
    "60s".into()
}
fn default_shutdown_timeout() -> String {
    "5s".into()
}
fn default_retention_outbox_files() -> String {
    "14d".into()
}
fn default_retention_details() -> String {
    "180d".into()
}
fn default_frequency_cap() -> String {
    "2/7d".into()
}
fn default_quiet_hours() -> String {
    "20:00-08:00".into()
}
fn default_catch_up() -> String {
    "6h".into()
}
fn default_consent_source() -> String {
    "import".into()
}
fn default_templates_dir() -> PathBuf {
    "templates".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_capacity() -> u32 {
    8
}
fn default_digest_at() -> String {
    "08:30".into()
}
fn default_days() -> Vec<String> {
    ["mon", "tue", "wed", "thu", "fri"]
        .map(String::from)
        .to_vec()
}
fn default_valid_days() -> u32 {
    90
}
fn default_per_customer() -> u32 {
    1
}
fn default_trigger_at() -> String {
    "09:00".into()
}
fn default_enabled() -> bool {
    true
}
fn default_audience() -> String {
    "true".into()
}
fn default_approval_timeout() -> String {
    "48h".into()
}
fn default_min_days() -> u32 {
    30
}
fn default_due_in() -> String {
    "2d".into()
}
fn default_escalate_after() -> String {
    "3d".into()
}
fn default_expire_after() -> String {
    "14d".into()
}
fn default_max_attempts() -> u32 {
    3
}
