//! Message templates: one Markdown file per template and locale, rendered
//! into a subject, a plain-text body and an HTML body.
//!
//! File layout in `templates.dir`:
//! - `<name>.<locale>.md`: first line `subject: …`, then the body in Markdown;
//!   both are minijinja templates;
//! - `_footer.<locale>.md`: appended to every customer email (business name,
//!   postal address, unsubscribe link and the right to object);
//! - `_layout.html`: the HTML frame around the rendered body and footer.
//!
//! A customer's locale falls back to the business locale. Undefined variables
//! are errors (strict mode), so a typo never sends a mail with a hole in it.
//! Values are inserted into Markdown and the Markdown's raw HTML is escaped,
//! so a customer name can never inject markup into the HTML part.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value, context};
use pulldown_cmark::{Event, Options, Parser, html};

const LAYOUT: &str = "_layout.html";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// All templates of one folder, parsed; rebuilt on reload.
pub struct Templates {
    dir: PathBuf,
    default_locale: String,
    env: Environment<'static>,
    /// Raw source per file name, for hashing (freshness guard).
    sources: BTreeMap<String, String>,
}

impl Templates {
    /// Reads and compiles every template file; errors name the file.
    pub fn load(dir: &Path, default_locale: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        let mut sources = BTreeMap::new();
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("templates.dir: cannot read {}", dir.display()))?;
        for entry in entries {
            let path = entry?.path();
            let Some(file) = path
                .file_name()
                .and_then(|f| f.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if !(file.ends_with(".md") || file == LAYOUT) {
                continue;
            }
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if file.ends_with(".md") && !file.starts_with('_') {
                let (subject, body) = split_subject(&source)
                    .map_err(|e| anyhow!("{}: line 1: {e}", path.display()))?;
                env.add_template_owned(format!("{file}#subject"), subject.to_string())
                    .map_err(|e| anyhow!("{}: line 1: {e}", path.display()))?;
                env.add_template_owned(format!("{file}#body"), body.to_string())
                    .map_err(|e| anyhow!("{}: {}", path.display(), describe(&e)))?;
            } else {
                env.add_template_owned(file.clone(), source.clone())
                    .map_err(|e| anyhow!("{}: {}", path.display(), describe(&e)))?;
            }
            sources.insert(file, source);
        }
        if !sources.contains_key(LAYOUT) {
            bail!(
                "{}: missing; every HTML email is framed by it",
                dir.join(LAYOUT).display()
            );
        }
        Ok(Templates {
            dir: dir.to_path_buf(),
            default_locale: default_locale.to_string(),
            env,
            sources,
        })
    }

    /// The file used for `name` in `locale`, falling back to the default locale.
    fn file_for(&self, name: &str, locale: Option<&str>) -> Result<String> {
        let candidates = locale
            .into_iter()
            .chain(std::iter::once(self.default_locale.as_str()));
        for l in candidates {
            let file = format!("{name}.{l}.md");
            if self.sources.contains_key(&file) {
                return Ok(file);
            }
        }
        Err(anyhow!(
            "no template {name}.{}.md in {}",
            self.default_locale,
            self.dir.display()
        ))
    }

    /// Locales a template exists in.
    pub fn locales(&self, name: &str) -> Vec<String> {
        self.sources
            .keys()
            .filter_map(|f| {
                f.strip_prefix(&format!("{name}."))
                    .and_then(|r| r.strip_suffix(".md"))
                    .map(String::from)
            })
            .collect()
    }

    /// A fingerprint of a template's sources in all locales (for "the text did not change").
    pub fn fingerprint(&self, name: &str) -> String {
        let joined: String = self
            .locales(name)
            .iter()
            .map(|l| self.sources[&format!("{name}.{l}.md")].as_str())
            .collect::<Vec<_>>()
            .join("\u{0}");
        crate::domain::sha256_hex(&joined)
    }

    /// Renders a staff-facing text (talking points): subject and body, no footer.
    pub fn render_plain(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let file = self.file_for(name, locale)?;
        let subject = self
            .render_one(&format!("{file}#subject"), ctx)?
            .trim()
            .to_string();
        let body = self.render_one(&format!("{file}#body"), ctx)?;
        let html = markdown_to_html(&body);
        Ok(Rendered {
            subject,
            text: body,
            html,
        })
    }

    /// Renders a customer email: the template's body plus the locale's footer,
    /// as text and as HTML inside the layout. `ctx` must hold `unsubscribe_url`.
    pub fn render_email(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let body = self.render_plain(name, locale, ctx)?;
        let footer_file = self.file_for("_footer", locale)?;
        let footer = self.render_one(&footer_file, ctx)?;
        let text = format!("{}\n\n-- \n{}", body.text.trim_end(), footer.trim_end());
        let layout = self.env.get_template(LAYOUT)?;
        let html = layout
            .render(context! {
                subject => &body.subject,
                body => Value::from_safe_string(body.html),
                footer => Value::from_safe_string(markdown_to_html(&footer)),
                lang => locale.unwrap_or(&self.default_locale),
                ..ctx.clone()
            })
            .map_err(|e| anyhow!("{}: {}", self.dir.join(LAYOUT).display(), describe(&e)))?;
        Ok(Rendered {
            subject: body.subject,
            text: format!("{text}\n"),
            html,
        })
    }

    fn render_one(&self, name: &str, ctx: &Value) -> Result<String> {
        let file = name.split('#').next().unwrap_or(name);
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| anyhow!("{}: {}", self.dir.join(file).display(), describe(&e)))
    }
}

/// `subject: …` on the first line, the body after it.
fn split_subject(source: &str) -> Result<(&str, &str), String> {
    let (first, rest) = source.split_once('\n').unwrap_or((source, ""));
    let subject = first
        .trim_start_matches('\u{feff}')
        .strip_prefix("subject:")
        .ok_or("the first line must be `subject: …` (the email's subject)")?;
    Ok((subject.trim(), rest.trim_start_matches(['\r', '\n'])))
}

/// minijinja errors with their line, e.g. "line 3: undefined value (in …)".
fn describe(e: &minijinja::Error) -> String {
    let mut text = match e.line() {
        Some(line) => format!("line {line}: {}", e.kind()),
        None => e.kind().to_string(),
    };
    if let Some(detail) = e.detail() {
        text.push_str(": ");
        text.push_str(detail);
    }
    if e.kind() == minijinja::ErrorKind::UndefinedError {
        text.push_str(" (a variable or field that does not exist; check its spelling)");
    }
    text
}

/// Text made safe to put into HTML, in element content and in quoted attributes.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown to HTML with any raw HTML shown as text, never interpreted.
pub fn markdown_to_html(markdown: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_markdown_is_escaped() {
        let html = markdown_to_html("Hallo <script>alert(1)</script> **Anna**");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<strong>Anna</strong>"), "{html}");
    }

    #[test]
    fn the_subject_line_is_required() {
        assert_eq!(
            split_subject("subject: Hallo\n\nText").unwrap(),
            ("Hallo", "Text")
        );
        assert!(split_subject("Hallo\nText").is_err());
    }
}
