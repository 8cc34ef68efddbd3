//! One row of a customer list → the values it sets, each checked.
//!
//! Only the columns the file has change a customer; an empty cell clears
//! the field (but never consent: an empty consent cell changes nothing).

use std::borrow::Cow;
use std::collections::HashSet;

use chrono::NaiveDate;
use chrono_tz::Tz;

use super::columns::{Column, Field, Mapping, Target};
use super::limits::normalise_line_breaks;
use super::table::Cell;
use crate::domain::{Email, Salutation, parse_date};

/// Longer cells are almost certainly a broken file (a missing quote swallowing lines).
const MAX_CELL_CHARS: usize = 4000;

/// The values of one row: only the columns the file has.
#[derive(Debug, Default)]
pub struct Row {
    /// The row number a spreadsheet shows.
    pub line: u64,
    pub external_id: Option<String>,
    pub email: Option<Option<Email>>,
    /// Plain text fields (name, phone, locale, …) and their new values.
    pub text: Vec<(Field, Option<String>)>,
    pub salutation: Option<Option<Salutation>>,
    pub consent: Option<Consent>,
    pub phone_consent: Option<Consent>,
    pub do_not_call: Option<bool>,
    pub is_business: Option<bool>,
    pub tags: Option<Vec<String>>,
    pub dates: Vec<(Field, Option<NaiveDate>)>,
    pub points: Option<i64>,
    pub attributes: Vec<(String, String)>,
}

impl Row {
    pub fn text(&self, field: Field) -> Option<&str> {
        self.text
            .iter()
            .find(|(f, _)| *f == field)
            .and_then(|(_, v)| v.as_deref())
    }

    /// What identifies the row's customer, for messages.
    pub fn key(&self) -> String {
        match (&self.external_id, &self.email) {
            (Some(id), _) => format!("external_id \"{id}\""),
            (None, Some(Some(email))) => format!("email {email}"),
            _ => unreachable!("parse guarantees a key"),
        }
    }
}

/// A consent cell: yes, no, or the day consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Yes,
    No,
    Since(NaiveDate),
}

/// Parses the cells of row `line`; a problem is the reason the row is rejected.
pub fn parse(
    mapping: &Mapping,
    cells: Vec<Cell>,
    line: u64,
    staff: &HashSet<String>,
) -> Result<Row, String> {
    if cells.len() != mapping.columns.len() {
        return Err(format!(
            "has {} fields but the header has {}; check for a missing or extra delimiter",
            cells.len(),
            mapping.columns.len()
        ));
    }
    let mut row = Row {
        line,
        ..Row::default()
    };
    // Every cell's problem at once: one pass over the file fixes the row.
    // One line each (a problem's own text may hold "; ").
    let problems: Vec<String> = mapping
        .columns
        .iter()
        .zip(cells)
        .filter_map(|(column, cell)| set(&mut row, column, cell, staff).err())
        .collect();
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    if row.external_id.is_none() && !matches!(row.email, Some(Some(_))) {
        return Err(
            "has neither external_id nor email; one of them identifies the customer".into(),
        );
    }
    derive_name(mapping, &mut row);
    Ok(row)
}

