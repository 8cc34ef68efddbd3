//! Secrets read from files (`*_file` keys, systemd credentials).
//!
//! A [`Secret`] never prints its content: `Debug` and `Display` show a
//! placeholder, so a secret cannot end up in a log line by accident.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Reads a secret file. A relative path is looked up in systemd's
    /// `$CREDENTIALS_DIRECTORY` first (so `password_file = "smtp-password"`
    /// works with `LoadCredential=smtp-password:…`), then as given.
    /// Trailing newlines are removed; an empty file is an error.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let candidate = resolve(path);
        let mut bytes = std::fs::read(&candidate)
            .map_err(|e| format!("cannot read secret file {}: {e}", candidate.display()))?;
        while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            bytes.pop();
        }
        if bytes.is_empty() {
            return Err(format!("secret file {} is empty", candidate.display()));
        }
        Ok(Secret(bytes))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn expose_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.0)
    }
}

/// Why a secret file is too open, if group or others may read or write it
/// (e.g. a key file created under the usual umask 022: 0644).
pub fn readable_by_others(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let candidate = resolve(path);
    let mode = std::fs::metadata(&candidate).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        format!(
            "secret file {} has mode {mode:04o}: other users can read it; `chmod 600` it \
             (or hand it over with systemd's LoadCredential=)",
            candidate.display()
        )
    })
}

fn resolve(path: &Path) -> PathBuf {
    if path.is_relative()
        && let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY")
    {
        let in_credentials = Path::new(&dir).join(path);
        if in_credentials.exists() {
            return in_credentials;
        }
    }
    path.to_path_buf()
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_trimmed_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        let secret = Secret::from_file(&path).unwrap();
        assert_eq!(secret.expose(), b"hunter2");
        assert!(!format!("{secret:?}").contains("hunter2"));
    }

    #[test]
    fn secret_files_others_can_read_are_named() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "k").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(readable_by_others(&path).unwrap().contains("0644"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(readable_by_others(&path), None);
    }

    #[test]
    fn missing_and_empty_secret_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Secret::from_file(&dir.path().join("nope"))
                .unwrap_err()
                .contains("cannot read")
        );
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        assert!(
            Secret::from_file(&dir.path().join("empty"))
                .unwrap_err()
                .contains("empty")
        );
    }
}
