//! The text part of an email, written from the same Markdown as its HTML
//! part, for people who read mail as plain text: no Markdown markers, prose
//! wrapped near 76 characters, and links written out — `text: URL` when the
//! link ends its line, else a numbered footnote (`text [1]`, and `[1] URL`
//! after the paragraph). A link that shows its own address (a web address,
//! an email address, a phone number) is written once.
//!
//! It takes the events [`crate::message::templates`] makes (values already in, raw
//! HTML already turned into text). An [`Event::Html`] there is a block of
//! ready text (a fragment such as talking points) and is written as it is.

use pulldown_cmark::{Event, Tag, TagEnd};

/// Lines of prose are wrapped to at most this many characters (RFC 3676
/// asks for under 78); a single longer word, such as a long link, keeps its
/// own line.
pub const WIDTH: usize = 76;

/// The text of `events`; it ends with one line break.
pub fn write<'a>(events: impl IntoIterator<Item = Event<'a>>) -> String {
    let mut writer = Writer::default();
    for event in events {
        writer.event(event);
    }
    writer.flush();
    let mut out = writer.out;
    let end = out.trim_end().len();
    out.truncate(end);
    out.push('\n');
    out
}

#[derive(Default)]
struct Writer {
    out: String,
    /// What stands before each line of the current block, per open list
    /// item (spaces as wide as its marker) or quote (`> `).
    indents: Vec<String>,
    /// The marker of a list item whose first line is not written yet.
    marker: Option<String>,
    /// Per open list: the next number, or `None` for bullets.
    lists: Vec<Option<u64>>,
    /// The block being collected; `\n` where a line breaks.
    line: String,
    /// Open links: where their text starts in `line`, and where they point.
    open_links: Vec<(usize, String)>,
    /// Links in `line`: their text's range and where they point.
    links: Vec<(std::ops::Range<usize>, String)>,
    /// Inside a code block: its lines, written as they are.
    code: Option<String>,
    /// A blank line is due before the next block.
    blank: bool,
    footnotes: usize,
}

impl Writer {
    fn event(&mut self, event: Event<'_>) {
        if let Some(code) = &mut self.code {
            match event {
                Event::End(TagEnd::CodeBlock) => {
                    let code = self.code.take().unwrap_or_default();
                    self.separate();
                    for line in code.trim_end_matches('\n').split('\n') {
                        self.line_of(&["    ", line]);
                    }
                    self.blank = true;
                }
                Event::Text(text) => code.push_str(&text),
                _ => {}
            }
            return;
        }
        match event {
            Event::Start(Tag::Paragraph | Tag::Heading { .. }) => self.flush(),
            Event::End(TagEnd::Paragraph | TagEnd::Heading(_)) => {
                self.flush();
                self.blank = true;
            }
            Event::Start(Tag::List(first)) => {
                self.flush();
                self.lists.push(first);
            }
            Event::End(TagEnd::List(_)) => {
                self.flush();
                self.lists.pop();
                self.blank = true;
            }
            Event::Start(Tag::Item) => {
                self.flush();
                let marker = match self.lists.last_mut() {
                    Some(Some(n)) => {
                        *n += 1;
                        format!("{}. ", *n - 1)
                    }
                    _ => "- ".to_string(),
                };
                self.indents.push(" ".repeat(marker.chars().count()));
                self.marker = Some(marker);
            }
            Event::End(TagEnd::Item) => {
                self.flush();
                self.indents.pop();
                self.marker = None;
            }
            Event::Start(Tag::BlockQuote(_)) => {
                self.flush();
                self.separate();
                self.indents.push("> ".into());
            }
            Event::End(TagEnd::BlockQuote(_)) => {
                self.flush();
                self.indents.pop();
                self.blank = true;
            }
            Event::Start(Tag::CodeBlock(_)) => {
                self.flush();
                self.code = Some(String::new());
            }
            Event::Rule => {
                self.flush();
                self.separate();
                self.line_of(&["------------------------"]);
                self.blank = true;
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                self.open_links
                    .push((self.line.len(), dest_url.to_string()));
            }
            Event::End(TagEnd::Link) => {
                if let Some((start, dest)) = self.open_links.pop() {
                    self.links.push((start..self.line.len(), dest));
                }
            }
            Event::Text(text) | Event::Code(text) | Event::InlineHtml(text) => {
                self.line.push_str(&text);
            }
            Event::Html(ready) => {
                self.flush();
                self.separate();
                for line in ready.trim_end().split('\n') {
                    self.line_of(&[line]);
                }
                self.blank = true;
            }
            Event::SoftBreak => self.line.push(' '),
            Event::HardBreak => self.line.push('\n'),
            _ => {}
        }
    }

