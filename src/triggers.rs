//! Date and attribute triggers for loyalty messages.
//!
//! - `trigger = { anniversary_of = "birthday", at = "09:00" }`: a daily run
//!   at `at` (business time zone) whose audience is narrowed to customers
//!   whose date field has its anniversary that day (`birthday`,
//!   `customer_since` or any imported date attribute; 29 February is
//!   celebrated on 28 February in other years; the first year counts, the
//!   day itself does not).
//! - `trigger = { attribute_changed = "tier", to = "Gold" }`: when an import
//!   changes the watched value (to `to`, if given), a run is made for exactly
//!   those customers.

use anyhow::Result;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use tracing::debug;

use crate::app::App;
use crate::control::rule_held;
use crate::domain::{Customer, RuleKind, RunState};
use crate::import::AttributeChange;
use crate::store::NewRun;

/// Whether `day` is an anniversary of the customer's `field`.
pub fn is_anniversary(customer: &Customer, field: &str, day: NaiveDate) -> bool {
    let date = match field {
        "birthday" => customer.birthday,
        "customer_since" => customer.customer_since,
        other => customer.attributes.0.get(other).and_then(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .or_else(|_| NaiveDate::parse_from_str(v, "%d.%m.%Y"))
                .ok()
        }),
    };
    let Some(date) = date else { return false };
    if date.year() >= day.year() {
        return false;
    }
    let leap_day_in_common_year = date.month() == 2
        && date.day() == 29
        && day.month() == 2
        && day.day() == 28
        && NaiveDate::from_ymd_opt(day.year(), 2, 29).is_none();
    (date.month() == day.month() && date.day() == day.day()) || leap_day_in_common_year
}

/// Creates one run per campaign watching an attribute that the import changed.
pub async fn on_import(
    app: &App,
    changes: &[AttributeChange],
    now: DateTime<Utc>,
) -> Result<Vec<(String, i64, usize)>> {
    let mut created = Vec::new();
    for campaign in &app.rules().campaigns {
        let Some(trigger) = &campaign.trigger else {
            continue;
        };
        let Some(field) = &trigger.attribute_changed else {
            continue;
        };
        let targets: Vec<(i64, String)> = changes
            .iter()
            .filter(|c| &c.field == field && (trigger.to.is_none() || c.new == trigger.to))
            .map(|c| {
                (
                    c.customer_id,
                    format!(
                        "{field}: {} → {}",
                        c.old.as_deref().unwrap_or("-"),
                        c.new.as_deref().unwrap_or("-")
                    ),
                )
            })
            .collect();
        if targets.is_empty() {
            continue;
        }
        // A paused campaign's run is recorded as skipped, with the reason.
        let held = rule_held(app, &campaign.id, now).await?;
        let run = NewRun {
            rule_id: &campaign.id,
            rule_kind: RuleKind::Campaign,
            occurrence: now,
            trigger: "attribute_change",
            state: if held.is_some() {
                RunState::Skipped
            } else {
                RunState::Planning
            },
            detail: held.as_deref().unwrap_or(""),
        };
        if let Some(id) = app.store.create_run(&run, now).await?
            && held.is_none()
        {
            app.store.add_run_targets(id, &targets).await?;
            // The import prints it: at info it would say it twice.
            debug!(campaign = %campaign.id, run = id, customers = targets.len(), "attribute change triggered a run");
            created.push((campaign.id.clone(), id, targets.len()));
        }
    }
    Ok(created)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_birthday(y: i32, m: u32, d: u32) -> Customer {
        Customer {
            birthday: NaiveDate::from_ymd_opt(y, m, d),
            ..Customer::default()
        }
    }

    #[test]
    fn anniversaries_fall_on_the_same_day_and_leap_days_on_the_28th() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        assert!(is_anniversary(
            &with_birthday(1961, 11, 23),
            "birthday",
            day(2026, 11, 23)
        ));
        assert!(!is_anniversary(
            &with_birthday(1961, 11, 23),
            "birthday",
            day(2026, 11, 24)
        ));
        assert!(is_anniversary(
            &with_birthday(1980, 2, 29),
            "birthday",
            day(2026, 2, 28)
        ));
        assert!(!is_anniversary(
            &with_birthday(1980, 2, 29),
            "birthday",
            day(2028, 2, 28)
        ));
        assert!(is_anniversary(
            &with_birthday(1980, 2, 29),
            "birthday",
            day(2028, 2, 29)
        ));
        assert!(
            !is_anniversary(&with_birthday(2026, 11, 23), "birthday", day(2026, 11, 23)),
            "not on the day itself"
        );
        assert!(!is_anniversary(
            &Customer::default(),
            "birthday",
            day(2026, 11, 23)
        ));
    }
}
