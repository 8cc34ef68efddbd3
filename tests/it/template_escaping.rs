//! Values in Markdown templates are text: an imported name or attribute full
//! of Markdown reaches the customer as those characters, in the HTML part as
//! text and in the text part verbatim (wrapped), never as links, images or
//! formatting; the shipped templates' HTML renders exactly as before for
//! ordinary customers. On SQLite and PostgreSQL, through delivery and
//! `preview --html`.

use crate::common;

use common::app::{TestApp, berlin};
use common::mail::Mail;
use common::{Db, backend_test};
use minijinja::{Value, context};
use outreach::config::AddressForm;
use outreach::message::templates::Templates;
use outreach::schedule::start_now;

const POINTS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "points"
kind = "loyalty"
schedule = "0 3 1 1 *"
template = "points"
"#;

/// A name an attacker could put into an import: links, an image, emphasis,
/// code, raw HTML, an entity, and a new line that starts a heading, a list
/// and a quote.
const EVIL_NAME: &str = "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** _kursiv_ `code` <b>x</b> &amp;\n# Titel\n- Punkt\n> Zitat";
/// The name as the import keeps it: a name is one line.
const EVIL_NAME_IMPORTED: &str = "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** _kursiv_ `code` <b>x</b> &amp; # Titel - Punkt > Zitat";
/// A custom attribute: a link, an image, a code span, emphasis.
const EVIL_ATTRIBUTE: &str =
    "[Platin](http://evil.example/p) `30` ![x](http://track.example/q.gif) *x*";

