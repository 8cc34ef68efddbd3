//! Our SMTP client: one long-lived session per worker over lettre's
//! connection and command types, on a socket we open ourselves
//! (`TCP_NODELAY`), with pipelining (RFC 2920), a timeout around each
//! exchange and a backoff after a session that could not be opened.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use chrono::{DateTime, Utc};
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use tokio::net::TcpStream;

use super::{SendResult, SessionFailure, SmtpServer};
use crate::config::Tls;

/// Waits after a failed session: 30 s, doubling with each failure in a
/// row, at most 10 minutes. A wrong password or certificate needs a person;
/// trying every few seconds would only get the account locked.
fn session_backoff(failures: u32) -> chrono::Duration {
    chrono::Duration::seconds(30 << failures.saturating_sub(1).min(5)).min(MAX_SESSION_BACKOFF)
}

const MAX_SESSION_BACKOFF: chrono::Duration = chrono::Duration::minutes(10);

pub struct SmtpSession {
    server: SmtpServer,
    connection: Option<Connection>,
    /// The last session attempts failed: why, how many in a row, and when
    /// the next may be made.
    down: Option<(SessionFailure, u32, DateTime<Utc>)>,
}

/// An open SMTP session and whether the server pipelines (RFC 2920).
struct Connection {
    smtp: AsyncSmtpConnection,
    pipelining: bool,
    /// Message-ID of the message whose envelope (MAIL, RCPT, DATA) went out
    /// with the previous message's data; its replies are still to be read.
    ahead: Option<String>,
}

impl SmtpSession {
    pub(super) fn new(server: SmtpServer) -> Self {
        SmtpSession {
            server,
            connection: None,
            down: None,
        }
    }

