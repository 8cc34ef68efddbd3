//! The command line: argument parsing and one function per command.
//!
//! Commands that change nothing print for people by default and take
//! `--json` for scripts. Every error returned from here ends the process with
//! exit status 1 and a message naming what to fix.

mod check;
mod customers;
mod runs;
mod status;
mod tasks;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::config::Config;
use crate::domain::Channel;
use crate::store::Store;

#[derive(Debug, Parser)]
#[command(
    name = "outreach",
    version,
    about = "Keeps a small business in touch with its customers."
)]
pub struct Cli {
    /// Config file (default: $OUTREACH_CONFIG, ./config/outreach.toml, /etc/outreach/outreach.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon in the foreground (migrates the database first).
    Run,
    /// Validate config, schedules, audiences and templates; show upcoming runs.
    Check,
    /// Apply database migrations and exit.
    Migrate,
    /// Import customers from CSV or a spreadsheet.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Look up, export or forget a customer; record their objections.
    #[command(subcommand)]
    Customers(CustomersCommand),
    /// Render a campaign's message exactly as it would be sent.
    Preview {
        campaign: String,
        /// Customer id, external id or email (default: a sample customer).
        #[arg(long)]
        customer: Option<String>,
        /// Print the HTML part instead of headers and text.
        #[arg(long)]
        html: bool,
    },
    /// Campaign runs and the approval gate.
    #[command(subcommand)]
    Runs(RunsCommand),
    /// Call tasks from the command line.
    #[command(subcommand)]
    Tasks(TasksCommand),
    /// Bounces and complaints that come back by email.
    #[command(subcommand)]
    Bounces(BouncesCommand),
    /// Queue by state, next runs, open/overdue tasks per staff, recent failures.
    Status {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum BouncesCommand {
    /// Read one bounce (RFC 3464), complaint (RFC 5965) or bounce-like email
    /// and act on it; for a mail server's pipe alias. Exit 0 when the email
    /// was used or deliberately ignored, 1 when it cannot be read.
    Ingest {
        /// The email file; standard input when absent or `-`.
        file: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Recent runs with message counts per state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One run: its messages, or for a check-in run its call list.
    Show {
        run: i64,
        #[arg(long)]
        json: bool,
    },
    /// Approve a run waiting for approval.
    Approve { run: i64 },
    /// Cancel a run waiting for approval; its messages end suppressed.
    Cancel { run: i64 },
    /// Start a campaign or check-in rule now, as if its schedule had fired.
    Start { id: String },
    /// Queue a run's `unknown` messages again (after checking they did not arrive).
    RetryUnknown { run: i64 },
}

#[derive(Debug, Subcommand)]
pub enum TasksCommand {
    /// Call tasks, by due day.
    List {
        #[arg(long)]
        staff: Option<String>,
        /// Only open tasks.
        #[arg(long)]
        open: bool,
        #[arg(long)]
        json: bool,
    },
    /// Record a call's outcome: reached, not_reached, callback, needs_help, do_not_call.
    Done {
        task: i64,
        #[arg(long)]
        outcome: String,
        #[arg(long)]
        note: Option<String>,
        /// With `--outcome callback`: the day to call back (YYYY-MM-DD or DD.MM.YYYY).
        #[arg(long, value_name = "DATE", value_parser = crate::domain::parse_date)]
        callback_on: Option<chrono::NaiveDate>,
    },
    /// Send the digest email(s) now instead of at digest_at.
    Digest {
        #[arg(long)]
        staff: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Upsert customers from CSV (any encoding a spreadsheet writes), .xlsx
    /// or .ods (key: external_id, else email).
    Customers {
        file: PathBuf,
        /// Validate, count and show which column goes where; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The text file's encoding (UTF-8, windows-1252, ISO-8859-15,
        /// UTF-16LE …) instead of the detected one.
        #[arg(long, value_name = "NAME")]
        encoding: Option<String>,
        /// The sheet of a workbook to read (default: the first).
        #[arg(long, value_name = "NAME")]
        sheet: Option<String>,
    },
    /// Add voucher codes (one per line, or a CSV column `code`) to a pool.
    Vouchers { pool: String, file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum CustomersCommand {
    /// The customer with their full contact history.
    Show {
        /// Numeric id, external id or email.
        customer: String,
        #[arg(long)]
        json: bool,
    },
    /// Everything held on the customer, as JSON (GDPR access request).
    Export { customer: String },
    /// Erase the customer's personal data; keep an anonymous suppression record.
    Forget { customer: String },
    /// Record that the customer wants no more emails (said on the phone, at
    /// the counter …); later imports do not undo it.
    Unsubscribe {
        /// Numeric id, external id or email.
        customer: String,
        /// Only emails of this campaign kind: status_update, loyalty, voucher.
        #[arg(long)]
        kind: Option<String>,
        /// What the customer said, where.
        #[arg(long)]
        note: Option<String>,
        /// Who records it (default: the user running the command).
        #[arg(long)]
        by: Option<String>,
    },
    /// Record that the customer does not want to be called; later imports
    /// do not undo it.
    DoNotCall {
        /// Numeric id, external id or email.
        customer: String,
        #[arg(long)]
        note: Option<String>,
        /// Who records it (default: the user running the command).
        #[arg(long)]
        by: Option<String>,
    },
}

pub async fn execute(cli: Cli) -> Result<()> {
    let path = Config::locate(cli.config.as_deref());
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::daemon::init_logging(&config.settings.log);
    match cli.command {
        Command::Run => crate::daemon::run(config).await,
        Command::Check => check::run(&config).await,
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database migrated ({})", store.backend_name());
            store.close().await;
            Ok(())
        }
        command => {
            let store = open_store(&config).await?;
            let result = async {
                let app = crate::daemon::cli_app(config.clone(), store.clone()).await?;
                with_app(&app, command).await
            }
            .await;
            // Ends the sessions properly, also after an error: PostgreSQL
            // logs a connection that just vanishes ("could not receive data
            // from client"), and a command run from cron would fill its log.
            store.close().await;
            result
        }
    }
}

/// Commands that work on the database with the loaded templates and keys.
async fn with_app(app: &App, command: Command) -> Result<()> {
    match command {
        Command::Import(ImportCommand::Customers {
            file,
            dry_run,
            encoding,
            sheet,
        }) => {
            customers::import(
                app,
                &file,
                customers::ImportFlags {
                    dry_run,
                    encoding: encoding.as_deref(),
                    sheet: sheet.as_deref(),
                },
            )
            .await
        }
        Command::Import(ImportCommand::Vouchers { pool, file }) => {
            runs::import_vouchers(app, &pool, &file).await
        }
        Command::Customers(CustomersCommand::Show { customer, json }) => {
            customers::show(&app.store, &customer, json).await
        }
        Command::Customers(CustomersCommand::Export { customer }) => {
            customers::export(&app.store, &customer).await
        }
        Command::Customers(CustomersCommand::Forget { customer }) => {
            customers::forget(&app.store, &customer).await
        }
        Command::Customers(CustomersCommand::Unsubscribe {
            customer,
            kind,
            note,
            by,
        }) => {
            let objection = customers::Objecting {
                kind: kind.as_deref(),
                note: note.as_deref(),
                by: by.as_deref(),
            };
            customers::object(&app.store, &customer, Channel::Email, objection).await
        }
        Command::Customers(CustomersCommand::DoNotCall { customer, note, by }) => {
            let objection = customers::Objecting {
                kind: None,
                note: note.as_deref(),
                by: by.as_deref(),
            };
            customers::object(&app.store, &customer, Channel::Phone, objection).await
        }
        Command::Preview {
            campaign,
            customer,
            html,
        } => runs::preview(app, &campaign, customer.as_deref(), html).await,
        Command::Runs(RunsCommand::List { json }) => runs::list(app, json).await,
        Command::Runs(RunsCommand::Show { run, json }) => runs::show(app, run, json).await,
        Command::Runs(RunsCommand::Approve { run }) => runs::decide(app, run, true).await,
        Command::Runs(RunsCommand::Cancel { run }) => runs::decide(app, run, false).await,
        Command::Runs(RunsCommand::Start { id }) => runs::start(app, &id).await,
        Command::Runs(RunsCommand::RetryUnknown { run }) => runs::retry_unknown(app, run).await,
        Command::Tasks(TasksCommand::List { staff, open, json }) => {
            tasks::list(app, staff.as_deref(), open, json).await
        }
        Command::Tasks(TasksCommand::Done {
            task,
            outcome,
            note,
            callback_on,
        }) => tasks::done(app, task, &outcome, note.as_deref(), callback_on).await,
        Command::Tasks(TasksCommand::Digest { staff }) => {
            tasks::digest(app, staff.as_deref()).await
        }
        Command::Bounces(BouncesCommand::Ingest { file }) => {
            let raw = crate::bounces::read_input(file.as_deref())?;
            let effect = crate::bounces::ingest(app, &raw, chrono::Utc::now()).await?;
            println!("{effect}");
            Ok(())
        }
        Command::Status { json } => status::run(app, json).await,
        Command::Run | Command::Check | Command::Migrate => {
            unreachable!("execute handles these without an App")
        }
    }
}

/// Connects and migrates: every command works on an up-to-date schema.
pub async fn open_store(config: &Config) -> Result<Store> {
    let db = &config.settings.database;
    let password = match &config.resolved.database_password {
        Some(secret) => Some(
            secret
                .expose_str()
                .context("database.password_file is not UTF-8")?,
        ),
        None => None,
    };
    let store = Store::connect_with_password(&db.url, db.max_connections, password)
        .await
        .with_context(|| format!("{}: database.url", config.path.display()))?;
    if let Err(e) = store.migrate().await {
        store.close().await;
        return Err(e);
    }
    Ok(store)
}
