//! The shipped templates read right, in both languages and as plain text:
//! English sentences after the greeting start with a capital letter, German
//! ones do not bend the business's name into a case it cannot take ("im
//! Bäckerei Kornblume"), and the text part is text — no Markdown markers,
//! links written out, lines wrapped near 76 characters.

use crate::common;

use minijinja::context;
use outreach::message::templates::Templates;

const EMAILS: [&str; 6] = [
    "status_update",
    "points",
    "tier_reached",
    "anniversary",
    "birthday",
    "voucher",
];

/// Every shipped customer email, rendered for a customer with and without a
/// name at a business whose name takes no article.
fn rendered() -> Vec<(String, outreach::message::templates::Rendered)> {
    let templates = Templates::load(&common::repo_path("templates"), "de").unwrap();
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let mut out = Vec::new();
    for name in [Some("Anna Becker"), None] {
        for locale in ["de", "en"] {
            let mut customer = outreach::context::sample_customer(locale);
            customer.name = name.map(String::from);
            customer.customer_since = chrono::NaiveDate::from_ymd_opt(2019, 11, 23);
            customer.tier = Some("Gold".into());
            let ctx = context! {
                customer => outreach::context::customer_value_on(&customer, today),
                greeting => outreach::message::greeting::greeting(&customer, locale, outreach::config::AddressForm::Sie),
                business => context! { name => "Bäckerei Kornblume", postal_address => "Hauptstraße 1, 50667 Köln" },
                unsubscribe_url => "https://kornblume.example/u/AAAAAAAAAAE.Zm9vYmFy-_x1Ab",
                run => context! { id => 7, campaign => "news" },
                voucher => context! { code => "KORN-7K2P", value => "10 €", expires => "31.12.2026" },
            };
            for template in EMAILS {
                let r = templates
                    .render_email(template, Some(locale), &ctx)
                    .unwrap();
                out.push((format!("{template}.{locale} ({name:?})"), r));
            }
        }
    }
    out
}

#[test]
fn english_sentences_after_the_greeting_start_with_a_capital_and_german_ones_fit_any_business_name()
{
    for (what, r) in rendered() {
        let mut lines = r.text.lines();
        let greeting = lines.next().unwrap();
        assert_eq!(
            lines.next(),
            Some(""),
            "{what}: a blank line after the greeting"
        );
        let first = lines.next().unwrap().chars().next().unwrap();
        if r.locale == "en" {
            assert!(greeting.starts_with("Dear"), "{what}: {greeting}");
            assert!(
                first.is_uppercase(),
                "{what}: `{first}` after the greeting:\n{}",
                r.text
            );
        }
        for broken in [
            "im Bäckerei",
            "vom Bäckerei",
            "zum Bäckerei",
            "beim Bäckerei",
        ] {
            assert!(
                !r.subject.contains(broken) && !r.text.contains(broken),
                "{what}: `{broken}`: {}\n{}",
                r.subject,
                r.text
            );
        }
    }
}

#[test]
fn the_text_part_is_plain_text_with_links_written_out_and_lines_near_76_characters() {
    for (what, r) in rendered() {
        let text = &r.text;
        for marker in ["**", "](", "[Keine", "[Stop", "__"] {
            assert!(!text.contains(marker), "{what}: `{marker}` in\n{text}");
        }
        for line in text.lines() {
            // A link longer than a line keeps its own line.
            let is_link = line.starts_with("https://") && !line.contains(' ');
            assert!(
                line.chars().count() <= 76 || is_link,
                "{what}: {} characters: {line:?}",
                line.chars().count()
            );
        }
        let unsubscribe = if r.locale == "de" {
            "Keine E-Mails mehr erhalten:"
        } else {
            "Stop these emails:"
        };
        let flat = text.replace('\n', " ");
        assert!(
            flat.contains(&format!(
                "{unsubscribe} https://kornblume.example/u/AAAAAAAAAAE.Zm9vYmFy-_x1Ab"
            )),
            "{what}: the unsubscribe link written out:\n{text}"
        );
        assert!(text.contains("\n-- \n"), "{what}: the signature separator");
    }
}
