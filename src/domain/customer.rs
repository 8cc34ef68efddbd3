//! A customer as stored: built-in fields plus imported extra columns.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

/// JSON text in the database, a list in Rust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Tags(pub Vec<String>);

impl TryFrom<String> for Tags {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Tags)
    }
}

impl Tags {
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a list of strings always serializes")
    }

    /// Adds tags not yet present, keeping order; true if anything changed.
    pub fn add(&mut self, new: &[String]) -> bool {
        let before = self.0.len();
        for tag in new {
            if !self.0.contains(tag) {
                self.0.push(tag.clone());
            }
        }
        self.0.len() != before
    }
}

/// Custom attributes: every CSV column that is not a built-in field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Attributes(pub BTreeMap<String, String>);

impl TryFrom<String> for Attributes {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(Attributes)
    }
}

impl Attributes {
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a string map always serializes")
    }
}

/// How a customer is addressed: the greeting a template gets depends on it.
/// Stored as `ms`, `mr`, `family` or `company`; a customer with none (or who
/// chose "divers") is greeted by name without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Salutation {
    Ms,
    Mr,
    Family,
    Company,
}

impl Salutation {
    /// The forms import files use, German and English: `Ok(None)` for a
    /// salutation that says nothing about how to greet (empty, "divers").
    pub fn parse(raw: &str) -> Result<Option<Self>, String> {
        let key = raw.trim().trim_end_matches('.').to_lowercase();
        Ok(Some(match key.as_str() {
            "frau" | "fr" | "ms" | "mrs" | "miss" | "w" | "weiblich" | "female" => Salutation::Ms,
            "herr" | "hr" | "mr" | "m" | "männlich" | "male" => Salutation::Mr,
            "familie" | "fam" | "family" => Salutation::Family,
            "firma" | "company" => Salutation::Company,
            "" | "divers" | "d" | "mx" | "keine angabe" | "-" | "none" => return Ok(None),
            _ => {
                return Err(format!(
                    "salutation \"{}\" is not one of Frau, Herr, Familie, Firma, Divers \
                     (or Ms, Mr, Family, Company, Mx); a title such as Dr. goes before the last name",
                    raw.trim()
                ));
            }
        }))
    }

    /// The salutation stored as `text` ([`Salutation::as_str`]).
    pub fn from_stored(text: &str) -> Option<Self> {
        [
            Salutation::Ms,
            Salutation::Mr,
            Salutation::Family,
            Salutation::Company,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Salutation::Ms => "ms",
            Salutation::Mr => "mr",
            Salutation::Family => "family",
            Salutation::Company => "company",
        }
    }
}

/// Read from the text column; a value this code never writes is an error.
impl<DB: sqlx::Database> sqlx::Type<DB> for Salutation
where
    str: sqlx::Type<DB>,
{
    fn type_info() -> DB::TypeInfo {
        <str as sqlx::Type<DB>>::type_info()
    }
    fn compatible(ty: &DB::TypeInfo) -> bool {
        <str as sqlx::Type<DB>>::compatible(ty)
    }
}

impl<'r, DB: sqlx::Database> sqlx::Decode<'r, DB> for Salutation
where
    &'r str: sqlx::Decode<'r, DB>,
{
    fn decode(value: DB::ValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as sqlx::Decode<DB>>::decode(value)?;
        Salutation::from_stored(text)
            .ok_or_else(|| format!("unknown salutation {text:?} in the database").into())
    }
}

/// A row of `customers`. A query may select only some columns (see
/// `store::CustomerColumns`); the fields it leaves out keep their defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, sqlx::FromRow)]
#[sqlx(default)]
pub struct Customer {
    pub id: i64,
    pub external_id: Option<String>,
    pub email: Option<String>,
    /// How people address the customer; `name` is the whole name for labels.
    pub name: Option<String>,
    pub salutation: Option<Salutation>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The company a business customer is (or a contact person works for).
    pub company: Option<String>,
    /// A note for staff ("prefers calls in the evening").
    pub note: Option<String>,
    pub phone: Option<String>,
    pub locale: Option<String>,
    pub timezone: Option<String>,
    /// Email (marketing) consent; see `consent_at` and `consent_source` for proof.
    pub consent: bool,
    pub consent_at: Option<DateTime<Utc>>,
    pub consent_source: Option<String>,
    pub phone_consent: bool,
    pub do_not_call: bool,
    pub is_business: bool,
    pub owner: Option<String>,
    #[sqlx(try_from = "String")]
    pub tags: Tags,
    pub customer_since: Option<NaiveDate>,
    pub birthday: Option<NaiveDate>,
    pub points: i64,
    pub tier: Option<String>,
    #[sqlx(try_from = "String")]
    pub attributes: Attributes,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub bad_address_at: Option<DateTime<Utc>>,
    pub last_personal_contact_at: Option<DateTime<Utc>>,
    pub forgotten_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Customer {
    /// Whether marketing email may go to this customer at all, whatever an
    /// audience says; `Err` carries the suppression reason.
    pub fn mailable(&self) -> Result<&str, &'static str> {
        if self.forgotten_at.is_some() {
            return Err("forgotten");
        }
        let email = self.email.as_deref().ok_or("no email address")?;
        if self.unsubscribed_at.is_some() {
            return Err("unsubscribed");
        }
        if !self.consent {
            return Err("no consent");
        }
        if self.bad_address_at.is_some() {
            return Err("address bounced");
        }
        Ok(email)
    }

    /// A label for people: name, else email, else the id.
    pub fn label(&self) -> String {
        self.name
            .clone()
            .or_else(|| self.email.clone())
            .unwrap_or_else(|| format!("customer {}", self.id))
    }
}