    /// A blank line before the next block, if one is due.
    fn separate(&mut self) {
        if self.blank && !self.out.is_empty() {
            let start = self.out.len();
            for indent in &self.indents {
                self.out.push_str(indent);
            }
            self.end_line(start);
        }
        self.blank = false;
    }

    /// Writes one line: its prefix (the pending list marker, else the
    /// indents), then `pieces`. Written straight into the output: a message
    /// has dozens of lines, and building each as a string of its own was a
    /// good part of the cost of its text.
    fn line_of(&mut self, pieces: &[&str]) {
        let start = self.out.len();
        let (indents, marker) = match self.marker.take() {
            Some(marker) => (
                &self.indents[..self.indents.len().saturating_sub(1)],
                Some(marker),
            ),
            None => (&self.indents[..], None),
        };
        for indent in indents {
            self.out.push_str(indent);
        }
        if let Some(marker) = marker {
            self.out.push_str(&marker);
        }
        for piece in pieces {
            self.out.push_str(piece);
        }
        self.end_line(start);
    }

    /// Ends the line that starts at `start`, without trailing whitespace.
    fn end_line(&mut self, start: usize) {
        let end = start + self.out[start..].trim_end().len();
        self.out.truncate(end);
        self.out.push('\n');
    }

    /// Writes the collected block, wrapped, with its links' footnotes after it.
    fn flush(&mut self) {
        let (text, footnotes) = self.with_links();
        self.line.clear();
        self.links.clear();
        self.open_links.clear();
        if text.trim().is_empty() {
            return;
        }
        self.separate();
        let indent: usize = self.indents.iter().map(|i| i.chars().count()).sum();
        let width = WIDTH.saturating_sub(indent).max(20);
        for line in text.split('\n') {
            wrap(line, width, |wrapped| self.line_of(&[wrapped]));
        }
        for (n, url) in footnotes {
            self.line_of(&["[", &n.to_string(), "] ", &url]);
        }
    }

    /// The block's text with each link written out, and its footnotes.
    fn with_links(&mut self) -> (String, Vec<(usize, String)>) {
        let mut text = String::with_capacity(self.line.len() + 64);
        let mut footnotes = Vec::new();
        let mut done = 0;
        for (range, url) in &self.links {
            let shown = &self.line[range.clone()];
            text.push_str(&self.line[done..range.end]);
            done = range.end;
            if shows_its_address(shown, url) {
                continue;
            }
            if shown.trim().is_empty() {
                text.push_str(url);
                continue;
            }
            let rest_of_line = self.line[range.end..].split('\n').next().unwrap_or("");
            if rest_of_line
                .chars()
                .all(|c| c.is_whitespace() || ".,;:!?)".contains(c))
            {
                text.push_str(": ");
                text.push_str(url);
            } else {
                self.footnotes += 1;
                text.push_str(&format!(" [{}]", self.footnotes));
                footnotes.push((self.footnotes, url.clone()));
            }
        }
        text.push_str(&self.line[done..]);
        (text, footnotes)
    }
}

/// Whether a link's text already is its address: `https://…` shown as
/// itself, `anna@example.de` for `mailto:`, `+49 221 555` for `tel:`.
fn shows_its_address(shown: &str, url: &str) -> bool {
    let bare = |s: &str| -> String {
        s.chars()
            .filter(|c| !c.is_whitespace() && !"-/().".contains(*c))
            .collect()
    };
    let address = url
        .strip_prefix("mailto:")
        .or_else(|| url.strip_prefix("tel:"))
        .unwrap_or(url);
    shown.trim() == url || bare(shown) == bare(address)
}

