//! Polling the mailbox that bounces and complaints arrive in.
//!
//! Each poll logs in over TLS (implicit, or STARTTLS), reads every email in
//! the folder, hands it to [`super::ingest`], and then moves it to the
//! processed folder (or deletes it), so that a restart never reads it again.
//! An email is only moved once it was acted on or deliberately ignored; if
//! acting fails (the database is away), it stays and the next poll tries
//! again. Reading the same email twice changes nothing: ingest remembers
//! what it read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use chrono::Utc;
use futures::TryStreamExt;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tracing::{info, warn};

use crate::app::App;
use crate::secret::Secret;

/// A whole poll (connect, log in, read, move) gives up after this long.
const POLL_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// `imaps://`: TLS from the first byte (port 993).
    Tls,
    /// `imap://`: plain connection upgraded with STARTTLS before logging in
    /// (port 143). Without the upgrade nothing is sent.
    StartTls,
}

/// `[bounces]` with an `imap_url`, parsed.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub security: Security,
    pub host: String,
    pub port: u16,
    pub username: String,
    pub password: Secret,
    pub folder: String,
    /// `None`: read emails are deleted.
    pub processed_folder: Option<String>,
    pub poll: Duration,
    /// Certificates trusted besides the public roots (`bounces.ca_file`).
    pub extra_roots: Vec<CertificateDer<'static>>,
}

/// The certificates in a PEM file; an error if it holds none.
pub fn parse_ca(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err("holds no \"BEGIN CERTIFICATE\" block".into());
    }
    Ok(certs)
}

/// What one poll did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Polled {
    /// Emails acted on or deliberately ignored, and moved away.
    pub read: usize,
    /// Emails that are not emails at all; moved away too, with a warning.
    pub unreadable: usize,
}

type Session = async_imap::Session<TlsStream<TcpStream>>;

/// Reads the mailbox once.
pub async fn poll_once(app: &App, mailbox: &Mailbox) -> Result<Polled> {
    tokio::time::timeout(POLL_TIMEOUT, poll(app, mailbox))
        .await
        .map_err(|_| anyhow!("no answer within {} s", POLL_TIMEOUT.as_secs()))?
        .with_context(|| format!("bounce mailbox {}:{}", mailbox.host, mailbox.port))
}

async fn poll(app: &App, mailbox: &Mailbox) -> Result<Polled> {
    let mut session = log_in(mailbox).await?;
    if let Some(folder) = &mailbox.processed_folder {
        // Fails when it exists already, which is what we want.
        let _ = session.create(folder).await;
    }
    session
        .select(&mailbox.folder)
        .await
        .with_context(|| format!("opening the folder \"{}\"", mailbox.folder))?;
    let mut uids: Vec<u32> = session
        .uid_search("ALL")
        .await
        .context("listing the emails")?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut polled = Polled::default();
    for uid in uids {
        let raw = fetch(&mut session, uid).await?;
        match super::ingest(app, &raw, Utc::now()).await {
            Ok(_) => polled.read += 1,
            Err(e) if super::is_unreadable(&e) => {
                warn!(uid, error = %format!("{e:#}"), "an email in the bounce mailbox cannot be read; moved away");
                polled.unreadable += 1;
            }
            // The database failed: leave the email for the next poll.
            Err(e) => return Err(e),
        }
        put_away(&mut session, mailbox, uid).await?;
    }
    session.logout().await.ok();
    Ok(polled)
}

async fn fetch(session: &mut Session, uid: u32) -> Result<Vec<u8>> {
    let messages: Vec<_> = session
        .uid_fetch(uid.to_string(), "BODY.PEEK[]")
        .await
        .with_context(|| format!("fetching email {uid}"))?
        .try_collect()
        .await
        .with_context(|| format!("fetching email {uid}"))?;
    messages
        .iter()
        .find_map(|m| m.body().map(<[u8]>::to_vec))
        .ok_or_else(|| anyhow!("the server sent no body for email {uid}"))
}

async fn put_away(session: &mut Session, mailbox: &Mailbox, uid: u32) -> Result<()> {
    let uid = uid.to_string();
    match &mailbox.processed_folder {
        Some(folder) => session
            .uid_mv(&uid, folder)
            .await
            .with_context(|| format!("moving email {uid} to \"{folder}\"")),
        None => {
            let flagged: Vec<_> = session
                .uid_store(&uid, "+FLAGS.SILENT (\\Deleted)")
                .await
                .with_context(|| format!("deleting email {uid}"))?
                .try_collect()
                .await?;
            drop(flagged);
            let expunged: Vec<_> = session
                .uid_expunge(&uid)
                .await
                .with_context(|| format!("deleting email {uid}"))?
                .try_collect()
                .await?;
            drop(expunged);
            Ok(())
        }
    }
}

async fn log_in(mailbox: &Mailbox) -> Result<Session> {
    let tcp = TcpStream::connect((mailbox.host.as_str(), mailbox.port))
        .await
        .context("connecting")?;
    let tls = tls_connector(mailbox);
    let name = ServerName::try_from(mailbox.host.clone())
        .map_err(|_| anyhow!("\"{}\" is not a host name", mailbox.host))?;
    let stream = match mailbox.security {
        Security::Tls => tls.connect(name, tcp).await.context("TLS")?,
        Security::StartTls => {
            let mut plain = async_imap::Client::new(tcp);
            plain
                .read_response()
                .await
                .context("reading the greeting")?
                .ok_or_else(|| anyhow!("the server closed the connection"))?;
            plain
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .context("STARTTLS")?;
            tls.connect(name, plain.into_inner())
                .await
                .context("TLS after STARTTLS")?
        }
    };
    let mut client = async_imap::Client::new(stream);
    if mailbox.security == Security::Tls {
        client
            .read_response()
            .await
            .context("reading the greeting")?
            .ok_or_else(|| anyhow!("the server closed the connection"))?;
    }
    let password = mailbox
        .password
        .expose_str()
        .context("bounces.password_file is not UTF-8")?;
    match client.login(&mailbox.username, password).await {
        Ok(session) => Ok(session),
        Err((e, _)) => bail!("logging in as {} failed: {e}", mailbox.username),
    }
}

fn tls_connector(mailbox: &Mailbox) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in &mailbox.extra_roots {
        // A certificate rustls cannot use as a root was refused by `check`.
        let _ = roots.add(cert.clone());
    }
    let config = ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("ring supports the default TLS versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// The daemon's loop: a poll every `bounces.poll` until stopped.
pub async fn run(shared: crate::app::Shared, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let app = shared.current();
        let Some(mailbox) = app.config.resolved.bounce_mailbox.clone() else {
            // Not configured (now): look again after a reload.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(60)) => continue,
                _ = stop.changed() => return,
            }
        };
        match poll_once(&app, &mailbox).await {
            Ok(p) if p.read + p.unreadable > 0 => {
                info!(
                    read = p.read,
                    unreadable = p.unreadable,
                    "bounce mailbox read"
                )
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %format!("{e:#}"), "the bounce mailbox could not be read; trying again at the next poll")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(mailbox.poll) => {}
            _ = stop.changed() => return,
        }
    }
}
