//! Bounces and complaints that come back by email, days after a relay
//! accepted the message.
//!
//! Every customer email goes out with a tagged envelope sender
//! (`local+ID-MAC@domain`, see [`crate::tokens::Signer::verp_tag`]), so
//! whatever comes back to that address names its outbox message, even when
//! the report does not name the recipient. What is read:
//! - RFC 3464 delivery status notifications (`multipart/report;
//!   report-type=delivery-status`): per recipient `Action` and `Status`;
//! - RFC 5965 feedback reports (`report-type=feedback-report`): a complaint;
//! - the bounce texts of servers that send no DSN, best effort: a mail from a
//!   mailer daemon whose text carries an SMTP status.
//!
//! Only a genuine tag acts on a customer: a report with no tag, a forged one,
//! one for a message that was never sent or was sent too long ago is recorded
//! as ignored, with the reason, and changes nothing. MIME is parsed by
//! `mail-parser`; the fields of a delivery-status part are header fields, so
//! its header parser reads them too.

use std::borrow::Cow;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use tracing::info;

use crate::app::App;
use crate::store::{MailReport, ReportKind};

pub mod imap;

/// An email that cannot be read at all (not one that was read and ignored).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(String);

/// Whether `e` says the email could not be read (rather than, say, that the
/// database was away while acting on it).
pub fn is_unreadable(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Unreadable>().is_some()
}

/// Larger than any bounce or complaint; a bigger email is not read.
pub const MAX_SIZE: usize = 10 * 1024 * 1024;
/// Reports about messages older than this are not trusted any more.
const MAX_AGE_DAYS: i64 = 180;
/// Temporary bounces within [`SOFT_WINDOW_DAYS`] that count as a permanent one.
const SOFT_LIMIT: i64 = 3;
const SOFT_WINDOW_DAYS: i64 = 30;

/// What an email says, before it is matched to a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// Delivery failed for good (5.x.x) or for now (4.x.x).
    Bounce {
        permanent: bool,
        status: String,
        recipient: Option<String>,
        diagnostic: String,
    },
    /// The recipient marked the email as spam (an ARF report).
    Complaint {
        feedback_type: String,
        recipient: Option<String>,
    },
    /// Nothing to act on, and why (a delay notice, an auto-reply …).
    Nothing(String),
}

/// An email read: what it reports and the tags found in it.
#[derive(Debug)]
pub struct Incoming {
    pub report: Report,
    /// Return-path tags found anywhere in the email (headers, the returned
    /// original); the first genuine one names the message.
    pub tags: Vec<String>,
}

/// Reads one email. An error only for what is not an email at all.
pub fn read(raw: &[u8], return_path_user: &str) -> Result<Incoming> {
    if raw.len() > MAX_SIZE {
        return Ok(Incoming {
            report: Report::Nothing(format!(
                "the email has {} bytes, more than any bounce ({MAX_SIZE})",
                raw.len()
            )),
            tags: Vec::new(),
        });
    }
    // mail-parser reads almost anything as some header; an email that
    // came back has at least one of these.
    let message = MessageParser::default()
        .parse(raw)
        .filter(|m| {
            m.from().is_some() || m.to().is_some() || m.date().is_some() || m.subject().is_some()
        })
        .ok_or_else(|| {
            Unreadable("this is not an email: it has no From, To, Date or Subject".into())
        })?;
    let tags = find_tags(&String::from_utf8_lossy(raw), return_path_user);
    let report = match report_type(&message).as_deref() {
        Some("delivery-status") => delivery_status(&message),
        Some("feedback-report") => feedback_report(&message),
        _ => plain_bounce(&message),
    };
    Ok(Incoming { report, tags })
}

/// `report-type` of a top-level `multipart/report`.
fn report_type(message: &Message) -> Option<String> {
    let ct = message.root_part().content_type()?;
    (ct.ctype().eq_ignore_ascii_case("multipart")
        && ct
            .subtype()
            .is_some_and(|s| s.eq_ignore_ascii_case("report")))
    .then(|| ct.attribute("report-type").map(str::to_ascii_lowercase))?
}

/// The body of the first part whose type is `message/SUBTYPE`.
fn part_body<'a>(message: &'a Message, subtype: &str) -> Option<Cow<'a, str>> {
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let wanted = ct.ctype().eq_ignore_ascii_case("message")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case(subtype));
        match (&part.body, wanted) {
            (PartType::Text(text), true) => Some(Cow::Borrowed(text.as_ref())),
            (PartType::Binary(b) | PartType::InlineBinary(b), true) => {
                Some(String::from_utf8_lossy(b.as_ref()))
            }
            _ => None,
        }
    })
}

