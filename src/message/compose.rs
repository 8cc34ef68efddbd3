//! Building the emails: customer messages with the unsubscribe headers of
//! RFC 2369/8058, and internal messages to staff, marked as machine-made
//! (RFC 3834 `Auto-Submitted`) and never with an unsubscribe header. Every
//! email has a Date and a Message-ID, and is DKIM-signed when configured.

use anyhow::{Context, Result};
use lettre::Message;
use lettre::message::header::{
    ContentTransferEncoding, ContentType, Header, HeaderName, HeaderValue,
};
use lettre::message::{Attachment, Body, Mailbox, MessageBuilder, MultiPart, SinglePart};

use crate::config::Config;
use crate::message::templates::Rendered;

#[derive(Debug, Clone)]
struct ListUnsubscribe(String);

impl Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribe(s.to_string()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Debug, Clone)]
struct ListUnsubscribePost;

impl Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(ListUnsubscribePost)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".to_string())
    }
}

/// `Auto-Submitted: auto-generated` (RFC 3834): staff emails are made by a
/// program, so auto-responders (out of office) do not answer them.
#[derive(Debug, Clone)]
struct AutoSubmitted;

impl Header for AutoSubmitted {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("Auto-Submitted")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "auto-generated".to_string())
    }
}

fn mailbox(raw: &str, what: &str) -> Result<Mailbox> {
    raw.parse()
        .with_context(|| format!("{what} \"{raw}\" is not a valid address"))
}

/// A customer's address as the recipient. Addresses are stored bare, and
/// lettre checks a bare address for less than its parser of mailboxes
/// (with a name and angle brackets) costs: that parse was a twentieth of
/// sending a message (benches/README.md). Quotes and domain literals, which
/// the two read differently, and anything the check refuses still go
/// through the parser, so every address reads as it did.
fn recipient(raw: &str) -> Result<Mailbox> {
    match raw.parse::<lettre::Address>() {
        Ok(address) if !raw.contains(['"', '[']) => Ok(Mailbox::new(None, address)),
        _ => mailbox(raw, "recipient"),
    }
}

/// A customer email: text and HTML alternatives, deterministic Message-ID,
/// List-Unsubscribe (HTTPS link and optional mailto) with one-click POST.
/// `verp_tag` (see [`crate::tokens::Signer::verp_tag`]) goes into the
/// envelope sender, `local+TAG@domain`, so that a bounce arriving days
/// later names the message it is about.
/// `eight_bit`: the transport takes 8-bit bodies (SMTP 8BITMIME), so parts
/// with short enough lines go as they are instead of quoted-printable —
/// encoding them was the largest single cost of sending a message.
pub fn customer_email(
    config: &Config,
    to: &str,
    message_id: &str,
    unsubscribe_url: &str,
    rendered: &Rendered,
    eight_bit: bool,
    verp_tag: Option<&str>,
) -> Result<Message> {
    let settings = &config.settings;
    let to = recipient(to)?;
    let mut list_unsubscribe = format!("<{unsubscribe_url}>");
    if let Some(mailto) = &settings.mail.unsubscribe_mailto {
        list_unsubscribe.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe>"));
    }
    let mut builder = Message::builder()
        .from(config.resolved.from.clone())
        .to(to.clone())
        .subject(&rendered.subject)
        .message_id(Some(message_id.to_string()))
        .date_now()
        .header(ListUnsubscribe(list_unsubscribe))
        .header(ListUnsubscribePost);
    if let Some(reply_to) = &config.resolved.reply_to {
        builder = builder.reply_to(reply_to.clone());
    }
    if let Some(tag) = verp_tag {
        let base = &config.resolved.return_path;
        let return_path = lettre::Address::new(format!("{}+{tag}", base.user()), base.domain())
            .context("the return path with its tag is not a valid address")?;
        builder = builder.envelope(
            lettre::address::Envelope::new(Some(return_path), vec![to.email])
                .context("building the envelope")?,
        );
    }
    let message = builder
        .multipart(
            MultiPart::alternative()
                .singlepart(part(ContentType::TEXT_PLAIN, &rendered.text, eight_bit))
                .singlepart(part(ContentType::TEXT_HTML, &rendered.html, eight_bit)),
        )
        .context("building the email")?;
    signed(config, message)
}

/// The message with its DKIM signature when `[mail.dkim]` is set. Signing
/// is the last step: the signature covers the bytes as they go out.
fn signed(config: &Config, mut message: Message) -> Result<Message> {
    if let Some(signer) = &config.resolved.dkim {
        signer.sign(&mut message)?;
    }
    Ok(message)
}

