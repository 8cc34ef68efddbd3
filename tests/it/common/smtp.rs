//! A real SMTP server in the test process (mailin-embedded) whose answers
//! depend on the recipient, recording every message it accepted.
//!
//! Recipients steer it: `tempfail-N@…` gets `451` for its first N attempts,
//! `nouser@…` gets `550 5.1.1`, `block@…` gets `554` after the data. A hook
//! runs when a message has been accepted (before the reply is sent).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use mailin_embedded::response::{self, OK, START_DATA};
use mailin_embedded::{Action, AuthMechanism, Handler, Response, Server};

type Hook = Arc<dyn Fn(&[String]) + Send + Sync>;
/// (recipients, raw message) per accepted message.
type Messages = Arc<Mutex<Vec<(Vec<String>, String)>>>;

#[derive(Clone, Default)]
pub struct Received {
    pub messages: Messages,
    /// The envelope sender (MAIL FROM) of each accepted message.
    pub senders: Arc<Mutex<Vec<String>>>,
    attempts: Arc<Mutex<HashMap<String, u32>>>,
}

impl Received {
    pub fn count_to(&self, address: &str) -> usize {
        self.messages
            .lock()
            .unwrap()
            .iter()
            .filter(|(to, _)| to.iter().any(|t| t == address))
            .count()
    }

    pub fn total(&self) -> usize {
        self.messages.lock().unwrap().len()
    }
}

#[derive(Clone)]
struct Recorder {
    received: Received,
    to: Vec<String>,
    from: String,
    data: Vec<u8>,
    hook: Option<Hook>,
    account: Option<Account>,
}

/// The one login a relay accepts, and the AUTH attempts it saw.
#[derive(Clone)]
struct Account {
    user: String,
    password: String,
    attempts: Logins,
}

/// AUTH attempts: (mechanism, accepted).
pub type Logins = Arc<Mutex<Vec<(&'static str, bool)>>>;

impl Recorder {
    fn login(&self, mechanism: &'static str, user: &str, password: &str) -> Response {
        let Some(account) = &self.account else {
            return response::INVALID_CREDENTIALS;
        };
        let accepted = user == account.user && password == account.password;
        account.attempts.lock().unwrap().push((mechanism, accepted));
        if accepted {
            response::AUTH_OK
        } else {
            response::INVALID_CREDENTIALS
        }
    }
}

impl Handler for Recorder {
    fn auth_plain(&mut self, _authz: &str, user: &str, password: &str) -> Response {
        self.login("PLAIN", user, password)
    }

    fn auth_login(&mut self, user: &str, password: &str) -> Response {
        self.login("LOGIN", user, password)
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let mut attempts = self.received.attempts.lock().unwrap();
        let n = attempts.entry(to.to_string()).or_insert(0);
        *n += 1;
        if let Some(rest) = to.strip_prefix("tempfail-")
            && let Some(limit) = rest.split('@').next().and_then(|x| x.parse::<u32>().ok())
            && *n <= limit
        {
            return Response::custom(451, "4.3.0 Try again later".into());
        }
        if to.starts_with("nouser@") {
            return Response::custom(550, "5.1.1 No such user here".into());
        }
        OK
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.to = to.to_vec();
        self.from = from.to_string();
        self.data.clear();
        START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.data.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if self.to.iter().any(|t| t.starts_with("block@")) {
            return Response::custom(554, "5.7.1 Message refused".into());
        }
        if let Some(hook) = &self.hook {
            hook(&self.to);
        }
        let text = String::from_utf8_lossy(&self.data).into_owned();
        self.received
            .senders
            .lock()
            .unwrap()
            .push(self.from.clone());
        self.received
            .messages
            .lock()
            .unwrap()
            .push((self.to.clone(), text));
        OK
    }
}

/// Starts the server on a free loopback port; returns the port and the record.
pub fn start(hook: Option<Hook>) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let handler = Recorder {
        received: received.clone(),
        to: Vec::new(),
        from: String::new(),
        data: Vec::new(),
        hook,
        account: None,
    };
    let mut server = Server::new(handler);
    server
        .with_name("test.smtp")
        .with_num_threads(4)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, received)
}

