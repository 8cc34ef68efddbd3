//! What one import file may cost, and line breaks in values.
//!
//! A text file is read twice (see `table::open`): the first pass, which
//! settles the encoding and counts the rows, reads it through
//! [`RecordLimit`], so a row of hundreds of megabytes (a missing closing
//! quote, a broken export, a hostile file) is refused with its line number
//! before anything is held in memory or written. A header with more than
//! [`MAX_COLUMNS`] columns is refused too, in any file type: each column
//! becomes an attribute of every customer.

use std::borrow::Cow;
use std::io::{self, Read};

/// Columns a customer file may have: the known fields and many attributes.
pub const MAX_COLUMNS: usize = 256;
/// Bytes one row may take, quoted line breaks included.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

pub fn check_columns(n: usize) -> Result<(), String> {
    if n > MAX_COLUMNS {
        return Err(format!(
            "has {n} columns; at most {MAX_COLUMNS} are imported (each becomes an attribute \
             of every customer): remove the columns you do not need"
        ));
    }
    Ok(())
}

/// Line breaks as one kind: `\r\n`, `\r`, U+2028 and U+2029 become `\n`.
/// In a one-line field (a name, a phone number, every known column) they
/// become a space: a line break there splits the line of every list, page,
/// calendar entry and terminal that shows it.
pub fn normalise_line_breaks(value: &str, one_line: bool) -> Cow<'_, str> {
    if !value.contains(['\r', '\n', '\u{2028}', '\u{2029}']) {
        return Cow::Borrowed(value);
    }
    let unified = value
        .replace("\r\n", "\n")
        .replace(['\r', '\u{2028}', '\u{2029}'], "\n");
    if !one_line {
        return Cow::Owned(unified);
    }
    Cow::Owned(
        unified
            .split('\n')
            .map(str::trim)
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// A reader that fails once a CSV row grows beyond [`MAX_RECORD_BYTES`].
/// Rows end at line breaks (`\r\n`, `\n` or a lone `\r`) outside quotes
/// and are numbered as spreadsheets number them; a quote opens at the start
/// of a field (after `,`, `;`, a tab or a line break), `""` inside quotes is
/// a quote, as the CSV reader sees them.
pub struct RecordLimit<R> {
    inner: R,
    in_quotes: bool,
    field_start: bool,
    just_closed: bool,
    after_cr: bool,
    record_bytes: usize,
    row: u64,
    tripped: bool,
}

impl<R> RecordLimit<R> {
    pub fn new(inner: R) -> Self {
        RecordLimit {
            inner,
            in_quotes: false,
            field_start: true,
            just_closed: false,
            after_cr: false,
            record_bytes: 0,
            row: 1,
            tripped: false,
        }
    }

    fn too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "row {}: a row is longer than {} MiB (is a closing quote missing?); shorten its cells",
                self.row,
                MAX_RECORD_BYTES / (1024 * 1024)
            ),
        )
    }

    fn scan(&mut self, bytes: &[u8]) -> io::Result<()> {
        for &b in bytes {
            self.record_bytes += 1;
            let just_closed = std::mem::take(&mut self.just_closed);
            let after_cr = std::mem::take(&mut self.after_cr);
            if self.in_quotes {
                if b == b'"' {
                    self.in_quotes = false;
                    self.just_closed = true;
                }
            } else {
                match b {
                    b'"' if self.field_start || just_closed => self.in_quotes = true,
                    // The `\n` of a `\r\n` ends no second row.
                    b'\n' if after_cr => self.record_bytes = 0,
                    b'\r' | b'\n' => {
                        self.row += 1;
                        self.record_bytes = 0;
                        self.after_cr = b == b'\r';
                    }
                    _ => {}
                }
                self.field_start = matches!(b, b',' | b';' | b'\t' | b'\n' | b'\r');
            }
            if self.record_bytes > MAX_RECORD_BYTES {
                self.tripped = true;
                return Err(self.too_long());
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.tripped {
            return Err(self.too_long());
        }
        let n = self.inner.read(buf)?;
        self.scan(&buf[..n])?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(data: &[u8]) -> io::Result<usize> {
        let mut sink = Vec::new();
        RecordLimit::new(data).read_to_end(&mut sink)
    }

    #[test]
    fn long_files_of_short_rows_pass_and_one_long_row_is_named_by_its_line() {
        let row = "a;b;\"quoted;\nwith a line break\";d\n";
        let many = row.repeat(MAX_RECORD_BYTES / row.len() * 3);
        assert_eq!(read_all(many.as_bytes()).unwrap(), many.len());

        let long = format!(
            "email;name\nx@example.de;\"{}\"\n",
            "y".repeat(MAX_RECORD_BYTES)
        );
        let err = read_all(long.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("row 2: a row is longer than 1 MiB"),
            "{err}"
        );
    }

    #[test]
    fn rows_are_numbered_as_spreadsheets_show_them() {
        // Quoted line breaks stay in their row; `\r\n` and a lone `\r` end one each.
        let long = format!(
            "a;b\r\n\"x\r\ny\";1\r2;3\n\"{}\"\n",
            "y".repeat(MAX_RECORD_BYTES)
        );
        let err = read_all(long.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("row 4: "), "{err}");
    }

    #[test]
    fn escaped_and_stray_quotes_do_not_join_rows() {
        // `""` inside quotes, and a quote in the middle of an unquoted field.
        let row = "\"say \"\"hi\"\"\",5\" screen,x\n";
        let many = row.repeat(MAX_RECORD_BYTES / row.len() * 2);
        assert_eq!(read_all(many.as_bytes()).unwrap(), many.len());
    }

    #[test]
    fn line_breaks_become_one_kind_and_vanish_from_one_line_fields() {
        assert_eq!(normalise_line_breaks("Anna\r\nBeck", true), "Anna Beck");
        assert_eq!(
            normalise_line_breaks("Anna\rBeck\u{2028}", true),
            "Anna Beck"
        );
        assert_eq!(
            normalise_line_breaks("Hof 3\r\nHinterhaus\rEG", false),
            "Hof 3\nHinterhaus\nEG"
        );
        assert!(matches!(
            normalise_line_breaks("Anna", true),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn more_than_256_columns_are_refused() {
        assert!(check_columns(256).is_ok());
        assert!(
            check_columns(1_000_000)
                .unwrap_err()
                .contains("at most 256")
        );
    }
}
