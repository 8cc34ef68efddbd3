//! Which language a reader gets. One rule for every text the daemon writes —
//! customer emails, voucher values, staff pages, digests, approval requests:
//! the reader's own language when the text exists in it, else the business
//! language (`business.locale`), which every text must exist in.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The language `reader` gets: theirs when `exists` says there is text in
/// it, else the business's.
pub fn reader_locale<'a>(
    reader: Option<&'a str>,
    business: &'a str,
    exists: impl Fn(&str) -> bool,
) -> &'a str {
    reader.filter(|l| exists(l)).unwrap_or(business)
}

/// A text from the config that may be written once or per language:
/// `value = "10 € auf Ihren nächsten Besuch"` or
/// `value = { de = "10 € auf Ihren nächsten Besuch", en = "€10 off your next visit" }`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum LocalText {
    Same(String),
    PerLocale(BTreeMap<String, String>),
}

impl LocalText {
    /// The text in `locale`, by [`reader_locale`].
    pub fn get(&self, locale: Option<&str>, business: &str) -> &str {
        match self {
            LocalText::Same(text) => text,
            LocalText::PerLocale(texts) => {
                let chosen = reader_locale(locale, business, |l| texts.contains_key(l));
                texts.get(chosen).map(String::as_str).unwrap_or_default()
            }
        }
    }

    /// Why this text cannot serve every reader, if it cannot: a per-language
    /// text needs the business language, the one everybody falls back to.
    pub fn missing(&self, business: &str) -> Option<String> {
        match self {
            LocalText::PerLocale(texts) if !texts.contains_key(business) => Some(format!(
                "has no text for the business language \"{business}\"; add `{business} = \"…\"` (readers of other languages get that one)"
            )),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reader_gets_their_language_when_it_exists_else_the_business_language() {
        let exists = |l: &str| l == "de" || l == "en";
        assert_eq!(reader_locale(Some("en"), "de", exists), "en");
        assert_eq!(reader_locale(Some("fr"), "de", exists), "de");
        assert_eq!(reader_locale(None, "en", exists), "en");
        let value: LocalText =
            toml::from_str::<toml::Table>("v = { de = \"10 € Gutschein\", en = \"€10 voucher\" }")
                .unwrap()["v"]
                .clone()
                .try_into()
                .unwrap();
        assert_eq!(value.get(Some("en"), "de"), "€10 voucher");
        assert_eq!(value.get(Some("tr"), "de"), "10 € Gutschein");
        assert_eq!(value.missing("de"), None);
        assert!(value.missing("fr").unwrap().contains("fr = "));
        assert_eq!(LocalText::Same("x".into()).get(Some("en"), "de"), "x");
    }
}
