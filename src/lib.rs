//! `outreach` keeps a small business in touch with its customers: it sends
//! the routine by email on schedules (status updates, loyalty messages,
//! vouchers) to customers who consented, and turns the personal part —
//! "call and ask how they are" — into call tasks for staff.
//!
//! Layout, in the order a message travels:
//! - [`config`]: the TOML files, layered and validated as a whole;
//! - [`domain`]: values parsed once (emails, schedules, limits, customers);
//! - [`audience`]: boolean expressions that select customers;
//! - [`store`]: SQLite or PostgreSQL; all SQL lives there;
//! - [`import`]: customers from CSV and spreadsheet files;
//! - [`greeting`]: "Liebe Frau Schäfer," — how an email opens;
//! - [`bounces`]: bounces and complaints that come back by email;
//! - [`commands`]: what each CLI command prints;
//! - [`daemon`]: `outreach run` — wires the store, the HTTP server and the
//!   background loops, and shuts down cleanly;
//! - [`control`]: pausing email to customers and stopping runs;
//! - [`staff`]: who is away, from the config and the command line;
//! - [`http`]: the web endpoints (health, metrics, links in emails);
//! - [`templates`], [`plain_text`]: what customers and staff read, per language;
//! - [`secret`]: secrets from files that never print themselves;
//! - [`systemd`]: readiness and stopping notifications.

pub mod app;
pub mod approval;
pub mod audience;
pub mod bounces;
pub mod commands;
pub mod compose;
pub mod config;
pub mod context;
pub mod control;
pub mod daemon;
pub mod deliver;
pub mod dkim;
pub mod domain;
pub mod greeting;
pub mod history;
pub mod http;
pub mod import;
pub mod local_time;
pub mod mail_files;
pub mod mailer;
pub mod metrics;
pub mod plain_text;
pub mod plan;
pub mod render;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod staff;
pub mod store;
pub mod systemd;
pub mod tasks;
pub mod templates;
pub mod tokens;
pub mod triggers;
pub mod vouchers;
