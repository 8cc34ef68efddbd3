//! Email addresses as the product stores and compares them.

use std::fmt;

/// A syntactically valid email address, trimmed and lower-cased (mail
/// providers treat addresses case-insensitively; one customer, one key).
///
/// Can only be made through [`Email::parse`], so a value of this type is
/// always something lettre will accept as a recipient.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err("email is empty".into());
        }
        let (local, domain) = trimmed
            .rsplit_once('@')
            .ok_or_else(|| format!("`{trimmed}` is not an email address (no @)"))?;
        let normalized = format!("{local}@{domain}").to_lowercase();
        normalized
            .parse::<lettre::Address>()
            .map_err(|_| format!("`{trimmed}` is not a valid email address"))?;
        if !domain.contains('.') {
            return Err(format!("`{trimmed}` has no top-level domain after the @"));
        }
        Ok(Email(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key used to recognise a forgotten address without storing it.
    pub fn suppression_key(&self) -> String {
        format!("email:{}", crate::domain::sha256_hex(&self.0))
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_addresses_are_trimmed_and_lowercased() {
        let email = Email::parse("  Anna.Beck@Example.DE ").unwrap();
        assert_eq!(email.as_str(), "anna.beck@example.de");
    }

    #[test]
    fn invalid_addresses_are_rejected_with_the_reason() {
        assert!(Email::parse("").unwrap_err().contains("empty"));
        assert!(
            Email::parse("anna.example.de")
                .unwrap_err()
                .contains("no @")
        );
        assert!(
            Email::parse("anna@localhost")
                .unwrap_err()
                .contains("top-level")
        );
        assert!(Email::parse("an na@example.de").is_err());
    }

    #[test]
    fn suppression_key_ignores_case() {
        let a = Email::parse("Anna@example.de").unwrap();
        let b = Email::parse("anna@EXAMPLE.de").unwrap();
        assert_eq!(a.suppression_key(), b.suppression_key());
    }
}
