//! The values templates and audiences see.
//!
//! One customer value serves both: audiences read its fields by bare name
//! (`points >= 100`), templates as `customer.points`. Custom attributes are
//! reachable as `attributes.stadtteil` and, where no built-in field has the
//! same name, directly (`stadtteil == "Ehrenfeld"`).

use std::sync::Arc;

use minijinja::Value;
use minijinja::value::{Enumerator, Object};

use crate::config::Business;
use crate::domain::Customer;

/// The customer as of today (wall clock, UTC); for audiences and `check`.
pub fn customer_value(c: &Customer) -> Value {
    customer_value_on(c, chrono::Utc::now().date_naive())
}

/// The customer as of `today`: values that depend on the date
/// (`years_as_customer`) are computed for that day, so a message rendered for
/// a run says what was true on the run's day, not on the machine's clock.
///
/// A lazy object: a field is turned into a template value only when an
/// audience or template reads it. Planning evaluates an audience for every
/// customer, usually reading two or three fields of twenty.
pub fn customer_value_on(c: &Customer, today: chrono::NaiveDate) -> Value {
    shared_customer_value_on(Arc::new(c.clone()), today)
}

/// As [`customer_value_on`], for a customer the caller keeps using without
/// a copy (planning, once per customer of a run).
pub fn shared_customer_value_on(customer: Arc<Customer>, today: chrono::NaiveDate) -> Value {
    Value::from_object(CustomerView { customer, today })
}

/// Built-in names, in the order `enumerate` lists them (before attributes).
const FIELDS: [&str; 27] = [
    "id",
    "external_id",
    "email",
    "name",
    "salutation",
    "first_name",
    "last_name",
    "company",
    "note",
    "phone",
    "locale",
    "timezone",
    "consent",
    "consent_source",
    "phone_consent",
    "do_not_call",
    "is_business",
    "owner",
    "tags",
    "customer_since",
    "birthday",
    "points",
    "tier",
    "last_personal_contact",
    "unsubscribed",
    "years_as_customer",
    "attributes",
];

/// The `customers` columns needed to evaluate an expression reading `names`
/// (built-in fields or custom attributes) on a customer value.
pub fn columns_read_by<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let mut columns = Vec::new();
    for name in names {
        columns.extend_from_slice(match name {
            "consent" => &["consent", "unsubscribed_at"][..],
            "last_personal_contact" => &["last_personal_contact_at"],
            "unsubscribed" => &["unsubscribed_at"],
            "years_as_customer" => &["customer_since"],
            // Every other built-in field is the column of the same name.
            field => match FIELDS.iter().find(|f| **f == field) {
                Some(column) => std::slice::from_ref(column),
                None => &["attributes"],
            },
        });
    }
    columns
}

#[derive(Debug)]
struct CustomerView {
    customer: Arc<Customer>,
    today: chrono::NaiveDate,
}

impl Object for CustomerView {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let c = &self.customer;
        let text = |v: &Option<String>| Value::from(v.clone());
        let date = |d: Option<chrono::NaiveDate>| {
            d.map(|d| Value::from(d.to_string()))
                .unwrap_or(Value::from(()))
        };
        Some(match key.as_str()? {
            "id" => Value::from(c.id),
            "external_id" => text(&c.external_id),
            "email" => text(&c.email),
            "name" => text(&c.name),
            "salutation" => Value::from(c.salutation.map(|s| s.as_str())),
            "first_name" => text(&c.first_name),
            "last_name" => text(&c.last_name),
            "company" => text(&c.company),
            "note" => text(&c.note),
            "phone" => text(&c.phone),
            "locale" => text(&c.locale),
            "timezone" => text(&c.timezone),
            "consent" => Value::from(c.consent && c.unsubscribed_at.is_none()),
            "consent_source" => text(&c.consent_source),
            "phone_consent" => Value::from(c.phone_consent),
            "do_not_call" => Value::from(c.do_not_call),
            "is_business" => Value::from(c.is_business),
            "owner" => text(&c.owner),
            "tags" => Value::from(c.tags.0.clone()),
            "customer_since" => date(c.customer_since),
            "birthday" => date(c.birthday),
            "points" => Value::from(c.points),
            "tier" => text(&c.tier),
            "last_personal_contact" => c
                .last_personal_contact_at
                .map(|t| Value::from(t.to_rfc3339()))
                .unwrap_or(Value::from(())),
            "unsubscribed" => Value::from(c.unsubscribed_at.is_some()),
            "years_as_customer" => c
                .customer_since
                .and_then(|d| self.today.years_since(d))
                .map(Value::from)
                .unwrap_or(Value::from(())),
            "attributes" => Value::from_object(c.attributes.0.clone()),
            other => Value::from(c.attributes.0.get(other)?.as_str()),
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let mut keys: Vec<Value> = FIELDS.iter().map(|f| Value::from(*f)).collect();
        keys.extend(
            self.customer
                .attributes
                .0
                .keys()
                .filter(|k| !FIELDS.contains(&k.as_str()))
                .map(|k| Value::from(k.as_str())),
        );
        Enumerator::Values(keys)
    }
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
    let (first, last) = match locale {
        "de" => ("Erika", "Musterfrau"),
        _ => ("Jane", "Doe"),
    };
    Customer {
        id: 0,
        external_id: Some("SAMPLE-1".into()),
        email: Some("erika.musterfrau@example.de".into()),
        name: Some(format!("{first} {last}")),
        salutation: Some(crate::domain::Salutation::Ms),
        first_name: Some(first.into()),
        last_name: Some(last.into()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_read_as_a_map_by_dot_and_by_bare_name() {
        let mut c = Customer::default();
        c.attributes
            .0
            .insert("naechste_stufe".into(), "Gold".into());
        c.attributes
            .0
            .insert("stadtteil".into(), "Ehrenfeld".into());
        let day = chrono::NaiveDate::from_ymd_opt(2026, 6, 1).unwrap();
        let value = customer_value_on(&c, day);
        for source in [
            "attributes.stadtteil == \"Ehrenfeld\"",
            "stadtteil == \"Ehrenfeld\"",
            "attributes.naechste_stufe is defined and attributes.fehlt is not defined",
            "\"stadtteil\" in attributes",
        ] {
            let audience = crate::audience::Audience::parse(source).unwrap();
            assert_eq!(audience.matches(&value), Ok(true), "{source}");
        }
    }
}
