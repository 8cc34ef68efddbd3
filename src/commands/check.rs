//! `outreach check`: the config loaded and validated (that already happened
//! before we get here, or the command failed with every problem listed);
//! here every template is rendered against a sample customer in every
//! locale it exists in, and the next runs are shown.

use anyhow::{Result, bail};
use chrono::Utc;
use minijinja::context;

use crate::audience::AudienceError;
use crate::config::Config;
use crate::context::{business_value, customer_value, sample_customer};
use crate::secret::Secret;
use crate::templates::Templates;
use crate::tokens::{Purpose, Signer};

pub async fn run(config: &Config) -> Result<()> {
    let s = &config.settings;
    let tz = config.resolved.timezone;
    let templates = Templates::load(&s.templates.dir, &s.business.locale)?;
    let mut problems = Vec::new();
    let signer = Signer::new(vec![Secret::from_bytes(b"check".to_vec())]);
    let unsubscribe_url = format!(
        "{}/u/{}",
        s.business.base_url,
        signer.sign(Purpose::Unsubscribe, 0, Utc::now())
    );
    let rendered_templates = s
        .campaigns
        .iter()
        .map(|c| (c.id.as_str(), c.template.as_str(), true))
        .chain(
            s.checkins
                .iter()
                .map(|c| (c.id.as_str(), c.template.as_str(), false)),
        );
    for (id, template, is_email) in rendered_templates {
        for locale in templates.locales(template) {
            let customer = sample_customer(&locale);
            let ctx = context! {
                customer => customer_value(&customer),
                business => business_value(&s.business),
                unsubscribe_url => &unsubscribe_url,
                voucher => context! { code => "MUSTER-1234", value => "10 €", expires => "31.12.2026" },
                run => context! { id => 0, campaign => id },
            };
            let result = if is_email {
                templates.render_email(template, Some(&locale), &ctx)
            } else {
                templates.render_plain(template, Some(&locale), &ctx)
            };
            if let Err(e) = result {
                problems.push(format!("{id} ({locale}): {e:#}"));
            }
        }
    }
    // Every audience against the sample customer (custom columns empty):
    // an expression too costly for anyone is refused here, not at 3 a.m.
    let mut notes = Vec::new();
    let builtin = customer_value(&sample_customer(&s.business.locale));
    let mut ids: Vec<&String> = config.resolved.audiences.keys().collect();
    ids.sort();
    for id in ids {
        let audience = &config.resolved.audiences[id];
        // Names an audience reads that no customer has built in must come from
        // imported columns; say so, since a typo would suppress everyone.
        let mut custom: Vec<String> = audience
            .names()
            .into_iter()
            .filter(|n| {
                builtin
                    .get_attr(n)
                    .map(|v| v.is_undefined())
                    .unwrap_or(true)
            })
            .collect();
        custom.sort();
        if !custom.is_empty() {
            notes.push(format!(
                "note: {id}: audience reads {} — not built-in fields, so they must be imported columns",
                custom.join(", ")
            ));
        }
        let mut sample = sample_customer(&s.business.locale);
        for name in custom {
            sample.attributes.0.insert(name, String::new());
        }
        match audience.matches(&customer_value(&sample)) {
            Ok(_) => {}
            Err(AudienceError::Runaway(why)) => problems.push(format!("{id}: {why}")),
            Err(AudienceError::Customer(why)) => {
                notes.push(format!("note: {id}: with the sample customer: {why}"))
            }
        }
    }
    for warning in &config.resolved.warnings {
        eprintln!("warning: {warning}");
    }
    if !problems.is_empty() {
        for p in &problems {
            eprintln!("  {p}");
        }
        bail!(
            "{} template or audience problem(s); fix the files named above",
            problems.len()
        );
    }
    println!("{}: configuration is valid", config.path.display());
    for note in notes {
        println!("  {note}");
    }
    println!(
        "  {} campaign(s), {} check-in rule(s), {} staff, {} voucher pool(s); templates render in {}",
        s.campaigns.len(),
        s.checkins.len(),
        s.staff.len(),
        s.voucher_pools.len(),
        s.templates.dir.display()
    );
    let ids = s
        .campaigns
        .iter()
        .map(|c| c.id.as_str())
        .chain(s.checkins.iter().map(|c| c.id.as_str()));
    let now = Utc::now();
    for id in ids {
        match config.resolved.schedules.get(id) {
            Some(schedule) => {
                let next: Vec<String> = schedule
                    .upcoming(now, 3)
                    .iter()
                    .map(|t| {
                        t.with_timezone(&tz)
                            .format("%a %Y-%m-%d %H:%M %Z")
                            .to_string()
                    })
                    .collect();
                println!(
                    "  {id} ({}): next {}",
                    schedule.expression(),
                    next.join(", ")
                );
            }
            None => println!("  {id}: triggered by customer data, not a schedule"),
        }
    }
    Ok(())
}
