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
//! - [`import`]: customers from CSV;
//! - [`commands`]: what each CLI command prints;
//! - [`daemon`]: `outreach run` — wires the store, the HTTP server and the
//!   background loops, and shuts down cleanly;
//! - [`http`]: the web endpoints (health, metrics, links in emails);
//! - [`secret`]: secrets from files that never print themselves;
//! - [`systemd`]: readiness and stopping notifications.

pub mod app;
pub mod approval;
pub mod audience;
pub mod commands;
pub mod compose;
pub mod config;
pub mod context;
pub mod daemon;
pub mod deliver;
pub mod domain;
pub mod history;
pub mod http;
pub mod import;
pub mod mail_files;
pub mod mailer;
pub mod metrics;
pub mod plan;
pub mod render;
pub mod retention;
pub mod schedule;
pub mod secret;
pub mod store;
pub mod systemd;
pub mod tasks;
pub mod templates;
pub mod tokens;
pub mod triggers;
pub mod vouchers;
