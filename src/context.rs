//! The values templates and audiences see.
//!
//! One customer value serves both: audiences read its fields by bare name
//! (`points >= 100`), templates as `customer.points`. Custom attributes are
//! reachable as `attributes.stadtteil` and, where no built-in field has the
//! same name, directly (`stadtteil == "Ehrenfeld"`).

use std::collections::BTreeMap;

use minijinja::Value;

use crate::config::Business;
use crate::domain::Customer;

/// The customer as of today (wall clock, UTC); for audiences and `check`.
pub fn customer_value(c: &Customer) -> Value {
    customer_value_on(c, chrono::Utc::now().date_naive())
}

/// The customer as of `today`: values that depend on the date
/// (`years_as_customer`) are computed for that day, so a message rendered for
/// a run says what was true on the run's day, not on the machine's clock.
pub fn customer_value_on(c: &Customer, today: chrono::NaiveDate) -> Value {
    let mut map: BTreeMap<String, Value> = BTreeMap::new();
    for (k, v) in &c.attributes.0 {
        map.insert(k.clone(), Value::from(v.as_str()));
    }
    let date = |d: Option<chrono::NaiveDate>| {
        d.map(|d| Value::from(d.to_string()))
            .unwrap_or(Value::from(()))
    };
    let time = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map(|t| Value::from(t.to_rfc3339()))
            .unwrap_or(Value::from(()))
    };
    let years_as_customer = c
        .customer_since
        .and_then(|d| today.years_since(d))
        .map(Value::from)
        .unwrap_or(Value::from(()));
    let builtins: [(&str, Value); 22] = [
        ("years_as_customer", years_as_customer),
        ("id", Value::from(c.id)),
        ("external_id", Value::from(c.external_id.clone())),
        ("email", Value::from(c.email.clone())),
        ("name", Value::from(c.name.clone())),
        ("phone", Value::from(c.phone.clone())),
        ("locale", Value::from(c.locale.clone())),
        ("timezone", Value::from(c.timezone.clone())),
        (
            "consent",
            Value::from(c.consent && c.unsubscribed_at.is_none()),
        ),
        ("consent_source", Value::from(c.consent_source.clone())),
        ("phone_consent", Value::from(c.phone_consent)),
        ("do_not_call", Value::from(c.do_not_call)),
        ("is_business", Value::from(c.is_business)),
        ("owner", Value::from(c.owner.clone())),
        ("tags", Value::from(c.tags.0.clone())),
        ("customer_since", date(c.customer_since)),
        ("birthday", date(c.birthday)),
        ("points", Value::from(c.points)),
        ("tier", Value::from(c.tier.clone())),
        ("last_personal_contact", time(c.last_personal_contact_at)),
        ("unsubscribed", Value::from(c.unsubscribed_at.is_some())),
        (
            "attributes",
            Value::from_iter(
                c.attributes
                    .0
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::from(v.as_str()))),
            ),
        ),
    ];
    for (k, v) in builtins {
        map.insert(k.to_string(), v);
    }
    Value::from(map)
}

pub fn business_value(b: &Business) -> Value {
    minijinja::context! {
        name => &b.name,
        postal_address => &b.postal_address,
        from => &b.from,
        reply_to => &b.reply_to,
        base_url => &b.base_url,
        locale => &b.locale,
        timezone => &b.timezone,
    }
}

/// A fictitious customer for `outreach check` and `preview` without `--customer`.
pub fn sample_customer(locale: &str) -> Customer {
    let now = chrono::Utc::now();
    Customer {
        id: 0,
        external_id: Some("SAMPLE-1".into()),
        email: Some("erika.musterfrau@example.de".into()),
        name: Some(
            if locale == "de" {
                "Erika Musterfrau"
            } else {
                "Jane Doe"
            }
            .into(),
        ),
        phone: Some("+49 221 555 0000".into()),
        locale: Some(locale.into()),
        consent: true,
        consent_at: Some(now),
        tags: crate::domain::Tags(vec!["newsletter".into()]),
        points: 120,
        tier: Some("Silber".into()),
        customer_since: chrono::NaiveDate::from_ymd_opt(2020, 5, 1),
        birthday: chrono::NaiveDate::from_ymd_opt(1970, 1, 31),
        created_at: now,
        updated_at: now,
        ..Customer::default()
    }
}