    /// Opens a session (connect, TLS, login) and closes it again.
    pub(super) async fn probe(&self) -> Result<(), SessionFailure> {
        let mut conn = self.connect_in_time().await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.smtp.quit()).await;
        Ok(())
    }

    /// Whether the current session's server announced 8BITMIME (before the
    /// first connection we don't know, so: no).
    pub(super) fn takes_8bit(&self) -> bool {
        self.connection.as_ref().is_some_and(|c| {
            c.smtp
                .server_info()
                .supports_feature(lettre::transport::smtp::extension::Extension::EightBitMime)
        })
    }

    /// Says goodbye politely (QUIT).
    pub(super) async fn close(&mut self) {
        if let Some(mut conn) = self.connection.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.smtp.quit()).await;
        }
    }

    fn timeout(&self) -> Duration {
        self.server.timeout
    }

    /// [`Self::connect`] within the timeout.
    async fn connect_in_time(&self) -> Result<Connection, SessionFailure> {
        let timeout = self.timeout();
        let smtp = &self.server;
        tokio::time::timeout(timeout, self.connect())
            .await
            .unwrap_or_else(|_| {
                Err(SessionFailure::Protocol(format!(
                    "{}:{} did not complete the SMTP greeting, TLS and login within {}s",
                    smtp.host,
                    smtp.port,
                    timeout.as_secs()
                )))
            })
    }

    fn tls_parameters(&self) -> Result<TlsParameters, SessionFailure> {
        let smtp = &self.server;
        let mut tls = TlsParameters::builder(smtp.host.clone());
        if let Some(pem) = &self.server.ca {
            let ca = Certificate::from_pem(pem)
                .map_err(|e| SessionFailure::Tls(format!("mail.smtp.ca_file: {e}")))?;
            tls = tls.add_root_certificate(ca);
        }
        tls.build_rustls()
            .map_err(|e| SessionFailure::Tls(format!("TLS setup: {e}")))
    }

    async fn connect(&self) -> Result<Connection, SessionFailure> {
        let smtp = &self.server;
        let server = format!("{}:{}", smtp.host, smtp.port);
        let tls_failed = |e: &dyn std::fmt::Display| {
            let hint = if self.server.ca.is_none() {
                " (a relay with a certificate from a private CA needs mail.smtp.ca_file)"
            } else {
                ""
            };
            SessionFailure::Tls(format!("TLS with {server} failed: {e}{hint}"))
        };
        let hello = ClientId::default();
        let unreachable = |e: &dyn std::fmt::Display| {
            SessionFailure::Unreachable(format!("cannot connect to {server}: {e}"))
        };
        let stream = tokio::time::timeout(
            self.timeout(),
            TcpStream::connect((smtp.host.as_str(), smtp.port)),
        )
        .await
        .map_err(|_| unreachable(&"no answer"))?
        .map_err(|e| unreachable(&e))?;
        stream.set_nodelay(true).map_err(|e| unreachable(&e))?;
        let greeted = |e: lettre::transport::smtp::Error| {
            SessionFailure::Protocol(format!("SMTP greeting from {server}: {e}"))
        };
        let mut conn = match smtp.tls {
            Tls::Tls => {
                let stream = implicit_tls(stream, &smtp.host, self.server.ca.as_deref())
                    .await
                    .map_err(|e| tls_failed(&e))?;
                AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
                    .await
                    .map_err(greeted)?
            }
            Tls::Starttls | Tls::None => {
                let mut conn =
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &hello)
                        .await
                        .map_err(greeted)?;
                if smtp.tls == Tls::Starttls {
                    conn.starttls(self.tls_parameters()?, &hello)
                        .await
                        .map_err(|e| tls_failed(&e))?;
                }
                conn
            }
        };
        // lettre keeps only the EHLO keywords it knows; ask again to learn
        // whether MAIL, RCPT and DATA may be sent in one go.
        let ehlo = conn
            .command(lettre::transport::smtp::commands::Ehlo::new(hello.clone()))
            .await
            .map_err(|e| SessionFailure::Protocol(format!("EHLO to {server}: {e}")))?;
        let pipelining = ehlo
            .message()
            .any(|line| line.trim().eq_ignore_ascii_case("PIPELINING"));
        if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
            let login_failed = |detail: String| {
                SessionFailure::Login(format!(
                    "authentication failed: {server} refused the login as {user}: {detail}; check mail.smtp.username and the password file"
                ))
            };
            let password = password
                .expose_str()
                .map_err(|_| login_failed("the password file is not UTF-8".into()))?;
            let credentials = Credentials::new(user.clone(), password.to_string());
            conn.auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| login_failed(e.to_string()))?;
        }
        Ok(Connection {
            smtp: conn,
            pipelining,
            ahead: None,
        })
    }

    pub(super) async fn send(
        &mut self,
        message: &Message,
        next: Option<&Message>,
        now: DateTime<Utc>,
    ) -> SendResult {
        let timeout = self.timeout();
        // The server waits for the data of the message announced ahead; if
        // that is not this one, only a new session ends the wait.
        if self
            .connection
            .as_ref()
            .is_some_and(|c| c.ahead.is_some() && c.ahead != message_id(message))
        {
            self.connection = None;
        }
        if self.connection.as_ref().is_none_or(|c| c.smtp.has_broken()) {
            // One attempt per backoff period, however many messages are due.
            if let Some((failure, _, retry_at)) = &self.down
                && now < *retry_at
            {
                return SendResult::Unavailable {
                    failure: failure.clone(),
                    retry_at: *retry_at,
                };
            }
            match self.connect_in_time().await {
                Ok(conn) => {
                    self.connection = Some(conn);
                    self.down = None;
                }
                Err(failure) => {
                    let failures = self.down.as_ref().map_or(0, |d| d.1) + 1;
                    let retry_at = now + session_backoff(failures);
                    self.down = Some((failure.clone(), failures, retry_at));
                    return SendResult::Unavailable { failure, retry_at };
                }
            }
        }
        let conn = self.connection.as_mut().expect("connected just above");
        let mut body_sent = false;
        let result =
            tokio::time::timeout(timeout, transfer(conn, message, next, &mut body_sent)).await;
        let result = result.unwrap_or_else(|_| {
            let stalled = format!(
                "the SMTP server did not answer within {}s",
                timeout.as_secs()
            );
            // Stalled after the body went out: it may have arrived.
            Err(if body_sent {
                Phase::Body(stalled)
            } else {
                Phase::Envelope(stalled)
            })
        });
        match result {
            Ok(reply) => SendResult::Sent(reply),
            Err(failure) => {
                let (outcome, session_usable) = match failure {
                    Phase::Rejected {
                        reply,
                        permanent: true,
                    } => (SendResult::Permanent(reply), true),
                    Phase::Rejected {
                        reply,
                        permanent: false,
                    } => (SendResult::Temporary(reply), true),
                    Phase::Envelope(reply) => (SendResult::Temporary(reply), false),
                    Phase::Body(reason) => (SendResult::Ambiguous(reason), false),
                };
                // A rejected message ends its transaction; with the next
                // one's envelope already under way there is nothing to reset.
                let next_under_way = self.connection.as_ref().is_some_and(|c| c.ahead.is_some());
                if !session_usable {
                    self.connection = None;
                } else if !next_under_way {
                    self.reset_or_drop().await;
                }
                outcome
            }
        }
    }

    /// After a rejection the session can go on once the transaction is
    /// reset; if RSET fails it is dropped without further talk, so a stalled
    /// server cannot hold us. (After a connection problem it is dropped at once.)
    async fn reset_or_drop(&mut self) {
        let Some(Connection { smtp: conn, .. }) = self.connection.as_mut() else {
            return;
        };
        let reset = !conn.has_broken()
            && matches!(
                tokio::time::timeout(
                    Duration::from_secs(5),
                    conn.command(lettre::transport::smtp::commands::Rset)
                )
                .await,
                Ok(Ok(_))
            );
        if !reset {
            self.connection = None;
        }
    }
}

