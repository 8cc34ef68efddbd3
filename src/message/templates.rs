//! Templates: what customers and staff read, one file per text and locale.
//!
//! File layout in `templates.dir`:
//! - `<name>.<locale>.md`: an email (or talking points): first line
//!   `subject: …`, then the body in Markdown; both are minijinja templates.
//!   The HTML part is the Markdown as HTML; the text part is the same
//!   Markdown as plain text (see [`crate::message::plain_text`]);
//! - `_footer.<locale>.md`: appended to every customer email (business name,
//!   postal address, unsubscribe link and the right to object);
//! - `_layout.html`: the HTML frame around a customer email's body and footer;
//! - `<name>.<locale>.html`: a web page (task, approval, unsubscribe, error),
//!   framed by `_page.html`.
//!
//! The staff-facing texts (pages, digest, approval request, escalation,
//! notices, talking points for callbacks and follow-ups) are built in: a
//! file of the same name in `templates.dir` replaces the built-in one, so an
//! admin adjusts their wording the way they adjust a customer email.
//!
//! Every reader gets one language, by one rule ([`crate::domain::reader_locale`]):
//! theirs when the template exists in it, else the business locale.
//! Undefined variables are errors (strict mode), so a typo never sends a mail
//! with a hole in it.
//!
//! Values are text, never Markdown. A `.md` template is rendered once; a
//! formatter wraps every value it prints in private-use marks (`OPEN` …
//! `CLOSE`). Each marked value is swapped for a placeholder of private-use
//! characters, which no Markdown rule reacts to, the Markdown is parsed, and
//! only then is each placeholder replaced by its value in whatever the
//! template author's Markdown made of that spot: text, link text, code,
//! a link destination. So a value can never open a link, image, emphasis,
//! heading, list or code span, whatever characters it holds, and there is no
//! escaping to get wrong (backslash escapes would not work in code spans and
//! autolinks). Raw HTML in the Markdown is shown as text. See
//! `markdown_html` for the details per context. A [`Fragment`] (content the
//! program rendered before, such as talking points or the sample inside an
//! approval request) goes in as a block: its HTML in the HTML part, its text
//! in the text part.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use minijinja::value::{Object, ObjectRepr};
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value, context};
use pulldown_cmark::{CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

use crate::domain::reader_locale;

const LAYOUT: &str = "_layout.html";
/// The frame of staff emails (digest, approval request, escalation, notices).
const STAFF_LAYOUT: &str = "_staff_layout.html";

/// Work one rendering may do (minijinja's fuel: about one unit per
/// instruction, plus the data it makes). The shipped templates need a few
/// thousand; the limit stops a runaway loop in a template within
/// milliseconds instead of holding `check` or a delivery worker forever.
const TEMPLATE_FUEL: u64 = 500_000;

/// Starts a value in rendered Markdown (and a placeholder in the Markdown parsed for HTML).
const OPEN: char = '\u{E000}';
/// Ends a value, a fragment or a placeholder.
const CLOSE: char = '\u{E001}';
/// Starts a fragment in rendered Markdown (its text, [`FRAGMENT_HTML`], its
/// HTML, [`CLOSE`]) and a fragment's placeholder in the Markdown parsed.
const FRAGMENT: char = '\u{E002}';
/// Separates a fragment's text from its HTML.
const FRAGMENT_HTML: char = '\u{E003}';
/// Placeholder digits: the value's index in hex, as U+E010..=U+E01F.
const DIGIT_0: u32 = 0xE010;
/// The escape mode of Markdown templates, handled by [`format_value`].
const MARKDOWN: &str = "markdown";

/// The staff-facing templates every installation has; a file of the same
/// name in `templates.dir` takes the place of the built-in one.
const BUILT_IN: &[(&str, &str)] = &[
    ("_page.html", include_str!("../../templates/_page.html")),
    (
        "_staff_layout.html",
        include_str!("../../templates/_staff_layout.html"),
    ),
    (
        "_labels.de.html",
        include_str!("../../templates/_labels.de.html"),
    ),
    (
        "_labels.en.html",
        include_str!("../../templates/_labels.en.html"),
    ),
    (
        "task_page.de.html",
        include_str!("../../templates/task_page.de.html"),
    ),
    (
        "task_page.en.html",
        include_str!("../../templates/task_page.en.html"),
    ),
    (
        "approval_page.de.html",
        include_str!("../../templates/approval_page.de.html"),
    ),
    (
        "approval_page.en.html",
        include_str!("../../templates/approval_page.en.html"),
    ),
    (
        "unsubscribe_page.de.html",
        include_str!("../../templates/unsubscribe_page.de.html"),
    ),
    (
        "unsubscribe_page.en.html",
        include_str!("../../templates/unsubscribe_page.en.html"),
    ),
    (
        "signup_page.de.html",
        include_str!("../../templates/signup_page.de.html"),
    ),
    (
        "signup_page.en.html",
        include_str!("../../templates/signup_page.en.html"),
    ),
    (
        "confirm_page.de.html",
        include_str!("../../templates/confirm_page.de.html"),
    ),
    (
        "confirm_page.en.html",
        include_str!("../../templates/confirm_page.en.html"),
    ),
    (
        "confirm.de.md",
        include_str!("../../templates/confirm.de.md"),
    ),
    (
        "confirm.en.md",
        include_str!("../../templates/confirm.en.md"),
    ),
    (
        "error_page.de.html",
        include_str!("../../templates/error_page.de.html"),
    ),
    (
        "error_page.en.html",
        include_str!("../../templates/error_page.en.html"),
    ),
    ("digest.de.md", include_str!("../../templates/digest.de.md")),
    ("digest.en.md", include_str!("../../templates/digest.en.md")),
    (
        "approval_request.de.md",
        include_str!("../../templates/approval_request.de.md"),
    ),
    (
        "approval_request.en.md",
        include_str!("../../templates/approval_request.en.md"),
    ),
    (
        "escalation.de.md",
        include_str!("../../templates/escalation.de.md"),
    ),
    (
        "escalation.en.md",
        include_str!("../../templates/escalation.en.md"),
    ),
    (
        "voucher_pool_empty.de.md",
        include_str!("../../templates/voucher_pool_empty.de.md"),
    ),
    (
        "voucher_pool_empty.en.md",
        include_str!("../../templates/voucher_pool_empty.en.md"),
    ),
    (
        "calendar_event.de.md",
        include_str!("../../templates/calendar_event.de.md"),
    ),
    (
        "calendar_event.en.md",
        include_str!("../../templates/calendar_event.en.md"),
    ),
    (
        "callback.de.md",
        include_str!("../../templates/callback.de.md"),
    ),
    (
        "callback.en.md",
        include_str!("../../templates/callback.en.md"),
    ),
    (
        "follow_up.de.md",
        include_str!("../../templates/follow_up.de.md"),
    ),
    (
        "follow_up.en.md",
        include_str!("../../templates/follow_up.en.md"),
    ),
];

/// The private-use characters reserved for marks and placeholders; dropped from values.
fn is_reserved(c: char) -> bool {
    ('\u{E000}'..='\u{E01F}').contains(&c)
}

/// Whether `s` may hold a reserved character: a quick byte search for the
/// lead byte of U+E000..=U+EFFF (0xEE), which ordinary text never has.
fn may_hold_reserved(s: &str) -> bool {
    s.as_bytes().contains(&0xEE)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The language it is written in (by the reader rule).
    pub locale: String,
}

/// Content the program rendered before — talking points, an email shown as
/// a sample — put into a template as a block: its HTML in HTML (it is
/// trusted: values in it were escaped when it was made), its text in text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fragment {
    pub text: String,
    pub html: String,
}

