//! `outreach import customers`: a customer list as a shop has it → validated
//! customer updates.
//!
//! The way through, one module each:
//! - [`table`]: the file as a table of numbered rows — CSV in any encoding a
//!   spreadsheet writes (detected), or a sheet of an `.xlsx`/`.ods`/`.xls`;
//! - [`columns`]: which column fills which field (German and English
//!   headers, `[import.columns]`), checked before any row is read;
//! - [`row`]: one row's values, each checked; a bad row is reported as
//!   `line N: reason` (N as the spreadsheet shows it) and skipped, the good
//!   rows are imported;
//! - [`upsert`]: the customer each row means and what changes, with the
//!   rules that keep objections in force.
//!
//! Only the columns present in the file change a customer, so a file with
//! just `email;tier` never clears anyone's consent. Rows are written in
//! chunks, each in one transaction, after one bulk lookup of the chunk's
//! existing customers: this keeps large imports fast (see
//! `benches/import.sh`) and memory flat for text files.

mod columns;
mod delimited;
mod limits;
mod row;
mod table;
mod upsert;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use anyhow::{Result, anyhow, bail};
use chrono::Utc;

pub use columns::ColumnRules;
pub use upsert::external_id_suppression_key;

use crate::store::Store;
use columns::Mapping;
use table::Cell;
use table::Reading;

const CHUNK: usize = 1000;

/// What an import needs from the configuration and the command line.
pub struct ImportOptions<'a> {
    pub dry_run: bool,
    pub staff_ids: HashSet<String>,
    pub default_consent_source: String,
    pub columns: &'a ColumnRules,
    /// `--encoding`: decode a text file with this instead of detecting.
    pub encoding: Option<&'a str>,
    /// `--sheet`: read this sheet of a workbook instead of the first.
    pub sheet: Option<&'a str>,
    /// The business's locale, which tips encoding detection towards its
    /// region's legacy encoding.
    pub region: Option<&'a str>,
    /// Who runs the import: recorded with the objections a "no" makes.
    pub recorded_by: String,
    /// Called after each chunk with (rows done, rows in the file, about).
    pub progress: Option<&'a mut dyn FnMut(usize, usize)>,
}

impl<'a> ImportOptions<'a> {
    /// What the config says, run by the user running the process; no
    /// `--encoding` or `--sheet`, no progress.
    pub fn new(config: &'a crate::config::Config, dry_run: bool) -> Self {
        let settings = &config.settings;
        ImportOptions {
            dry_run,
            staff_ids: settings.staff.iter().map(|s| s.id.clone()).collect(),
            default_consent_source: settings.import.default_consent_source.clone(),
            columns: &config.resolved.import_columns,
            encoding: None,
            sheet: None,
            region: Some(&settings.business.locale),
            recorded_by: os_user(),
            progress: None,
        }
    }
}

/// Who runs a command: the person behind `sudo`, else the login user.
pub fn os_user() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.trim().is_empty()))
        .unwrap_or_else(|| "an unknown user".into())
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// How the file was read: its type, encoding or sheet.
    pub read_as: String,
    /// Every column, in file order: (header, letter, where its values go).
    pub mapping: Vec<(String, String, String)>,
    /// The headers of the columns kept as custom attributes.
    pub attribute_columns: Vec<String>,
    /// Attribute columns whose header looks like a misspelt field, with the fix.
    pub column_notes: Vec<String>,
    pub imported: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub rejected: Vec<(u64, String)>,
    /// Lines naming a customer who asked to be forgotten: not imported.
    pub forgotten: Vec<u64>,
    /// Lines whose consent date lifted an objection.
    pub resubscribed: Vec<(u64, String)>,
    /// Lines whose "yes" an objection in force overrode.
    pub kept: Vec<(u64, String)>,
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

pub async fn import_customers(
    store: &Store,
    path: &Path,
    mut opts: ImportOptions<'_>,
) -> Result<ImportReport> {
    let table = table::open(
        path,
        &Reading {
            encoding: opts.encoding,
            sheet: opts.sheet,
            region: opts.region,
        },
    )?;
    limits::check_columns(table.header.len()).map_err(|e| {
        anyhow!(
            "{}: row {} (the header) {e}",
            path.display(),
            table.header_row
        )
    })?;
    let mapping = Mapping::new(&table.header, table.first_column, opts.columns).map_err(|e| {
        let sheet = table
            .sheet
            .as_ref()
            .map(|s| format!("sheet \"{s}\", "))
            .unwrap_or_default();
        anyhow!(
            "{}: {sheet}row {} (the header): {e}",
            path.display(),
            table.header_row
        )
    })?;
    let mut report = ImportReport {
        read_as: table.described.clone(),
        mapping: mapping
            .columns
            .iter()
            .map(|c| (c.header.clone(), c.letter.clone(), c.target.describe()))
            .collect(),
        attribute_columns: mapping
            .attribute_columns()
            .iter()
            .map(|c| c.header.clone())
            .collect(),
        column_notes: mapping.notes.clone(),
        ..ImportReport::default()
    };
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    let mut progress = opts.progress.take();
    let batch = upsert::Batch {
        dry_run: opts.dry_run,
        default_consent_source: &opts.default_consent_source,
        recorded_by: &opts.recorded_by,
        file: &file,
        now: Utc::now(),
    };
    // Rows are parsed, planned and written a chunk at a time; only the keys
    // seen so far are kept for the whole file (to catch duplicate rows).
    let mut seen_keys: HashMap<String, u64> = HashMap::new();
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut done = 0;
    let mut rows = table.rows;
    let total = table.rows_estimate;
    loop {
        let next = rows.next().transpose()?;
        let at_end = next.is_none();
        match next {
            None => {}
            Some(Err((line, reason))) => {
                done += 1;
                report.rejected.push((line, reason));
            }
            Some(Ok((line, cells))) => {
                done += 1;
                if cells.iter().all(Cell::is_blank) {
                    continue;
                }
                match row::parse(&mapping, cells, line, &opts.staff_ids) {
                    Ok(row) => match seen_keys.insert(row.key(), line) {
                        Some(first) => report.rejected.push((
                            line,
                            format!(
                                "same {} as line {first}; keep one row per customer",
                                row.key()
                            ),
                        )),
                        None => chunk.push(row),
                    },
                    Err(reason) => report.rejected.push((line, reason)),
                }
            }
        }
        if chunk.len() >= CHUNK || (at_end && !chunk.is_empty()) {
            let writes = upsert::plan_chunk(store, &chunk, &batch, &mut report).await?;
            if !opts.dry_run {
                store.write_customers(&writes, batch.now).await?;
            }
            chunk.clear();
            if let Some(progress) = progress.as_mut() {
                progress(done, total.max(done));
            }
        }
        if at_end {
            break;
        }
    }
    report.rejected.sort_by_key(|r| r.0);
    Ok(report)
}

/// Fails if the report should make the command exit 1.
pub fn ensure_nothing_rejected(report: &ImportReport, dry_run: bool) -> Result<()> {
    if !report.rejected.is_empty() {
        let kept = if dry_run {
            "a real import would keep the good rows"
        } else {
            "good rows were kept"
        };
        bail!(
            "{} row(s) rejected; fix them in the file and import it again ({kept})",
            report.rejected.len()
        );
    }
    Ok(())
}