/// Puts one cell's value into `row`; a problem is a reason to reject it.
fn set(row: &mut Row, column: &Column, cell: Cell, staff: &HashSet<String>) -> Result<(), String> {
    check(column, &cell)?;
    let date_cell = match cell {
        Cell::Date(d) => Some(d),
        _ => None,
    };
    let text = cell.into_text();
    // Attributes and the note may keep line breaks (as `\n`); every
    // other field is one line.
    let one_line = !matches!(
        column.target,
        Target::Attribute(_) | Target::Field(Field::Note)
    );
    let text = match normalise_line_breaks(&text, one_line) {
        Cow::Borrowed(_) => text,
        Cow::Owned(normalised) => normalised,
    };
    let text = match text.trim() {
        trimmed if trimmed.len() == text.len() => text,
        trimmed => trimmed.to_string(),
    };
    let field = match &column.target {
        Target::Ignore => return Ok(()),
        Target::Attribute(name) => {
            row.attributes.push((name.clone(), text));
            return Ok(());
        }
        Target::Field(f) => *f,
    };
    let opt = (!text.is_empty()).then_some(text);
    let value = opt.as_deref().unwrap_or_default();
    let label = column.label.as_str();
    match field {
        Field::ExternalId => row.external_id = opt,
        Field::Email => {
            row.email = Some(
                opt.map(|v| Email::parse(&v).map_err(|e| format!("{label}: invalid email: {e}")))
                    .transpose()?,
            )
        }
        Field::Salutation => row.salutation = Some(Salutation::parse(value)?),
        Field::Locale => {
            let locale = opt.as_deref().map(|v| parse_locale(label, v)).transpose()?;
            row.text.push((field, locale));
        }
        Field::Timezone => {
            if let Some(tz) = &opt
                && tz.parse::<Tz>().is_err()
            {
                return Err(format!(
                    "{label}: unknown time zone \"{tz}\"; use an IANA name such as Europe/Berlin"
                ));
            }
            row.text.push((field, opt));
        }
        Field::Owner => {
            if let Some(owner) = &opt
                && !staff.contains(owner)
            {
                let mut known: Vec<&str> = staff.iter().map(String::as_str).collect();
                known.sort();
                return Err(format!(
                    "unknown owner \"{owner}\"; use a staff id from the config ({})",
                    known.join(", ")
                ));
            }
            row.text.push((field, opt));
        }
        Field::Consent | Field::PhoneConsent => {
            let consent = match date_cell {
                Some(d) => Some(Consent::Since(d)),
                None => opt
                    .as_deref()
                    .map(|v| parse_consent(label, v))
                    .transpose()?,
            };
            match field {
                Field::Consent => row.consent = consent,
                _ => row.phone_consent = consent,
            }
        }
        Field::DoNotCall => {
            row.do_not_call = opt.as_deref().map(|v| parse_bool(label, v)).transpose()?
        }
        Field::IsBusiness => {
            row.is_business = opt.as_deref().map(|v| parse_bool(label, v)).transpose()?
        }
        Field::Tags => {
            row.tags = Some(
                value
                    .split([';', ','])
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(String::from)
                    .collect(),
            )
        }
        Field::CustomerSince | Field::Birthday => {
            let date = match date_cell {
                Some(d) => Some(d),
                None => opt
                    .as_deref()
                    .map(|v| parse_date(v).map_err(|e| format!("{label} {e}")))
                    .transpose()?,
            };
            row.dates.push((field, date));
        }
        Field::Points => {
            row.points = opt
                .map(|v| {
                    v.parse()
                        .map_err(|_| format!("{label} \"{v}\" is not a whole number"))
                })
                .transpose()?
        }
        Field::Name
        | Field::FirstName
        | Field::LastName
        | Field::Company
        | Field::Note
        | Field::Phone
        | Field::Tier
        | Field::ConsentSource => row.text.push((field, opt)),
    }
    Ok(())
}

/// Refuses a cell no person typed on purpose.
fn check(column: &Column, cell: &Cell) -> Result<(), String> {
    let text = match cell {
        Cell::Error(e) => {
            return Err(format!(
                "`{}` (column {}) holds the spreadsheet error {e}; fix the formula or type the value",
                column.header, column.letter
            ));
        }
        Cell::Text(text) => text,
        Cell::Empty | Cell::Date(_) => return Ok(()),
    };
    if text.len() > MAX_CELL_CHARS && text.chars().count() > MAX_CELL_CHARS {
        return Err(format!(
            "`{}` is longer than {MAX_CELL_CHARS} characters; is a quote missing?",
            column.header
        ));
    }
    // Control characters other than tabs and line breaks (ESC, BEL …)
    // would act on the terminal that shows the customer, never on purpose.
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    {
        return Err(format!(
            "`{}` contains the control character U+{:04X}; remove it",
            column.header,
            u32::from(c)
        ));
    }
    if text.contains('\u{FFFD}') {
        return Err(format!(
            "`{}` contains \u{FFFD} where the file's encoding had no character; \
             check the encoding named above and give the right one with --encoding",
            column.header
        ));
    }
    Ok(())
}

