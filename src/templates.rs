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
//!
//! Values are text, never Markdown. A `.md` template is rendered once; a
//! formatter wraps every value it prints in private-use marks (`OPEN` …
//! `CLOSE`). The text part drops the marks (the value verbatim). For the
//! HTML part each marked value is swapped for a placeholder of private-use
//! characters, which no Markdown rule reacts to, the Markdown is parsed, and
//! only then is each placeholder replaced by its value in whatever the
//! template author's Markdown made of that spot: text, link text, code,
//! a link destination. So a value can never open a link, image, emphasis,
//! heading, list or code span, whatever characters it holds, and there is no
//! escaping to get wrong (backslash escapes would not work in code spans and
//! autolinks). Raw HTML in the Markdown is shown as text. See
//! `markdown_html` for the details per context.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value, context};
use pulldown_cmark::{CodeBlockKind, CowStr, Event, LinkType, Options, Parser, Tag, TagEnd, html};

const LAYOUT: &str = "_layout.html";

/// Work one rendering may do (minijinja's fuel: about one unit per
/// instruction, plus the data it makes). The shipped templates need a few
/// thousand; the limit stops a runaway loop in a template within
/// milliseconds instead of holding `check` or a delivery worker forever.
const TEMPLATE_FUEL: u64 = 500_000;

/// Starts a value in rendered Markdown (and a placeholder in the Markdown parsed for HTML).
const OPEN: char = '\u{E000}';
/// Ends a value or a placeholder.
const CLOSE: char = '\u{E001}';
/// Placeholder digits: the value's index in hex, as U+E010..=U+E01F.
const DIGIT_0: u32 = 0xE010;
/// The escape mode of Markdown templates, handled by [`format_value`].
const MARKDOWN: &str = "markdown";

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
            if !(file.ends_with(".md") || file == LAYOUT) {
                continue;
            }
            let source = std::fs::read_to_string(&path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            if let Some((line, _)) = source
                .lines()
                .enumerate()
                .find(|(_, l)| l.contains(is_reserved))
            {
                bail!(
                    "{}: line {}: characters U+E000 to U+E01F are reserved (they mark values); remove them",
                    path.display(),
                    line + 1
                );
            }
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
        let body = Marked::split(&self.render_one(&format!("{file}#body"), ctx)?);
        Ok(Rendered {
            subject,
            html: body.html(),
            text: body.text,
        })
    }

    /// Renders a customer email: the template's body plus the locale's footer,
    /// as text and as HTML inside the layout. `ctx` must hold `unsubscribe_url`.
    pub fn render_email(&self, name: &str, locale: Option<&str>, ctx: &Value) -> Result<Rendered> {
        let body = self.render_plain(name, locale, ctx)?;
        let footer_file = self.file_for("_footer", locale)?;
        let footer = Marked::split(&self.render_one(&footer_file, ctx)?);
        let text = format!(
            "{}\n\n-- \n{}",
            body.text.trim_end(),
            footer.text.trim_end()
        );
        let layout = self.env.get_template(LAYOUT)?;
        let html = layout
            .render(context! {
                subject => &body.subject,
                body => Value::from_safe_string(body.html),
                footer => Value::from_safe_string(footer.html()),
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

/// Text made safe to put into HTML, in element content and in quoted attributes.
pub fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown to HTML with any raw HTML shown as text, never interpreted.
pub fn markdown_to_html(markdown: &str) -> String {
    // Placeholders come only from `Marked::split`; marks here are dropped.
    if may_hold_reserved(markdown) && markdown.contains(is_reserved) {
        return markdown_html(&markdown.replace(is_reserved, ""), &[]);
    }
    markdown_html(markdown, &[])
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
    if !matches!(state.auto_escape(), AutoEscape::Custom(mode) if mode == MARKDOWN) {
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
    if may_hold_reserved(text) && text.contains(is_reserved) {
        for c in text.chars().filter(|c| !is_reserved(*c)) {
            out.write_char(c)?;
        }
    } else {
        out.write_str(text)?;
    }
    out.write_char(CLOSE)?;
    Ok(())
}

/// A rendered Markdown template, taken apart: the text with the values
/// verbatim, and the Markdown to parse with a placeholder for each value.
struct Marked {
    text: String,
    markdown: String,
    /// Each value's place in `text`, in placeholder order.
    values: Vec<std::ops::Range<usize>>,
}

impl Marked {
    fn split(rendered: &str) -> Marked {
        let mut text = String::with_capacity(rendered.len());
        let mut markdown = String::with_capacity(rendered.len() + 16);
        let mut values = Vec::new();
        let mut rest = rendered;
        while let Some(start) = rest.find(OPEN) {
            text.push_str(&rest[..start]);
            markdown.push_str(&rest[..start]);
            let after = &rest[start + OPEN.len_utf8()..];
            let end = after.find(CLOSE).unwrap_or(after.len());
            let begin = text.len();
            text.push_str(&after[..end]);
            push_placeholder(&mut markdown, values.len());
            values.push(begin..text.len());
            rest = after.get(end + CLOSE.len_utf8()..).unwrap_or("");
        }
        text.push_str(rest);
        markdown.push_str(rest);
        Marked {
            text,
            markdown,
            values,
        }
    }

    fn html(&self) -> String {
        let values: Vec<&str> = self.values.iter().map(|r| &self.text[r.clone()]).collect();
        markdown_html(&self.markdown, &values)
    }
}

fn push_placeholder(markdown: &mut String, index: usize) {
    markdown.push(OPEN);
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
    let events = WithValues {
        parser: Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH),
        values,
        texts: Vec::new(),
        ready: VecDeque::new(),
        links: Vec::new(),
        in_code_block: false,
    };
    let mut out = String::with_capacity(markdown.len() + markdown.len() / 4);
    html::push_html(&mut out, events);
    out
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
            assert!(
                r.text.contains(EVIL),
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
                .contains("[Abmelden](https://cafe.example/u/AbC-12_x.y?z=1&w=2)"),
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
            r.text.contains("Hallo Anna\r\n# Titel\n\n- x!"),
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
