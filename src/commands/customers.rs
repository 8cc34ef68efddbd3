//! `import customers` and `customers show|export|forget|unsubscribe|do-not-call`.

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use chrono::Utc;

use crate::app::App;
use crate::config::CampaignKind;
use crate::domain::{Channel, Customer, Email, NewObjection};
use crate::import::{self, ImportOptions};
use crate::store::{HistoryEntry, Store};

/// The command-line flags of `import customers`.
pub struct ImportFlags<'a> {
    pub dry_run: bool,
    pub encoding: Option<&'a str>,
    pub sheet: Option<&'a str>,
}

pub async fn import(app: &App, file: &Path, flags: ImportFlags<'_>) -> Result<()> {
    let interactive = std::io::stderr().is_terminal();
    let mut progress = |done: usize, total: usize| {
        if interactive {
            eprint!("\r{done}/{total} rows");
        }
    };
    let dry_run = flags.dry_run;
    let report = import::import_customers(
        &app.store,
        file,
        ImportOptions {
            encoding: flags.encoding,
            sheet: flags.sheet,
            progress: Some(&mut progress),
            ..ImportOptions::new(&app.config, dry_run)
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
    let mut counts = format!(
        "{prefix}imported {}, updated {}, unchanged {}, rejected {}, skipped as forgotten {}",
        report.imported,
        report.updated,
        report.unchanged,
        report.rejected.len(),
        report.forgotten.len()
    );
    for (n, what) in [
        (report.resubscribed.len(), "re-subscribed"),
        (report.kept.len(), "objections kept"),
    ] {
        if n > 0 {
            counts.push_str(&format!(", {what} {n}"));
        }
    }
    println!("{counts}");
    println!("read {} as {}", file.display(), report.read_as);
    if dry_run {
        println!("columns:");
        for (header, letter, target) in &report.mapping {
            println!("  {letter:>3}  {header} → {target}");
        }
    }
    let attributes = &report.attribute_columns;
    if attributes.is_empty() {
        println!("columns kept as custom attributes: none");
    } else {
        println!(
            "columns kept as custom attributes: {} (map others to fields in [import.columns] of the config)",
            attributes
                .iter()
                .map(|a| format!("\"{a}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for note in &report.column_notes {
        println!("note: {note}");
    }
    for (line, reasons) in &report.rejected {
        for reason in reasons.lines() {
            println!("line {line}: {reason}");
        }
    }
    for line in &report.forgotten {
        println!(
            "line {line}: skipped: this person asked to be forgotten; remove them from the source file"
        );
    }
    for (line, what) in &report.resubscribed {
        println!("line {line}: re-subscribed: {what}");
    }
    for (line, what) in &report.kept {
        println!("line {line}: objection kept: {what}");
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
    import::ensure_nothing_rejected(&report, dry_run)
}

/// What `customers unsubscribe` and `customers do-not-call` record besides the channel.
pub struct Objecting<'a> {
    pub kind: Option<&'a str>,
    pub note: Option<&'a str>,
    pub by: Option<&'a str>,
}

/// Records an objection the customer made to staff, as the unsubscribe
/// link does for email.
pub async fn object(
    store: &Store,
    key: &str,
    channel: Channel,
    objecting: Objecting<'_>,
) -> Result<()> {
    let customer = find(store, key).await?;
    let kind = match objecting.kind {
        Some(k) => Some(
            CampaignKind::parse(k.trim())
                .ok_or_else(|| {
                    let kinds: Vec<&str> = CampaignKind::ALL.iter().map(|k| k.as_str()).collect();
                    anyhow!(
                        "--kind \"{k}\" is not a campaign kind; use one of {}, or leave it out to stop every email",
                        kinds.join(", ")
                    )
                })?
                .as_str()
                .to_string(),
        ),
        None => None,
    };
    let objection = NewObjection {
        channel,
        kind,
        at: Utc::now(),
        recorded_by: objecting
            .by
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(String::from)
            .unwrap_or_else(import::os_user),
        source: match channel {
            Channel::Email => "outreach customers unsubscribe",
            Channel::Phone => "outreach customers do-not-call",
        }
        .into(),
        note: objecting
            .note
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from),
    };
    if store.record_objection(customer.id, &objection).await? {
        println!(
            "customer {} ({}): {}; later imports do not undo it",
            customer.id,
            customer.label(),
            objection.describe()
        );
    } else {
        let covering = store
            .active_objections(&[customer.id])
            .await?
            .into_iter()
            .find(|o| o.channel == channel && (o.kind.is_none() || o.kind == objection.kind));
        println!(
            "customer {} ({}): already recorded{}; nothing changed",
            customer.id,
            customer.label(),
            covering
                .map(|o| format!(" on {}", o.when_and_how()))
                .unwrap_or_default()
        );
    }
    Ok(())
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

pub async fn show(app: &App, key: &str, json: bool) -> Result<()> {
    let store = &app.store;
    let customer = find(store, key).await?;
    let history = history(store, &customer).await?;
    let objections = store.customer_objections(customer.id).await?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "customer": customer,
                "objections": objections,
                "history": history
            }))?
        );
        return Ok(());
    }
    let c = &customer;
    let tz = app.config.resolved.timezone;
    let day = |t: chrono::DateTime<Utc>| t.with_timezone(&tz).date_naive();
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    println!("Customer {} — {} <{}>", c.id, opt(&c.name), opt(&c.email));
    println!(
        "  salutation: {}   first name: {}   last name: {}   company: {}",
        c.salutation.map(|s| s.as_str()).unwrap_or("-"),
        opt(&c.first_name),
        opt(&c.last_name),
        opt(&c.company)
    );
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
            day(at),
            opt(&c.consent_source)
        ),
        (true, None) => "yes".into(),
        (false, _) => match &c.consent_source {
            Some(source) => format!("no (source: {source})"),
            None => "no".into(),
        },
    };
    println!(
        "  email consent: {consent}{}",
        c.unsubscribed_at
            .map(|u| format!("; unsubscribed {}", day(u)))
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
    if let Some(note) = &c.note {
        println!("  note: {note}");
    }
    for o in &objections {
        println!("  objection: {}", o.describe());
    }
    println!(
        "  last personal contact: {}",
        c.last_personal_contact_at
            .map(|t| day(t).to_string())
            .unwrap_or_else(|| "never".into())
    );
    println!("History (times in {}):", tz.name());
    for h in &history {
        println!(
            "  {}  {:<18} {}",
            crate::local_time::bare_time_in(h.at, tz),
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
        "objections": store.customer_objections(customer.id).await?,
        "messages": store.customer_messages(customer.id).await?,
        "call_tasks": store.customer_tasks(customer.id).await?,
        "call_list": store.customer_call_list(customer.id).await?,
        "signups": store.customer_signups(customer.id).await?,
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
