//! `outreach` keeps a small business in touch with its customers: it sends
//! the routine by email on schedules (status updates, loyalty messages,
//! vouchers) to customers who consented, and turns the personal part —
//! "call and ask how they are" — into call tasks for staff.
//!
//! Layout, in the order a message travels (ARCHITECTURE.md has the map):
//! - [`config`]: the TOML files, layered and validated as a whole; [`app`]:
//!   one loaded configuration with its templates, signer and store;
//! - [`domain`]: values parsed once (emails, schedules, limits, customers);
//! - [`audience`], [`context`]: expressions that select customers, and the
//!   values they and templates see;
//! - [`schedule`], [`triggers`]: which runs happen, and when;
//! - [`plan`]: a campaign run's outbox rows; [`vouchers`]: codes;
//!   [`approval`]: the gate before a run sends;
//! - [`deliver`]: workers that claim, send and record; [`journal`]: what
//!   they sent, for the next start after a crash; [`mailer`]: files or
//!   SMTP (its client in `mailer::smtp`);
//! - [`message`]: what customers and staff read, per language — templates,
//!   greeting, plain text, the email itself and its DKIM signature;
//! - [`tasks`]: check-ins — the call list, who works when and who is away,
//!   digests, outcomes;
//! - [`control`]: pauses and stops;
//! - [`bounces`]: bounces and complaints that come back by email;
//!   [`signup`]: signing up by double opt-in;
//! - [`import`]: customers from CSV and spreadsheet files;
//! - [`history`]: a customer's contacts in time order;
//! - [`store`]: SQLite or PostgreSQL; all SQL lives there;
//! - [`http`], [`tokens`]: the pages behind the links in emails;
//!   [`metrics`]: counters for `/metrics`;
//! - [`retention`], [`mail_files`], [`secret`]: what is kept, files only the
//!   service reads, secrets from files;
//! - [`commands`]: what each CLI command prints; [`local_time`]: times as
//!   people read them;
//! - [`bootstrap`]: what every command needs first (logging, the store,
//!   the stop signals); [`daemon`]: `outreach run` — wires it all and
//!   shuts down cleanly when its caller says so;
//!   [`systemd`]: readiness, watchdog and stopping notifications.
//!   [`timings`]: the waits only time settles (the lease on claims).

pub mod app;
pub mod approval;
pub mod audience;
pub mod bootstrap;
pub mod bounces;
pub mod commands;
pub mod config;
pub mod context;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod domain;
pub mod history;
pub mod http;
pub mod import;
pub mod journal;
pub mod local_time;
pub mod mail_files;
pub mod mailer;
pub mod message;
pub mod metrics;
pub mod plan;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod signup;
pub mod store;
pub mod systemd;
pub mod tasks;
pub mod timings;
pub mod tokens;
pub mod triggers;
pub mod vouchers;
