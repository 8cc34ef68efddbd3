//! `import customers` and `customers show|export|forget`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;

use crate::app::App;
use crate::domain::{Customer, Email};
use crate::import::{self, ImportOptions};
use crate::store::{HistoryEntry, Store};

pub async fn import(app: &App, file: &Path, dry_run: bool) -> Result<()> {
    let config = &app.config;
    let interactive = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if interactive {
            eprint!("\r{done}/{total} rows");
        }
    };
    let report = import::import_customers(
        &app.store,
        file,
        ImportOptions {
            dry_run,
            staff_ids: config.settings.staff.iter().map(|s| s.id.clone()).collect(),
            default_consent_source: config.settings.import.default_consent_source.clone(),
            progress: Some(&mut progress),
        },
    )
    .await?;
    if interactive {
        eprintln!();
    }
    let prefix = if dry_run {
        "dry run, nothing written: would have "
    } else {
        ""
    };
    println!(
        "{prefix}imported {}, updated {}, unchanged {}, rejected {}, skipped as forgotten {}",
        report.imported,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        report.forgotten.len()
    );
    for (line, reason) in &report.rejected {
        println!("line {line}: {reason}");
    }
    for line in &report.forgotten {
        println!(
            "line {line}: skipped: this person asked to be forgotten; remove them from the source file"
        );
    }
    // Changes of watched values (`trigger = { attribute_changed = … }`) start
    // their runs now, also when some other rows were rejected: the good rows
    // were imported. A dry run reports no changes.
    for (campaign, run, customers) in
        crate::triggers::on_import(app, &report.changes, Utc::now()).await?
    {
        println!(
            "run {run} of {campaign} started for {customers} customer(s) whose value changed; the running daemon plans and sends it"
        );
    }
    import::ensure_nothing_rejected(&report)
}

async fn find(store: &Store, key: &str) -> Result<Customer> {
    store
        .find_customer(key)
        .await?
        .filter(|c| c.forgotten_at.is_none())
        .ok_or_else(|| anyhow!("no customer with id, external id or email \"{key}\""))
}

async fn history(store: &Store, customer: &Customer) -> Result<Vec<HistoryEntry>> {
    crate::history::customer_history(store, customer.id).await
}

fn yes_no(v: bool) -> &'static str {
    if v { "yes" } else { "no" }
}

pub async fn show(store: &Store, key: &str, json: bool) -> Result<()> {
    let customer = find(store, key).await?;
    let history = history(store, &customer).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "customer": customer, "history": history })
            )?
        );
        return Ok(());
    }
    let c = &customer;
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("Customer {} — {} <{}>", c.id, opt(&c.name), opt(&c.email));
    println!(
        "  external id: {}   phone: {}   locale: {}   time zone: {}",
        opt(&c.external_id),
        opt(&c.phone),
        opt(&c.locale),
        opt(&c.timezone)
    );
    let consent = match (c.consent, c.consent_at) {
        (true, Some(at)) => format!(
            "yes, since {} (source: {})",
            at.date_naive(),
            opt(&c.consent_source)
        ),
        (true, None) => "yes".into(),
        (false, _) => "no".into(),
    };
    println!(
        "  email consent: {consent}{}",
        c.unsubscribed_at
            .map(|u| format!("; unsubscribed {}", u.date_naive()))
            .unwrap_or_default()
    );
    println!(
        "  phone consent: {}   do not call: {}   business: {}   owner: {}",
        yes_no(c.phone_consent),
        yes_no(c.do_not_call),
        yes_no(c.is_business),
        opt(&c.owner)
    );
    println!(
        "  tags: {}   points: {}   tier: {}",
        if c.tags.0.is_empty() {
            "-".into()
        } else {
            c.tags.0.join(", ")
        },
        c.points,
        opt(&c.tier)
    );
    let date =
        |d: Option<chrono::NaiveDate>| d.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
    println!(
        "  customer since: {}   birthday: {}",
        date(c.customer_since),
        date(c.birthday)
    );
    if !c.attributes.0.is_empty() {
        let attrs: Vec<String> = c
            .attributes
            .0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        println!("  attributes: {}", attrs.join(", "));
    }
    println!(
        "  last personal contact: {}",
        c.last_personal_contact_at
            .map(|t| t.date_naive().to_string())
            .unwrap_or_else(|| "never".into())
    );
    println!("History:");
    for h in &history {
        println!(
            "  {}  {:<18} {}",
            h.at.format("%Y-%m-%d %H:%M"),
            h.kind,
            h.detail
        );
    }
    Ok(())
}

pub async fn export(store: &Store, key: &str) -> Result<()> {
    let customer = find(store, key).await?;
    let history = history(store, &customer).await?;
    let doc = serde_json::json!({
        "exported_at": Utc::now(),
        "customer": customer,
        "history": history,
        "messages": store.customer_messages(customer.id).await?,
        "call_tasks": store.customer_tasks(customer.id).await?,
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

/// Erases the person: their `.eml` files first (found by their address,
/// which the database is about to lose), then the database.
pub async fn forget(app: &App, key: &str) -> Result<()> {
    let store = &app.store;
    let customer = find(store, key).await?;
    let email = customer.email.as_deref().and_then(|e| Email::parse(e).ok());
    let mut keys = Vec::new();
    let mut files = 0;
    if let Some(email) = &email {
        keys.push(email.suppression_key());
        let dir = &app.settings().mail.file_dir;
        files = crate::mail_files::delete_addressed_to(dir, email.as_str()).with_context(|| {
            format!(
                "mail.file_dir: deleting the emails to customer {}",
                customer.id
            )
        })?;
    }
    if let Some(ext) = &customer.external_id {
        keys.push(import::external_id_suppression_key(ext));
    }
    let settled = store
        .forget_customer(customer.id, &keys, Utc::now())
        .await?;
    println!(
        "customer {} forgotten: personal data erased, {files} email file(s) deleted; an anonymous record keeps later imports from adding them again",
        customer.id
    );
    if !settled {
        println!(
            "  note: the database was busy; the erased data leaves the database file at its next checkpoint (at the latest when the daemon stops)"
        );
    }
    Ok(())
}
