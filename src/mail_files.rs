//! The `.eml` files of the file transport (`mail.file_dir`): written private
//! to the service user whatever the umask (they hold customers' addresses
//! and what was written to them), found again by recipient when a person is
//! forgotten, and deleted by age ([`crate::retention`]).

use std::fs::{DirBuilder, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::SystemTime;

use anyhow::{Context, Result};

/// Creates the folder (and missing parents) as 0700.
pub fn create_folder(dir: &Path) -> std::io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Writes one message as `<random id>.eml`, mode 0600; returns the id.
pub fn write(dir: &Path, message: &[u8]) -> std::io::Result<String> {
    let id = format!("{:032x}", rand::random::<u128>());
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(format!("{id}.eml")))?;
    file.write_all(message)?;
    Ok(id)
}

/// `.eml` files directly in `dir` (none if it does not exist).
fn eml_files(dir: &Path) -> Result<Vec<std::fs::DirEntry>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(e)
                .with_context(|| format!("cannot read the outbox folder {}", dir.display()));
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry =
            entry.with_context(|| format!("cannot read the outbox folder {}", dir.display()))?;
        if entry.path().extension().is_some_and(|e| e == "eml") {
            files.push(entry);
        }
    }
    Ok(files)
}

/// The recipients' header (`To:` with its continuation lines) of an `.eml`,
/// lower-cased; reads no further than the end of the header.
fn recipients(path: &Path) -> std::io::Result<String> {
    // A header is at most a few kilobytes; this bounds a damaged file.
    let mut reader = BufReader::new(std::fs::File::open(path)?.take(256 * 1024));
    let (mut to, mut in_to, mut line) = (String::new(), false, Vec::new());
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            break;
        }
        if text.starts_with([' ', '\t']) {
            if in_to {
                to.push_str(text);
            }
            continue;
        }
        in_to = text.len() >= 3 && text[..3].eq_ignore_ascii_case("to:");
        if in_to {
            to.push_str(&text[3..]);
        }
    }
    Ok(to.to_lowercase())
}

/// Whether `header` names `address` as a whole address (so that
/// `anna@example.de` does not match `hanna@example.de`).
fn names_address(header: &str, address: &str) -> bool {
    let is_part = |c: char| c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.@".contains(c);
    header.match_indices(address).any(|(at, _)| {
        let before = header[..at].chars().next_back();
        let after = header[at + address.len()..].chars().next();
        !before.is_some_and(is_part) && !after.is_some_and(is_part)
    })
}

/// Deletes the files addressed to `address` (lower-case); returns how many.
pub fn delete_addressed_to(dir: &Path, address: &str) -> Result<usize> {
    let mut deleted = 0;
    for entry in eml_files(dir)? {
        let path = entry.path();
        let to = recipients(&path).with_context(|| format!("cannot read {}", path.display()))?;
        if names_address(&to, address) {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Deletes the files last written before `before`; returns how many.
pub fn delete_older_than(dir: &Path, before: SystemTime) -> Result<usize> {
    let mut deleted = 0;
    for entry in eml_files(dir)? {
        let path = entry.path();
        let written = entry
            .metadata()
            .and_then(|m| m.modified())
            .with_context(|| format!("cannot read the age of {}", path.display()))?;
        if written < before {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot delete {}", path.display()))?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_matches_only_as_a_whole_address() {
        let header = " =?utf-8?q?anna_beck?= <anna@example.de>, bob@example.de";
        assert!(names_address(header, "anna@example.de"));
        assert!(names_address(header, "bob@example.de"));
        assert!(!names_address(header, "nna@example.de"));
        assert!(!names_address(" hanna@example.de", "anna@example.de"));
        assert!(!names_address(" anna@example.de.com", "anna@example.de"));
    }

    #[test]
    fn the_recipient_header_is_read_with_its_folded_lines_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.eml");
        std::fs::write(
            &path,
            "From: shop@example.de\r\nTo: Anna <anna@example.de>,\r\n bob@example.de\r\nSubject: to: carl@example.de\r\n\r\nTo: dora@example.de\r\n",
        )
        .unwrap();
        let to = recipients(&path).unwrap();
        assert!(to.contains("anna@example.de") && to.contains("bob@example.de"));
        assert!(!to.contains("carl") && !to.contains("dora"));
    }
}