impl Fragment {
    /// The fragment as a template value (`{{ points }}` in a page or an email).
    pub fn value(self) -> Value {
        Value::from_object(self)
    }
}

impl From<Rendered> for Fragment {
    fn from(r: Rendered) -> Fragment {
        Fragment {
            text: r.text,
            html: r.html,
        }
    }
}

impl Object for Fragment {
    /// A single thing (true in `{% if %}`), not a map.
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Plain
    }

    fn render(self: &Arc<Self>, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// All templates of one folder, parsed; rebuilt on reload.
pub struct Templates {
    dir: PathBuf,
    default_locale: String,
    env: Environment<'static>,
    /// Raw source per file name, for hashing (freshness guard).
    sources: BTreeMap<String, String>,
    /// Names served by the built-in text (no file of that name in `dir`).
    built_in: BTreeSet<String>,
}

impl Templates {
    /// Reads and compiles every template file, then the built-in ones the
    /// folder does not replace; errors name the file.
    pub fn load(dir: &Path, default_locale: &str) -> Result<Self> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(TEMPLATE_FUEL));
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                AutoEscape::Html
            } else if name.ends_with("#subject") {
                // A subject is plain text (a header; the layout escapes it for <title>).
                AutoEscape::None
            } else {
                AutoEscape::Custom(MARKDOWN.into())
            }
        });
        env.set_formatter(format_value);
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
            if !(file.ends_with(".md") || file.ends_with(".html")) {
                continue;
            }
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            add_template(&mut env, &file, &source, &path.display().to_string())?;
            sources.insert(file, source);
        }
        if !sources.contains_key(LAYOUT) {
            bail!(
                "{}: missing; every HTML email is framed by it",
                dir.join(LAYOUT).display()
            );
        }
        let mut built_in = BTreeSet::new();
        for (file, source) in BUILT_IN {
            if !sources.contains_key(*file) {
                add_template(&mut env, file, source, &format!("built-in template {file}"))?;
                sources.insert(file.to_string(), source.to_string());
                built_in.insert(file.to_string());
            }
        }
        Ok(Templates {
            dir: dir.to_path_buf(),
            default_locale: default_locale.to_string(),
            env,
            sources,
            built_in,
        })
    }

    /// The language a reader of `locale` gets `<name>.<locale>.<ext>` in.
    pub fn locale_for(&self, name: &str, ext: &str, locale: Option<&str>) -> String {
        reader_locale(locale, &self.default_locale, |l| {
            self.sources.contains_key(&format!("{name}.{l}.{ext}"))
        })
        .to_string()
    }

    /// The file used for `name` in `locale` (by the reader rule) and its locale.
    fn file_for(&self, name: &str, ext: &str, locale: Option<&str>) -> Result<(String, String)> {
        let locale = self.locale_for(name, ext, locale);
        let file = format!("{name}.{locale}.{ext}");
        if !self.sources.contains_key(&file) {
            bail!("no template {file} in {}", self.dir.display());
        }
        Ok((file, locale))
    }

    /// Locales a Markdown template exists in.
    pub fn locales(&self, name: &str) -> Vec<String> {
        self.locales_of(name, "md")
    }

    /// Locales `<name>.<locale>.<ext>` exists in.
    pub fn locales_of(&self, name: &str, ext: &str) -> Vec<String> {
        self.sources
            .keys()
            .filter_map(|f| {
                f.strip_prefix(&format!("{name}."))
                    .and_then(|r| r.strip_suffix(&format!(".{ext}")))
                    .filter(|l| !l.contains('.'))
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

    /// A fingerprint of several templates' sources (`(name, ext)`) in all
    /// their locales: which text someone saw and agreed to.
    pub fn fingerprint_of(&self, templates: &[(&str, &str)]) -> String {
        let mut joined = String::new();
        for (name, ext) in templates {
            let mut locales = self.locales_of(name, ext);
            locales.sort();
            for l in locales {
                joined.push_str(&self.sources[&format!("{name}.{l}.{ext}")]);
                joined.push('\u{0}');
            }
        }
        crate::domain::sha256_hex(&joined)
    }

    /// Renders a Markdown template without a frame (talking points): its
    /// subject, its body as text and as an HTML fragment.
    pub fn render_plain(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let (file, locale) = self.file_for(name, "md", locale)?;
        let subject = self
            .render_one(&format!("{file}#subject"), ctx)?
            .trim()
            .to_string();
        let body = Marked::split(&self.render_one(&format!("{file}#body"), ctx)?);
        Ok(Rendered {
            subject,
            html: body.html(),
            text: body.text(),
            locale,
        })
    }

    /// Renders a customer email: the template's body plus the footer, as
    /// text and as HTML inside the layout, all in one language. `ctx` must
    /// hold `unsubscribe_url`.
    pub fn render_email(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let (body, footer) = self.render_email_parts(name, locale, ctx)?;
        self.framed(LAYOUT, body, Some(footer), ctx)
    }

    /// A customer email's body and footer without the layout: what an
    /// approval request shows of a sample.
    pub fn render_email_parts(
        &self,
        name: &str,
        locale: Option<&str>,
        ctx: &Value,
    ) -> Result<(Rendered, Fragment)> {
        let body = self.render_plain(name, locale, ctx)?;
        let (footer_file, _) = self.file_for("_footer", "md", Some(&body.locale))?;
        let footer = Marked::split(&self.render_one(&footer_file, ctx)?);
        let footer = Fragment {
            text: footer.text(),
            html: footer.html(),
        };
        Ok((body, footer))
    }

    /// Renders an email to a customer that is no campaign (the sign-up's
    /// confirmation): the body in the customers' layout, without the
    /// unsubscribe footer.
    pub fn render_notice(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let body = self.render_plain(name, locale, ctx)?;
        self.framed(LAYOUT, body, None, ctx)
    }

    /// Renders a staff email (digest, approval request …): the body as text
    /// and as HTML inside the staff layout.
    pub fn render_staff_email(
        &self,
        name: &str,
        locale: Option<&str>,
        ctx: &Value,
    ) -> Result<Rendered> {
        let body = self.render_plain(name, locale, ctx)?;
        self.framed(STAFF_LAYOUT, body, None, ctx)
    }

    /// `body` (and a footer, with the signature separator in text) in `layout`.
    fn framed(
        &self,
        layout: &str,
        body: Rendered,
        footer: Option<Fragment>,
        ctx: &Value,
    ) -> Result<Rendered> {
        let mut text = body.text.trim_end().to_string();
        if let Some(footer) = &footer {
            text.push_str("\n\n-- \n");
            text.push_str(footer.text.trim_end());
        }
        text.push('\n');
        let html = self
            .env
            .get_template(layout)?
            .render(context! {
                subject => &body.subject,
                body => Value::from_safe_string(body.html),
                footer => Value::from_safe_string(footer.map(|f| f.html).unwrap_or_default()),
                lang => &body.locale,
                ..ctx.clone()
            })
            .map_err(|e| anyhow!("{}: {}", self.origin(layout), describe(&e)))?;
        Ok(Rendered {
            subject: body.subject,
            text,
            html,
            locale: body.locale,
        })
    }

    /// Renders the web page `<name>.<locale>.html` (by the reader rule); the
    /// page gets `lang` besides `ctx`.
    pub fn render_page(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<String> {
        let (file, locale) = self.file_for(name, "html", locale)?;
        self.render_one(&file, &context! { lang => locale, ..ctx.clone() })
    }

    fn render_one(&self, name: &str, ctx: &Value) -> Result<String> {
        let file = name.split('#').next().unwrap_or(name);
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| anyhow!("{}: {}", self.origin(file), describe(&e)))
    }

    /// Where a template's text comes from, for error messages.
    fn origin(&self, file: &str) -> String {
        if self.built_in.contains(file) {
            format!("built-in template {file}")
        } else {
            self.dir.join(file).display().to_string()
        }
    }
}

/// Compiles one template file (`shown` names it in errors): a `.md` email
/// as its subject and body, anything else as it is.
fn add_template(
    env: &mut Environment<'static>,
    file: &str,
    source: &str,
    shown: &str,
) -> Result<()> {
    if let Some((line, _)) = source
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(is_reserved))
    {
        bail!(
            "{shown}: line {}: characters U+E000 to U+E01F are reserved (they mark values); remove them",
            line + 1
        );
    }
    if file.ends_with(".md") && !file.starts_with('_') {
        let (subject, body) = split_subject(source).map_err(|e| anyhow!("{shown}: line 1: {e}"))?;
        env.add_template_owned(format!("{file}#subject"), subject.to_string())
            .map_err(|e| anyhow!("{shown}: line 1: {e}"))?;
        env.add_template_owned(format!("{file}#body"), body.to_string())
            .map_err(|e| anyhow!("{shown}: {}", describe(&e)))?;
    } else {
        env.add_template_owned(file.to_string(), source.to_string())
            .map_err(|e| anyhow!("{shown}: {}", describe(&e)))?;
    }
    Ok(())
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
    match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            text.push_str(" (a variable or field that does not exist; check its spelling)")
        }
        minijinja::ErrorKind::OutOfFuel => text.push_str(&format!(
            " (rendering took more than {TEMPLATE_FUEL} steps, far more than any message needs: \
             a loop or range() that runs away; simplify the template)"
        )),
        _ => {}
    }
    text
}

