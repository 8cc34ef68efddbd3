//! A customer list file as a table: a header row and numbered rows of cells.
//!
//! What the file is comes from its first bytes, not its name: a ZIP is an
//! `.xlsx` or `.ods` workbook, an OLE container an `.xls` one (all read with
//! `calamine`, cell values rather than formulas, dates from date cells);
//! anything else is delimited text. Text is decoded from the encoding its
//! byte order mark names, else from what `chardetng` detects over the whole
//! file (so a `ü` in row 90,000 counts), unless `--encoding` says otherwise.
//! Rows carry the numbers spreadsheet programs show.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, Result, anyhow, bail};
use calamine::{Data, DataType, Range, Reader, Sheets};
use chrono::NaiveDate;
use encoding_rs::Encoding;

use super::columns::column_letter;
use super::delimited::{self, Records};
use super::limits::RecordLimit;

/// A cell as the file holds it. Numbers and booleans arrive as text
/// ("12", "yes"): the field decides what it accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    /// A date cell of a workbook.
    Date(NaiveDate),
    /// A formula error (`#N/A`, `#DIV/0!`) in a workbook.
    Error(String),
}

impl Cell {
    /// The cell as text; dates as YYYY-MM-DD.
    pub fn into_text(self) -> String {
        match self {
            Cell::Empty => String::new(),
            Cell::Text(s) | Cell::Error(s) => s,
            Cell::Date(d) => d.to_string(),
        }
    }

    /// Empty, or only spaces.
    pub fn is_blank(&self) -> bool {
        match self {
            Cell::Empty => true,
            Cell::Text(s) => s.trim().is_empty(),
            Cell::Date(_) | Cell::Error(_) => false,
        }
    }
}

/// A data row: the row number a spreadsheet shows and one cell per column.
pub type Row = (u64, Vec<Cell>);

/// The rows of a table; a row that cannot be read is (its number, why).
type RowIter = Box<dyn Iterator<Item = Result<Result<Row, delimited::Unreadable>>>>;

pub struct Table {
    /// "text, windows-1252 (detected), separated by \";\"" or "sheet \"Kunden\"".
    pub described: String,
    pub header: Vec<String>,
    /// The header's row number, as a spreadsheet shows it.
    pub header_row: u64,
    /// The sheet read, for a workbook.
    pub sheet: Option<String>,
    /// Zero-based column index of the header's first cell.
    pub first_column: usize,
    /// About how many data rows follow (for progress).
    pub rows_estimate: usize,
    pub rows: RowIter,
}

const ZIP: &[u8] = b"PK\x03\x04";
const OLE: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";

/// How a file is to be read, from the command line.
pub struct Reading<'a> {
    pub encoding: Option<&'a str>,
    pub sheet: Option<&'a str>,
    /// A lower-case country or language code that tips the encoding
    /// detector towards that region's legacy encoding ("de").
    pub region: Option<&'a str>,
}