/// The words of a text, whatever lines the text part wrapped them into.
fn words(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn csv_field(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

// ---- reading an email ----

/// The decoded body of the first leaf part of `content_type` in a raw email.
fn part(raw: &str, content_type: &str) -> String {
    Mail::parse(raw).part(content_type).to_string()
}

/// HTML shown as text: tags removed, line breaks and entities undone.
fn as_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.replace("<br />\n", "\n").chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// What a value full of Markdown must never become in an HTML part.
fn assert_no_markup_from_values(html: &str, context: &str) {
    for made in [
        "href=\"http://evil.example",
        "<img",
        "<strong>fett",
        "<em>kursiv",
        "<code>code</code>",
        "<code>30</code>",
        "<h1>",
        "<li>Punkt",
        "<blockquote>",
        "<b>x",
        "\\",
    ] {
        assert!(!html.contains(made), "{context}: `{made}` in {html}");
    }
}

/// The shipped templates plus `profil`, which shows a custom attribute in
/// every Markdown context a template author might put a value in.
fn templates_with_profil(dir: &std::path::Path) -> std::path::PathBuf {
    let templates = dir.join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(common::repo_path("templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, templates.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        templates.join("profil.de.md"),
        "subject: Ihr Profil, {{ customer.name }}\n\
         Hallo {{ customer.name }},\n\n\
         Ihr Stadtteil: **{{ customer.stadtteil }}**, als Code `{{ customer.stadtteil }}`, \
         als Link [{{ customer.stadtteil }}](https://cafe.example/karte).\n\n\
         - Ihre Website: [ansehen]({{ customer.website }}) oder <{{ customer.website }}>\n",
    )
    .unwrap();
    templates
}

backend_test!(a_customer_whose_name_and_attributes_are_markdown_gets_them_as_text_in_both_parts);
async fn a_customer_whose_name_and_attributes_are_markdown_gets_them_as_text_in_both_parts(
    Db { dir, url }: Db,
) {
    let templates = templates_with_profil(dir.path());
    let t = TestApp::with_fragment(
        &url,
        &format!(
            "{POINTS}\n[[campaign]]\nid = \"profil\"\nkind = \"status_update\"\n\
             schedule = \"0 3 1 1 *\"\ntemplate = \"profil\"\n"
        ),
        &format!("[templates]\ndir = \"{}\"\n", templates.display()),
    )
    .await;
    t.import(&format!(
        "external_id,email,name,locale,consent,points,tier,stadtteil,website\n\
         A,anna@example.de,{},de,yes,120,{},{},{}\n\
         B,ben@example.com,{},en,yes,80,Silber,Nippes,https://ben.example/?a=1&b=2\n",
        csv_field(EVIL_NAME),
        csv_field("**Gold**"),
        csv_field(EVIL_ATTRIBUTE),
        csv_field("javascript:alert(1)"),
        csv_field(EVIL_NAME),
    ))
    .await;
    let anna = t.app.store.find_customer("A").await.unwrap().unwrap();
    assert_eq!(
        anna.name.as_deref(),
        Some(EVIL_NAME_IMPORTED),
        "{url}: imported as is, on one line"
    );
    let now = berlin(2026, 11, 23, 12, 0);
    start_now(&t.app, "points", now).await.unwrap();
    start_now(&t.app, "profil", now).await.unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;

    for (address, tier) in [
        ("anna@example.de", "**Gold**"),
        ("ben@example.com", "Silber"),
    ] {
        let mails = t.mails_to(address);
        assert_eq!(mails.len(), 2, "{url}: {address}");
        for mail in &mails {
            let (text, html) = (part(mail, "text/plain"), part(mail, "text/html"));
            let context = format!("{url}: {address}");
            assert_no_markup_from_values(&html, &context);
            let shown = as_text(&html);
            assert!(
                shown.contains(EVIL_NAME_IMPORTED),
                "{context}: shown as text: {shown}"
            );
            assert!(
                words(&text).contains(&words(EVIL_NAME_IMPORTED)),
                "{context}: the text part has the name verbatim: {text}"
            );
            assert!(
                html.contains("<a href=\"http://127.0.0.1:8080/u/"),
                "{context}: the unsubscribe link is a link: {html}"
            );
            if text.contains("Treuekonto") || text.contains("loyalty account") {
                // The template's own Markdown still works.
                assert!(
                    html.contains("<strong>120 Punkte</strong>")
                        || html.contains("<strong>80 points</strong>"),
                    "{context}: {html}"
                );
                assert!(!html.contains("<strong>Gold</strong>"), "{context}: {html}");
                assert!(shown.contains(tier), "{context}: {shown}");
                // The value as it is; the template's own `**` are gone.
                assert!(text.contains(tier), "{context}: {text}");
                assert_eq!(
                    text.matches("**").count(),
                    tier.matches("**").count() + EVIL_NAME.matches("**").count(),
                    "{context}: {text}"
                );
            }
        }
    }
    // The attribute in bold, a code span, link text and a list item.
    let profil = t
        .mails_to("anna@example.de")
        .into_iter()
        .find(|m| part(m, "text/plain").contains("Stadtteil"))
        .unwrap();
    let (text, html) = (part(&profil, "text/plain"), part(&profil, "text/html"));
    assert!(
        words(&text).contains(&words(&format!(
            "Ihr Stadtteil: {EVIL_ATTRIBUTE}, als Code {EVIL_ATTRIBUTE}, als Link {EVIL_ATTRIBUTE}: https://cafe.example/karte."
        ))),
        "{url}: {text}"
    );
    assert_eq!(
        as_text(&html).matches(EVIL_ATTRIBUTE).count(),
        3,
        "{url}: {html}"
    );
    assert!(html.contains("<strong>[Platin]("), "{url}: {html}");
    assert!(
        html.contains("<a href=\"https://cafe.example/karte\">[Platin]("),
        "{url}: {html}"
    );
    // A javascript: link from an attribute is not a link.
    assert!(!html.contains("javascript:alert(1)\""), "{url}: {html}");
    assert!(
        html.contains("&lt;javascript:alert(1)&gt;"),
        "{url}: {html}"
    );
    let ben = t
        .mails_to("ben@example.com")
        .into_iter()
        .find(|m| part(m, "text/plain").contains("Stadtteil"))
        .unwrap();
    let html = part(&ben, "text/html");
    assert!(
        html.contains("<a href=\"https://ben.example/?a=1&amp;b=2\">ansehen</a>"),
        "{url}: a web address from an attribute is a link: {html}"
    );
    assert!(
        html.contains(
            "<a href=\"https://ben.example/?a=1&amp;b=2\">https://ben.example/?a=1&amp;b=2</a>"
        ),
        "{url}: {html}"
    );

    // `preview --html`, where the injection was first seen.
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&t.app.config.path)
        .args(["preview", "points", "--customer", "A", "--html"])
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let preview = common::stdout(&out);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert_no_markup_from_values(&preview, &format!("{url}: preview --html"));
    assert!(
        as_text(&preview).contains(EVIL_NAME_IMPORTED),
        "{url}: {preview}"
    );
    assert!(
        preview.contains("<a href=\"http://127.0.0.1:8080/u/"),
        "{url}: {preview}"
    );
}

// ---- the shipped templates, as the code before values were marked rendered them ----

/// Markdown to HTML as before (raw HTML as text, line breaks kept).
fn old_markdown_to_html(markdown: &str) -> String {
    use pulldown_cmark::{Event, Options, Parser, html};
    let parser =
        Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH).map(|event| match event {
            Event::Html(raw) | Event::InlineHtml(raw) => Event::Text(raw),
            Event::SoftBreak => Event::HardBreak,
            other => other,
        });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

/// The rendering before: values inserted into the Markdown as they are.
struct OldTemplates {
    env: minijinja::Environment<'static>,
}

impl OldTemplates {
    fn load(dir: &std::path::Path) -> OldTemplates {
        let mut env = minijinja::Environment::new();
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let file = path.file_name().unwrap().to_str().unwrap().to_string();
            let source = std::fs::read_to_string(&path).unwrap();
            if file.ends_with(".md") && !file.starts_with('_') {
                let (first, rest) = source.split_once('\n').unwrap();
                let subject = first.strip_prefix("subject:").unwrap().trim().to_string();
                env.add_template_owned(format!("{file}#subject"), subject)
                    .unwrap();
                env.add_template_owned(
                    format!("{file}#body"),
                    rest.trim_start_matches(['\r', '\n']).to_string(),
                )
                .unwrap();
            } else {
                env.add_template_owned(file, source).unwrap();
            }
        }
        OldTemplates { env }
    }

    fn one(&self, name: &str, ctx: &Value) -> String {
        self.env.get_template(name).unwrap().render(ctx).unwrap()
    }

    /// The subject and the HTML (the text part is new: written from the Markdown).
    fn render_plain(&self, name: &str, locale: &str, ctx: &Value) -> (String, String) {
        let file = format!("{name}.{locale}.md");
        let text = self.one(&format!("{file}#body"), ctx);
        (
            self.one(&format!("{file}#subject"), ctx).trim().to_string(),
            old_markdown_to_html(&text),
        )
    }

    fn render_email(&self, name: &str, locale: &str, ctx: &Value) -> (String, String) {
        let (subject, body) = self.render_plain(name, locale, ctx);
        let footer = self.one(&format!("_footer.{locale}.md"), ctx);
        let html = self
            .env
            .get_template("_layout.html")
            .unwrap()
            .render(context! {
                subject => &subject,
                body => Value::from_safe_string(body),
                footer => Value::from_safe_string(old_markdown_to_html(&footer)),
                lang => locale,
                ..ctx.clone()
            })
            .unwrap();
        (subject, html)
    }
}

#[test]
fn the_shipped_templates_render_as_before_for_ordinary_customers() {
    let dir = common::repo_path("templates");
    let new = Templates::load(&dir, "de").unwrap();
    let old = OldTemplates::load(&dir);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
    let mut customers = Vec::new();
    for (name, tier, attributes) in [
        (Some("Erika Musterfrau"), None, None),
        (
            Some("Dr. Anna-Lena Müller-Lüdenscheidt"),
            Some("Gold"),
            Some(("Platin", "30")),
        ),
        (Some("Jane O'Neill (Büro 2.0)"), Some("Silber"), None),
        (None, Some("Gold"), Some(("Platin", "1.250"))),
    ] {
        let mut c = outreach::context::sample_customer("de");
        c.name = name.map(String::from);
        c.tier = tier.map(String::from);
        c.points = 1250;
        c.customer_since = chrono::NaiveDate::from_ymd_opt(2019, 11, 23);
        if let Some((next, missing)) = attributes {
            c.attributes.0.insert("naechste_stufe".into(), next.into());
            c.attributes
                .0
                .insert("punkte_bis_naechste_stufe".into(), missing.into());
        }
        customers.push(c);
    }
    let mut checked = 0;
    for customer in &customers {
        for business in ["Café Linde", "Müller & Söhne – Bäckerei"] {
            let ctx = context! {
                customer => outreach::context::customer_value_on(customer, today),
                // Both renderings get the same opening line; how it is made is tested elsewhere.
                greeting => "Guten Tag,",
                business => context! { name => business, postal_address => "Lindenstraße 3, 50667 Köln" },
                unsubscribe_url => "http://127.0.0.1:8080/u/AAAAAAAAAAE.Zm9vYmFy-_x1Ab",
                run => context! { id => 7, campaign => "news" },
                voucher => context! { code => "DANKE-7K2P", value => "5 € Guthaben", expires => "31.12.2026" },
            };
            for name in [
                "status_update",
                "points",
                "tier_reached",
                "anniversary",
                "birthday",
                "voucher",
                "checkin",
            ] {
                for locale in ["de", "en"] {
                    let greeting =
                        outreach::message::greeting::greeting(customer, locale, AddressForm::Sie);
                    let ctx = context! { greeting => greeting, ..ctx.clone() };
                    let (before, after) = if name == "checkin" {
                        (
                            old.render_plain(name, locale, &ctx),
                            new.render_plain(name, Some(locale), &ctx).unwrap(),
                        )
                    } else {
                        (
                            old.render_email(name, locale, &ctx),
                            new.render_email(name, Some(locale), &ctx).unwrap(),
                        )
                    };
                    let after = (after.subject, after.html);
                    assert_eq!(
                        after, before,
                        "{name}.{locale} for {:?} at {business}",
                        customer.name
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * 2 * 7 * 2);
    // The comparison is about something: the unsubscribe link is a link.
    let ctx = context! {
        customer => outreach::context::customer_value_on(&customers[0], today),
        greeting => "Guten Tag,",
        business => context! { name => "Café Linde", postal_address => "Lindenstraße 3" },
        unsubscribe_url => "http://127.0.0.1:8080/u/AAAAAAAAAAE.Zm9vYmFy-_x1Ab",
        run => context! { id => 7, campaign => "news" },
    };
    let r = new.render_email("status_update", Some("de"), &ctx).unwrap();
    assert!(
        r.html.contains(
            "<a href=\"http://127.0.0.1:8080/u/AAAAAAAAAAE.Zm9vYmFy-_x1Ab\">Keine E-Mails mehr erhalten</a>"
        ),
        "{}",
        r.html
    );
    assert!(
        r.html
            .contains("<strong>Was geöffnet ist:</strong> Dienstag bis Samstag"),
        "{}",
        r.html
    );
}
