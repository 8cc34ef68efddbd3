//! The command line (SPEC §3): argument parsing and one function per command.
//!
//! Commands that change nothing print for people by default and take
//! `--json` for scripts. Every error returned from here ends the process with
//! exit status 1 and a message naming what to fix.

mod check;
mod customers;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::Config;
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
    /// Import customers from CSV.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Look up, export or forget a customer.
    #[command(subcommand)]
    Customers(CustomersCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Upsert customers from a CSV file (key: external_id, else email).
    Customers {
        file: PathBuf,
        /// Validate and count, change nothing.
        #[arg(long)]
        dry_run: bool,
    },
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
}

pub async fn execute(cli: Cli) -> Result<()> {
    let path = Config::locate(cli.config.as_deref());
    let config = Config::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    crate::daemon::init_logging(&config.settings.log);
    match cli.command {
        Command::Run => crate::daemon::run(config).await,
        Command::Check => check::run(&config),
        Command::Migrate => {
            let store = open_store(&config).await?;
            println!("database migrated ({})", store.backend_name());
            Ok(())
        }
        Command::Import(ImportCommand::Customers { file, dry_run }) => {
            customers::import(&open_store(&config).await?, &config, &file, dry_run).await
        }
        Command::Customers(cmd) => {
            let store = open_store(&config).await?;
            match cmd {
                CustomersCommand::Show { customer, json } => {
                    customers::show(&store, &customer, json).await
                }
                CustomersCommand::Export { customer } => customers::export(&store, &customer).await,
                CustomersCommand::Forget { customer } => customers::forget(&store, &customer).await,
            }
        }
    }
}

/// Connects and migrates: every command works on an up-to-date schema.
pub async fn open_store(config: &Config) -> Result<Store> {
    let db = &config.settings.database;
    let store = Store::connect(&db.url, db.max_connections)
        .await
        .with_context(|| format!("{}: database.url", config.path.display()))?;
    store.migrate().await?;
    Ok(store)
}