/// A server that takes the whole message and then hangs up without a reply:
/// the client cannot know whether it was delivered. Counts messages taken.
pub fn start_dropping() -> (u16, Received) {
    start_scripted(false, true)
}

/// A small hand-written server that announces PIPELINING (RFC 2920) and
/// answers each command line in turn, so pipelined clients are exercised:
/// `nouser@…` gets `550 5.1.1`; DATA without a valid recipient gets `554`;
/// a message to `rejectdata@…` is refused after its data (`554 5.7.1`).
/// With `drop_after_data` it hangs up instead of answering the final dot.
pub fn start_pipelining() -> (u16, Received) {
    start_scripted(true, false)
}

fn start_scripted(pipelining: bool, drop_after_data: bool) -> (u16, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let record = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let record = record.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let _ = stream.write_all(b"220 scripted ESMTP\r\n");
                let mut line = String::new();
                let mut to: Vec<String> = Vec::new();
                let mut data: Option<String> = None;
                while reader.read_line(&mut line).unwrap_or(0) > 0 {
                    if let Some(body) = data.as_mut() {
                        if line == ".\r\n" {
                            if drop_after_data {
                                record
                                    .messages
                                    .lock()
                                    .unwrap()
                                    .push((to.clone(), body.clone()));
                                return; // hang up instead of answering 250
                            }
                            let body = std::mem::take(body);
                            data = None;
                            if to.iter().any(|a| a.starts_with("rejectdata@")) {
                                to.clear();
                                let _ = stream.write_all(b"554 5.7.1 content rejected\r\n");
                            } else {
                                record
                                    .messages
                                    .lock()
                                    .unwrap()
                                    .push((std::mem::take(&mut to), body));
                                let _ = stream.write_all(b"250 2.0.0 queued\r\n");
                            }
                        } else {
                            body.push_str(&line);
                        }
                        line.clear();
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let reply: String = if upper.starts_with("EHLO") {
                        if pipelining {
                            "250-scripted\r\n250-PIPELINING\r\n250 8BITMIME\r\n".into()
                        } else {
                            "250 scripted\r\n".into()
                        }
                    } else if upper.starts_with("MAIL") || upper.starts_with("RSET") {
                        to.clear();
                        "250 OK\r\n".into()
                    } else if upper.starts_with("RCPT") {
                        let address = line.split(['<', '>']).nth(1).unwrap_or("").to_string();
                        if address.starts_with("nouser@") {
                            "550 5.1.1 No such user here\r\n".into()
                        } else {
                            to.push(address);
                            "250 OK\r\n".into()
                        }
                    } else if upper.starts_with("DATA") {
                        if to.is_empty() {
                            "554 5.5.1 No valid recipients\r\n".into()
                        } else {
                            data = Some(String::new());
                            "354 go ahead\r\n".into()
                        }
                    } else if upper.starts_with("QUIT") {
                        let _ = stream.write_all(b"221 bye\r\n");
                        return;
                    } else {
                        "250 OK\r\n".into()
                    };
                    let _ = stream.write_all(reply.as_bytes());
                    line.clear();
                }
            });
        }
    });
    (port, received)
}

/// Config lines for sending to a local test server.
pub fn smtp_config(port: u16) -> String {
    format!(
        "\n[mail]\ntransport = \"smtp\"\nrate_per_minute = 0\ngive_up_after = \"1h\"\n\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\ntimeout_secs = 5\n"
    )
}

/// How a relay starts TLS: after EHLO on request (port 587) or from the
/// first byte (port 465).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayTls {
    Starttls,
    Implicit,
}