/// Field blocks of a report part (the per-message block, then one per
/// recipient), each as (lowercase name, value) pairs.
fn field_blocks(body: &str) -> Vec<Vec<(String, String)>> {
    let body = body.replace("\r\n", "\n");
    body.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .filter_map(|block| {
            let text = format!("{}\n\n", block.trim_start_matches('\n'));
            let parsed = MessageParser::default().parse_headers(text.as_bytes())?;
            let fields: Vec<(String, String)> = parsed
                .headers_raw()
                .map(|(name, value)| (name.to_ascii_lowercase(), unfold(value)))
                .collect();
            (!fields.is_empty()).then_some(fields)
        })
        .collect()
}

fn unfold(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn field<'a>(block: &'a [(String, String)], name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `rfc822; anna@example.org` → `anna@example.org`.
fn address_field(value: &str) -> String {
    value
        .split_once(';')
        .map_or(value, |(_, a)| a)
        .trim()
        .trim_matches(['<', '>'])
        .to_string()
}

fn delivery_status(message: &Message) -> Report {
    let Some(body) = part_body(message, "delivery-status") else {
        return Report::Nothing("a delivery report without a delivery-status part".into());
    };
    let blocks = field_blocks(&body);
    // Recipient blocks are those with an Action; the first failed one counts.
    let mut actions = Vec::new();
    for block in &blocks {
        let Some(action) = field(block, "action") else {
            continue;
        };
        let action = action.to_ascii_lowercase();
        let status = field(block, "status").unwrap_or_default().to_string();
        if action == "failed" {
            let permanent = !status.starts_with('4');
            return Report::Bounce {
                permanent,
                status,
                recipient: field(block, "final-recipient")
                    .or_else(|| field(block, "original-recipient"))
                    .map(address_field),
                diagnostic: field(block, "diagnostic-code")
                    .map(address_field)
                    .unwrap_or_default(),
            };
        }
        actions.push(action);
    }
    if actions.is_empty() {
        Report::Nothing("a delivery report that names no recipient's action".into())
    } else {
        Report::Nothing(format!(
            "a delivery report without a failure ({})",
            actions.join(", ")
        ))
    }
}

fn feedback_report(message: &Message) -> Report {
    let Some(body) = part_body(message, "feedback-report") else {
        return Report::Nothing("a feedback report without a feedback-report part".into());
    };
    let blocks = field_blocks(&body);
    let fields: Vec<(String, String)> = blocks.into_iter().flatten().collect();
    let feedback_type = field(&fields, "feedback-type")
        .unwrap_or("abuse")
        .to_ascii_lowercase();
    match feedback_type.as_str() {
        // "not-spam" and "virus" reports are not complaints about our mail.
        "abuse" | "fraud" | "other" => Report::Complaint {
            feedback_type,
            recipient: field(&fields, "original-rcpt-to").map(address_field),
        },
        other => Report::Nothing(format!("a feedback report of type \"{other}\"")),
    }
}

/// Servers that send plain-text bounces: recognised by who sent them and
/// the subject, then the first SMTP status in the text decides.
fn plain_bounce(message: &Message) -> Report {
    let subject = message.subject().unwrap_or_default().to_ascii_lowercase();
    let from = message
        .from()
        .and_then(|f| f.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let from_daemon = ["mailer-daemon@", "postmaster@", "mail-daemon@"]
        .iter()
        .any(|d| from.starts_with(d));
    let bounce_subject = [
        "undeliver",
        "delivery status notification",
        "mail delivery failed",
        "failure notice",
        "returned mail",
        "delivery failure",
        "unzustellbar",
        "nicht zustellbar",
    ]
    .iter()
    .any(|s| subject.contains(s));
    if !from_daemon && !bounce_subject {
        // Bounces carry `Auto-Submitted: auto-replied` too, so this is only
        // asked of what is not a bounce.
        let auto_reply = message
            .header_raw("Auto-Submitted")
            .is_some_and(|v| !v.trim().eq_ignore_ascii_case("no"))
            || [
                "out of office",
                "abwesenheit",
                "automatic reply",
                "autoreply",
            ]
            .iter()
            .any(|s| subject.contains(s));
        return Report::Nothing(if auto_reply {
            "an automatic reply".into()
        } else {
            "not a bounce or a report".into()
        });
    }
    let text: String = message
        .text_bodies()
        .filter_map(|p| p.text_contents())
        .collect::<Vec<_>>()
        .join("\n");
    match smtp_status(&text) {
        Some(status) => Report::Bounce {
            permanent: status.starts_with('5'),
            diagnostic: status_line(&text, &status),
            status,
            recipient: None,
        },
        None => Report::Nothing("a bounce text without an SMTP status".into()),
    }
}

/// The first enhanced status code (`5.1.1`) in the text, else a basic reply
/// code (`550`) at the start of a word, mapped to its class (`5.0.0`).
fn smtp_status(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || "()[]<>:;,#".contains(c))
        .filter(|w| !w.is_empty())
        .collect();
    let enhanced = words.iter().find(|w| {
        let parts: Vec<&str> = w.trim_end_matches('.').split('.').collect();
        parts.len() == 3
            && matches!(parts[0], "4" | "5")
            && parts[1..]
                .iter()
                .all(|p| (1..=3).contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit()))
    });
    if let Some(code) = enhanced {
        return Some(code.trim_end_matches('.').to_string());
    }
    words
        .iter()
        .find(|w| {
            w.len() == 3
                && (w.starts_with('4') || w.starts_with('5'))
                && w.chars().all(|c| c.is_ascii_digit())
        })
        .map(|code| format!("{}.0.0", &code[..1]))
}

