//! Transports: `.eml` files (the default of the example config) or SMTP
//! ([`smtp`], our own client over lettre's connection).
//!
//! SMTP runs one long-lived connection per worker on a socket we open
//! ourselves with `TCP_NODELAY` (STARTTLS, implicit TLS or plain): lettre
//! 0.11.23 never sets it, and every message then waits ~40 ms for the
//! server's delayed ACK (~23 messages/s per connection). Each SMTP exchange
//! is wrapped in a timeout, since lettre's own covers only connecting
//! (lettre #1027).
//!
//! Results are classified for the outbox: 2xx sent; 5xx permanent (that
//! message fails, nothing else); 4xx, timeouts and connection errors
//! temporary (retried with backoff). A session that cannot be opened (no
//! connection, TLS or login refused) is a [`SessionFailure`]: messages wait
//! without using up attempts, and the next session is tried only after a
//! backoff, so a wrong password does not hammer the relay.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;

use crate::config::{Tls, Transport};
use crate::secret::Secret;

mod smtp;

pub use smtp::{SmtpSession, is_bad_address};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// The server's reply (e.g. `250 2.0.0 Ok: queued as …`) or the file written.
    Sent(String),
    /// 4xx or a connection problem: try again later.
    Temporary(String),
    /// 5xx: this message will never go through as it is.
    Permanent(String),
    /// No session could be opened (or the last attempt failed and the next
    /// is not due before `retry_at`): nothing was tried for this message.
    Unavailable {
        failure: SessionFailure,
        retry_at: DateTime<Utc>,
    },
    /// The connection broke after the message body was handed over and
    /// before the server answered: it may have been delivered. Never resent
    /// automatically.
    Ambiguous(String),
}

/// Why no SMTP session could be opened. Each says what failed in words an
/// admin can act on; `status` and `/healthz` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionFailure {
    /// No TCP connection (refused, no route, timed out).
    Unreachable(String),
    /// Connected, but the server did not speak SMTP as expected, or did not
    /// get through greeting, TLS and login within the timeout.
    Protocol(String),
    /// The TLS handshake failed, typically a certificate that does not verify.
    Tls(String),
    /// The server refused the login.
    Login(String),
}

impl std::fmt::Display for SessionFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionFailure::Unreachable(detail)
            | SessionFailure::Protocol(detail)
            | SessionFailure::Tls(detail)
            | SessionFailure::Login(detail) => f.write_str(detail),
        }
    }
}

/// Everything a transport is opened with, resolved from the config once
/// (secret and CA files read). Workers compare the whole of it after a
/// reload: any difference (a rotated password, a new timeout, another CA)
/// and they open new sessions with the new values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailerSettings {
    pub transport: Transport,
    pub file_dir: PathBuf,
    pub smtp: SmtpServer,
}

/// How to reach and log in to the SMTP relay (`[mail.smtp]` and the files
/// it names); unused by the file transport.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpServer {
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    pub username: Option<String>,
    /// `password_file`'s content.
    pub password: Option<Secret>,
    /// `ca_file`'s content: PEM certificates trusted besides the public roots.
    pub ca: Option<Vec<u8>>,
    /// Each SMTP exchange (and connecting, TLS and login together) must end within it.
    pub timeout: Duration,
}

impl MailerSettings {
    pub fn from_config(config: &crate::config::Config) -> Self {
        config.resolved.mailer.clone()
    }

    pub fn open(&self) -> anyhow::Result<Mailer> {
        Ok(match self.transport {
            Transport::File => {
                outbox_writable(&self.file_dir)?;
                Mailer::File(self.file_dir.clone())
            }
            Transport::Smtp => Mailer::Smtp(Box::new(SmtpSession::new(self.smtp.clone()))),
        })
    }

    /// Opens an SMTP session (connect, TLS, login) and closes it again: what
    /// `/healthz` reports before the first message needs one.
    pub async fn probe_smtp(&self) -> Result<(), SessionFailure> {
        SmtpSession::new(self.smtp.clone()).probe().await
    }
}

/// Creates the outbox folder if needed and proves a file can be written
/// there; the error names the folder (`mail.file_dir`) to fix.
pub fn outbox_writable(dir: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    crate::mail_files::create_folder(dir).with_context(|| {
        format!(
            "mail.file_dir: cannot create the outbox folder {}",
            dir.display()
        )
    })?;
    let probe = dir.join(".outreach-probe");
    std::fs::write(&probe, b"").with_context(|| {
        format!(
            "mail.file_dir: cannot write to the outbox folder {}",
            dir.display()
        )
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

pub enum Mailer {
    /// `.eml` files in this folder ([`crate::mail_files`]).
    File(PathBuf),
    Smtp(Box<SmtpSession>),
}

impl Mailer {
    pub async fn send(&mut self, message: &Message) -> SendResult {
        self.send_with_next(message, None, Utc::now()).await
    }

    /// Sends `message`; over a pipelining SMTP session, the envelope of
    /// `next` goes out in the same write as this message's data (RFC 2920),
    /// so the next message costs one round trip instead of two. The caller
    /// should send `next` next: any other message first ends the session.
    /// `now` decides whether a failed session may be tried again yet.
    pub async fn send_with_next(
        &mut self,
        message: &Message,
        next: Option<&Message>,
        now: DateTime<Utc>,
    ) -> SendResult {
        match self {
            Mailer::File(dir) => {
                let (dir, bytes) = (dir.clone(), message.formatted());
                let written =
                    tokio::task::spawn_blocking(move || crate::mail_files::write(&dir, &bytes))
                        .await;
                match written {
                    Ok(Ok(id)) => SendResult::Sent(format!("written {id}.eml")),
                    // A full disk or an unwritable folder: keep the message queued.
                    Ok(Err(e)) => {
                        SendResult::Temporary(format!("cannot write to the outbox folder: {e}"))
                    }
                    Err(e) => SendResult::Temporary(format!("writing the message failed: {e}")),
                }
            }
            Mailer::Smtp(session) => session.send(message, next, now).await,
        }
    }

    /// Says goodbye politely (QUIT) at shutdown.
    /// Whether messages may carry 8-bit bodies: always into files; over
    /// SMTP when the current session's server announced 8BITMIME (before
    /// the first connection we don't know, so: no).
    pub fn takes_8bit(&self) -> bool {
        match self {
            Mailer::File(_) => true,
            Mailer::Smtp(session) => session.takes_8bit(),
        }
    }

    pub async fn close(&mut self) {
        if let Mailer::Smtp(session) = self {
            session.close().await;
        }
    }
}
