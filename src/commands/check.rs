//! `outreach check`: the config loaded and validated (that already happened
//! before we get here, or the command failed with every problem listed);
//! here every template is rendered against a sample customer in every
//! locale it exists in, and the next runs are shown.

use anyhow::{Result, bail};
use chrono::Utc;
use minijinja::context;

use crate::approval::{Preview, request_context};
use crate::audience::AudienceError;
use crate::config::{CampaignKind, Config};
use crate::context::{business_value, customer_value, sample_customer};
use crate::http::{
    PreferencesState, SignupState, approval_page_context, confirm_page_context, error_page_context,
    signup_page_context, task_page_context, unsubscribe_page_context,
};
use crate::message::greeting::greeting;
use crate::message::templates::{Fragment, Templates};
use crate::secret::Secret;
use crate::tasks::OutcomeError;
use crate::tasks::digest::{
    Escalation, calendar_event_context, digest_context, escalation_context,
};
use crate::tasks::summary::summary_context;
use crate::tasks::view::CallView;
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
    let rules = &config.resolved.rules;
    let rendered_templates = rules
        .campaigns
        .iter()
        .map(|c| (c.id.as_str(), c.template.as_str(), true))
        .chain(
            rules
                .checkins
                .iter()
                .map(|c| (c.id.as_str(), c.template.as_str(), false)),
        );
    for (id, template, is_email) in rendered_templates {
        for locale in templates.locales(template) {
            let customer = sample_customer(&locale);
            let ctx = context! {
                customer => customer_value(&customer),
                greeting => greeting(&customer, &locale, s.business.address_form),
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
    problems.extend(staff_templates(config, &templates));
    // Every audience against the sample customer (custom columns empty):
    // an expression too costly for anyone is refused here, not at 3 a.m.
    let mut notes = Vec::new();
    let builtin = customer_value(&sample_customer(&s.business.locale));
    let mut audiences: Vec<_> = rules.audiences().collect();
    audiences.sort_by_key(|(id, _)| *id);
    for (id, audience) in audiences {
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
    if let Ok(url) = url::Url::parse(&s.business.base_url)
        && url.scheme() == "http"
    {
        println!(
            "  note: business.base_url {} is plain http, accepted only because it is this machine; before real customers get email, put the HTTP server behind https and write that address here",
            s.business.base_url
        );
    }
    if let Some(signer) = &config.resolved.dkim {
        let (name, record) = signer.dns_record();
        println!("  DKIM: every email is signed; publish this TXT record at {name}:\n    {record}");
    }
    for note in notes {
        println!("  {note}");
    }
    println!(
        "  {} campaign(s), {} check-in rule(s), {} staff, {} voucher pool(s); templates render in {}",
        rules.campaigns.len(),
        rules.checkins.len(),
        s.staff.len(),
        s.voucher_pools.len(),
        s.templates.dir.display()
    );
    let ids = rules.ids();
    let disabled: Vec<&str> = rules.disabled_ids().collect();
    let now = Utc::now();
    for id in ids {
        if disabled.contains(&id) {
            println!("  {id}: disabled (enabled = false); its occurrences are skipped");
            continue;
        }
        let schedule = rules
            .scheduled()
            .find_map(|(rule, schedule, _)| (rule == id).then_some(schedule));
        match schedule {
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

/// The staff-facing templates (built in, or replaced in the templates
/// folder) rendered with made-up values in every language they exist in, so
/// a replaced one that uses a value that does not exist is found now, not
/// when someone opens a page or a digest goes out.
fn staff_templates(config: &Config, templates: &Templates) -> Vec<String> {
    let s = &config.settings;
    let business = business_value(&s.business);
    let points = Fragment {
        text: "…".into(),
        html: "<p>…</p>".into(),
    };
    let mut problems = Vec::new();
    for (name, ext) in STAFF_TEMPLATES {
        for locale in templates.locales_of(name, ext) {
            let open = CallView::sample(&locale, points.clone());
            // The mistake that names the most: a day, the next day, a name.
            let sample_mistake = OutcomeError::DayOff {
                day: open.day,
                name: "Maria".into(),
                next: Some(open.day + chrono::Days::new(1)),
            };
            let closed = CallView {
                open: false,
                ..open.clone()
            };
            let (preview, run) = Preview::sample(points.clone());
            let preview = preview.value(config, &run, &locale);
            let contexts = match name {
                "task_page" => vec![
                    task_page_context(
                        &open,
                        Some("saved"),
                        Some(sample_mistake.page_problem(&locale)),
                        Some("Maria"),
                    ),
                    task_page_context(&closed, Some("expired"), None, None),
                ],
                "approval_page" => {
                    vec![approval_page_context(
                        preview,
                        Some("Maria"),
                        Some("approved"),
                    )]
                }
                "unsubscribe_page" => {
                    let kinds = CampaignKind::ALL.map(|k| (k, k != CampaignKind::Voucher));
                    PreferencesState::ALL
                        .map(|state| {
                            unsubscribe_page_context(
                                state,
                                &s.business.name,
                                &kinds,
                                Some(CampaignKind::Voucher),
                            )
                        })
                        .to_vec()
                }
                "signup_page" => SignupState::ALL
                    .map(|state| {
                        signup_page_context(
                            state,
                            &s.business.name,
                            &CampaignKind::ALL,
                            Some("email"),
                            &Default::default(),
                        )
                    })
                    .to_vec(),
                "confirm_page" => ["ask", "done"]
                    .map(|state| confirm_page_context(state, &s.business.name))
                    .to_vec(),
                "confirm" => vec![context! {
                    business => business.clone(),
                    confirm_url => "https://…",
                    valid_until => "…",
                    kinds => CampaignKind::ALL.map(CampaignKind::as_str).to_vec(),
                }],
                "error_page" => ["link", "expired", "server"]
                    .map(error_page_context)
                    .to_vec(),
                "digest" => {
                    let staff = s
                        .staff
                        .first()
                        .map_or(("maria", "Maria"), |m| (m.id.as_str(), m.name.as_str()));
                    vec![digest_context(staff, "…".into(), &[open], business.clone())]
                }
                "approval_request" => vec![request_context(
                    preview,
                    "Maria",
                    "https://…",
                    Some("…".into()),
                )],
                "escalation" => vec![escalation_context(
                    Some("Maria"),
                    &[Escalation {
                        staff: "Jonas".into(),
                        back_on: Some(open.due.clone()),
                        call: open,
                    }],
                )],
                "voucher_pool_empty" => vec![context! { pool => "sample" }],
                "call_list_summary" => {
                    let summary = crate::tasks::summary::CallListSummary {
                        waiting: 3,
                        by_reason: crate::store::ListReason::ALL
                            .iter()
                            .map(|r| (*r, 1))
                            .collect(),
                        returned: 1,
                        all_called_by: Some(open.day),
                    };
                    let staff = vec![context! { name => "Jonas", open => 4, overdue => 1 }];
                    vec![
                        summary_context("Maria", &summary, staff, &locale),
                        summary_context("Maria", &Default::default(), vec![], &locale),
                    ]
                }
                "calendar_event" => vec![calendar_event_context(&open)],
                // Talking points for call backs and follow-ups.
                _ => vec![context! {
                    customer => customer_value(&sample_customer(&locale)),
                    business => business.clone(),
                }],
            };
            for ctx in contexts {
                let result = match (ext, name) {
                    ("html", _) => templates.render_page(name, Some(&locale), &ctx).map(drop),
                    (_, "calendar_event" | "callback" | "follow_up") => {
                        templates.render_plain(name, Some(&locale), &ctx).map(drop)
                    }
                    (_, "confirm") => templates.render_notice(name, Some(&locale), &ctx).map(drop),
                    _ => templates
                        .render_staff_email(name, Some(&locale), &ctx)
                        .map(drop),
                };
                if let Err(e) = result {
                    problems.push(format!("{name} ({locale}): {e:#}"));
                    break;
                }
            }
        }
    }
    problems
}

/// The staff-facing templates and their kind of file.
const STAFF_TEMPLATES: [(&str, &str); 15] = [
    ("task_page", "html"),
    ("approval_page", "html"),
    ("unsubscribe_page", "html"),
    ("signup_page", "html"),
    ("confirm_page", "html"),
    ("confirm", "md"),
    ("error_page", "html"),
    ("digest", "md"),
    ("approval_request", "md"),
    ("escalation", "md"),
    ("voucher_pool_empty", "md"),
    ("calendar_event", "md"),
    ("callback", "md"),
    ("follow_up", "md"),
    ("call_list_summary", "md"),
];