pub fn open(path: &Path, how: &Reading<'_>) -> Result<Table> {
    let mut start = [0u8; 8];
    let n = File::open(path)
        .and_then(|mut f| read_up_to(&mut f, &mut start))
        .with_context(|| format!("{}: cannot read the file", path.display()))?;
    let start = &start[..n];
    if start.starts_with(ZIP) || start.starts_with(OLE) {
        if how.encoding.is_some() {
            bail!(
                "{}: --encoding is for text files; this is a spreadsheet workbook, which names its own encoding",
                path.display()
            );
        }
        return open_workbook(path, start.starts_with(ZIP), how.sheet);
    }
    if let Some(sheet) = how.sheet {
        bail!(
            "{}: --sheet \"{sheet}\" is for .xlsx and .ods workbooks; this is a text file with a single table",
            path.display()
        );
    }
    open_text(path, how)
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

// ---- text ----

fn open_text(path: &Path, how: &Reading<'_>) -> Result<Table> {
    let cannot_read = || format!("{}: cannot read the file", path.display());
    let (encoding, why, rows_estimate) = text_encoding(path, how).with_context(cannot_read)??;
    let file = File::open(path).with_context(cannot_read)?;
    let decoded = encoding_rs_io::DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .strip_bom(true)
        .build(BufReader::with_capacity(64 * 1024, file));
    let mut records = Records::new(decoded).with_context(cannot_read)?;
    let delimiter = match records.delimiter() {
        b'\t' => "tabs".to_string(),
        d => format!("\"{}\"", d as char),
    };
    let (header_row, header) = loop {
        match records.next() {
            None => bail!(
                "{}: the file is empty; the first row must name the columns",
                path.display()
            ),
            Some(read) => match read.with_context(cannot_read)? {
                Ok((_, fields)) if fields.iter().all(|f| f.trim().is_empty()) => continue,
                Ok(header) => break header,
                Err((row, reason)) => bail!("{}: row {row} (the header) {reason}", path.display()),
            },
        }
    };
    let path_text = path.display().to_string();
    let rows = records.map(move |read| {
        read.with_context(|| format!("{path_text}: cannot read the file"))
            .map(|r| {
                r.map(|(n, fields)| {
                    let cells = fields
                        .into_iter()
                        .map(|f| {
                            if f.is_empty() {
                                Cell::Empty
                            } else {
                                Cell::Text(f)
                            }
                        })
                        .collect();
                    (n, cells)
                })
            })
    });
    Ok(Table {
        described: format!(
            "text in {} ({why}), columns separated by {delimiter}",
            encoding.name()
        ),
        header,
        header_row,
        sheet: None,
        first_column: 0,
        rows_estimate,
        rows: Box::new(rows),
    })
}

/// The encoding to decode with, why, and the number of line breaks (an
/// estimate of the rows); or a problem with the file or the given name.
///
/// Detection is `chardetng`'s: a file that is valid UTF-8 is UTF-8 (its
/// first rule, which a plain UTF-8 check decides at a fraction of the cost
/// of its scoring); any other file is scored by it whole.
fn text_encoding(
    path: &Path,
    how: &Reading<'_>,
) -> std::io::Result<Result<(&'static Encoding, &'static str, usize)>> {
    // This pass reads every byte before any row is imported, so a row too
    // long to hold (a missing closing quote) fails the file here.
    let mut file = RecordLimit::new(File::open(path)?);
    let mut chunk = vec![0u8; 64 * 1024];
    let n = read_up_to(&mut file, &mut chunk)?;
    let first = &chunk[..n];
    let given = match how.encoding {
        Some(name) => match Encoding::for_label(name.trim().as_bytes()) {
            Some(e) => Some(e),
            None => {
                return Ok(Err(anyhow!(
                    "{}: --encoding \"{name}\" is not an encoding name; use one such as UTF-8, windows-1252, ISO-8859-15 or UTF-16LE",
                    path.display()
                )));
            }
        },
        None => None,
    };
    let bom = Encoding::for_bom(first).map(|(e, _)| e);
    let named = given
        .map(|e| (e, "given with --encoding"))
        .or(bom.map(|e| (e, "byte order mark")));
    let unit = match named {
        Some((e, _)) if e == encoding_rs::UTF_16LE => Some([b'\n', 0]),
        Some((e, _)) if e == encoding_rs::UTF_16BE => Some([0, b'\n']),
        _ => None,
    };
    if named.is_none() && first.contains(&0) {
        return Ok(Err(anyhow!(
            "{}: this is not a table in a text format (it has NUL bytes): save it as CSV, .xlsx or .ods; \
             if it is UTF-16 text without a byte order mark, add --encoding UTF-16LE",
            path.display()
        )));
    }
    // One pass over the whole file: counting rows for progress and, when
    // nothing named the encoding, checking that it is UTF-8.
    let mut utf8 = Utf8Check::default();
    let mut lines = 0;
    let mut n = n;
    while n > 0 {
        let data = &chunk[..n];
        lines += match unit {
            Some(u) => data.chunks_exact(2).filter(|c| *c == u).count(),
            None => data.iter().filter(|b| **b == b'\n').count(),
        };
        if named.is_none() {
            utf8.feed(data);
        }
        n = read_up_to(&mut file, &mut chunk)?;
    }
    if let Some((e, why)) = named {
        return Ok(Ok((e, why, lines)));
    }
    if utf8.is_valid() {
        return Ok(Ok((encoding_rs::UTF_8, "detected", lines)));
    }
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    let mut file = File::open(path)?;
    loop {
        let n = read_up_to(&mut file, &mut chunk)?;
        detector.feed(&chunk[..n], n == 0);
        if n == 0 {
            break;
        }
    }
    let region = how
        .region
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_lowercase()));
    let guess = detector.guess(region.map(str::as_bytes), chardetng::Utf8Detection::Allow);
    Ok(Ok((guess, "detected", lines)))
}