/// The minijinja formatter: in Markdown templates a value is written between
/// [`OPEN`] and [`CLOSE`], without any reserved characters of its own, so
/// [`Marked::split`] finds exactly what was inserted. Values marked safe
/// (`|safe`, or the output of a macro or `|e`) are written as they are: they
/// are Markdown the template author vouches for. Elsewhere (the HTML layout,
/// subjects) minijinja's own escaping applies.
fn format_value(
    out: &mut Output,
    state: &mut State,
    value: &Value,
) -> Result<(), minijinja::Error> {
    let markdown = matches!(state.auto_escape(), AutoEscape::Custom(mode) if mode == MARKDOWN);
    if let Some(fragment) = value.downcast_object_ref::<Fragment>() {
        return match state.auto_escape() {
            _ if markdown => {
                out.write_char(FRAGMENT)?;
                write_unreserved(out, &fragment.text)?;
                out.write_char(FRAGMENT_HTML)?;
                write_unreserved(out, &fragment.html)?;
                Ok(out.write_char(CLOSE)?)
            }
            AutoEscape::Html => Ok(out.write_str(&fragment.html)?),
            _ => Ok(out.write_str(&fragment.text)?),
        };
    }
    if !markdown {
        return minijinja::escape_formatter(out, state, value);
    }
    if value.is_safe() {
        return Ok(write!(out, "{value}")?);
    }
    let shown;
    let text = match value.as_str() {
        Some(text) => text,
        None => {
            shown = value.to_string();
            &shown
        }
    };
    // Nothing inserted leaves the template's Markdown as written (a line of
    // only `{{ x }}` with x empty stays an empty line).
    if text.is_empty() {
        return Ok(());
    }
    out.write_char(OPEN)?;
    write_unreserved(out, text)?;
    out.write_char(CLOSE)?;
    Ok(())
}

