//! `outreach import customers`: CSV rows → validated customer updates.
//!
//! A file is read as UTF-8 (a BOM is fine), with `,` or `;` as delimiter
//! (German spreadsheets write `;`), detected from the header. Each row is
//! parsed on its own: a bad row is reported as `line N: reason` and skipped,
//! good rows are imported. Only the columns present in the file change a
//! customer, so a file with just `email;tier` never clears anyone's consent.
//!
//! Rows are written in chunks, each in one transaction, after one bulk lookup
//! of the existing customers of that chunk: this keeps large imports fast
//! (see `benches/import.sh`) and memory flat.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;

use crate::domain::{Attributes, Customer, Email, Tags};
use crate::store::{CustomerRow, NewEvent, Store};

mod limits;

const CHUNK: usize = 1000;
/// Longer cells are almost certainly a broken file (a missing quote swallowing lines).
const MAX_FIELD_CHARS: usize = 4000;

const KNOWN: [&str; 17] = [
    "external_id",
    "email",
    "name",
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
];

/// What an import needs from the configuration.
pub struct ImportOptions<'a> {
    pub dry_run: bool,
    pub staff_ids: HashSet<String>,
    pub default_consent_source: String,
    /// Called after each chunk with (rows done, rows total).
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    pub imported: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<(u64, String)>,
    /// Lines naming a customer who asked to be forgotten: not imported.
    pub forgotten: Vec<u64>,
    /// Watched values that changed on existing customers (attribute-change triggers).
    #[serde(skip)]
    pub changes: Vec<AttributeChange>,
}

/// `tier`, `points` or a custom attribute changed on an existing customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeChange {
    pub customer_id: i64,
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

/// One parsed data row: only the columns the file has.
#[derive(Debug, Default)]
struct Row {
    line: u64,
    external_id: Option<String>,
    email: Option<Option<Email>>,
    text: HashMap<&'static str, Option<String>>,
    consent: Option<Consent>,
    flags: HashMap<&'static str, bool>,
    tags: Option<Vec<String>>,
    dates: HashMap<&'static str, Option<NaiveDate>>,
    points: Option<i64>,
    attributes: Vec<(String, String)>,
}

#[derive(Debug, Clone, Copy)]
enum Consent {
    Yes,
    No,
    Since(NaiveDate),
}