/// Whether a stream fed in chunks is UTF-8 (a character may span chunks).
#[derive(Default)]
struct Utf8Check {
    /// The start of a character the last chunk ended in.
    pending: Vec<u8>,
    invalid: bool,
}

impl Utf8Check {
    fn feed(&mut self, chunk: &[u8]) {
        if self.invalid {
            return;
        }
        let mut data = std::mem::take(&mut self.pending);
        data.extend_from_slice(chunk);
        if let Err(e) = std::str::from_utf8(&data) {
            match e.error_len() {
                None => self.pending = data[e.valid_up_to()..].to_vec(),
                Some(_) => self.invalid = true,
            }
        }
    }

    fn is_valid(&self) -> bool {
        !self.invalid && self.pending.is_empty()
    }
}

// ---- workbooks ----

fn open_workbook(path: &Path, zip: bool, sheet: Option<&str>) -> Result<Table> {
    let shown = path.display().to_string();
    let mut book: Sheets<BufReader<File>> = if zip {
        match calamine::open_workbook::<calamine::Xlsx<_>, _>(path) {
            Ok(x) => Sheets::Xlsx(x),
            Err(xlsx) => match calamine::open_workbook::<calamine::Ods<_>, _>(path) {
                Ok(o) => Sheets::Ods(o),
                Err(ods) => bail!(
                    "{shown}: this ZIP file is neither an .xlsx nor an .ods workbook (as .xlsx: {xlsx}; as .ods: {ods}); \
                     save the list from your spreadsheet program as .xlsx, .ods or CSV"
                ),
            },
        }
    } else {
        Sheets::Xls(calamine::open_workbook(path).map_err(|e| {
            anyhow!(
                "{shown}: this Office file is not an Excel workbook ({e}); save the list as .xlsx, .ods or CSV"
            )
        })?)
    };
    let names = book.sheet_names();
    let name = match sheet {
        Some(wanted) => names
            .iter()
            .find(|n| n.as_str() == wanted)
            .or_else(|| {
                names
                    .iter()
                    .find(|n| n.to_lowercase() == wanted.to_lowercase())
            })
            .cloned()
            .ok_or_else(|| {
                anyhow!(
                    "{shown}: there is no sheet \"{wanted}\"; the sheets are {}",
                    quoted_list(&names)
                )
            })?,
        None => names
            .first()
            .cloned()
            .ok_or_else(|| anyhow!("{shown}: the workbook has no sheets"))?,
    };
    let range = book
        .worksheet_range(&name)
        .map_err(|e| anyhow!("{shown}: sheet \"{name}\" cannot be read: {e}"))?;
    let Some((top, left)) = range.start() else {
        bail!("{shown}: sheet \"{name}\" is empty; the first row must name the columns");
    };
    if let Sheets::Xlsx(xlsx) = &mut book {
        let merged_header = xlsx
            .merge_cells_by_sheet_name(&name)
            .map_err(|e| anyhow!("{shown}: sheet \"{name}\": cannot read merged cells: {e}"))?
            .into_iter()
            .find(|d| d.start.0 <= top && top <= d.end.0);
        if let Some(d) = merged_header {
            bail!(
                "{shown}: sheet \"{name}\": the header cells {}{}:{}{} are merged; unmerge them so that each column has its own name in row {} \
                 (Excel: Home → Merge & Center; LibreOffice: Format → Merge and Unmerge Cells → Unmerge Cells)",
                column_letter(d.start.1 as usize),
                d.start.0 + 1,
                column_letter(d.end.1 as usize),
                d.end.0 + 1,
                top + 1
            );
        }
    }
    let described = match sheet {
        Some(_) => format!("sheet \"{name}\""),
        None if names.len() > 1 => format!(
            "sheet \"{name}\", the first of {} (choose another with --sheet)",
            names.len()
        ),
        None => format!("sheet \"{name}\""),
    };
    let (height, width) = range.get_size();
    let header = (0..width)
        .map(|c| cell(range.get((0, c))).into_text().trim().to_string())
        .collect();
    let rows = SheetRows {
        range,
        next: 1,
        top,
    };
    Ok(Table {
        described,
        header,
        header_row: u64::from(top) + 1,
        sheet: Some(name),
        first_column: left as usize,
        rows_estimate: height.saturating_sub(1),
        rows: Box::new(rows.map(|r| Ok(Ok(r)))),
    })
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The data rows of a sheet, each with its number in the sheet.
struct SheetRows {
    range: Range<Data>,
    /// Index in `range` of the next row.
    next: usize,
    /// Zero-based sheet row of the range's first row (the header).
    top: u32,
}

impl Iterator for SheetRows {
    type Item = Row;

    fn next(&mut self) -> Option<Row> {
        let (height, width) = self.range.get_size();
        if self.next >= height {
            return None;
        }
        let i = self.next;
        self.next += 1;
        let cells = (0..width).map(|c| cell(self.range.get((i, c)))).collect();
        Some((u64::from(self.top) + i as u64 + 1, cells))
    }
}

/// What spreadsheets show for a formula that failed.
const FORMULA_ERRORS: [&str; 7] = [
    "#N/A", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#NULL!",
];

/// A workbook cell as a [`Cell`]: dates from date cells, whole numbers
/// without ".0", a time of day other than midnight kept as text.
fn cell(data: Option<&Data>) -> Cell {
    let Some(data) = data else {
        return Cell::Empty;
    };
    match data {
        Data::Empty => Cell::Empty,
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        // ODF has no error cells: LibreOffice stores a formula's error as
        // the text it shows.
        Data::String(s) if FORMULA_ERRORS.contains(&s.as_str()) || s.starts_with("Err:") => {
            Cell::Error(s.clone())
        }
        Data::String(s) => Cell::Text(s.clone()),
        Data::Int(i) => Cell::Text(i.to_string()),
        Data::Float(f) if f.fract() == 0.0 && f.abs() < 1e15 => Cell::Text((*f as i64).to_string()),
        Data::Float(f) => Cell::Text(f.to_string()),
        Data::Bool(b) => Cell::Text(if *b { "yes" } else { "no" }.into()),
        Data::DateTime(dt) if dt.is_datetime() => match dt.as_datetime() {
            Some(t) if t.time() == chrono::NaiveTime::MIN => Cell::Date(t.date()),
            Some(t) => Cell::Text(t.to_string()),
            None => Cell::Text(data.to_string()),
        },
        Data::DateTimeIso(_) => match (data.as_datetime(), data.as_date()) {
            (Some(t), _) if t.time() != chrono::NaiveTime::MIN => Cell::Text(t.to_string()),
            (_, Some(d)) => Cell::Date(d),
            _ => Cell::Text(data.to_string()),
        },
        Data::Error(e) => Cell::Error(format!("{e}")),
        Data::DateTime(_) | Data::DurationIso(_) => Cell::Text(data.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detected(bytes: &[u8]) -> (&'static Encoding, &'static str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kunden.csv");
        std::fs::write(&path, bytes).unwrap();
        let how = Reading {
            encoding: None,
            sheet: None,
            region: Some("de"),
        };
        let (encoding, why, _) = text_encoding(&path, &how).unwrap().unwrap();
        (encoding, why)
    }

    #[test]
    fn a_late_umlaut_decides_the_encoding() {
        let mut ascii = b"email;name\n".to_vec();
        for i in 0..50_000 {
            ascii.extend_from_slice(format!("k{i}@example.de;Kunde {i}\n").as_bytes());
        }
        let mut latin = ascii.clone();
        latin.extend_from_slice(b"j@example.de;J\xfcrgen M\xfcller, Stra\xdfe\n");
        assert_eq!(detected(&latin), (encoding_rs::WINDOWS_1252, "detected"));
        let mut utf8 = ascii.clone();
        utf8.extend_from_slice("j@example.de;Jürgen Müller, Straße\n".as_bytes());
        assert_eq!(detected(&utf8), (encoding_rs::UTF_8, "detected"));
        assert_eq!(detected(&ascii), (encoding_rs::UTF_8, "detected"));
    }

    #[test]
    fn a_character_split_between_chunks_is_still_utf8() {
        let text = "Jürgen".as_bytes();
        let mut check = Utf8Check::default();
        check.feed(&text[..2]);
        check.feed(&text[2..]);
        assert!(check.is_valid());
        let mut cut = Utf8Check::default();
        cut.feed(&text[..2]);
        assert!(!cut.is_valid(), "a stream may not end inside a character");
        let mut latin = Utf8Check::default();
        latin.feed(b"J\xfcrgen");
        latin.feed(b"more");
        assert!(!latin.is_valid());
    }
}