/// `text` without any reserved characters of its own.
fn write_unreserved(out: &mut Output, text: &str) -> std::fmt::Result {
    if may_hold_reserved(text) && text.contains(is_reserved) {
        for c in text.chars().filter(|c| !is_reserved(*c)) {
            out.write_char(c)?;
        }
        Ok(())
    } else {
        out.write_str(text)
    }
}

/// A rendered Markdown template, taken apart: the Markdown to parse, with a
/// placeholder for each value and each fragment.
struct Marked {
    markdown: String,
    /// The values, in placeholder order.
    values: Vec<String>,
    fragments: Vec<Fragment>,
}

impl Marked {
    fn split(rendered: &str) -> Marked {
        let mut markdown = String::with_capacity(rendered.len() + 16);
        let mut values = Vec::new();
        let mut fragments = Vec::new();
        let mut rest = rendered;
        while let Some(start) = rest.find([OPEN, FRAGMENT]) {
            markdown.push_str(&rest[..start]);
            let mark = if rest[start..].starts_with(OPEN) {
                OPEN
            } else {
                FRAGMENT
            };
            let after = &rest[start + mark.len_utf8()..];
            let end = after.find(CLOSE).unwrap_or(after.len());
            let inner = &after[..end];
            if mark == OPEN {
                push_placeholder(&mut markdown, OPEN, values.len());
                values.push(inner.to_string());
            } else {
                let (text, html) = inner.split_once(FRAGMENT_HTML).unwrap_or((inner, ""));
                // A block of its own, whatever stands around it in the template.
                markdown.push_str("\n\n");
                push_placeholder(&mut markdown, FRAGMENT, fragments.len());
                markdown.push_str("\n\n");
                fragments.push(Fragment {
                    text: text.to_string(),
                    html: html.to_string(),
                });
            }
            rest = after.get(end + CLOSE.len_utf8()..).unwrap_or("");
        }
        markdown.push_str(rest);
        Marked {
            markdown,
            values,
            fragments,
        }
    }

    fn values(&self) -> Vec<&str> {
        self.values.iter().map(String::as_str).collect()
    }

    fn html(&self) -> String {
        let html = markdown_html(&self.markdown, &self.values());
        if self.fragments.is_empty() {
            return html;
        }
        let mut out = String::with_capacity(html.len());
        let mut rest = html.as_str();
        while let Some((start, end, index)) = next_fragment(rest) {
            let html = self.fragments.get(index).map_or("", |f| f.html.as_str());
            // A fragment is a block: the paragraph the parser made around it goes.
            let before = &rest[..start];
            match (
                before.strip_suffix("<p>"),
                rest[end..].strip_prefix("</p>\n"),
            ) {
                (Some(before), Some(after)) => {
                    out.push_str(before);
                    out.push_str(html);
                    out.push('\n');
                    rest = after;
                }
                _ => {
                    out.push_str(before);
                    out.push_str(html);
                    rest = &rest[end..];
                }
            }
        }
        out.push_str(rest);
        out
    }