/// An SMTP relay as hosted providers run them: TLS with a certificate for
/// `localhost` signed by a CA made for this test, and AUTH with one
/// mechanism (PLAIN or LOGIN) for one account, offered only once TLS is on
/// and required before MAIL. mailin's SMTP engine answers, rustls does the TLS.
pub struct Relay {
    pub port: u16,
    pub received: Received,
    /// PEM of the CA that signed the relay's certificate, for `mail.smtp.ca_file`.
    pub ca_pem: String,
    pub logins: Logins,
}

pub fn start_relay(tls: RelayTls, mechanism: AuthMechanism, user: &str, password: &str) -> Relay {
    // Test binaries link both of rustls' crypto providers (through
    // dev-dependencies); the relay names the one the daemon uses.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "outreach test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let config = Arc::new(config);

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let logins = Logins::default();
    let handler = Recorder {
        received: received.clone(),
        to: Vec::new(),
        from: String::new(),
        data: Vec::new(),
        hook: None,
        account: Some(Account {
            user: user.to_string(),
            password: password.to_string(),
            attempts: logins.clone(),
        }),
    };
    let mut builder = mailin::SessionBuilder::new("relay.test");
    builder.enable_auth(mechanism);
    if tls == RelayTls::Starttls {
        builder.enable_start_tls();
    }
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let session = builder.build(stream.peer_addr().unwrap().ip(), handler.clone());
            let config = config.clone();
            // A client that gives up (e.g. on our certificate) just ends its thread.
            std::thread::spawn(move || relay_session(stream, session, tls, config));
        }
    });
    Relay {
        port,
        received,
        ca_pem: ca_cert.pem(),
        logins,
    }
}

fn relay_session(
    stream: TcpStream,
    mut session: mailin::Session<Recorder>,
    tls: RelayTls,
    config: Arc<rustls::ServerConfig>,
) -> std::io::Result<()> {
    let encrypted = |stream: TcpStream| {
        let connection =
            rustls::ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
        Ok::<_, std::io::Error>(BufReader::new(rustls::StreamOwned::new(connection, stream)))
    };
    if tls == RelayTls::Implicit {
        let mut stream = encrypted(stream)?;
        session.tls_active();
        session.greeting().write_to(stream.get_mut())?;
        converse(&mut session, &mut stream)?;
        return Ok(());
    }
    let mut plain = BufReader::new(stream);
    session.greeting().write_to(plain.get_mut())?;
    if converse(&mut session, &mut plain)? {
        let mut stream = encrypted(plain.into_inner())?;
        session.tls_active();
        converse(&mut session, &mut stream)?;
    }
    Ok(())
}

/// Answers command lines until the client leaves; true when it asked for STARTTLS.
fn converse<S: Read + Write>(
    session: &mut mailin::Session<Recorder>,
    stream: &mut BufReader<S>,
) -> std::io::Result<bool> {
    let mut line = Vec::new();
    loop {
        line.clear();
        if stream.read_until(b'\n', &mut line)? == 0 {
            return Ok(false);
        }
        let reply = session.process(&line);
        if reply.action == Action::NoReply {
            continue;
        }
        reply.write_to(stream.get_mut())?;
        stream.get_mut().flush()?;
        match reply.action {
            Action::Close => return Ok(false),
            Action::UpgradeTls => return Ok(true),
            _ => {}
        }
    }
}

/// Config lines for sending through a [`Relay`] at `localhost`, logging in
/// as `user` with the password in `password_file`.
pub fn relay_config(
    relay: &Relay,
    tls: RelayTls,
    user: &str,
    password_file: &std::path::Path,
) -> String {
    format!(
        "\n[mail]\ntransport = \"smtp\"\nrate_per_minute = 0\ngive_up_after = \"1h\"\n\n[mail.smtp]\nhost = \"localhost\"\nport = {}\ntls = \"{}\"\nusername = \"{user}\"\npassword_file = \"{}\"\ntimeout_secs = 5\n",
        relay.port,
        match tls {
            RelayTls::Starttls => "starttls",
            RelayTls::Implicit => "tls",
        },
        password_file.display()
    )
}
