//! The opening line of a customer email, as the business would write it by
//! hand: "Liebe Frau Schäfer," with "Sie", "Hallo Jürgen," with "du", and
//! "Guten Tag," when the email goes to a company or no name is known.
//!
//! Templates get it ready as `{{ greeting }}`, so the rules of German
//! forms of address live here once instead of in every template. A
//! salutation greeting needs the last name on its own: a customer known only
//! by a whole `name` is greeted with it ("Guten Tag Jürgen Müller,"), never
//! with a guess at which part is the last name.

use crate::config::AddressForm;
use crate::domain::{Customer, Salutation};

/// The greeting line for `customer` in `locale` (the language of the
/// template being rendered): German for `de`, English for every other.
pub fn greeting(customer: &Customer, locale: &str, form: AddressForm) -> String {
    let known = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let first = known(&customer.first_name);
    let last = known(&customer.last_name);
    let whole = match (&first, &last) {
        (Some(f), Some(l)) => Some(format!("{f} {l}")),
        (f, l) => f.clone().or(l.clone()).or_else(|| known(&customer.name)),
    };
    let german = locale == "de";
    if customer.is_business || customer.salutation == Some(Salutation::Company) {
        return if german { "Guten Tag," } else { "Hello," }.into();
    }
    // "Liebe Frau Schäfer," / "Dear Ms Schäfer,": with "du" only when the
    // first name is not known.
    let by_salutation = last.as_ref().and_then(|last| {
        Some(match (customer.salutation?, german) {
            (Salutation::Ms, true) => format!("Liebe Frau {last},"),
            (Salutation::Mr, true) => format!("Lieber Herr {last},"),
            (Salutation::Family, true) => format!("Liebe Familie {last},"),
            (Salutation::Ms, false) => format!("Dear Ms {last},"),
            (Salutation::Mr, false) => format!("Dear Mr {last},"),
            (Salutation::Family, false) => format!("Dear {last} family,"),
            (Salutation::Company, _) => return None,
        })
    });
    let informal = form == AddressForm::Du;
    match (first, by_salutation, whole) {
        (Some(first), _, _) if informal => format!("{} {first},", hello(german)),
        (_, Some(line), _) => line,
        (_, None, Some(name)) if informal => format!("{} {name},", hello(german)),
        (_, None, Some(name)) if german => format!("Guten Tag {name},"),
        (_, None, Some(name)) => format!("Dear {name},"),
        (_, None, None) if german => "Guten Tag,".into(),
        (_, None, None) => "Hello,".into(),
    }
}

fn hello(german: bool) -> &'static str {
    if german { "Hallo" } else { "Hello" }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(
        salutation: Option<Salutation>,
        first: Option<&str>,
        last: Option<&str>,
        name: Option<&str>,
    ) -> Customer {
        Customer {
            salutation,
            first_name: first.map(String::from),
            last_name: last.map(String::from),
            name: name.map(String::from),
            ..Customer::default()
        }
    }

    #[test]
    fn german_with_sie_uses_salutation_and_last_name() {
        let sie = AddressForm::Sie;
        let ms = customer(Some(Salutation::Ms), Some("Erika"), Some("Schäfer"), None);
        let mr = customer(Some(Salutation::Mr), Some("Jürgen"), Some("Müller"), None);
        let family = customer(Some(Salutation::Family), None, Some("Yılmaz"), None);
        assert_eq!(greeting(&ms, "de", sie), "Liebe Frau Schäfer,");
        assert_eq!(greeting(&mr, "de", sie), "Lieber Herr Müller,");
        assert_eq!(greeting(&family, "de", sie), "Liebe Familie Yılmaz,");
        // No salutation, or no separate last name: the name, without a guess.
        let plain = customer(None, Some("Kim"), Some("Schäfer"), None);
        assert_eq!(greeting(&plain, "de", sie), "Guten Tag Kim Schäfer,");
        let legacy = customer(Some(Salutation::Ms), None, None, Some("Erika Schäfer"));
        assert_eq!(greeting(&legacy, "de", sie), "Guten Tag Erika Schäfer,");
        assert_eq!(greeting(&Customer::default(), "de", sie), "Guten Tag,");
    }

    #[test]
    fn german_with_du_uses_the_first_name() {
        let du = AddressForm::Du;
        let mr = customer(Some(Salutation::Mr), Some("Jürgen"), Some("Müller"), None);
        assert_eq!(greeting(&mr, "de", du), "Hallo Jürgen,");
        let no_first = customer(Some(Salutation::Ms), None, Some("Schäfer"), None);
        assert_eq!(greeting(&no_first, "de", du), "Liebe Frau Schäfer,");
        let legacy = customer(None, None, None, Some("Jürgen Müller"));
        assert_eq!(greeting(&legacy, "de", du), "Hallo Jürgen Müller,");
        assert_eq!(greeting(&Customer::default(), "de", du), "Guten Tag,");
    }

    #[test]
    fn businesses_get_a_neutral_greeting() {
        let mut firm = customer(Some(Salutation::Mr), Some("Jürgen"), Some("Müller"), None);
        firm.is_business = true;
        for form in [AddressForm::Sie, AddressForm::Du] {
            assert_eq!(greeting(&firm, "de", form), "Guten Tag,");
            assert_eq!(greeting(&firm, "en", form), "Hello,");
        }
        let by_salutation = customer(Some(Salutation::Company), None, Some("Kölsch"), None);
        assert_eq!(
            greeting(&by_salutation, "de", AddressForm::Sie),
            "Guten Tag,"
        );
    }

    #[test]
    fn english_equivalents() {
        let ms = customer(Some(Salutation::Ms), Some("Erika"), Some("Schäfer"), None);
        assert_eq!(greeting(&ms, "en", AddressForm::Sie), "Dear Ms Schäfer,");
        assert_eq!(greeting(&ms, "en", AddressForm::Du), "Hello Erika,");
        let family = customer(Some(Salutation::Family), None, Some("Wong"), None);
        assert_eq!(
            greeting(&family, "en", AddressForm::Sie),
            "Dear Wong family,"
        );
        let plain = customer(None, None, None, Some("David Wong"));
        assert_eq!(greeting(&plain, "en", AddressForm::Sie), "Dear David Wong,");
        assert_eq!(
            greeting(&Customer::default(), "en", AddressForm::Sie),
            "Hello,"
        );
        assert_eq!(
            greeting(&Customer::default(), "fr", AddressForm::Du),
            "Hello,"
        );
    }
}