    /// The Markdown as plain text (see [`crate::message::plain_text`]); a fragment's
    /// text goes in as a block of ready text.
    fn text(&self) -> String {
        let values = self.values();
        let events = with_values(&self.markdown, &values);
        // Most texts have no fragments; the pieces below cost an allocation per event.
        if self.fragments.is_empty() {
            return crate::message::plain_text::write(events);
        }
        let events = events.flat_map(|event| match event {
            Event::Text(text) if text.contains(FRAGMENT) => {
                let mut pieces = Vec::new();
                let mut rest: &str = &text;
                while let Some((start, end, index)) = next_fragment(rest) {
                    if start > 0 {
                        pieces.push(Event::Text(rest[..start].to_string().into()));
                    }
                    let text = self.fragments.get(index).map_or("", |f| f.text.as_str());
                    pieces.push(Event::Html(text.to_string().into()));
                    rest = &rest[end..];
                }
                if !rest.is_empty() {
                    pieces.push(Event::Text(rest.to_string().into()));
                }
                pieces
            }
            other => vec![other],
        });
        crate::message::plain_text::write(events)
    }
}

fn push_placeholder(markdown: &mut String, mark: char, index: usize) {
    markdown.push(mark);
    let digits = if index == 0 {
        1
    } else {
        (usize::BITS - index.leading_zeros()).div_ceil(4)
    };
    for shift in (0..digits).rev() {
        let digit = (index >> (shift * 4)) & 0xF;
        markdown.push(char::from_u32(DIGIT_0 + digit as u32).unwrap_or(CLOSE));
    }
    markdown.push(CLOSE);
}

/// The next fragment placeholder in `s`: its byte range and the fragment's index.
fn next_fragment(s: &str) -> Option<(usize, usize, usize)> {
    let start = s.find(FRAGMENT)?;
    let digits_from = start + FRAGMENT.len_utf8();
    let mut index = 0usize;
    for (i, c) in s[digits_from..].char_indices() {
        if c == CLOSE {
            return Some((start, digits_from + i + CLOSE.len_utf8(), index));
        }
        let digit = u32::from(c).wrapping_sub(DIGIT_0);
        if digit > 0xF {
            break;
        }
        index = index.saturating_mul(16).saturating_add(digit as usize);
    }
    // Not a placeholder we wrote: the mark alone, standing for nothing.
    Some((start, digits_from, usize::MAX))
}

/// The next placeholder in `s`: its byte range and the value it stands for.
fn next_placeholder<'v>(s: &str, values: &[&'v str]) -> Option<(usize, usize, &'v str)> {
    let start = s.find(OPEN)?;
    let digits_from = start + OPEN.len_utf8();
    let mut index = 0usize;
    for (i, c) in s[digits_from..].char_indices() {
        if c == CLOSE {
            let end = digits_from + i + CLOSE.len_utf8();
            return Some((start, end, values.get(index).copied().unwrap_or("")));
        }
        let digit = u32::from(c).wrapping_sub(DIGIT_0);
        if digit > 0xF {
            break;
        }
        index = index.saturating_mul(16).saturating_add(digit as usize);
    }
    // Not a placeholder we wrote: drop the mark, keep the rest.
    Some((start, digits_from, ""))
}

/// `s` with every placeholder replaced by its value, verbatim.
fn fill<'a>(s: CowStr<'a>, values: &[&str]) -> CowStr<'a> {
    if !may_hold_reserved(&s) {
        return s;
    }
    let mut out = String::with_capacity(s.len() + 32);
    let mut rest: &str = &s;
    while let Some((start, end, value)) = next_placeholder(rest, values) {
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out.into()
}

/// Whether a link whose destination a value made may point there: web, mail
/// and phone links and relative ones, never `javascript:`, `data:` or the like.
/// Browsers ignore whitespace and control characters in a scheme, so does this.
fn allowed_url(url: &str) -> bool {
    let plain: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .take(40)
        .collect();
    match plain.find([':', '/', '?', '#']) {
        Some(i) if plain[i..].starts_with(':') => matches!(
            plain[..i].to_ascii_lowercase().as_str(),
            "http" | "https" | "mailto" | "tel"
        ),
        _ => true,
    }
}

/// `<value>` written by a template: an autolink when the value is a web or
/// mail address. Built here, not by the Markdown parser, which never sees the
/// value; `None` shows `<value>` as text.
fn autolink(value: &str) -> Option<(LinkType, &str)> {
    if value.is_empty()
        || value.contains(|c: char| c.is_whitespace() || c.is_control() || c == '<' || c == '>')
    {
        return None;
    }
    let lower = value.get(..8).unwrap_or(value).to_ascii_lowercase();
    if lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
    {
        return Some((LinkType::Autolink, value));
    }
    match value.split_once('@') {
        Some((user, host))
            if !user.is_empty()
                && host.contains('.')
                && !host.starts_with('.')
                && !value.contains([':', '/', '\\', '"', '(', ')'])
                && !host.contains('@') =>
        {
            Some((LinkType::Email, value))
        }
        _ => None,
    }
}

/// Markdown with placeholders for `values` to HTML.
///
/// The parser sees only the template's Markdown; values come in afterwards,
/// as what their spot is:
/// - text (paragraphs, headings, list items, link text, emphasis): the value
///   as text, HTML-escaped by the writer; a line break in a value is a line
///   break (`<br />`), as the template's own line breaks are;
/// - code spans and code blocks: the value verbatim, escaped by the writer;
/// - link and image destinations and titles (`[Abmelden]({{ unsubscribe_url }})`):
///   the value verbatim as the URL (use `|urlencode` for a value inside a
///   query); a destination a value made that is not http(s), mailto, tel or
///   relative drops the link and keeps its text;
/// - `<{{ url }}>`: a link when the value is an http(s) or mailto URL or an
///   email address, else the value shown as text between `<` and `>`;
/// - raw HTML (shown as text anyway): the value in it, as text.
fn markdown_html(markdown: &str, values: &[&str]) -> String {
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 4);
    html::push_html(&mut out, with_values(markdown, values));
    out
}

