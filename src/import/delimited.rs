//! Records of a delimited text file (CSV), numbered the way spreadsheet
//! programs number their rows.
//!
//! Excel and LibreOffice show one row per record: a line break inside a
//! quoted cell stays in that row, an empty line is a row of its own, and
//! `\r\n`, `\n` and a lone `\r` each end one. Messages about a row must use
//! that number, since it is where a person looks. The `csv` crate counts
//! differently (a record after `\r\n` is reported one line early, and empty
//! lines fold into the next record's position), so this small reader
//! splits records itself, as RFC 4180 describes and spreadsheets accept:
//! a quote opens a quoted cell only at the cell's start, `""` inside it is
//! a quote, and a quote anywhere else is an ordinary character.

use std::io::Read;

/// A read buffer: large reads, byte-wise parsing.
const CHUNK: usize = 64 * 1024;

pub struct Records<R> {
    input: R,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    delimiter: u8,
    /// The row number the next record starts in.
    row: u64,
}

/// A record: its row number and its fields.
pub type Record = (u64, Vec<String>);

/// A record that cannot be read (its row number, why).
pub type Unreadable = (u64, String);

impl<R: Read> Records<R> {
    /// Reads the first line to choose the delimiter: whichever of `;`,
    /// `,` and tab it has most of (Excel writes `;` in German, `,` in
    /// English and tabs as "Unicode Text"); `,` when it has none.
    pub fn new(input: R) -> std::io::Result<Self> {
        let mut records = Records {
            input,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            eof: false,
            delimiter: b',',
            row: 1,
        };
        // The first line, or as much of it as fits in the buffer.
        while !records.eof && !records.buf[..records.end].contains(&b'\n') && records.end < CHUNK {
            let n = records.input.read(&mut records.buf[records.end..])?;
            records.end += n;
            records.eof = n == 0;
        }
        let first = records.buf[..records.end]
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default();
        let count = |d: u8| first.iter().filter(|b| **b == d).count();
        records.delimiter = [b';', b'\t', b',']
            .into_iter()
            .max_by_key(|d| (count(*d), *d == b','))
            .filter(|d| count(*d) > 0)
            .unwrap_or(b',');
        Ok(records)
    }

    pub fn delimiter(&self) -> u8 {
        self.delimiter
    }

