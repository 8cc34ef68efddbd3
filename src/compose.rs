//! Building the emails: customer messages with the unsubscribe headers of
//! RFC 2369/8058 (DKIM-signed when configured), and internal messages to staff.

use anyhow::{Context, Result};
use lettre::Message;
use lettre::message::header::{ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};

use crate::config::{Config, Settings};
use crate::templates::Rendered;

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

fn mailbox(raw: &str, what: &str) -> Result<Mailbox> {
    raw.parse()
        .with_context(|| format!("{what} \"{raw}\" is not a valid address"))
}

/// A customer email: text and HTML alternatives, deterministic Message-ID,
/// List-Unsubscribe (HTTPS link and optional mailto) with one-click POST.
pub fn customer_email(
    config: &Config,
    to: &str,
    message_id: &str,
    unsubscribe_url: &str,
    rendered: &Rendered,
) -> Result<Message> {
    let settings = &config.settings;
    let mut list_unsubscribe = format!("<{unsubscribe_url}>");
    if let Some(mailto) = &settings.mail.unsubscribe_mailto {
        list_unsubscribe.push_str(&format!(", <mailto:{mailto}?subject=unsubscribe>"));
    }
    let mut builder = Message::builder()
        .from(mailbox(&settings.business.from, "business.from")?)
        .to(mailbox(to, "recipient")?)
        .subject(&rendered.subject)
        .message_id(Some(message_id.to_string()))
        .date_now()
        .header(ListUnsubscribe(list_unsubscribe))
        .header(ListUnsubscribePost);
    if let Some(reply_to) = &settings.business.reply_to {
        builder = builder.reply_to(mailbox(reply_to, "business.reply_to")?);
    }
    let mut message = builder
        .multipart(MultiPart::alternative_plain_html(
            rendered.text.clone(),
            rendered.html.clone(),
        ))
        .context("building the email")?;
    if let Some(dkim) = &config.resolved.dkim {
        message.sign(&dkim.0);
    }
    Ok(message)
}

/// An email to staff (digest, approval request, escalation), optionally with
/// an attachment such as an `.ics` calendar file.
pub fn staff_email(
    settings: &Settings,
    to: &str,
    subject: &str,
    text: &str,
    html: &str,
    attachment: Option<(&str, &str, String)>,
) -> Result<Message> {
    let builder = Message::builder()
        .from(mailbox(&settings.business.from, "business.from")?)
        .to(mailbox(to, "staff email")?)
        .subject(subject)
        .date_now();
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
    message.context("building the staff email")
}

/// A plain single-part text email (notices to admins).
pub fn notice_email(settings: &Settings, to: &str, subject: &str, text: &str) -> Result<Message> {
    Message::builder()
        .from(mailbox(&settings.business.from, "business.from")?)
        .to(mailbox(to, "notice recipient")?)
        .subject(subject)
        .date_now()
        .singlepart(SinglePart::plain(text.to_string()))
        .context("building the notice")
}