/// The line the status stands on, as the diagnostic.
fn status_line(text: &str, status: &str) -> String {
    let class = &status[..1];
    text.lines()
        .find(|l| l.contains(status) || l.trim_start().starts_with(class))
        .map(|l| unfold(l).chars().take(300).collect())
        .unwrap_or_default()
}

/// Every `USER+ID-HEX@` in the text, as `ID-HEX` (other `USER+…@`
/// addresses are not ours).
fn find_tags(text: &str, user: &str) -> Vec<String> {
    let needle = format!("{}+", user.to_ascii_lowercase());
    let lower = text.to_ascii_lowercase();
    let mut tags = Vec::new();
    let mut from = 0;
    while let Some(at) = lower[from..].find(&needle) {
        let start = from + at + needle.len();
        let tag: String = lower[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let shaped = tag.split_once('-').is_some_and(|(id, mac)| {
            !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_digit())
                && !mac.is_empty()
                && mac.bytes().all(|b| b.is_ascii_hexdigit())
        });
        if shaped && lower[start + tag.len()..].starts_with('@') && !tags.contains(&tag) {
            tags.push(tag);
        }
        from = start;
    }
    tags
}

/// What acting on a report did, for the command's one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    AddressBounced { customer_id: i64 },
    SoftBounce { customer_id: i64, in_window: i64 },
    Complaint { customer_id: i64 },
    Ignored(String),
}

impl std::fmt::Display for Effect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Effect::AddressBounced { customer_id } => write!(
                f,
                "customer {customer_id}: address marked as bounced; later email to it is suppressed"
            ),
            Effect::SoftBounce {
                customer_id,
                in_window,
            } => write!(
                f,
                "customer {customer_id}: temporary bounce ({in_window} of {SOFT_LIMIT} within {SOFT_WINDOW_DAYS} days before the address counts as bounced)"
            ),
            Effect::Complaint { customer_id } => write!(
                f,
                "customer {customer_id}: spam complaint; no more marketing email"
            ),
            Effect::Ignored(why) => write!(f, "ignored: {why}"),
        }
    }
}

/// Reads one email and acts on it, once: the same email read again (a
/// mailbox polled after a crash, a file fed in twice) changes nothing.
/// `Err` for an email that cannot be read ([`is_unreadable`]) or a
/// database that fails.
pub async fn ingest(app: &App, raw: &[u8], now: DateTime<Utc>) -> Result<Effect> {
    let digest = crate::domain::sha256_hex(raw);
    if app.store.mail_report_seen(&digest).await? {
        return Ok(Effect::Ignored("this email was read before".into()));
    }
    let incoming = read(raw, app.config.resolved.return_path.user())?;
    let effect = act(app, incoming, &digest, now).await?;
    info!(effect = %effect, "bounce mail read");
    Ok(effect)
}