/// Without a `name`, the whole name is made from the parts the row has:
/// "Jürgen Müller", "Zweirad Kölsch GmbH", or both as
/// "Zweirad Kölsch GmbH (Jürgen Müller)". A company makes the row a
/// business customer unless the file says otherwise.
fn derive_name(mapping: &Mapping, row: &mut Row) {
    let company = row.text(Field::Company).map(str::to_string);
    if company.is_some() && !mapping.has(Field::IsBusiness) {
        row.is_business = Some(true);
    }
    if row.text(Field::Name).is_some() {
        return;
    }
    let parts: Vec<&str> = [Field::FirstName, Field::LastName]
        .into_iter()
        .filter_map(|f| row.text(f))
        .collect();
    let person = (!parts.is_empty()).then(|| parts.join(" "));
    let derived = match (company, person) {
        (Some(c), Some(p)) => format!("{c} ({p})"),
        (Some(c), None) => c,
        (None, Some(p)) => p,
        (None, None) => return,
    };
    row.text.retain(|(f, _)| *f != Field::Name);
    row.text.push((Field::Name, Some(derived)));
}

pub fn parse_bool(label: &str, v: &str) -> Result<bool, String> {
    match v.to_lowercase().as_str() {
        "yes" | "y" | "ja" | "j" | "true" | "wahr" | "1" | "x" => Ok(true),
        "no" | "n" | "nein" | "false" | "falsch" | "0" => Ok(false),
        _ => Err(format!(
            "{label} \"{v}\" is not yes or no; write ja/nein, yes/no or x for yes"
        )),
    }
}

fn parse_consent(label: &str, v: &str) -> Result<Consent, String> {
    match parse_bool(label, v) {
        Ok(true) => Ok(Consent::Yes),
        Ok(false) => Ok(Consent::No),
        Err(_) => parse_date(v).map(Consent::Since).map_err(|_| {
            format!(
                "{label} \"{v}\" is neither yes, no nor a date; write ja/nein, yes/no, x, or the day consent was given ({})",
                crate::domain::DATE_FORMS
            )
        }),
    }
}