    fn peek(&mut self) -> std::io::Result<Option<u8>> {
        if self.pos == self.end {
            if self.eof {
                return Ok(None);
            }
            self.pos = 0;
            self.end = self.input.read(&mut self.buf)?;
            if self.end == 0 {
                self.eof = true;
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    /// The next record, `None` at the end of the input. Runs of ordinary
    /// bytes are copied a buffer slice at a time.
    fn read_record(&mut self) -> std::io::Result<Option<Result<Record, Unreadable>>> {
        let row = self.row;
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let delimiter = self.delimiter;
        let mut fields: Vec<Vec<u8>> = vec![Vec::new()];
        let mut quoted = false;
        let mut at_cell_start = true;
        loop {
            if self.peek()?.is_none() {
                if quoted {
                    return Ok(Some(Err((
                        row,
                        "a quoted cell that starts in this row never ends (a \" is missing); \
                         everything after it was read as one cell"
                            .into(),
                    ))));
                }
                break;
            }
            let field = fields.last_mut().expect("at least one field");
            let buf = &self.buf[self.pos..self.end];
            let stop = if quoted {
                buf.iter().position(|b| *b == b'"')
            } else {
                buf.iter()
                    .position(|b| matches!(*b, b'"' | b'\r' | b'\n') || *b == delimiter)
            };
            let Some(i) = stop else {
                field.extend_from_slice(buf);
                at_cell_start &= buf.is_empty();
                self.pos = self.end;
                continue;
            };
            field.extend_from_slice(&buf[..i]);
            at_cell_start &= i == 0;
            let b = buf[i];
            self.pos += i + 1;
            match b {
                b'"' if quoted => {
                    // `""` inside quotes is a quote; a lone one closes them.
                    if self.peek()? == Some(b'"') {
                        self.pos += 1;
                        fields.last_mut().expect("at least one field").push(b'"');
                    } else {
                        quoted = false;
                    }
                }
                b'"' if at_cell_start => {
                    quoted = true;
                    at_cell_start = false;
                }
                b'"' => field.push(b'"'),
                b'\r' | b'\n' => {
                    if b == b'\r' && self.peek()? == Some(b'\n') {
                        self.pos += 1;
                    }
                    break;
                }
                _ => {
                    fields.push(Vec::new());
                    at_cell_start = true;
                }
            }
        }
        self.row += 1;
        let fields: Result<Vec<String>, _> = fields.into_iter().map(String::from_utf8).collect();
        Ok(Some(fields.map(|f| (row, f)).map_err(|_| {
            (
                row,
                "is not valid UTF-8; give the file's encoding with --encoding".to_string(),
            )
        })))
    }
}

impl<R: Read> Iterator for Records<R> {
    type Item = std::io::Result<Result<Record, Unreadable>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.read_record().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str) -> Vec<(u64, Vec<String>)> {
        Records::new(text.as_bytes())
            .unwrap()
            .map(|r| r.unwrap().unwrap())
            .collect()
    }

    #[test]
    fn rows_are_numbered_as_spreadsheets_show_them() {
        let expected = |lines: &[u64]| lines.to_vec();
        let numbers = |text: &str| rows(text).into_iter().map(|(n, _)| n).collect::<Vec<u64>>();
        assert_eq!(numbers("a;b\n1;2\n3;4\n"), expected(&[1, 2, 3]));
        assert_eq!(numbers("a;b\r\n1;2\r\n3;4\r\n"), expected(&[1, 2, 3]));
        assert_eq!(numbers("a;b\r1;2\r3;4"), expected(&[1, 2, 3]));
        // A line break inside quotes stays in its row; an empty line is a row.
        assert_eq!(
            numbers("a;b\r\n\"x\r\ny\";2\r\n\r\n3;4\r\n"),
            expected(&[1, 2, 3, 4])
        );
        assert_eq!(rows("a;b\r\n\"x\r\ny\";2\r\n")[1].1, ["x\r\ny", "2"]);
    }

    #[test]
    fn quotes_follow_rfc_4180_and_spreadsheets() {
        let all =
            rows("name,note\n\"Müller, Jürgen\",\"sagt \"\"hallo\"\"\"\nO\"Brien,5\"\n\"\",\n");
        assert_eq!(all[1].1, ["Müller, Jürgen", "sagt \"hallo\""]);
        assert_eq!(all[2].1, ["O\"Brien", "5\""]);
        assert_eq!(all[3].1, ["", ""]);
    }

    #[test]
    fn the_delimiter_is_the_most_frequent_in_the_first_line() {
        let delimiter = |text: &str| Records::new(text.as_bytes()).unwrap().delimiter();
        assert_eq!(delimiter("email;name;tags\n"), b';');
        assert_eq!(delimiter("email,name\n"), b',');
        assert_eq!(delimiter("Vorname\tNachname\tE-Mail\n"), b'\t');
        assert_eq!(delimiter("email\n"), b',');
    }

    /// Hands out one byte per read: every quote, `""` and CRLF falls on a
    /// buffer boundary somewhere.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.split_first() {
                Some((b, rest)) if !buf.is_empty() => {
                    buf[0] = *b;
                    self.0 = rest;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn buffer_boundaries_change_nothing() {
        let text = "a;b;c\r\n\"x\r\ny\";\"sagt \"\"hi\"\"\";O\"B\r\n\r\n;;\r\nlast;\"\";z";
        let whole: Vec<Record> = rows(text);
        let trickled: Vec<Record> = Records::new(Trickle(text.as_bytes()))
            .unwrap()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(whole, trickled);
        assert_eq!(whole.len(), 5);
        assert_eq!(
            whole[1],
            (
                2,
                vec!["x\r\ny".into(), "sagt \"hi\"".into(), "O\"B".into()]
            )
        );
        assert_eq!(whole[4], (5, vec!["last".into(), "".into(), "z".into()]));
    }

    #[test]
    fn an_unclosed_quote_is_reported_at_its_row() {
        let mut records = Records::new("a,b\n1,\"open\n2,3\n".as_bytes()).unwrap();
        assert_eq!(records.next().unwrap().unwrap().unwrap().0, 1);
        let (row, reason) = records.next().unwrap().unwrap().unwrap_err();
        assert_eq!(row, 2);
        assert!(reason.contains("never ends"), "{reason}");
        assert!(records.next().is_none());
    }
}
