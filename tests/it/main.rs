//! The integration tests, one test binary: each module is one area of the
//! program, run against real parts (SQLite files in temp folders,
//! PostgreSQL when `TEST_POSTGRES_URL` is set, the real `outreach` binary,
//! SMTP servers in process). `common` holds the shared helpers.
//!
//! One binary links sqlx, axum and the crate once instead of once per
//! area; a new area is one more `mod` line here.

mod common;

mod bad_input;
mod bounces;
mod calendar;
mod campaigns;
mod checkin_simulation;
mod checkins;
mod config_check;
mod daemon_lifecycle;
mod daemon_shutdown;
mod delivery;
mod faults;
mod file_modes;
mod greetings;
mod http_limits;
mod import_customers;
mod import_files;
mod limits;
mod loyalty_vouchers_approval;
mod migrate_forward;
mod objections;
mod one_language;
mod operator;
mod ops;
mod preferences;
mod privacy;
mod schema;
mod shipped_templates;
mod signed_mail;
mod signup;
mod smtp_relay;
mod smtp_reload;
mod template_escaping;