/// `line` in lines of at most `width` characters, broken at spaces (runs
/// of spaces become one), each handed to `emit`; an empty line is one line.
fn wrap(line: &str, width: usize, mut emit: impl FnMut(&str)) {
    let mut current = String::with_capacity(line.len().min(width * 4));
    let mut length = 0;
    let mut emitted = false;
    for word in line.split(' ').filter(|w| !w.is_empty()) {
        let n = word.chars().count();
        if length > 0 && length + 1 + n > width {
            emit(&current);
            emitted = true;
            current.clear();
            length = 0;
        }
        if length > 0 {
            current.push(' ');
            length += 1;
        }
        current.push_str(word);
        length += n;
    }
    if !current.is_empty() || !emitted {
        emit(&current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulldown_cmark::{Options, Parser};

    fn text(markdown: &str) -> String {
        write(
            Parser::new_ext(markdown, Options::ENABLE_STRIKETHROUGH).map(|e| match e {
                Event::SoftBreak => Event::HardBreak,
                other => other,
            }),
        )
    }

    #[test]
    fn prose_has_no_markers_and_is_wrapped_near_76_characters() {
        let out = text(
            "Hallo Anna,\n\n**Was geöffnet ist:** Dienstag bis Samstag, 8 bis 18 Uhr. Sonntags bleiben wir vorerst geschlossen, damit unser kleines Team durchhält. _Danke_ und ~~nichts~~ `code`.\n\n# Titel\n",
        );
        assert!(
            !out.contains("**") && !out.contains('_') && !out.contains('#'),
            "{out}"
        );
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
        assert!(
            out.starts_with("Hallo Anna,\n\nWas geöffnet ist: Dienstag bis Samstag"),
            "{out}"
        );
        assert!(out.ends_with("\n\nTitel\n"), "{out}");
    }

    #[test]
    fn links_at_the_end_of_a_line_read_text_colon_url_and_others_become_footnotes() {
        let out = text(
            "Sie können jederzeit widersprechen. [Keine E-Mails mehr erhalten](https://x.example/u/T)\n\nLesen Sie [hier](https://x.example/a) und [dort](https://x.example/b) weiter.\n\n<https://x.example/c> [+49 221 555](tel:+49221555) [anna@example.de](mailto:anna@example.de)\n",
        );
        assert!(
            out.starts_with("Sie können jederzeit widersprechen. Keine E-Mails mehr erhalten:\nhttps://x.example/u/T\n"),
            "{out}"
        );
        assert!(
            out.contains("Lesen Sie hier [1] und dort [2] weiter.\n[1] https://x.example/a\n[2] https://x.example/b\n"),
            "{out}"
        );
        assert!(
            out.contains("https://x.example/c +49 221 555 anna@example.de\n"),
            "{out}"
        );
        assert!(!out.contains("](") && !out.contains('<'), "{out}");
    }

    #[test]
    fn lists_quotes_and_line_breaks_keep_their_shape() {
        let long = "Wenn es schwierig ist: Fragen Sie, ob wir etwas tun können (z. B. Lieferung, andere Zeiten).";
        let out = text(&format!(
            "Herzliche Grüße\nIhr Team\n\n- {long}\n- zwei\n\n1. eins\n2. zwei\n\n> Zitat\n"
        ));
        assert!(
            out.starts_with("Herzliche Grüße\nIhr Team\n\n- Wenn es"),
            "{out}"
        );
        assert!(
            out.contains(
                "(z. B.\n  Lieferung, andere Zeiten).\n- zwei\n\n1. eins\n2. zwei\n\n> Zitat\n"
            ),
            "{out}"
        );
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH), "{out}");
    }

    #[test]
    fn a_long_word_keeps_its_own_line() {
        let url = format!("https://x.example/{}", "a".repeat(100));
        let out = text(&format!("Link: <{url}> danach\n"));
        assert_eq!(out, format!("Link:\n{url}\ndanach\n"));
    }
}
