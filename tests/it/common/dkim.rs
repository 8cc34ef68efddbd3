//! Checking our DKIM signatures the way a receiving mail server does:
//! mail-auth's verifier (its verifying code, not the signing path the
//! daemon uses) with the public key as openssl derived it from the test key
//! (`tests/fixtures/dkim/*.txt`), handed to it as the DNS answer.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::PathBuf;
use std::sync::Mutex;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::common::resolver::ToFqdn;
use mail_auth::common::verify::DomainKey;
use mail_auth::{
    AuthenticatedMessage, DkimResult, MessageAuthenticator, Parameters, ResolverCache, Txt,
};

pub const SELECTOR: &str = "outreach";
pub const DOMAIN: &str = "cafe-test.example";

/// A test key (`rsa2048-pkcs1`, `rsa2048-pkcs8`, `ed25519`, …).
pub fn key_file(name: &str) -> PathBuf {
    super::repo_path(&format!("tests/fixtures/dkim/{name}.pem"))
}

/// The TXT record openssl made for a key (`rsa2048`, `ed25519`).
pub fn record(name: &str) -> String {
    std::fs::read_to_string(super::repo_path(&format!("tests/fixtures/dkim/{name}.txt")))
        .unwrap()
        .trim()
        .to_string()
}

/// `[mail.dkim]` for a test key, signing for [`DOMAIN`] with [`SELECTOR`].
pub fn config(key: &str) -> String {
    format!(
        "\n[mail.dkim]\nselector = \"{SELECTOR}\"\ndomain = \"{DOMAIN}\"\nprivate_key_file = \"{}\"\n",
        key_file(key).display()
    )
}

/// The DNS as the verifier sees it: only the records we publish.
#[derive(Default)]
struct Dns(Mutex<HashMap<Box<str>, Txt>>);

impl ResolverCache<Box<str>, Txt> for Dns {
    fn get<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().get(name).cloned()
    }

    fn remove<Q>(&self, name: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.lock().unwrap().remove(name)
    }

    fn insert(&self, key: Box<str>, value: Txt, _: std::time::Instant) {
        self.0.lock().unwrap().insert(key, value);
    }
}

/// Verifies every DKIM signature of `raw` against `record` published at
/// `outreach._domainkey.cafe-test.example`. Err says what failed.
pub async fn verify(raw: &[u8], record: &str) -> Result<(), String> {
    let dns = Dns::default();
    let key = DomainKey::parse(record.as_bytes()).map_err(|e| format!("record {record}: {e}"))?;
    let name = format!("{SELECTOR}._domainkey.{DOMAIN}");
    dns.insert(
        name.to_fqdn().into_owned().into_boxed_str(),
        key.into(),
        std::time::Instant::now() + std::time::Duration::from_secs(3600),
    );
    let message = AuthenticatedMessage::parse(raw).ok_or("not a parsable message")?;
    // Only the cache is asked; the resolver behind it is never used.
    let authenticator = MessageAuthenticator::new_cloudflare().map_err(|e| e.to_string())?;
    let results = authenticator
        .verify_dkim(Parameters::new(&message).with_txt_cache(&dns))
        .await;
    if results.is_empty() {
        return Err("no DKIM-Signature".into());
    }
    for result in &results {
        if result.result() != &DkimResult::Pass {
            return Err(format!("{:?}", result.result()));
        }
    }
    Ok(())
}
