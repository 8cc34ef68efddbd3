//! DKIM signatures (RFC 6376) for every email the daemon sends, made with
//! the `mail-auth` crate over the exact bytes that go out.
//!
//! lettre 0.11 has a signer of its own, but its signatures do not verify: it
//! hashes a multipart message without the top-level `Content-Type` and its
//! own `DKIM-Signature` header unfolded, while the message it writes has both
//! as usual. Its `dkim` feature also pulls in the `rsa` crate, which has a
//! timing side channel without a fixed release (RUSTSEC-2023-0071).
//! mail-auth signs with ring, the crypto library TLS already uses here.
//!
//! Keys: RSA of 2048 to 8192 bits (`rsa-sha256`) or Ed25519
//! (`ed25519-sha256`), as PEM: PKCS#1 (`BEGIN RSA PRIVATE KEY`) or PKCS#8
//! (`BEGIN PRIVATE KEY`). Both sides use `relaxed` canonicalization, which
//! survives the header refolding relays do.

use anyhow::{Context, Result, anyhow};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256, SigningKey};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::pem::PemObject;

/// The headers a signature covers, where present. Both List-Unsubscribe
/// headers are signed, as mailbox providers expect for one-click
/// unsubscribe; so is Auto-Submitted, which tells them a staff email is
/// machine-made.
const SIGNED_HEADERS: [&str; 12] = [
    "From",
    "Reply-To",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Auto-Submitted",
];

/// A loaded key that has proved it can sign. `Debug` shows no key material.
pub struct Signer {
    key: Key,
    /// The TXT record to publish at `<selector>._domainkey.<domain>`.
    record: String,
    /// Where that record goes.
    record_name: String,
}

enum Key {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.record_name)
    }
}

impl Signer {
    /// Loads a PEM private key for `selector._domainkey.domain`. The error
    /// says what is wrong with the key and how to make a usable one; the
    /// caller names the file.
    pub fn from_pem(pem: &[u8], domain: &str, selector: &str) -> Result<Self, String> {
        const MAKE_ONE: &str = "make one with `openssl genpkey -algorithm ed25519 -out dkim.pem` or `openssl genrsa -out dkim.pem 2048`";
        let text = String::from_utf8_lossy(pem);
        if text.contains("ENCRYPTED") {
            return Err("the key is protected by a passphrase, which the daemon cannot type; store it without one (readable only by the daemon's user): `openssl pkey -in encrypted.pem -out dkim.pem`".to_string());
        }
        let der = PrivateKeyDer::from_pem_slice(pem)
            .map_err(|_| format!("no PEM private key found in it; {MAKE_ONE}"))?;
        let ed25519 = match &der {
            PrivateKeyDer::Pkcs8(pkcs8) => {
                Ed25519Key::from_pkcs8_maybe_unchecked_der(pkcs8.secret_pkcs8_der()).ok()
            }
            _ => None,
        };
        let (key, record) = match (ed25519, &der) {
            (Some(key), _) => {
                let record = format!("v=DKIM1; k=ed25519; p={}", BASE64.encode(key.public_key()));
                (Key::Ed25519(template(key, domain, selector)), record)
            }
            (None, PrivateKeyDer::Pkcs1(_) | PrivateKeyDer::Pkcs8(_)) => {
                let key = RsaKey::<Sha256>::from_key_der(der.clone_key())
                    .map_err(|e| rsa_refused(&e.to_string(), MAKE_ONE))?;
                let record = format!(
                    "v=DKIM1; k=rsa; p={}",
                    BASE64.encode(rsa_subject_public_key_info(&key.public_key()))
                );
                (Key::Rsa(template(key, domain, selector)), record)
            }
            _ => {
                return Err(format!(
                    "an ECDSA key (\"BEGIN EC PRIVATE KEY\"): DKIM signs with RSA or Ed25519 only; {MAKE_ONE}"
                ));
            }
        };
        let signer = Signer {
            key,
            record,
            record_name: format!("{selector}._domainkey.{domain}"),
        };
        // A key that loads can still fail to sign (ring refuses some
        // parameters only then): find out now, not with the first email.
        signer
            .signature(b"From: probe@example.invalid\r\nSubject: probe\r\n\r\nprobe\r\n")
            .map_err(|e| format!("the key cannot sign: {e:#}; {MAKE_ONE}"))?;
        Ok(signer)
    }

    /// The DNS TXT record that lets receivers check our signatures, and its name.
    pub fn dns_record(&self) -> (&str, &str) {
        (&self.record_name, &self.record)
    }

    /// Signs `message` as it will be written and adds the DKIM-Signature header.
    pub fn sign(&self, message: &mut Message) -> Result<()> {
        let header = self.signature(&message.formatted())?;
        let value = header
            .strip_prefix("DKIM-Signature: ")
            .and_then(|v| v.strip_suffix("\r\n"))
            .ok_or_else(|| anyhow!("unexpected DKIM-Signature header: {header}"))?
            .to_string();
        message
            .headers_mut()
            .insert_raw(HeaderValue::dangerous_new_pre_encoded(
                HeaderName::new_from_ascii_str("DKIM-Signature"),
                value.clone(),
                value,
            ));
        Ok(())
    }

    /// The whole `DKIM-Signature: …\r\n` header (folded) for `raw`.
    fn signature(&self, raw: &[u8]) -> Result<String> {
        let signature = match &self.key {
            Key::Rsa(signer) => signer.sign(raw),
            Key::Ed25519(signer) => signer.sign(raw),
        }
        .map_err(|e| anyhow!("{e}"))
        .context("DKIM signing")?;
        Ok(signature.to_header())
    }
}

fn template<T: SigningKey>(key: T, domain: &str, selector: &str) -> DkimSigner<T, Done> {
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(SIGNED_HEADERS)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// ring's reasons, in words an admin can act on.
fn rsa_refused(reason: &str, make_one: &str) -> String {
    match reason {
        r if r.contains("TooSmall") => {
            format!("the RSA key is shorter than 2048 bits, which is no longer safe; {make_one}")
        }
        r if r.contains("TooLarge") => format!("the RSA key is longer than 8192 bits; {make_one}"),
        r if r.contains("WrongAlgorithm") => format!(
            "neither an RSA nor an Ed25519 key (an ECDSA key?): DKIM signs with RSA or Ed25519 only; {make_one}"
        ),
        r => format!("not a usable RSA or Ed25519 private key ({r}); {make_one}"),
    }
}

/// An RSA public key (PKCS#1 `RSAPublicKey`, as ring gives it) wrapped in
/// the SubjectPublicKeyInfo that DKIM records conventionally carry (what
/// `openssl rsa -pubout` prints).
fn rsa_subject_public_key_info(rsa_public_key: &[u8]) -> Vec<u8> {
    // SEQUENCE { OID rsaEncryption, NULL }
    const ALGORITHM: [u8; 15] = [
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bits = vec![0x00]; // no unused bits
    bits.extend_from_slice(rsa_public_key);
    let mut content = ALGORITHM.to_vec();
    content.extend(der_element(0x03, &bits));
    der_element(0x30, &content)
}

fn der_element(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_use_the_short_form_below_128_and_the_long_form_above() {
        assert_eq!(der_element(0x04, &[1, 2]), vec![0x04, 0x02, 1, 2]);
        let long = der_element(0x04, &[0; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
        assert_eq!(long.len(), 304);
    }
}