/// Implicit TLS (`tls = "tls"`, port 465) on our own `TCP_NODELAY` socket;
/// lettre's own connect would leave the delay on. It trusts what lettre's
/// STARTTLS trusts: the public roots and `mail.smtp.ca_file`.
async fn implicit_tls(
    stream: TcpStream,
    host: &str,
    ca: Option<&[u8]>,
) -> anyhow::Result<TlsSocket> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for certificate in ca.map(CertificateDer::pem_slice_iter).into_iter().flatten() {
        roots.add(certificate?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, stream)
        .await?;
    Ok(TlsSocket(stream))
}

/// A TLS stream lettre can run an SMTP session over.
#[derive(Debug)]
struct TlsSocket(tokio_rustls::client::TlsStream<TcpStream>);

impl lettre::transport::smtp::client::AsyncTokioStream for TlsSocket {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl tokio::io::AsyncRead for TlsSocket {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for TlsSocket {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// Where a transfer failed, which decides whether the message may have arrived.
enum Phase {
    /// The server answered with an error: it did not take the message.
    Rejected { reply: String, permanent: bool },
    /// A connection problem before the body was sent: it did not arrive.
    Envelope(String),
    /// A connection problem after the body was sent: it may have arrived.
    Body(String),
}

/// A pre-formatted sequence of SMTP commands, written in one go.
struct Pipelined(String);

impl std::fmt::Display for Pipelined {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// MAIL, RCPT, DATA, body — as lettre's `send`, but keeping track of the
/// phase, and, when the server pipelines, with MAIL, RCPT and DATA in one
/// write (two round trips per message instead of four) and the next
/// message's MAIL, RCPT and DATA in the same write as this one's data (one
/// round trip per message).
async fn transfer(
    conn: &mut Connection,
    message: &Message,
    next: Option<&Message>,
    body_sent: &mut bool,
) -> Result<String, Phase> {
    let envelope = message.envelope();
    let rcpts = envelope.to().len();
    let body = message.formatted();
    let smtp = &mut conn.smtp;
    if conn.ahead.take().is_some() {
        // Our envelope went out with the previous message's data (`send`
        // made sure it is ours): its replies are waiting.
        let mut replies = Vec::with_capacity(rcpts + 2);
        for _ in 0..rcpts + 2 {
            replies.push(smtp.read_response().await);
        }
        envelope_outcome(replies)?;
    } else if conn.pipelining {
        // Read every reply, even after a rejection, to stay in step with the server.
        let mut replies = vec![
            smtp.command(Pipelined(envelope_commands(smtp, envelope)))
                .await,
        ];
        for _ in 0..=rcpts {
            replies.push(smtp.read_response().await);
        }
        envelope_outcome(replies)?;
    } else {
        use lettre::transport::smtp::commands::{Data, Rcpt};
        smtp.command(mail_command(smtp, envelope))
            .await
            .map_err(|e| classify(e, false))?;
        for to in envelope.to() {
            smtp.command(Rcpt::new(to.clone(), vec![]))
                .await
                .map_err(|e| classify(e, false))?;
        }
        smtp.command(Data).await.map_err(|e| classify(e, false))?;
    }
    *body_sent = true;
    let response = match String::from_utf8(body) {
        // Our own dot-stuffing and one write: lettre's codec copies byte by
        // byte and writes the terminating dot separately.
        Ok(text) => {
            let mut data = with_transparency(&text);
            // Only a message we can recognise when it comes is announced.
            if let Some(next) = next.filter(|_| conn.pipelining)
                && let Some(id) = message_id(next)
            {
                data.push_str(&envelope_commands(smtp, next.envelope()));
                conn.ahead = Some(id);
            }
            smtp.command(Pipelined(data)).await
        }
        Err(raw) => smtp.message(raw.as_bytes()).await,
    }
    .map_err(|e| classify(e, true))?;
    Ok(reply_text(response.code().to_string(), response.message()))
}

fn classify(e: lettre::transport::smtp::Error, body_sent: bool) -> Phase {
    if e.is_permanent() || e.is_transient() {
        Phase::Rejected {
            reply: e.to_string(),
            permanent: e.is_permanent(),
        }
    } else if body_sent {
        Phase::Body(e.to_string())
    } else {
        Phase::Envelope(e.to_string())
    }
}

/// The replies to MAIL, each RCPT and DATA, read in one go.
fn envelope_outcome(
    replies: Vec<
        Result<lettre::transport::smtp::response::Response, lettre::transport::smtp::Error>,
    >,
) -> Result<(), Phase> {
    let data_accepted = replies.last().is_some_and(Result::is_ok);
    match replies.into_iter().find_map(Result::err) {
        // The server wants a body although the envelope failed: end the
        // empty message by dropping the session, never by sending one.
        Some(failure) if data_accepted => Err(Phase::Envelope(failure.to_string())),
        Some(failure) => Err(classify(failure, false)),
        None => Ok(()),
    }
}

/// MAIL FROM with the parameters the server supports: SMTPUTF8 for
/// non-ASCII addresses, BODY=8BITMIME whenever it is offered (it allows,
/// not requires, 8-bit content, and is known before the body is).
fn mail_command(
    smtp: &AsyncSmtpConnection,
    envelope: &lettre::address::Envelope,
) -> lettre::transport::smtp::commands::Mail {
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let mut options = Vec::new();
    let non_ascii = envelope
        .to()
        .iter()
        .chain(envelope.from())
        .any(|a| !a.to_string().is_ascii());
    if non_ascii && smtp.server_info().supports_feature(Extension::SmtpUtfEight) {
        options.push(MailParameter::SmtpUtfEight);
    }
    if smtp.server_info().supports_feature(Extension::EightBitMime) {
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    lettre::transport::smtp::commands::Mail::new(envelope.from().cloned(), options)
}

/// MAIL, RCPT and DATA as one pipelined group.
fn envelope_commands(smtp: &AsyncSmtpConnection, envelope: &lettre::address::Envelope) -> String {
    use lettre::transport::smtp::commands::{Data, Rcpt};
    let mut commands = mail_command(smtp, envelope).to_string();
    for to in envelope.to() {
        commands.push_str(&Rcpt::new(to.clone(), vec![]).to_string());
    }
    commands.push_str(&Data.to_string());
    commands
}

fn message_id(message: &Message) -> Option<String> {
    message.headers().get_raw("Message-ID").map(str::to_string)
}

/// The message as DATA content (RFC 5321 4.5.2): a `.` that starts a line
/// is doubled, and the content ends with `CRLF.CRLF`.
fn with_transparency(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    if text.starts_with('.') {
        out.push('.');
    }
    let mut done = 0;
    for (at, line_start) in text.match_indices("\r\n.") {
        let end = at + line_start.len();
        out.push_str(&text[done..end]);
        out.push('.');
        done = end;
    }
    out.push_str(&text[done..]);
    out.push_str("\r\n.\r\n");
    out
}

fn reply_text<'a>(code: String, lines: impl Iterator<Item = &'a str>) -> String {
    let text: Vec<&str> = lines.collect();
    format!("{code} {}", text.join(" "))
}

/// RFC 3463 `5.1.1`-class replies: the address does not exist.
pub fn is_bad_address(reply: &str) -> bool {
    reply.contains("5.1.1")
        || reply.contains("5.1.10")
        || reply.starts_with("550 5.1")
        || reply.contains(" 5.1.1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dot_starting_a_line_is_doubled_and_the_data_ends_with_a_lone_dot() {
        assert_eq!(with_transparency(".a\r\nb"), "..a\r\nb\r\n.\r\n");
        assert_eq!(
            with_transparency("a\r\n.\r\n..b\r\nc.d"),
            "a\r\n..\r\n...b\r\nc.d\r\n.\r\n"
        );
        // Only CRLF starts a line (as lettre's codec has it).
        assert_eq!(with_transparency("a\n.b"), "a\n.b\r\n.\r\n");
    }
}