/// A language as lists write it ("de", "DE", "de-DE", "Deutsch", "English")
/// → its two-letter code.
fn parse_locale(label: &str, v: &str) -> Result<String, String> {
    const NAMES: &[(&str, &str)] = &[
        ("deutsch", "de"),
        ("german", "de"),
        ("englisch", "en"),
        ("english", "en"),
        ("französisch", "fr"),
        ("french", "fr"),
        ("français", "fr"),
        ("italienisch", "it"),
        ("italian", "it"),
        ("italiano", "it"),
        ("spanisch", "es"),
        ("spanish", "es"),
        ("español", "es"),
        ("türkisch", "tr"),
        ("turkish", "tr"),
        ("türkçe", "tr"),
        ("polnisch", "pl"),
        ("polish", "pl"),
        ("polski", "pl"),
        ("niederländisch", "nl"),
        ("dutch", "nl"),
        ("nederlands", "nl"),
    ];
    let lower = v.trim().to_lowercase();
    if let Some((_, code)) = NAMES.iter().find(|(name, _)| *name == lower) {
        return Ok(code.to_string());
    }
    let code = lower.split(['-', '_']).next().unwrap_or_default();
    if code.len() == 2 && code.chars().all(|c| c.is_ascii_lowercase()) {
        return Ok(code.to_string());
    }
    Err(format!(
        "{label} \"{v}\" is not a language; write a two-letter code such as de or en, or the language's name (Deutsch, Englisch)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::columns::ColumnRules;

    fn mapping(header: &[&str]) -> Mapping {
        let header: Vec<String> = header.iter().map(|s| s.to_string()).collect();
        Mapping::new(&header, 0, &ColumnRules::default()).unwrap()
    }

    fn cells(values: &[&str]) -> Vec<Cell> {
        values
            .iter()
            .map(|v| {
                if v.is_empty() {
                    Cell::Empty
                } else {
                    Cell::Text(v.to_string())
                }
            })
            .collect()
    }

    #[test]
    fn consent_accepts_words_and_dates() {
        assert_eq!(parse_consent("consent", "ja"), Ok(Consent::Yes));
        assert_eq!(parse_consent("consent", "X"), Ok(Consent::Yes));
        assert_eq!(parse_consent("consent", "FALSCH"), Ok(Consent::No));
        assert!(matches!(
            parse_consent("consent", "2024-03-01"),
            Ok(Consent::Since(_))
        ));
        assert!(matches!(
            parse_consent("consent", "01.03.24"),
            Ok(Consent::Since(_))
        ));
        let err = parse_consent("Newsletter (consent)", "vielleicht").unwrap_err();
        assert!(
            err.starts_with("Newsletter (consent) \"vielleicht\""),
            "{err}"
        );
        assert!(err.contains("YYYY-MM-DD or DD.MM.YYYY"), "{err}");
    }

    #[test]
    fn every_problem_of_a_row_is_named_at_once() {
        let m = mapping(&["E-Mail", "Geburtstag", "Kunde seit", "Punkte"]);
        let err = parse(
            &m,
            cells(&["anna@beispiel", "31/01/1970", "13.13.2020", "12"]),
            5,
            &HashSet::new(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("E-Mail: invalid email: `anna@beispiel`"),
            "{err}"
        );
        assert!(
            err.contains("\nGeburtstag (birthday) \"31/01/1970\" is not a date"),
            "{err}"
        );
        assert!(
            err.contains(
                "\nKunde seit (customer_since) \"13.13.2020\" is not a date: there is no month 13"
            ),
            "{err}"
        );
    }

    #[test]
    fn languages_are_read_as_codes() {
        for (v, code) in [
            ("de", "de"),
            ("DE", "de"),
            ("de-DE", "de"),
            ("Deutsch", "de"),
            ("English", "en"),
            ("en_GB", "en"),
        ] {
            assert_eq!(parse_locale("Sprache", v).as_deref(), Ok(code), "{v}");
        }
        assert!(parse_locale("Sprache", "Klingonisch").is_err());
    }

    #[test]
    fn the_name_is_made_from_its_parts_and_a_company_is_a_business() {
        let m = mapping(&["E-Mail", "Anrede", "Vorname", "Nachname", "Firma"]);
        let row = parse(
            &m,
            cells(&["j@example.de", "Herr", "Jürgen", "Müller", ""]),
            2,
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(row.text(Field::Name), Some("Jürgen Müller"));
        assert_eq!(row.salutation, Some(Some(Salutation::Mr)));
        assert_eq!(row.is_business, None);
        let firm = parse(
            &m,
            cells(&[
                "info@zweirad.example",
                "",
                "Jürgen",
                "Müller",
                "Zweirad Kölsch GmbH",
            ]),
            3,
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(
            firm.text(Field::Name),
            Some("Zweirad Kölsch GmbH (Jürgen Müller)")
        );
        assert_eq!(firm.is_business, Some(true));
        // A name column wins.
        let m = mapping(&["email", "name", "first_name"]);
        let row = parse(
            &m,
            cells(&["a@example.de", "Anna B.", "Anna"]),
            2,
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(row.text(Field::Name), Some("Anna B."));
    }

    #[test]
    fn spreadsheet_cells_keep_their_types() {
        let m = mapping(&["email", "Geburtstag", "Newsletter", "Punkte"]);
        let day = NaiveDate::from_ymd_opt(1980, 12, 24).unwrap();
        let row = parse(
            &m,
            vec![
                Cell::Text("a@example.de".into()),
                Cell::Date(day),
                Cell::Date(day),
                Cell::Text("340".into()),
            ],
            2,
            &HashSet::new(),
        )
        .unwrap();
        assert_eq!(row.dates, [(Field::Birthday, Some(day))]);
        assert_eq!(row.consent, Some(Consent::Since(day)));
        assert_eq!(row.points, Some(340));
        let err = parse(
            &m,
            vec![
                Cell::Text("a@example.de".into()),
                Cell::Error("#N/A".into()),
                Cell::Empty,
                Cell::Empty,
            ],
            7,
            &HashSet::new(),
        )
        .unwrap_err();
        assert!(
            err.contains("`Geburtstag` (column B) holds the spreadsheet error #N/A"),
            "{err}"
        );
    }
}
