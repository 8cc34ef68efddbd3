//! Audiences: boolean expressions over a customer, such as
//! `consent and "newsletter" in tags and points >= 100 and locale == "de"`.
//!
//! Expressions are compiled by minijinja's expression engine (no parser of
//! our own, no SQL in config). Undefined names are errors, not `false`, so a
//! typo in a field name cannot silently empty or fill an audience.

use std::sync::LazyLock;

use chrono::{NaiveDate, Utc};
use minijinja::{Environment, Error, ErrorKind, Expression, UndefinedBehavior, Value};

/// Work one evaluation may do (minijinja's fuel). An ordinary audience
/// needs a few dozen; the limit stops a runaway one (nested `range()`)
/// within a millisecond or so, instead of seconds and gigabytes per customer.
const AUDIENCE_FUEL: u64 = 20_000;

static ENV: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(AUDIENCE_FUEL));
    env.add_function("days_since", days_since);
    env.add_function("today", || Utc::now().date_naive().to_string());
    env
});

/// `days_since(date)`: whole days from a `YYYY-MM-DD…` value to today;
/// `none` (never happened) counts as a very long time.
fn days_since(value: Value) -> Result<i64, Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(i64::from(i32::MAX));
    }
    let text = value.to_string();
    let date =
        NaiveDate::parse_from_str(text.get(..10).unwrap_or(&text), "%Y-%m-%d").map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                format!("days_since: `{text}` is not a date"),
            )
        })?;
    Ok((Utc::now().date_naive() - date).num_days())
}

#[derive(Debug)]
pub struct Audience {
    source: String,
    expr: Expression<'static, 'static>,
}

impl Audience {
    pub fn parse(source: &str) -> Result<Self, String> {
        let expr = ENV
            .compile_expression_owned(source.to_string())
            .map_err(|e| format!("audience `{source}` is not a valid expression: {e}"))?;
        Ok(Audience {
            source: source.to_string(),
            expr,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Names the expression reads (to check them against known fields);
    /// functions (`range`, `days_since` …) are not among them.
    pub fn names(&self) -> std::collections::HashSet<String> {
        let mut names = self.expr.undeclared_variables(false);
        for (global, _) in ENV.globals() {
            names.remove(global);
        }
        names
    }

    /// Evaluates against a customer context; the result must be a boolean-ish value.
    pub fn matches(&self, customer: &Value) -> Result<bool, AudienceError> {
        self.expr
            .eval(customer.clone())
            .map(|v| v.is_true())
            .map_err(|e| match e.kind() {
                ErrorKind::OutOfFuel => AudienceError::Runaway(format!(
                    "audience `{}` takes more than {AUDIENCE_FUEL} steps for one customer \
                     (a range() or loop that runs away); simplify it",
                    self.source
                )),
                _ => AudienceError::Customer(format!("audience `{}`: {e}", self.source)),
            })
    }
}

/// Why an audience could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceError {
    /// This customer's data does not fit the expression (e.g. a value that
    /// is not a date): recorded for the customer, the run goes on.
    Customer(String),
    /// The expression itself is too costly, whoever it meets: the run stops.
    Runaway(String),
}

impl std::error::Error for AudienceError {}

impl std::fmt::Display for AudienceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AudienceError::Customer(text) | AudienceError::Runaway(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use minijinja::context;

    #[test]
    fn expressions_select_by_fields_and_tags() {
        let a = Audience::parse(
            r#"consent and "newsletter" in tags and points >= 100 and locale == "de""#,
        )
        .unwrap();
        let yes =
            context! { consent => true, tags => vec!["newsletter"], points => 120, locale => "de" };
        let no = context! { consent => true, tags => vec!["vip"], points => 120, locale => "de" };
        assert!(a.matches(&yes).unwrap());
        assert!(!a.matches(&no).unwrap());
    }

    #[test]
    fn functions_are_not_names_to_read() {
        let a = Audience::parse("days_since(birthday) > 3 and points in range(10)").unwrap();
        let mut names: Vec<String> = a.names().into_iter().collect();
        names.sort();
        assert_eq!(names, ["birthday", "points"]);
    }

    #[test]
    fn unknown_names_are_errors_not_false() {
        let a = Audience::parse("pointz > 3").unwrap();
        assert!(a.matches(&context! { points => 5 }).is_err());
        assert!(Audience::parse("points >").is_err());
    }

    #[test]
    fn a_runaway_expression_runs_out_of_fuel_quickly() {
        let a = Audience::parse(
            "range(100000) | map('string') | join | length > range(100000) | map('string') | join | length",
        )
        .unwrap();
        match a.matches(&context! { points => 1 }) {
            Err(AudienceError::Runaway(text)) => assert!(text.contains("simplify"), "{text}"),
            other => panic!("expected a runaway error, got {other:?}"),
        }
    }

    #[test]
    fn days_since_treats_never_as_long_ago() {
        let a = Audience::parse("days_since(last_personal_contact) > 30").unwrap();
        assert!(
            a.matches(&context! { last_personal_contact => Value::from(()) })
                .unwrap()
        );
        let recent = Utc::now().date_naive().to_string();
        assert!(
            !a.matches(&context! { last_personal_contact => recent })
                .unwrap()
        );
    }
}