/// The Markdown's events with the values put in (see [`markdown_html`]).
fn with_values<'a, 'v>(markdown: &'a str, values: &'v [&'v str]) -> WithValues<'a, 'v> {
    WithValues {
        parser: Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH),
        values,
        texts: Vec::new(),
        ready: VecDeque::new(),
        links: Vec::new(),
        in_code_block: false,
    }
}

/// The parser's events with the values put in (see [`markdown_html`]).
struct WithValues<'a, 'v> {
    parser: Parser<'a>,
    values: &'v [&'v str],
    /// Adjacent text, raw HTML included (shown as text), taken as one piece
    /// where it holds a placeholder: the placeholder and any `<`/`>` around it.
    texts: Vec<CowStr<'a>>,
    ready: VecDeque<Event<'a>>,
    /// Per open link or image: whether it is kept (see [`allowed_url`]).
    links: Vec<bool>,
    in_code_block: bool,
}

impl<'a> Iterator for WithValues<'a, '_> {
    type Item = Event<'a>;

    fn next(&mut self) -> Option<Event<'a>> {
        if let Some(event) = self.ready.pop_front() {
            return Some(event);
        }
        loop {
            let event = match self.parser.next() {
                Some(Event::Text(text) | Event::Html(text) | Event::InlineHtml(text)) => {
                    self.texts.push(text);
                    continue;
                }
                Some(Event::SoftBreak) => Event::HardBreak,
                Some(other) => other,
                None => {
                    self.push_texts();
                    return self.ready.pop_front();
                }
            };
            if self.texts.is_empty() {
                match self.with_values(event) {
                    Some(event) => return Some(event),
                    None => continue,
                }
            }
            self.push_texts();
            if let Some(event) = self.with_values(event) {
                self.ready.push_back(event);
            }
            return self.ready.pop_front();
        }
    }
}

impl<'a> WithValues<'a, '_> {
    /// One event other than text, with its values; `None` drops it.
    fn with_values(&mut self, event: Event<'a>) -> Option<Event<'a>> {
        let values = self.values;
        Some(match event {
            Event::Code(code) => Event::Code(fill(code, values)),
            Event::Start(Tag::CodeBlock(kind)) => {
                self.in_code_block = true;
                Event::Start(Tag::CodeBlock(match kind {
                    CodeBlockKind::Fenced(info) => CodeBlockKind::Fenced(fill(info, values)),
                    indented => indented,
                }))
            }
            Event::End(TagEnd::CodeBlock) => {
                self.in_code_block = false;
                Event::End(TagEnd::CodeBlock)
            }
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => self.link(dest_url, title, |dest_url, title| Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            })?,
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => self.link(dest_url, title, |dest_url, title| Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            })?,
            Event::End(end @ (TagEnd::Link | TagEnd::Image)) => {
                if !self.links.pop().unwrap_or(true) {
                    return None;
                }
                Event::End(end)
            }
            other => other,
        })
    }

    /// The start of a link or an image (`tag` rebuilds it) with its values
    /// filled in; `None` when its destination is not kept, and then its end
    /// is dropped too.
    fn link(
        &mut self,
        dest_url: CowStr<'a>,
        title: CowStr<'a>,
        tag: impl FnOnce(CowStr<'a>, CowStr<'a>) -> Tag<'a>,
    ) -> Option<Event<'a>> {
        let (dest_url, keep) = destination(dest_url, self.values);
        self.links.push(keep);
        keep.then(|| Event::Start(tag(dest_url, fill(title, self.values))))
    }

    /// The text pieces taken so far: as they are, or as one piece with its
    /// placeholders filled in when there are any.
    fn push_texts(&mut self) {
        if self.texts.is_empty() {
            return;
        }
        if self.values.is_empty() || !self.texts.iter().any(|t| may_hold_reserved(t)) {
            self.ready.extend(self.texts.drain(..).map(Event::Text));
            return;
        }
        let Some(text) = join(&mut self.texts) else {
            return;
        };
        if self.in_code_block {
            self.ready.push_back(Event::Text(fill(text, self.values)));
        } else {
            push_text(&mut self.ready, text, self.values);
        }
    }
}

/// A link or image destination with its values, and whether to keep the link.
fn destination<'a>(dest_url: CowStr<'a>, values: &[&str]) -> (CowStr<'a>, bool) {
    let from_value = may_hold_reserved(&dest_url) && dest_url.contains(OPEN);
    let dest_url = fill(dest_url, values);
    let keep = !from_value || allowed_url(&dest_url);
    (dest_url, keep)
}

/// The text pieces taken so far, as one.
fn join<'a>(texts: &mut Vec<CowStr<'a>>) -> Option<CowStr<'a>> {
    match texts.len() {
        0 => None,
        1 => texts.pop(),
        _ => {
            let mut joined = String::with_capacity(texts.iter().map(|t| t.len()).sum());
            for text in texts.drain(..) {
                joined.push_str(&text);
            }
            Some(joined.into())
        }
    }
}