async fn act(app: &App, incoming: Incoming, digest: &str, now: DateTime<Utc>) -> Result<Effect> {
    let ignore = |message_id: Option<i64>, why: String| async move {
        app.store
            .record_mail_report(
                &MailReport {
                    kind: ReportKind::Ignored,
                    customer_id: None,
                    message_id,
                    status: None,
                    detail: &why,
                    digest,
                },
                now,
            )
            .await?;
        Ok(Effect::Ignored(why))
    };
    let (kind, status, detail, recipient) = match &incoming.report {
        Report::Nothing(why) => return ignore(None, why.clone()).await,
        Report::Bounce {
            permanent,
            status,
            recipient,
            diagnostic,
        } => (
            if *permanent {
                ReportKind::Permanent
            } else {
                ReportKind::Temporary
            },
            Some(status.clone()),
            diagnostic.clone(),
            recipient.clone(),
        ),
        Report::Complaint {
            feedback_type,
            recipient,
        } => (
            ReportKind::Complaint,
            None,
            format!("feedback type {feedback_type}"),
            recipient.clone(),
        ),
    };
    let Some(message_id) = incoming.tags.iter().find_map(|t| app.signer.verify_verp(t)) else {
        let why = if incoming.tags.is_empty() {
            "no return-path tag in the email"
        } else {
            "the return-path tag is not genuine"
        };
        return ignore(None, why.into()).await;
    };
    let Some(sent) = app.store.sent_message(message_id).await? else {
        return ignore(Some(message_id), "no message with this tag was sent".into()).await;
    };
    if now - sent.sent_at > Duration::days(MAX_AGE_DAYS) {
        return ignore(
            Some(message_id),
            format!("the message was sent more than {MAX_AGE_DAYS} days ago"),
        )
        .await;
    }
    if let (Some(named), Some(email)) = (&recipient, &sent.email)
        && !named.eq_ignore_ascii_case(email)
    {
        return ignore(
            Some(message_id),
            "the report names another recipient than the message went to".into(),
        )
        .await;
    }
    let customer_id = sent.customer_id;
    app.store
        .record_mail_report(
            &MailReport {
                kind,
                customer_id: Some(customer_id),
                message_id: Some(message_id),
                status: status.as_deref(),
                detail: &detail,
                digest,
            },
            now,
        )
        .await?;
    Ok(match kind {
        ReportKind::Permanent => {
            let why = format!("{} {detail}", status.unwrap_or_default());
            if app
                .store
                .mark_bad_address(customer_id, why.trim(), now)
                .await?
            {
                crate::tasks::call_list::ask_for_working_address(app, customer_id, now).await?;
            }
            Effect::AddressBounced { customer_id }
        }
        ReportKind::Temporary => {
            let in_window = app
                .store
                .mail_reports_since(
                    customer_id,
                    ReportKind::Temporary,
                    now - Duration::days(SOFT_WINDOW_DAYS),
                )
                .await?;
            if in_window >= SOFT_LIMIT {
                if app
                    .store
                    .mark_bad_address(
                        customer_id,
                        &format!("{in_window} temporary bounces within {SOFT_WINDOW_DAYS} days"),
                        now,
                    )
                    .await?
                {
                    crate::tasks::call_list::ask_for_working_address(app, customer_id, now).await?;
                }
                Effect::AddressBounced { customer_id }
            } else {
                app.store
                    .add_customer_event(
                        customer_id,
                        now,
                        &crate::store::NewEvent::new(
                            "bounced_for_now",
                            format!("{} {detail}", status.unwrap_or_default())
                                .trim()
                                .to_string(),
                        ),
                    )
                    .await?;
                Effect::SoftBounce {
                    customer_id,
                    in_window,
                }
            }
        }
        ReportKind::Complaint => {
            app.store
                .unsubscribe(customer_id, "spam complaint", now)
                .await?;
            Effect::Complaint { customer_id }
        }
        ReportKind::Ignored => unreachable!("ignored reports return above"),
    })
}

/// Reads the email from a file, or standard input for `-`.
pub fn read_input(path: Option<&std::path::Path>) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut raw = Vec::new();
    match path {
        None => std::io::stdin()
            .take(MAX_SIZE as u64 + 1)
            .read_to_end(&mut raw)
            .context("reading the email from standard input")?,
        Some(p) if p.as_os_str() == "-" => std::io::stdin()
            .take(MAX_SIZE as u64 + 1)
            .read_to_end(&mut raw)
            .context("reading the email from standard input")?,
        Some(p) => std::fs::File::open(p)
            .and_then(|f| f.take(MAX_SIZE as u64 + 1).read_to_end(&mut raw))
            .with_context(|| format!("reading {}", p.display()))?,
    };
    if raw.iter().all(|b| b.is_ascii_whitespace()) {
        bail!("the email is empty");
    }
    Ok(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_in_bounce_texts() {
        assert_eq!(
            smtp_status("Remote host said: 550 5.1.1 <a@b.c>: user unknown").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(
            smtp_status("said: 552 mailbox full (in reply to RCPT TO)").as_deref(),
            Some("5.0.0")
        );
        assert_eq!(smtp_status("version 1.2.3 released"), None);
        assert_eq!(smtp_status("nothing here"), None);
    }

    #[test]
    fn tags_are_found_wherever_the_return_path_appears() {
        let text = "To: <Bounces+12-00ff00ff00ff00ff@Example.org>\nReturn-Path: <bounces+12-00ff00ff00ff00ff@example.org>\nbounces+x@";
        assert_eq!(find_tags(text, "bounces"), ["12-00ff00ff00ff00ff"]);
    }
}