/// The start of every email to staff or the admin: sender, recipient,
/// subject, date, a Message-ID of our own domain, marked machine-made.
fn internal(config: &Config, to: &str, what: &str, subject: &str) -> Result<MessageBuilder> {
    let from = &config.resolved.from;
    let id = format!(
        "<outreach.{:016x}{:016x}@{}>",
        rand::random::<u64>(),
        rand::random::<u64>(),
        from.email.domain()
    );
    Ok(Message::builder()
        .from(from.clone())
        .to(mailbox(to, what)?)
        .subject(subject)
        .message_id(Some(id))
        .date_now()
        .header(AutoSubmitted))
}

/// One body part: 8-bit when allowed and valid, else whatever lettre
/// finds best (quoted-printable or base64; lettre itself picks 8-bit only
/// for lines under 76 characters, which prose never has).
fn part(content_type: ContentType, content: &str, eight_bit: bool) -> SinglePart {
    let body = if eight_bit && fits_8bit(content) {
        Body::dangerous_pre_encoded(
            content.replace('\n', "\r\n").into_bytes(),
            ContentTransferEncoding::EightBit,
        )
    } else {
        Body::new(content.to_string())
    };
    SinglePart::builder().header(content_type).body(body)
}

/// RFC 5322 / RFC 6152 8-bit content: lines of at most 998 octets, no NUL,
/// no CR of its own (we write the CRLFs).
fn fits_8bit(text: &str) -> bool {
    !text.contains(['\0', '\r']) && text.split('\n').all(|line| line.len() <= 998)
}

/// An email to a customer that is no campaign (the confirmation of a
/// sign-up): marked machine-made, without List-Unsubscribe (there is no list
/// to leave yet).
pub fn notice_email(
    config: &Config,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
) -> Result<Message> {
    let builder = internal(config, to, "recipient", subject)?;
    let body = MultiPart::alternative_plain_html(text.to_string(), html.to_string());
    let message = builder.multipart(body).context("building the email")?;
    signed(config, message)
}

/// An email to staff (digest, approval request, escalation), optionally with
/// an attachment such as an `.ics` calendar file.
pub fn staff_email(
    config: &Config,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    attachment: Option<(&str, &str, String)>,
) -> Result<Message> {
    let builder = internal(config, to, "staff email", subject)?;
    let body = MultiPart::alternative_plain_html(text.to_string(), html.to_string());
    let message = match attachment {
        Some((filename, content_type, content)) => {
            builder.multipart(MultiPart::mixed().multipart(body).singlepart(
                Attachment::new(filename.to_string()).body(
                    content,
                    ContentType::parse(content_type).context("attachment content type")?,
                ),
            ))
        }
        None => builder.multipart(body),
    };
    signed(config, message.context("building the staff email")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipient_reads_as_the_mailbox_parser_reads_it() {
        for raw in [
            "anna@example.org",
            "Jörg.Müller@bäckerei.example",
            "Anna Becker <anna@example.org>",
            "\"anna\"@example.org",
            "\"two words\"@example.org",
            "anna@[192.0.2.1]",
            "anna@",
            "anna@exa mple.org",
        ] {
            assert_eq!(recipient(raw).ok(), mailbox(raw, "recipient").ok(), "{raw}");
        }
        let error = format!("{:#}", recipient("anna.example.org").unwrap_err());
        assert!(error.contains("recipient \"anna.example.org\""), "{error}");
    }

    #[test]
    fn only_text_within_the_8bit_limits_goes_unencoded() {
        assert!(fits_8bit("Grüße\naus Köln\n"));
        assert!(fits_8bit(&"ä".repeat(499)));
        assert!(!fits_8bit(&"ä".repeat(500)), "1000 octets in one line");
        assert!(!fits_8bit("a\r\nb"));
        assert!(!fits_8bit("a\0b"));
    }

    #[test]
    fn parts_are_8bit_with_crlf_when_allowed_and_encoded_otherwise() {
        let text = "Grüße\naus Köln";
        let eight =
            String::from_utf8(part(ContentType::TEXT_PLAIN, text, true).formatted()).unwrap();
        assert!(eight.contains("Content-Transfer-Encoding: 8bit"), "{eight}");
        assert!(eight.contains("Grüße\r\naus Köln"), "{eight}");
        let seven =
            String::from_utf8(part(ContentType::TEXT_PLAIN, text, false).formatted()).unwrap();
        assert!(
            !seven.contains("8bit") && !seven.contains("Grüße"),
            "{seven}"
        );
        let long = "x".repeat(2000);
        let fallback =
            String::from_utf8(part(ContentType::TEXT_PLAIN, &long, true).formatted()).unwrap();
        assert!(!fallback.contains("8bit"), "{fallback}");
    }
}
