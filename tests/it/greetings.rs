//! Mail greets customers as the business would: "Liebe Frau Schäfer," with
//! "Sie", "Hallo Jürgen," with "du", "Guten Tag," for a company or when no
//! name is known — and the English equivalents — in the shipped templates.

use crate::common;

use common::{Env, stderr, stdout};

const NEWS: &str = r#"
[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 9 * * Mon"
template = "status_update"
"#;

const LIST: &str = "Kundennummer;Anrede;Vorname;Nachname;Firma;E-Mail;Sprache;Newsletter\n\
    1;Frau;Erika;Schäfer;;erika@example.de;Deutsch;ja\n\
    2;Herr;Jürgen;Müller;Zweirad Kölsch GmbH;info@zweirad.example;de;ja\n\
    3;;;;;jemand@example.de;de;ja\n\
    4;Mrs;Mary;Smith;;mary@example.com;English;ja\n";

/// The text part of `preview news` for a customer (or the sample), under
/// `address_form`.
fn opening(env: &Env, customer: Option<&str>, address_form: &str) -> String {
    let mut args = vec!["preview", "news"];
    if let Some(c) = customer {
        args.extend(["--customer", c]);
    }
    let out = env
        .command(&args)
        .env("OUTREACH__BUSINESS__ADDRESS_FORM", address_form)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let body = text.split("\n\n").nth(1).unwrap_or_default();
    body.lines().next().unwrap_or_default().to_string()
}

#[test]
fn the_shipped_templates_open_with_the_greeting_for_each_customer() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, NEWS);
    let list = env.write("kunden.csv", LIST);
    let out = env.run(&["import", "customers", list.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stdout(&out));
    for (customer, sie, du) in [
        ("1", "Liebe Frau Schäfer,", "Hallo Erika,"),
        ("2", "Guten Tag,", "Guten Tag,"),
        ("3", "Guten Tag,", "Guten Tag,"),
        ("4", "Dear Ms Smith,", "Hello Mary,"),
    ] {
        assert_eq!(
            opening(&env, Some(customer), "Sie"),
            sie,
            "customer {customer}"
        );
        assert_eq!(
            opening(&env, Some(customer), "du"),
            du,
            "customer {customer}"
        );
    }
    // The sample customer of `preview` and `check`.
    assert_eq!(opening(&env, None, "Sie"), "Liebe Frau Musterfrau,");
    let check = env.run(&["check"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let bad = env
        .command(&["check"])
        .env("OUTREACH__BUSINESS__ADDRESS_FORM", "ihr")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("address_form"), "{}", stderr(&bad));
}