/// Text with placeholders: each value as text (line breaks as breaks), and
/// `<value>` as a link when [`autolink`] says so.
fn push_text<'a>(out: &mut VecDeque<Event<'a>>, text: CowStr<'a>, values: &[&str]) {
    if !may_hold_reserved(&text) {
        out.push_back(Event::Text(text));
        return;
    }
    let mut plain = String::with_capacity(text.len() + 32);
    let mut rest: &str = &text;
    while let Some((start, end, value)) = next_placeholder(rest, values) {
        let before = &rest[..start];
        let after = &rest[end..];
        if before.ends_with('<')
            && after.starts_with('>')
            && let Some((link_type, dest)) = autolink(value)
        {
            plain.push_str(&before[..before.len() - 1]);
            if !plain.is_empty() {
                out.push_back(Event::Text(std::mem::take(&mut plain).into()));
            }
            out.push_back(Event::Start(Tag::Link {
                link_type,
                dest_url: dest.to_string().into(),
                title: CowStr::Borrowed(""),
                id: CowStr::Borrowed(""),
            }));
            out.push_back(Event::Text(value.to_string().into()));
            out.push_back(Event::End(TagEnd::Link));
            rest = &after[1..];
            continue;
        }
        plain.push_str(before);
        let mut lines = value.split('\n');
        plain.push_str(lines.next().unwrap_or(""));
        for line in lines {
            let done = plain.trim_end_matches('\r').len();
            plain.truncate(done);
            if !plain.is_empty() {
                out.push_back(Event::Text(std::mem::take(&mut plain).into()));
            }
            out.push_back(Event::HardBreak);
            plain.push_str(line);
        }
        rest = after;
    }
    plain.push_str(rest);
    if !plain.is_empty() {
        out.push_back(Event::Text(plain.into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Markdown to HTML with any raw HTML shown as text, never interpreted.
    fn markdown_to_html(markdown: &str) -> String {
        markdown_html(&markdown.replace(is_reserved, ""), &[])
    }

    #[test]
    fn raw_html_in_markdown_is_escaped() {
        let html = markdown_to_html("Hallo <script>alert(1)</script> **Anna**");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<strong>Anna</strong>"), "{html}");
    }

    /// A template folder with `body` as `t.de.md` (subject `{{ subject }}`)
    /// and a footer with the unsubscribe link, rendered with `ctx`.
    fn render(body: &str, ctx: Value) -> Rendered {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("t.de.md"),
            format!("subject: {{{{ subject }}}}\n{body}"),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("_footer.de.md"),
            "{{ business }}\n\n[Abmelden]({{ unsubscribe_url }})\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join(LAYOUT),
            "<title>{{ subject }}</title>{{ body }}<footer>{{ footer }}</footer>",
        )
        .unwrap();
        let templates = Templates::load(dir.path(), "de").unwrap();
        templates.render_email("t", Some("de"), &ctx).unwrap()
    }

    /// The body's HTML, without the layout's title and footer.
    fn body_html(r: &Rendered) -> &str {
        let after_title = r.html.split_once("</title>").unwrap().1;
        after_title.split("<footer>").next().unwrap()
    }

    const EVIL: &str = "[Klick hier](http://evil.example) ![](http://track.example/p.gif) **fett** _kursiv_ `code` <b>x</b> &amp; \\* ~~weg~~\n# Titel\n- Punkt\n1. Eins\n> Zitat";

    fn ctx_with(value: &str) -> Value {
        context! {
            v => value,
            subject => "Hallo",
            business => "Café & Co",
            unsubscribe_url => "https://cafe.example/u/AbC-12_x.y?z=1&w=2",
        }
    }

    /// What the HTML part must not contain when the value is EVIL.
    fn assert_no_markup_from_value(html: &str) {
        for tag in [
            "<a href=\"http://evil",
            "<img",
            "<strong>",
            "<em>",
            "<code>",
            "<h1>",
            "<li>",
            "<ul>",
            "<ol>",
            "<blockquote>",
            "<b>",
            "<del>",
        ] {
            assert!(!html.contains(tag), "{tag} in {html}");
        }
        assert_eq!(
            html.matches('\\').count(),
            EVIL.matches('\\').count(),
            "no backslash escapes shown: {html}"
        );
    }

    #[test]
    fn a_value_is_text_in_every_markdown_context_and_verbatim_in_the_text_part() {
        for body in [
            "Hallo {{ v }}, schön.\n",
            "{{ v }}\n",
            "**{{ v }}**\n",
            "# {{ v }}\n",
            "- {{ v }}\n- zwei\n",
            "> {{ v }}\n",
            "[{{ v }}](https://cafe.example/)\n",
            "<span>{{ v }}</span>\n",
        ] {
            let r = render(body, ctx_with(EVIL));
            // Verbatim but for where the text part wraps lines and indents quotes.
            let flat = |s: &str| {
                s.lines()
                    .map(|l| l.trim_start().trim_start_matches("> ").trim())
                    .collect::<Vec<_>>()
                    .join(" ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            assert!(
                flat(&r.text).contains(&flat(EVIL)),
                "{body}: text part verbatim: {}",
                r.text
            );
            let html = body_html(&r);
            let shown = html
                .replace("<br />\n", "\n")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">");
            assert!(shown.contains(EVIL), "{body}: shown as text: {html}");
            // The template's own structure is there; nothing more.
            let own = markdown_to_html(&body.replace("{{ v }}", "X"));
            let tags = |h: &str| {
                h.split('<')
                    .skip(1)
                    .map(|t| t.split(['>', ' ']).next().unwrap().to_string())
                    .filter(|t| t != "br" && t != "/br")
                    .collect::<Vec<_>>()
            };
            assert_eq!(tags(html), tags(&own), "{body}: {html}");
        }
        let r = render("Hallo {{ v }}\n", ctx_with(EVIL));
        assert_no_markup_from_value(body_html(&r));
    }

    #[test]
    fn code_spans_and_code_blocks_show_a_value_verbatim() {
        let r = render(
            "Code: `{{ v }}`\n\n```\n{{ v }}\n```\n",
            ctx_with("A-1_*x*`y` <b>"),
        );
        assert!(
            r.html.contains("<code>A-1_*x*`y` &lt;b&gt;</code>"),
            "{}",
            r.html
        );
        assert!(
            r.html
                .contains("<pre><code>A-1_*x*`y` &lt;b&gt;\n</code></pre>"),
            "{}",
            r.html
        );
    }

    #[test]
    fn links_whose_destination_is_a_value_work_and_only_to_web_mail_or_phone() {
        let r = render(
            "[Profil]({{ v }}) und <{{ v }}>\n",
            ctx_with("https://cafe.example/p?a=1&b=(2)"),
        );
        assert!(
            r.html
                .contains("<a href=\"https://cafe.example/p?a=1&amp;b=(2)\">Profil</a>"),
            "{}",
            r.html
        );
        assert!(
            r.html.contains("und <a href=\"https://cafe.example/p?a=1&amp;b=(2)\">https://cafe.example/p?a=1&amp;b=(2)</a>"),
            "{}",
            r.html
        );
        // The footer's unsubscribe link.
        assert!(
            r.html
                .contains("<a href=\"https://cafe.example/u/AbC-12_x.y?z=1&amp;w=2\">Abmelden</a>"),
            "{}",
            r.html
        );
        assert!(
            r.text
                .contains("Abmelden: https://cafe.example/u/AbC-12_x.y?z=1&w=2"),
            "{}",
            r.text
        );
        assert!(
            r.text
                .starts_with("Profil [1] und https://cafe.example/p?a=1&b=(2)\n[1] https://cafe.example/p?a=1&b=(2)\n"),
            "{}",
            r.text
        );
        let mail = render("<{{ v }}>\n", ctx_with("anna@example.de"));
        assert!(
            mail.html
                .contains("<a href=\"mailto:anna@example.de\">anna@example.de</a>"),
            "{}",
            mail.html
        );
        for bad in [
            "javascript:alert(1)",
            " JavaScript:alert(1)",
            "java\tscript:alert(1)",
            "data:text/html,x",
        ] {
            let r = render(
                "[Profil]({{ v }}) <{{ v }}> ![Bild]({{ v }})\n",
                ctx_with(bad),
            );
            let html = r.html.split("<footer>").next().unwrap();
            assert!(
                !html.contains("<a") && !html.contains("<img"),
                "{bad}: {html}"
            );
            assert!(
                html.contains("Profil") && html.contains("Bild"),
                "{bad}: {html}"
            );
        }
        let spaced = render("<{{ v }}>\n", ctx_with("http://a b"));
        assert!(
            spaced.html.contains("&lt;http://a b&gt;"),
            "{}",
            spaced.html
        );
    }

    #[test]
    fn line_breaks_in_a_value_are_breaks_and_reserved_characters_are_dropped() {
        let r = render(
            "Hallo {{ v }}!\n",
            ctx_with("Anna\r\n# Titel\n\n- x\u{E000}\u{E001}\u{E012}"),
        );
        assert!(
            r.html
                .contains("Hallo Anna<br />\n# Titel<br />\n<br />\n- x!</p>"),
            "{}",
            r.html
        );
        assert!(
            r.text.starts_with("Hallo Anna\n# Titel\n\n- x!\n"),
            "{:?}",
            r.text
        );
        assert!(!r.text.contains(is_reserved));
    }

    #[test]
    fn safe_values_macros_and_empty_values_keep_the_templates_markdown() {
        let r = render(
            "{% macro b(x) %}**{{ x }}**{% endmacro %}{{ b(v) }} {{ '*ja*'|safe }}\n{{ '' }}\nzwei\n",
            ctx_with("*nein*"),
        );
        assert!(
            r.html.contains("<strong>*nein*</strong> <em>ja</em>"),
            "{}",
            r.html
        );
        // An empty value on its own line leaves an empty line: a new paragraph.
        assert!(r.html.contains("</p>\n<p>zwei</p>"), "{}", r.html);
        let e = render("{{ v|e }}\n", ctx_with("*x*"));
        assert!(e.html.contains("<p>*x*</p>"), "{}", e.html);
    }

    #[test]
    fn subjects_and_the_layout_keep_their_own_escaping() {
        let r = render(
            "x\n",
            context! { v => "", subject => "A & <b>B</b> **C**", business => "", unsubscribe_url => "https://x.example/" },
        );
        assert_eq!(r.subject, "A & <b>B</b> **C**");
        assert!(
            r.html
                .contains("<title>A &amp; &lt;b&gt;B&lt;&#x2f;b&gt; **C**</title>"),
            "{}",
            r.html
        );
    }

    #[test]
    fn reserved_characters_in_a_template_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t.de.md"), "subject: x\nHallo\n\u{E000}\n").unwrap();
        std::fs::write(dir.path().join(LAYOUT), "{{ body }}").unwrap();
        let err = Templates::load(dir.path(), "de").err().unwrap().to_string();
        assert!(err.contains("t.de.md: line 3: characters U+E000"), "{err}");
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
