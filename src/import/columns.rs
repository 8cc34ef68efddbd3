//! Which column of a customer list fills which field.
//!
//! A header is matched by its letters and digits only, case-insensitively
//! ("E-Mail-Adresse", "e-mail adresse" and "EMailAdresse" are one name):
//! first against `[import.columns]` in the config, then against the German
//! and English names shops use, then the field names themselves. Any other
//! column is kept as a custom attribute under its header, lower-cased.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

/// A built-in customer field an import can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    ExternalId,
    Email,
    Name,
    Salutation,
    FirstName,
    LastName,
    Company,
    Note,
    Phone,
    Locale,
    Timezone,
    Consent,
    ConsentSource,
    PhoneConsent,
    DoNotCall,
    IsBusiness,
    Owner,
    Tags,
    CustomerSince,
    Birthday,
    Points,
    Tier,
}

impl Field {
    const ALL: [Field; 22] = [
        Field::ExternalId,
        Field::Email,
        Field::Name,
        Field::Salutation,
        Field::FirstName,
        Field::LastName,
        Field::Company,
        Field::Note,
        Field::Phone,
        Field::Locale,
        Field::Timezone,
        Field::Consent,
        Field::ConsentSource,
        Field::PhoneConsent,
        Field::DoNotCall,
        Field::IsBusiness,
        Field::Owner,
        Field::Tags,
        Field::CustomerSince,
        Field::Birthday,
        Field::Points,
        Field::Tier,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::ExternalId => "external_id",
            Field::Email => "email",
            Field::Name => "name",
            Field::Salutation => "salutation",
            Field::FirstName => "first_name",
            Field::LastName => "last_name",
            Field::Company => "company",
            Field::Note => "note",
            Field::Phone => "phone",
            Field::Locale => "locale",
            Field::Timezone => "timezone",
            Field::Consent => "consent",
            Field::ConsentSource => "consent_source",
            Field::PhoneConsent => "phone_consent",
            Field::DoNotCall => "do_not_call",
            Field::IsBusiness => "is_business",
            Field::Owner => "owner",
            Field::Tags => "tags",
            Field::CustomerSince => "customer_since",
            Field::Birthday => "birthday",
            Field::Points => "points",
            Field::Tier => "tier",
        }
    }

    fn from_name(name: &str) -> Option<Field> {
        Field::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The usual German and English headers, written as [`normalize`] leaves
/// them. The field names themselves ("external_id") match too.
const ALIASES: &[(&str, Field)] = &[
    ("kundennummer", Field::ExternalId),
    ("kundennr", Field::ExternalId),
    ("kdnr", Field::ExternalId),
    ("customernumber", Field::ExternalId),
    ("customerno", Field::ExternalId),
    ("customerid", Field::ExternalId),
    ("emailadresse", Field::Email),
    ("mail", Field::Email),
    ("mailadresse", Field::Email),
    ("emailaddress", Field::Email),
    ("vollername", Field::Name),
    ("fullname", Field::Name),
    ("anrede", Field::Salutation),
    ("vorname", Field::FirstName),
    ("firstname", Field::FirstName),
    ("givenname", Field::FirstName),
    ("nachname", Field::LastName),
    ("familienname", Field::LastName),
    ("lastname", Field::LastName),
    ("surname", Field::LastName),
    ("familyname", Field::LastName),
    ("firma", Field::Company),
    ("firmenname", Field::Company),
    ("unternehmen", Field::Company),
    ("notiz", Field::Note),
    ("notizen", Field::Note),
    ("bemerkung", Field::Note),
    ("bemerkungen", Field::Note),
    ("anmerkung", Field::Note),
    ("anmerkungen", Field::Note),
    ("kommentar", Field::Note),
    ("notes", Field::Note),
    ("comment", Field::Note),
    ("comments", Field::Note),
    ("telefon", Field::Phone),
    ("tel", Field::Phone),
    ("telefonnummer", Field::Phone),
    ("mobil", Field::Phone),
    ("mobiltelefon", Field::Phone),
    ("handy", Field::Phone),
    ("handynummer", Field::Phone),
    ("phonenumber", Field::Phone),
    ("mobile", Field::Phone),
    ("telephone", Field::Phone),
    ("sprache", Field::Locale),
    ("language", Field::Locale),
    ("zeitzone", Field::Timezone),
    ("newsletter", Field::Consent),
    ("einwilligung", Field::Consent),
    ("emaileinwilligung", Field::Consent),
    ("einwilligungsquelle", Field::ConsentSource),
    ("quelle", Field::ConsentSource),
    ("telefoneinwilligung", Field::PhoneConsent),
    ("anrufeinwilligung", Field::PhoneConsent),
    ("nichtanrufen", Field::DoNotCall),
    ("keineanrufe", Field::DoNotCall),
    ("geschäftskunde", Field::IsBusiness),
    ("firmenkunde", Field::IsBusiness),
    ("betreuer", Field::Owner),
    ("betreuerin", Field::Owner),
    ("schlagworte", Field::Tags),
    ("kundeseit", Field::CustomerSince),
    ("geburtstag", Field::Birthday),
    ("geburtsdatum", Field::Birthday),
    ("dateofbirth", Field::Birthday),
    ("punkte", Field::Points),
    ("stufe", Field::Tier),
];

/// A header reduced to what identifies it: lower-case letters and digits.
pub fn normalize(header: &str) -> String {
    header
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

/// Where the values of a column go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Field(Field),
    Attribute(String),
    Ignore,
}

impl Target {
    /// A value of `[import.columns]`: a field name, `attributes.NAME` or `ignore`.
    fn parse(raw: &str) -> Result<Target, String> {
        let raw = raw.trim();
        if raw == "ignore" {
            return Ok(Target::Ignore);
        }
        if let Some(name) = raw.strip_prefix("attributes.") {
            return match name.trim() {
                "" => Err("`attributes.` needs a name, e.g. \"attributes.stadtteil\"".into()),
                name => Ok(Target::Attribute(name.to_lowercase())),
            };
        }
        Field::from_name(raw).map(Target::Field).ok_or_else(|| {
            let names: Vec<&str> = Field::ALL.iter().map(|f| f.name()).collect();
            format!(
                "\"{raw}\" is not a customer field; use one of {}, \"attributes.NAME\" for a custom attribute, or \"ignore\"",
                names.join(", ")
            )
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Target::Field(f) => f.name().to_string(),
            Target::Attribute(name) => format!("custom attribute \"{name}\""),
            Target::Ignore => "(ignored)".to_string(),
        }
    }
}

/// `[import.columns]`, parsed when the config is loaded.
#[derive(Debug, Clone, Default)]
pub struct ColumnRules(HashMap<String, Target>);

impl ColumnRules {
    /// The rules, or each entry's problem as (header as written, message).
    pub fn parse(columns: &BTreeMap<String, String>) -> Result<Self, Vec<(String, String)>> {
        let mut rules = HashMap::new();
        let mut first_key: HashMap<String, &str> = HashMap::new();
        let mut problems = Vec::new();
        for (header, target) in columns {
            let key = normalize(header);
            if key.is_empty() {
                problems.push((
                    header.clone(),
                    "a column name needs at least one letter or digit".to_string(),
                ));
                continue;
            }
            if let Some(first) = first_key.insert(key.clone(), header) {
                problems.push((
                    header.clone(),
                    format!(
                        "names the same column as \"{first}\" (case, spaces and punctuation do not count); keep one"
                    ),
                ));
                continue;
            }
            match Target::parse(target) {
                Ok(target) => {
                    rules.insert(key, target);
                }
                Err(message) => problems.push((header.clone(), message)),
            }
        }
        if problems.is_empty() {
            Ok(ColumnRules(rules))
        } else {
            Err(problems)
        }
    }

    fn target(&self, header: &str) -> Target {
        let key = normalize(header);
        if let Some(target) = self.0.get(&key) {
            return target.clone();
        }
        known_names()
            .find(|(name, _)| *name == key)
            .map(|(_, field)| Target::Field(field))
            .unwrap_or_else(|| Target::Attribute(header.trim().to_lowercase()))
    }
}

/// Every name a header can have for a field, as [`normalize`] leaves it:
/// the usual headers first, then the field names themselves.
fn known_names() -> impl Iterator<Item = (Cow<'static, str>, Field)> {
    ALIASES
        .iter()
        .map(|(alias, field)| (Cow::Borrowed(*alias), *field))
        .chain(
            Field::ALL
                .into_iter()
                .map(|f| (Cow::Owned(normalize(f.name())), f)),
        )
}

/// One column of a file: its header, where it is, where its values go.
#[derive(Debug, Clone)]
pub struct Column {
    pub header: String,
    /// The column's letter as spreadsheet programs show it ("B").
    pub letter: String,
    pub target: Target,
    /// How messages name the column: its header, and the field if that
    /// reads differently ("Geburtstag (birthday)").
    pub label: String,
}

impl Column {
    fn new(header: &str, letter: String, target: Target) -> Column {
        let header = header.trim().to_string();
        let label = match &target {
            Target::Field(f) if normalize(&header) != normalize(f.name()) => {
                format!("{header} ({})", f.name())
            }
            _ => header.clone(),
        };
        Column {
            header,
            letter,
            target,
            label,
        }
    }
}

/// The columns of one file, each going to a different place, with a key.
#[derive(Debug, Clone)]
pub struct Mapping {
    pub columns: Vec<Column>,
    /// Columns kept as custom attributes whose header is one letter off a
    /// field the file has no column for: likely typos, said in the
    /// import's report.
    pub notes: Vec<String>,
}

/// The field a header is a likely misspelling of: one letter off a name
/// of it (a letter missing, added or wrong, or two swapped). Headers of
/// fewer than five letters are left alone: among short words one letter
/// makes another word ("Tage", "Bier"), not a typo.
fn misspelt_field(header: &str) -> Option<Field> {
    let key = normalize(header);
    if key.chars().count() < 5 {
        return None;
    }
    known_names()
        .find(|(name, _)| strsim::osa_distance(&key, name) == 1)
        .map(|(_, field)| field)
}

/// "A", "B", … "Z", "AA" for the zero-based column `index`.
pub fn column_letter(index: usize) -> String {
    let mut n = index + 1;
    let mut letters = Vec::new();
    while n > 0 {
        let rem = (n - 1) % 26;
        letters.push(b'A' + rem as u8);
        n = (n - 1) / 26;
    }
    letters.reverse();
    String::from_utf8(letters).expect("ASCII letters")
}

impl Mapping {
    /// Maps a header row; `first_column` is the zero-based index of its
    /// first cell (a sheet need not start in column A). Fails naming the
    /// columns when one has no name, two go to the same place, or nothing
    /// identifies a customer.
    pub fn new(
        header: &[String],
        first_column: usize,
        rules: &ColumnRules,
    ) -> Result<Mapping, String> {
        let columns: Vec<Column> = header
            .iter()
            .enumerate()
            .map(|(i, h)| Column::new(h, column_letter(first_column + i), rules.target(h)))
            .collect();
        if let Some(unnamed) = columns.iter().find(|c| c.header.is_empty()) {
            return Err(format!(
                "column {} has no name in the header row; name it or delete the column",
                unnamed.letter
            ));
        }
        let mut by_target: BTreeMap<String, Vec<&Column>> = BTreeMap::new();
        for c in columns.iter().filter(|c| c.target != Target::Ignore) {
            by_target.entry(c.target.describe()).or_default().push(c);
        }
        if let Some((target, same)) = by_target.iter().find(|(_, cs)| cs.len() > 1) {
            let named: Vec<String> = same
                .iter()
                .map(|c| format!("\"{}\" ({})", c.header, c.letter))
                .collect();
            return Err(format!(
                "columns {} are all read as {target}; delete or rename all but one, or map the others in [import.columns] of the config (e.g. \"{}\" = \"ignore\" or = \"attributes.{}\")",
                named.join(" and "),
                same[1].header,
                normalize(&same[1].header)
            ));
        }
        let has = |f: Field| columns.iter().any(|c| c.target == Target::Field(f));
        // Only headers that fell through to an attribute: a rule in the
        // config that makes one an attribute is the admin's word.
        // (column, its attribute's name, the field it may be meant for)
        let misspelt: Vec<(&Column, &str, Field)> = columns
            .iter()
            .filter(|c| !rules.0.contains_key(&normalize(&c.header)))
            .filter_map(|c| match &c.target {
                Target::Attribute(name) => Some((c, name.as_str(), misspelt_field(&c.header)?)),
                _ => None,
            })
            .filter(|(_, _, field)| !has(*field))
            .collect();
        // Without its email column a file still imports, and every consent
        // in it would be to email nobody can send: refused, not noted.
        if let Some((column, name, _)) = misspelt.iter().find(|(_, _, f)| *f == Field::Email) {
            return Err(format!(
                "column {} \"{}\" looks like the email column but is not read as one (it would be kept as a {}, and nobody in the file would get email); \
                 correct the header (e.g. \"E-Mail\"), or say what it is in [import.columns] of the config: \"{}\" = \"email\", or = \"attributes.{name}\" to keep it as it is",
                column.letter,
                column.header,
                column.target.describe(),
                column.header,
            ));
        }
        let notes = misspelt
            .iter()
            .map(|(column, _, field)| {
                format!(
                    "column {} \"{}\" is kept as a custom attribute; if it holds {}, correct the header, or map it in [import.columns] of the config: \"{}\" = \"{}\"",
                    column.letter,
                    column.header,
                    field.name(),
                    column.header,
                    field.name()
                )
            })
            .collect();
        if !has(Field::Email) && !has(Field::ExternalId) {
            let found: Vec<String> = columns
                .iter()
                .map(|c| format!("\"{}\"", c.header))
                .collect();
            return Err(format!(
                "no column identifies the customers: none of {} is read as email or external_id; \
                 the first row must be the header, with a column such as \"E-Mail\" or \"Kundennummer\" \
                 (or map yours in [import.columns] of the config, e.g. \"Mail privat\" = \"email\")",
                found.join(", ")
            ));
        }
        Ok(Mapping { columns, notes })
    }

    /// The columns kept as custom attributes, by header.
    pub fn attribute_columns(&self) -> Vec<&Column> {
        self.columns
            .iter()
            .filter(|c| matches!(c.target, Target::Attribute(_)))
            .collect()
    }

    pub fn has(&self, field: Field) -> bool {
        self.columns
            .iter()
            .any(|c| c.target == Target::Field(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn german_excel_headers_map_to_fields() {
        let mapping = Mapping::new(
            &header(&[
                "Vorname",
                "Nachname",
                "E-Mail",
                "Telefon",
                "Geburtstag",
                "Kunde seit",
                "Newsletter",
                "Anrede",
            ]),
            0,
            &ColumnRules::default(),
        )
        .unwrap();
        let targets: Vec<String> = mapping
            .columns
            .iter()
            .map(|c| c.target.describe())
            .collect();
        assert_eq!(
            targets,
            [
                "first_name",
                "last_name",
                "email",
                "phone",
                "birthday",
                "customer_since",
                "consent",
                "salutation"
            ]
        );
        for alias in [
            "E-Mail-Adresse",
            "e-mail adresse",
            "EMAIL",
            "Tel.",
            "Mobil",
            "Kd.-Nr.",
        ] {
            assert_ne!(
                ColumnRules::default().target(alias),
                Target::Attribute(alias.to_lowercase()),
                "{alias}"
            );
        }
        assert_eq!(
            ColumnRules::default().target("Stadtteil"),
            Target::Attribute("stadtteil".into())
        );
        assert_eq!(
            ColumnRules::default().target("phone_consent"),
            Target::Field(Field::PhoneConsent)
        );
    }

    #[test]
    fn config_rules_win_and_are_checked() {
        let mut map = BTreeMap::new();
        map.insert("Treuepunkte".to_string(), "points".to_string());
        map.insert("Viertel".to_string(), "attributes.stadtteil".to_string());
        map.insert("Telefon".to_string(), "ignore".to_string());
        let rules = ColumnRules::parse(&map).unwrap();
        assert_eq!(rules.target("TREUEPUNKTE"), Target::Field(Field::Points));
        assert_eq!(
            rules.target("Viertel"),
            Target::Attribute("stadtteil".into())
        );
        assert_eq!(rules.target("Telefon"), Target::Ignore);

        let mut bad = BTreeMap::new();
        bad.insert("Punkte".to_string(), "pionts".to_string());
        bad.insert("E-Mail".to_string(), "email".to_string());
        bad.insert("EMail".to_string(), "email".to_string());
        let problems = ColumnRules::parse(&bad).unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|(k, m)| k == "Punkte" && m.contains("\"pionts\" is not a customer field")),
            "{problems:?}"
        );
        assert!(
            problems
                .iter()
                .any(|(k, m)| k == "EMail" && m.contains("same column as \"E-Mail\"")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_field_read_twice_or_no_key_is_an_error_naming_the_columns() {
        let rules = ColumnRules::default();
        let err = Mapping::new(&header(&["E-Mail", "Name", "Email"]), 0, &rules).unwrap_err();
        assert!(
            err.contains("columns \"E-Mail\" (A) and \"Email\" (C) are all read as email"),
            "{err}"
        );
        let err = Mapping::new(&header(&["Vorname", "Nachname"]), 2, &rules).unwrap_err();
        assert!(
            err.contains("none of \"Vorname\", \"Nachname\" is read as email or external_id"),
            "{err}"
        );
        let err = Mapping::new(&header(&["email", ""]), 0, &rules).unwrap_err();
        assert!(err.starts_with("column B has no name"), "{err}");
    }

    #[test]
    fn a_misspelt_header_is_named_and_a_misspelt_email_column_refused() {
        let rules = ColumnRules::default();
        // Short words one letter apart are other words; two letters off is
        // another name ("Telefax" is no misspelt "Telefon").
        let mapping = Mapping::new(
            &header(&[
                "Kundennummer",
                "E-Mail",
                "Geburtstg",
                "Stadtteil",
                "Tage",
                "Telefax",
            ]),
            0,
            &rules,
        )
        .unwrap();
        assert_eq!(
            mapping.notes,
            [
                "column C \"Geburtstg\" is kept as a custom attribute; if it holds birthday, correct the header, or map it in [import.columns] of the config: \"Geburtstg\" = \"birthday\"",
            ]
        );
        // A field the file has a column for is no typo's target.
        let mapping = Mapping::new(&header(&["E-Mail", "Geburtstag", "Geburtstg"]), 0, &rules);
        assert!(mapping.unwrap().notes.is_empty());

        let err =
            Mapping::new(&header(&["Kundennummer", "Name", "E-Mial"]), 0, &rules).unwrap_err();
        assert!(
            err.starts_with(
                "column C \"E-Mial\" looks like the email column but is not read as one"
            ),
            "{err}"
        );
        assert!(err.contains("\"E-Mial\" = \"email\""), "{err}");
        // The admin's word in the config settles it.
        let mut map = BTreeMap::new();
        map.insert("E-Mial".to_string(), "attributes.e-mial".to_string());
        let kept = ColumnRules::parse(&map).unwrap();
        let mapping = Mapping::new(&header(&["Kundennummer", "E-Mial"]), 0, &kept).unwrap();
        assert!(mapping.notes.is_empty());
    }

    #[test]
    fn column_letters_follow_spreadsheets() {
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(25), "Z");
        assert_eq!(column_letter(26), "AA");
        assert_eq!(column_letter(701), "ZZ");
        assert_eq!(column_letter(702), "AAA");
    }
}
