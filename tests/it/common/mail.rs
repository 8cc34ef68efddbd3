//! Reading the emails the tests produce: headers (with RFC 2047 words
//! decoded), and every leaf part of a MIME tree decoded from 7bit/8bit,
//! quoted-printable or base64.

use base64::Engine;

/// A mail from the outbox, decoded far enough to read it.
#[derive(Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// Every leaf part: (content type, content disposition, decoded body).
    pub parts: Vec<(String, String, String)>,
    /// The top-level headers: (lower-case name, unfolded value).
    pub headers: Vec<(String, String)>,
}

impl Mail {
    /// Parses a raw email (CRLF or LF line ends).
    pub fn parse(raw: &str) -> Mail {
        let raw = raw.replace("\r\n", "\n");
        let (headers, body) = split_headers(&raw);
        let mut parts = Vec::new();
        leaf_parts(&headers, body, &mut parts);
        Mail {
            to: header(&headers, "to").to_string(),
            subject: decode_words(header(&headers, "subject")),
            parts,
            headers,
        }
    }

    /// The value of a top-level header (lower-case name), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.0 == name)
            .map(|h| h.1.as_str())
    }

    /// The decoded body of the first leaf part of this content type.
    pub fn part(&self, content_type: &str) -> &str {
        self.parts
            .iter()
            .find(|p| p.0.starts_with(content_type))
            .map(|p| p.2.as_str())
            .unwrap_or_else(|| panic!("no {content_type} part in {self:#?}"))
    }

    pub fn text(&self) -> &str {
        self.part("text/plain")
    }

    pub fn html(&self) -> &str {
        self.part("text/html")
    }
}

fn split_headers(s: &str) -> (Vec<(String, String)>, &str) {
    let (head, body) = s.split_once("\n\n").unwrap_or((s, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    (headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|h| h.0 == name)
        .map(|h| h.1.as_str())
        .unwrap_or("")
}

fn quoted_printable(s: &str) -> String {
    let s = s.replace("=\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(hex) = std::str::from_utf8(&bytes[i + 1..i + 3])
            && let Ok(b) = u8::from_str_radix(hex, 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn base64_text(s: &str) -> String {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(clean)
            .unwrap(),
    )
    .unwrap()
}

/// RFC 2047 encoded words (`=?utf-8?b?…?=`), as lettre writes them.
fn decode_words(s: &str) -> String {
    let mut out = String::new();
    let mut last_encoded = false;
    for (i, word) in s.split(' ').enumerate() {
        let inner = word
            .strip_prefix("=?")
            .and_then(|w| w.strip_suffix("?="))
            .and_then(|w| {
                let mut it = w.splitn(3, '?');
                Some((it.next()?, it.next()?, it.next()?))
            });
        match inner {
            Some((_, enc, text)) => {
                if i > 0 && !last_encoded {
                    out.push(' ');
                }
                if enc.eq_ignore_ascii_case("b") {
                    out.push_str(&base64_text(text));
                } else {
                    out.push_str(&quoted_printable(&text.replace('_', " ")));
                }
                last_encoded = true;
            }
            None => {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(word);
                last_encoded = false;
            }
        }
    }
    out
}

fn leaf_parts(headers: &[(String, String)], body: &str, out: &mut Vec<(String, String, String)>) {
    let content_type = header(headers, "content-type");
    if content_type.starts_with("multipart/") {
        let boundary = content_type
            .split("boundary=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .trim_matches('"');
        for chunk in body.split(&format!("--{boundary}")).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            let (h, b) = split_headers(chunk.strip_prefix('\n').unwrap_or(chunk));
            leaf_parts(&h, b, out);
        }
        return;
    }
    let decoded = match header(headers, "content-transfer-encoding")
        .to_ascii_lowercase()
        .as_str()
    {
        "quoted-printable" => quoted_printable(body),
        "base64" => base64_text(body),
        _ => body.to_string(),
    };
    out.push((
        content_type.to_string(),
        header(headers, "content-disposition").to_string(),
        decoded,
    ));
}
