//! The command line: argument parsing and one function per command.
//!
//! Commands that change nothing print for people by default and take
//! `--json` for scripts. Every error returned from here ends the process with
//! exit status 1 and a message naming what to fix.

mod campaigns;
mod check;
mod customers;
mod explain;
mod runs;
mod runs_show;
mod staff;
mod status;
mod tasks;

use std::path::PathBuf;

use anyhow::Result;
use chrono::NaiveDate;
use clap::{Parser, Subcommand};

use crate::app::App;
use crate::approval::Decision;
use crate::bootstrap;
use crate::config::Config;
use crate::domain::Channel;
use crate::domain::MessageState;

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
    /// Queue by state, next runs, open/overdue tasks per staff, recent failures,
    /// pauses, who is away and why messages wait.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Campaigns and check-in rules: their next occurrence, and pausing one.
    #[command(subcommand)]
    Campaigns(CampaignsCommand),
    /// Hold all email to customers (nothing is dropped; staff email goes on).
    Pause {
        /// Hold until this day begins (YYYY-MM-DD or DD.MM.YYYY, business time zone).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        until: Option<NaiveDate>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
    /// End the hold on email to customers: what waited goes out.
    Resume,
    /// Staff members and their absences.
    #[command(subcommand)]
    Staff(StaffCommand),
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Every campaign and check-in rule: kind, schedule or trigger, next occurrence, paused or not.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Pause one campaign or check-in rule: its occurrences are skipped, its messages wait.
    Pause {
        id: String,
        /// Paused until this day begins (YYYY-MM-DD or DD.MM.YYYY, business time zone).
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        until: Option<NaiveDate>,
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
    /// End a campaign's or check-in rule's pause.
    Resume { id: String },
}

#[derive(Debug, Subcommand)]
pub enum StaffCommand {
    /// Staff members, their working days and who is away.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Record an absence (first and last day included): their tasks move to colleagues.
    Away {
        id: String,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        from: NaiveDate,
        #[arg(long, value_name = "DATE", value_parser = parse_date)]
        to: NaiveDate,
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
    /// End the recorded absence in progress today.
    Back { id: String },
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
    /// Approve a run waiting for approval.
    Approve {
        run: i64,
        /// Send a run held because its text is unchanged since the last one, as it is.
        #[arg(long)]
        force: bool,
    },
    /// Cancel a run waiting for approval; its messages end suppressed.
    Cancel { run: i64 },
    /// Start a campaign or check-in rule now, as if its schedule had fired.
    Start { id: String },
    /// Queue a run's `unknown` messages again (after checking they did not arrive).
    RetryUnknown { run: i64 },
    /// One run: every recipient with state, reason and time, counts by state
    /// and reason; for a check-in run, what became of its customers.
    Show {
        run: i64,
        /// Only recipients in this state (planned, sending, sent, failed, suppressed, unknown).
        // Parsed by `FromStr`, not as a `ValueEnum`: its error names the
        // valid states in one line a script's log keeps.
        #[arg(long, value_name = "S", value_parser = <MessageState as std::str::FromStr>::from_str)]
        state: Option<MessageState>,
        /// Only recipients whose reason contains this text.
        #[arg(long, value_name = "R")]
        reason: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Stop a run: its planned messages end suppressed ("stopped"); what is on the wire finishes.
    Stop {
        run: i64,
        #[arg(long, value_name = "TEXT", default_value = "")]
        note: String,
    },
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
    /// Send the digest email(s) now instead of at digest_at (once a day).
    Digest {
        #[arg(long)]
        staff: Option<String>,
        /// Send it even if today's digest went out already.
        #[arg(long)]
        again: bool,
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
    bootstrap::init_logging(&config.settings.log);
    match cli.command {
        Command::Run => crate::daemon::run(config, bootstrap::stop_signals()?).await,
        Command::Check => check::run(&config).await,
        Command::Migrate => {
            let store = bootstrap::open_store(&config).await?;
            println!("database migrated ({})", store.backend_kind());
            store.close().await;
            Ok(())
        }
        command => {
            let store = bootstrap::open_store(&config).await?;
            let announce = command.reaches_the_daemon();
            let result = async {
                let app = bootstrap::command_app(config.clone(), store.clone()).await?;
                with_app(&app, command).await
            }
            .await;
            // Also after an error: part of it may have been done (an import
            // with rejected rows still started runs for the good ones).
            if announce && let Err(e) = store.announce_change().await {
                eprintln!(
                    "note: the running daemon could not be told at once ({e:#}); it sees the change within a few seconds"
                );
            }
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
            customers::show(app, &customer, json).await
        }
        Command::Customers(CustomersCommand::Export { customer }) => {
            customers::export(&app.store, &customer).await
        }
        Command::Customers(CustomersCommand::Forget { customer }) => {
            customers::forget(app, &customer).await
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
        Command::Runs(RunsCommand::Approve { run, force }) => {
            let decision = if force {
                Decision::ApproveUnchanged
            } else {
                Decision::Approve
            };
            runs::decide(app, run, decision).await
        }
        Command::Runs(RunsCommand::Cancel { run }) => {
            runs::decide(app, run, Decision::Cancel).await
        }
        Command::Runs(RunsCommand::Show {
            run,
            state,
            reason,
            json,
        }) => runs_show::show(app, run, state, reason.as_deref(), json).await,
        Command::Runs(RunsCommand::Stop { run, note }) => runs::stop(app, run, &note).await,
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
        Command::Tasks(TasksCommand::Digest { staff, again }) => {
            tasks::digest(app, staff.as_deref(), again).await
        }
        Command::Bounces(BouncesCommand::Ingest { file }) => {
            let raw = crate::bounces::read_input(file.as_deref())?;
            let effect = crate::bounces::ingest(app, &raw, chrono::Utc::now()).await?;
            println!("{effect}");
            Ok(())
        }
        Command::Status { json } => status::run(app, json).await,
        Command::Campaigns(CampaignsCommand::List { json }) => campaigns::list(app, json).await,
        Command::Campaigns(CampaignsCommand::Pause { id, until, note }) => {
            campaigns::pause(app, Some(&id), until, &note).await
        }
        Command::Campaigns(CampaignsCommand::Resume { id }) => {
            campaigns::resume(app, Some(&id)).await
        }
        Command::Pause { until, note } => campaigns::pause(app, None, until, &note).await,
        Command::Resume => campaigns::resume(app, None).await,
        Command::Staff(StaffCommand::List { json }) => staff::list(app, json).await,
        Command::Staff(StaffCommand::Away { id, from, to, note }) => {
            staff::away(app, &id, from, to, &note).await
        }
        Command::Staff(StaffCommand::Back { id }) => staff::back(app, &id).await,
        Command::Run | Command::Check | Command::Migrate => {
            unreachable!("execute handles these without an App")
        }
    }
}

impl Command {
    /// Whether the command changes what a running daemon does: it is told
    /// at once (see `store::changes`) instead of finding out at its next tick.
    fn reaches_the_daemon(&self) -> bool {
        matches!(
            self,
            Command::Import(_)
                | Command::Pause { .. }
                | Command::Resume
                | Command::Campaigns(
                    CampaignsCommand::Pause { .. } | CampaignsCommand::Resume { .. }
                )
                | Command::Staff(StaffCommand::Away { .. } | StaffCommand::Back { .. })
                | Command::Runs(
                    RunsCommand::Approve { .. }
                        | RunsCommand::Cancel { .. }
                        | RunsCommand::Start { .. }
                        | RunsCommand::Stop { .. }
                        | RunsCommand::RetryUnknown { .. }
                )
        )
    }
}

/// A day on the command line: `2027-01-07` or `07.01.2027`.
pub fn parse_date(raw: &str) -> Result<NaiveDate, String> {
    let raw = raw.trim();
    NaiveDate::parse_from_str(raw, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(raw, "%d.%m.%Y"))
        .map_err(|_| format!("\"{raw}\" is not a date; write it as YYYY-MM-DD or DD.MM.YYYY"))
}

/// Who acts from the command line, as recorded on what they change.
pub(crate) fn by_whom() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "someone".into());
    format!("{user} (command line)")
}

#[cfg(test)]
mod tests {
    use super::parse_date;
    use chrono::NaiveDate;

    #[test]
    fn days_are_read_the_iso_and_the_german_way() {
        let day = NaiveDate::from_ymd_opt(2027, 1, 7).unwrap();
        assert_eq!(parse_date("2027-01-07"), Ok(day));
        assert_eq!(parse_date(" 07.01.2027 "), Ok(day));
        assert_eq!(
            parse_date("7/1/2027"),
            Err("\"7/1/2027\" is not a date; write it as YYYY-MM-DD or DD.MM.YYYY".into())
        );
        assert!(parse_date("2027-02-30").is_err());
    }
}