pub async fn import_customers(
    store: &Store,
    path: &Path,
    mut opts: ImportOptions<'_>,
) -> Result<ImportReport> {
    let cannot_read = || format!("{}: cannot read file", path.display());
    // A first pass checks the encoding, so that a Latin-1 export fails as a
    // whole before anything is written; the second parses. Neither holds
    // the file in memory (a million rows are over 100 MB).
    let (header_line, lines) = check_utf8(path)
        .with_context(cannot_read)?
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let mut file = BufReader::new(File::open(path).with_context(cannot_read)?);
    if file.fill_buf().with_context(cannot_read)?.starts_with(BOM) {
        file.consume(BOM.len());
    }
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(detect_delimiter(&header_line))
        .flexible(true)
        .from_reader(file);
    let header: Vec<String> = reader
        .headers()
        .with_context(|| format!("{}: cannot read the header row", path.display()))?
        .iter()
        .map(|h| h.trim().to_lowercase())
        .collect();
    check_header(&header)
        .map_err(|e| anyhow::anyhow!("{}: line 1 (header): {e}", path.display()))?;

    let mut report = ImportReport::default();
    // Rows are parsed, planned and written a chunk at a time; only the keys
    // seen so far are kept for the whole file (to catch duplicate rows).
    let mut seen_keys: HashMap<String, u64> = HashMap::new();
    let total = lines.saturating_sub(1);
    let now = Utc::now();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut done = 0;
    let mut records = reader.records();
    loop {
        let record = records.next();
        let at_end = record.is_none();
        if let Some(record) = record {
            done += 1;
            match record {
                Err(e) => {
                    let line = e.position().map(|p| p.line()).unwrap_or(0);
                    report.rejected.push((line, format!("unreadable CSV: {e}")));
                }
                Ok(record) if record.iter().all(|f| f.trim().is_empty()) => {}
                Ok(record) => {
                    let line = record.position().map(|p| p.line()).unwrap_or(0);
                    match parse_row(&header, &record, line, &opts.staff_ids) {
                        Ok(row) => {
                            let key = row_key(&row);
                            match seen_keys.insert(key.clone(), line) {
                                Some(first) => report.rejected.push((
                                    line,
                                    format!(
                                        "same {key} as line {first}; keep one row per customer"
                                    ),
                                )),
                                None => chunk.push(row),
                            }
                        }
                        Err(reason) => report.rejected.push((line, reason)),
                    }
                }
            }
        }
        if chunk.len() >= CHUNK || (at_end && !chunk.is_empty()) {
            let writes = plan_chunk(store, &chunk, &opts, now, &mut report).await?;
            if !opts.dry_run {
                store.write_customers(&writes, now).await?;
            }
            chunk.clear();
            if let Some(progress) = opts.progress.as_mut() {
                progress(done, total);
            }
        }
        if at_end {
            break;
        }
    }
    report.rejected.sort_by_key(|r| r.0);
    Ok(report)
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads the file a line at a time: its first line (without a BOM) and its
/// number of lines, or which line is not UTF-8.
fn check_utf8(path: &Path) -> std::io::Result<Result<(String, usize), String>> {
    let mut reader = BufReader::new(limits::RecordLimit::new(File::open(path)?));
    let mut line = Vec::new();
    let mut first = String::new();
    let mut lines = 0;
    while reader.read_until(b'\n', &mut line)? > 0 {
        lines += 1;
        let bytes = match lines {
            1 => line.strip_prefix(BOM).unwrap_or(&line),
            _ => &line,
        };
        match std::str::from_utf8(bytes) {
            Ok(text) if lines == 1 => first = text.to_string(),
            Ok(_) => {}
            Err(_) => {
                return Ok(Err(format!(
                    "line {lines}: the file is not UTF-8 (it may be Windows-1252 or Latin-1); \
                     save it as \"CSV UTF-8\" in your spreadsheet program and import again"
                )));
            }
        }
        line.clear();
    }
    Ok(Ok((first, lines)))
}

/// `;` if the header has more semicolons than commas, else `,`.
fn detect_delimiter(header: &str) -> u8 {
    if header.matches(';').count() > header.matches(',').count() {
        b';'
    } else {
        b','
    }
}

fn check_header(header: &[String]) -> Result<(), String> {
    limits::check_columns(header.len())?;
    if !header.iter().any(|h| h == "email" || h == "external_id") {
        return Err("needs an `email` or `external_id` column to identify customers".into());
    }
    let mut seen = HashSet::new();
    for h in header {
        if h.is_empty() {
            return Err("a column has no name; name it or delete it".into());
        }
        if !seen.insert(h) {
            return Err(format!("column `{h}` appears twice"));
        }
    }
    Ok(())
}

fn row_key(row: &Row) -> String {
    match (&row.external_id, &row.email) {
        (Some(id), _) => format!("external_id \"{id}\""),
        (None, Some(Some(email))) => format!("email {email}"),
        _ => unreachable!("parse_row guarantees a key"),
    }
}

fn parse_row(
    header: &[String],
    record: &csv::StringRecord,
    line: u64,
    staff: &HashSet<String>,
) -> Result<Row, String> {
    if record.len() != header.len() {
        return Err(format!(
            "has {} fields but the header has {}; check for a missing or extra delimiter",
            record.len(),
            header.len()
        ));
    }
    let mut row = Row {
        line,
        ..Row::default()
    };
    for (name, raw) in header.iter().zip(record.iter()) {
        if raw.chars().count() > MAX_FIELD_CHARS {
            return Err(format!(
                "`{name}` is longer than {MAX_FIELD_CHARS} characters; is a quote missing?"
            ));
        }
        let field = KNOWN.iter().find(|k| *k == name).copied();
        // Control characters other than tabs and line breaks (ESC, BEL …)
        // would act on the terminal that shows the customer, never on purpose.
        if let Some(c) = raw
            .chars()
            .find(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(format!(
                "`{name}` contains the control character U+{:04X}; remove it",
                u32::from(c)
            ));
        }
        // Known columns are one line each; attributes may keep line breaks.
        let value = limits::normalise_line_breaks(raw, field.is_some());
        let value = value.trim();
        let opt = (!value.is_empty()).then(|| value.to_string());
        match field {
            Some("external_id") => row.external_id = opt,
            Some("email") => {
                row.email = Some(match opt {
                    Some(v) => Some(Email::parse(&v).map_err(|e| format!("invalid email: {e}"))?),
                    None => None,
                })
            }
            Some(f @ ("name" | "phone" | "tier" | "consent_source")) => {
                row.text.insert(f, opt);
            }
            Some("locale") => {
                if let Some(l) = &opt
                    && !(l.len() == 2 && l.chars().all(|c| c.is_ascii_lowercase()))
                {
                    return Err(format!(
                        "locale \"{l}\" is not a two-letter language code such as de or en"
                    ));
                }
                row.text.insert("locale", opt);
            }
            Some("timezone") => {
                if let Some(tz) = &opt
                    && tz.parse::<Tz>().is_err()
                {
                    return Err(format!(
                        "unknown time zone \"{tz}\"; use an IANA name such as Europe/Berlin"
                    ));
                }
                row.text.insert("timezone", opt);
            }
            Some("owner") => {
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
                row.text.insert("owner", opt);
            }
            Some("consent") => row.consent = opt.map(|v| parse_consent(&v)).transpose()?,
            Some(f @ ("phone_consent" | "do_not_call" | "is_business")) => {
                if let Some(v) = opt {
                    row.flags.insert(f, parse_bool(f, &v)?);
                }
            }
            Some("tags") => {
                row.tags = Some(
                    value
                        .split([';', ','])
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(String::from)
                        .collect(),
                )
            }
            Some(f @ ("customer_since" | "birthday")) => {
                row.dates
                    .insert(f, opt.map(|v| parse_date(f, &v)).transpose()?);
            }
            Some("points") => {
                if let Some(v) = opt {
                    row.points = Some(
                        v.parse()
                            .map_err(|_| format!("points \"{v}\" is not a whole number"))?,
                    );
                }
            }
            _ => row.attributes.push((name.clone(), value.to_string())),
        }
    }
    if row.external_id.is_none() && !matches!(row.email, Some(Some(_))) {
        return Err(
            "has neither external_id nor email; one of them identifies the customer".into(),
        );
    }
    Ok(row)
}

fn parse_bool(field: &str, v: &str) -> Result<bool, String> {
    match v.to_lowercase().as_str() {
        "yes" | "y" | "ja" | "j" | "true" | "1" | "x" => Ok(true),
        "no" | "n" | "nein" | "false" | "0" => Ok(false),
        _ => Err(format!("{field} \"{v}\" is not yes or no")),
    }
}

fn parse_date(field: &str, v: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .or_else(|_| NaiveDate::parse_from_str(v, "%d.%m.%Y"))
        .map_err(|_| format!("{field} \"{v}\" is not a date; write YYYY-MM-DD or DD.MM.YYYY"))
}

fn parse_consent(v: &str) -> Result<Consent, String> {
    match parse_bool("consent", v) {
        Ok(true) => Ok(Consent::Yes),
        Ok(false) => Ok(Consent::No),
        Err(_) => parse_date("consent", v)
            .map(Consent::Since)
            .map_err(|_| format!("consent \"{v}\" is not yes, no or a date (YYYY-MM-DD)")),
    }
}

/// Looks up the chunk's existing customers and turns each row into a write.
async fn plan_chunk(
    store: &Store,
    chunk: &[Row],
    opts: &ImportOptions<'_>,
    now: DateTime<Utc>,
    report: &mut ImportReport,
) -> Result<Vec<CustomerRow>> {
    let ext_ids: Vec<String> = chunk.iter().filter_map(|r| r.external_id.clone()).collect();
    let emails: Vec<String> = chunk
        .iter()
        .filter_map(|r| r.email.clone().flatten().map(|e| e.as_str().to_string()))
        .collect();
    let existing = store.customers_by_keys(&ext_ids, &emails).await?;
    let by_ext: HashMap<&str, &Customer> = existing
        .iter()
        .filter_map(|c| c.external_id.as_deref().map(|k| (k, c)))
        .collect();
    let by_email: HashMap<&str, &Customer> = existing
        .iter()
        .filter_map(|c| c.email.as_deref().map(|k| (k, c)))
        .collect();
    let mut keys: Vec<String> = ext_ids
        .iter()
        .map(|k| external_id_suppression_key(k))
        .collect();
    keys.extend(
        chunk
            .iter()
            .filter_map(|r| r.email.clone().flatten().map(|e| e.suppression_key())),
    );
    let suppressed = store.suppressed_keys(&keys).await?;

    let mut writes = Vec::with_capacity(chunk.len());
    // Emails taken by earlier rows of this chunk (not yet in the database).
    let mut taken: HashSet<String> = HashSet::new();
    for row in chunk {
        let email = row.email.clone().flatten();
        let matched = match (&row.external_id, &email) {
            (Some(ext), _) if by_ext.contains_key(ext.as_str()) => Some(by_ext[ext.as_str()]),
            (_, Some(e)) => by_email.get(e.as_str()).copied(),
            _ => None,
        };
        if let (Some(c), Some(ext)) = (matched, &row.external_id)
            && c.external_id.as_ref().is_some_and(|have| have != ext)
        {
            report.rejected.push((
                row.line,
                format!(
                    "email {} already belongs to the customer with external_id \"{}\"",
                    c.email.clone().unwrap_or_default(),
                    c.external_id.clone().unwrap_or_default()
                ),
            ));
            continue;
        }
        if let (Some(new_email), Some(owner)) = (
            &email,
            by_email.get(email.as_ref().map(Email::as_str).unwrap_or("")),
        ) && matched.is_some_and(|m| m.id != owner.id)
        {
            report.rejected.push((
                row.line,
                format!(
                    "email {new_email} already belongs to another customer (id {})",
                    owner.id
                ),
            ));
            continue;
        }
        let is_suppressed = row
            .external_id
            .as_ref()
            .is_some_and(|k| suppressed.contains(&external_id_suppression_key(k)))
            || email
                .as_ref()
                .is_some_and(|e| suppressed.contains(&e.suppression_key()));
        if matched.is_none() && is_suppressed {
            report.forgotten.push(row.line);
            continue;
        }
        let (before, is_new) = match matched {
            Some(c) => (c.clone(), false),
            None => (
                Customer {
                    created_at: now,
                    updated_at: now,
                    ..Customer::default()
                },
                true,
            ),
        };
        let (after, events) = apply(before.clone(), row, opts, now);
        if let Some(email) = after
            .email
            .as_ref()
            .filter(|e| before.email.as_ref() != Some(*e))
            && !taken.insert(email.clone())
        {
            report.rejected.push((
                row.line,
                format!("email {email} is used by another row of this file"),
            ));
            continue;
        }
        if !is_new && !opts.dry_run {
            report.changes.extend(changes(&before, &after));
        }
        if is_new {
            report.imported += 1;
            let mut events = events;
            events.insert(
                0,
                NewEvent::new("imported", format!("created from import line {}", row.line)),
            );
            writes.push((after, events));
        } else if after == before {
            report.unchanged += 1;
        } else {
            report.updated += 1;
            writes.push((
                Customer {
                    updated_at: now,
                    ..after
                },
                events,
            ));
        }
    }
    Ok(writes)
}

/// The watched values that differ between two versions of a customer.
fn changes(before: &Customer, after: &Customer) -> Vec<AttributeChange> {
    let change = |field: &str, old: Option<String>, new: Option<String>| {
        (old != new).then(|| AttributeChange {
            customer_id: before.id,
            field: field.to_string(),
            old,
            new,
        })
    };
    let mut out: Vec<AttributeChange> = [
        change("tier", before.tier.clone(), after.tier.clone()),
        change(
            "points",
            Some(before.points.to_string()),
            Some(after.points.to_string()),
        ),
    ]
    .into_iter()
    .flatten()
    .collect();
    let keys: std::collections::BTreeSet<&String> = before
        .attributes
        .0
        .keys()
        .chain(after.attributes.0.keys())
        .collect();
    for key in keys {
        out.extend(change(
            key,
            before.attributes.0.get(key).cloned(),
            after.attributes.0.get(key).cloned(),
        ));
    }
    out
}

pub fn external_id_suppression_key(external_id: &str) -> String {
    format!("external_id:{}", crate::domain::sha256_hex(external_id))
}

/// Applies a row's present columns to a customer; returns the events worth keeping.
fn apply(
    mut c: Customer,
    row: &Row,
    opts: &ImportOptions<'_>,
    now: DateTime<Utc>,
) -> (Customer, Vec<NewEvent>) {
    let mut events = Vec::new();
    if let Some(ext) = &row.external_id {
        c.external_id = Some(ext.clone());
    }
    if let Some(email) = &row.email {
        let new = email.as_ref().map(|e| e.as_str().to_string());
        if c.id != 0 && new != c.email {
            events.push(NewEvent::new(
                "changed",
                format!(
                    "email: {} → {}",
                    c.email.as_deref().unwrap_or("-"),
                    new.as_deref().unwrap_or("-")
                ),
            ));
            c.bad_address_at = None;
        }
        c.email = new;
    }
    for (field, value) in &row.text {
        let slot = match *field {
            "name" => &mut c.name,
            "phone" => &mut c.phone,
            "locale" => &mut c.locale,
            "timezone" => &mut c.timezone,
            "owner" => &mut c.owner,
            "tier" => &mut c.tier,
            _ => continue, // consent_source is applied with consent below
        };
        if *field == "tier" && c.id != 0 && slot != value {
            events.push(NewEvent::new(
                "changed",
                format!(
                    "tier: {} → {}",
                    slot.as_deref().unwrap_or("-"),
                    value.as_deref().unwrap_or("-")
                ),
            ));
        }
        *slot = value.clone();
    }
    for (field, value) in &row.flags {
        let slot = match *field {
            "phone_consent" => &mut c.phone_consent,
            "do_not_call" => &mut c.do_not_call,
            _ => &mut c.is_business,
        };
        if c.id != 0 && *slot != *value && *field != "is_business" {
            events.push(NewEvent::new(
                "changed",
                format!("{field}: {}", if *value { "yes" } else { "no" }),
            ));
        }
        *slot = *value;
    }
    if let Some(tags) = &row.tags {
        c.tags = Tags(tags.clone());
    }
    for (field, value) in &row.dates {
        match *field {
            "customer_since" => c.customer_since = *value,
            _ => c.birthday = *value,
        }
    }
    if let Some(points) = row.points {
        c.points = points;
    }
    if !row.attributes.is_empty() {
        let mut attrs = c.attributes.0.clone();
        for (k, v) in &row.attributes {
            if v.is_empty() {
                attrs.remove(k);
            } else {
                let old = attrs.insert(k.clone(), v.clone());
                if c.id != 0 && old.as_deref() != Some(v.as_str()) {
                    events.push(NewEvent::new(
                        "changed",
                        format!("{k}: {} → {v}", old.as_deref().unwrap_or("-")),
                    ));
                }
            }
        }
        c.attributes = Attributes(attrs);
    }
    let source = row
        .text
        .get("consent_source")
        .cloned()
        .flatten()
        .unwrap_or_else(|| opts.default_consent_source.clone());
    match row.consent {
        Some(Consent::Yes) if !c.consent => give_consent(&mut c, now, source, &mut events),
        Some(Consent::Since(date)) => {
            let at = date.and_time(NaiveTime::MIN).and_utc();
            if c.unsubscribed_at.is_some_and(|u| at > u) {
                c.unsubscribed_at = None;
                events.push(NewEvent::new(
                    "resubscribed",
                    format!("consent dated {date} is newer than the unsubscribe"),
                ));
            }
            if !c.consent || c.consent_at != Some(at) {
                give_consent(&mut c, at, source, &mut events);
            }
        }
        Some(Consent::No) if c.consent => {
            c.consent = false;
            events.push(NewEvent::new(
                "consent_withdrawn",
                "import says consent: no",
            ));
        }
        _ => {}
    }
    (c, events)
}

fn give_consent(c: &mut Customer, at: DateTime<Utc>, source: String, events: &mut Vec<NewEvent>) {
    c.consent = true;
    c.consent_at = Some(at);
    events.push(NewEvent::new(
        "consent_given",
        format!("email consent of {} (source: {source})", at.date_naive()),
    ));
    c.consent_source = Some(source);
}

/// Fails if the report should make the command exit 1.
pub fn ensure_nothing_rejected(report: &ImportReport) -> Result<()> {
    if !report.rejected.is_empty() {
        bail!(
            "{} row(s) rejected; fix them in the file and import it again (good rows were kept)",
            report.rejected.len()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semicolon_headers_are_detected() {
        assert_eq!(detect_delimiter("email;name;tags\n"), b';');
        assert_eq!(detect_delimiter("email,name\n"), b',');
    }

    #[test]
    fn latin1_files_are_refused_with_the_line_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kunden.csv");
        std::fs::write(&path, b"email;name\na@b.de;Anna\na@c.de;J\xfcrgen\n").unwrap();
        let err = check_utf8(&path).unwrap().unwrap_err();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("CSV UTF-8"), "{err}");
        std::fs::write(&path, b"\xEF\xBB\xBFemail\na@b.de\n").unwrap();
        assert_eq!(
            check_utf8(&path).unwrap().unwrap(),
            ("email\n".to_string(), 2)
        );
    }

    #[test]
    fn consent_accepts_words_and_dates() {
        assert!(matches!(parse_consent("ja"), Ok(Consent::Yes)));
        assert!(matches!(parse_consent("no"), Ok(Consent::No)));
        assert!(matches!(parse_consent("2024-03-01"), Ok(Consent::Since(_))));
        assert!(matches!(parse_consent("01.03.2024"), Ok(Consent::Since(_))));
        assert!(parse_consent("maybe").is_err());
    }
}
