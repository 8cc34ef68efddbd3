//! Signed, expiring tokens for the links in emails.
//!
//! A token is `base64url(purpose.id.expiry[.holder]).base64url(hmac)`,
//! HMAC-SHA256 over the payload. The optional holder names whom a link was
//! given to (the approver of an approval link), so what is done with it is
//! recorded as theirs; in an unsubscribe link it names the kind of email
//! the link came with (links without one stand for every email). The purpose is part of what is signed, so an unsubscribe
//! token can never open a task page. Verification is constant-time and
//! accepts any of the configured keys, so keys can be rotated: sign with the
//! new one, keep the old one in `previous_token_key_files` until its links
//! have expired.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Unsubscribe,
    Task,
    Approval,
    /// The link in a sign-up's confirmation email (double opt-in).
    Confirm,
}

impl Purpose {
    fn tag(self) -> &'static str {
        match self {
            Purpose::Unsubscribe => "u",
            Purpose::Task => "t",
            Purpose::Approval => "a",
            Purpose::Confirm => "c",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the link is malformed")]
    Malformed,
    #[error("the link's signature is not valid")]
    BadSignature,
    #[error("the link is meant for something else")]
    WrongPurpose,
    #[error("the link has expired")]
    Expired,
}

#[derive(Clone, Debug)]
pub struct Signer {
    /// First key signs; all verify.
    keys: Vec<Secret>,
}

impl Signer {
    pub fn new(keys: Vec<Secret>) -> Self {
        assert!(!keys.is_empty(), "a signer needs at least one key");
        Signer { keys }
    }

    fn mac(key: &Secret, payload: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(key.expose()).expect("HMAC takes keys of any length");
        mac.update(payload);
        mac
    }

    pub fn sign(&self, purpose: Purpose, id: i64, expires: DateTime<Utc>) -> String {
        self.sign_payload(format!("{}.{id}.{}", purpose.tag(), expires.timestamp()))
    }

    /// A token for `id` given to `holder` (e.g. the approver a link is sent to).
    pub fn sign_for(
        &self,
        purpose: Purpose,
        id: i64,
        holder: &str,
        expires: DateTime<Utc>,
    ) -> String {
        self.sign_payload(format!(
            "{}.{id}.{}.{holder}",
            purpose.tag(),
            expires.timestamp()
        ))
    }

    fn sign_payload(&self, payload: String) -> String {
        let tag = Self::mac(&self.keys[0], payload.as_bytes())
            .finalize()
            .into_bytes();
        format!("{}.{}", B64.encode(payload), B64.encode(tag))
    }

    /// The tag in a customer email's return path (`bounces+TAG@domain`)
    /// that names its outbox message: `ID-MAC`, with 64 bits of the MAC in
    /// lowercase hex. Short, because a local part holds at most 64
    /// characters, and case-free, because some servers lowercase it on the
    /// way back. It does not expire by itself: a report for a message sent
    /// too long ago is refused by age (see `bounces`).
    pub fn verp_tag(&self, message_id: i64) -> String {
        let tag = Self::verp_mac(&self.keys[0], message_id);
        format!("{message_id}-{tag}")
    }

    /// The outbox message a return-path tag names, if the tag is genuine.
    pub fn verify_verp(&self, tag: &str) -> Option<i64> {
        let (id, mac) = tag.split_once('-')?;
        let id: i64 = id.parse().ok()?;
        let mac = mac.to_ascii_lowercase();
        let genuine = self.keys.iter().any(|k| {
            subtle::ConstantTimeEq::ct_eq(Self::verp_mac(k, id).as_bytes(), mac.as_bytes()).into()
        });
        genuine.then_some(id)
    }

    fn verp_mac(key: &Secret, message_id: i64) -> String {
        let tag = Self::mac(key, format!("b.{message_id}").as_bytes())
            .finalize()
            .into_bytes();
        tag[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The id the token was made for, if it is genuine, for `purpose`, and not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<i64, TokenError> {
        self.verify_holder(token, purpose, now).map(|(id, _)| id)
    }

    /// Like [`Signer::verify`], with whom the token was given to, if it names them.
    pub fn verify_holder(
        &self,
        token: &str,
        purpose: Purpose,
        now: DateTime<Utc>,
    ) -> Result<(i64, Option<String>), TokenError> {
        if token.len() > 512 {
            return Err(TokenError::Malformed);
        }
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        let payload = B64.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
        let tag = B64.decode(tag_b64).map_err(|_| TokenError::Malformed)?;
        let genuine = self
            .keys
            .iter()
            .any(|k| Self::mac(k, &payload).verify_slice(&tag).is_ok());
        if !genuine {
            return Err(TokenError::BadSignature);
        }
        let text = String::from_utf8(payload).map_err(|_| TokenError::Malformed)?;
        let mut parts = text.splitn(4, '.');
        let (Some(p), Some(id), Some(exp)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(TokenError::Malformed);
        };
        let holder = parts.next().map(String::from);
        if p != purpose.tag() {
            return Err(TokenError::WrongPurpose);
        }
        let id: i64 = id.parse().map_err(|_| TokenError::Malformed)?;
        let exp: i64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        if now.timestamp() > exp {
            return Err(TokenError::Expired);
        }
        Ok((id, holder))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn signer(key: &[u8]) -> Signer {
        Signer::new(vec![Secret::from_bytes(key.to_vec())])
    }

    #[test]
    fn a_token_verifies_for_its_purpose_until_it_expires() {
        let s = signer(b"k1");
        let now = Utc::now();
        let t = s.sign(Purpose::Task, 42, now + Duration::days(1));
        assert_eq!(s.verify(&t, Purpose::Task, now), Ok(42));
        assert_eq!(
            s.verify(&t, Purpose::Unsubscribe, now),
            Err(TokenError::WrongPurpose)
        );
        assert_eq!(
            s.verify(&t, Purpose::Task, now + Duration::days(2)),
            Err(TokenError::Expired)
        );
    }

    #[test]
    fn forged_and_garbled_tokens_are_refused() {
        let now = Utc::now();
        let t = signer(b"k1").sign(Purpose::Unsubscribe, 7, now + Duration::days(1));
        assert_eq!(
            signer(b"other").verify(&t, Purpose::Unsubscribe, now),
            Err(TokenError::BadSignature)
        );
        let (payload, tag) = t.split_once('.').unwrap();
        let forged_payload = B64.encode(format!("u.8.{}", (now + Duration::days(1)).timestamp()));
        assert_eq!(
            signer(b"k1").verify(
                &format!("{forged_payload}.{tag}"),
                Purpose::Unsubscribe,
                now
            ),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            signer(b"k1").verify(payload, Purpose::Unsubscribe, now),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            signer(b"k1").verify("%%%.###", Purpose::Unsubscribe, now),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn a_return_path_tag_names_its_message_and_cannot_be_forged() {
        let s = signer(b"k1");
        let tag = s.verp_tag(345);
        assert!(tag.len() <= 40, "{tag}");
        assert_eq!(s.verify_verp(&tag), Some(345));
        assert_eq!(s.verify_verp(&tag.to_ascii_uppercase()), Some(345));
        let (_, mac) = tag.split_once('-').unwrap();
        assert_eq!(s.verify_verp(&format!("346-{mac}")), None);
        assert_eq!(signer(b"other").verify_verp(&tag), None);
        assert_eq!(s.verify_verp("345"), None);
        assert_eq!(s.verify_verp("x-y"), None);
    }

    #[test]
    fn a_token_can_name_its_holder_and_the_name_is_signed() {
        let s = signer(b"k1");
        let now = Utc::now();
        let t = s.sign_for(Purpose::Approval, 42, "maria", now + Duration::days(1));
        assert_eq!(
            s.verify_holder(&t, Purpose::Approval, now),
            Ok((42, Some("maria".to_string())))
        );
        let plain = s.sign(Purpose::Approval, 42, now + Duration::days(1));
        assert_eq!(
            s.verify_holder(&plain, Purpose::Approval, now),
            Ok((42, None))
        );
        let (payload, tag) = t.split_once('.').unwrap();
        let other = String::from_utf8(B64.decode(payload).unwrap())
            .unwrap()
            .replace("maria", "jonas");
        assert_eq!(
            s.verify_holder(
                &format!("{}.{tag}", B64.encode(other)),
                Purpose::Approval,
                now
            ),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn rotated_keys_still_verify_old_links() {
        let now = Utc::now();
        let old = signer(b"old").sign(Purpose::Unsubscribe, 1, now + Duration::days(1));
        let rotated = Signer::new(vec![
            Secret::from_bytes(b"new".to_vec()),
            Secret::from_bytes(b"old".to_vec()),
        ]);
        assert_eq!(rotated.verify(&old, Purpose::Unsubscribe, now), Ok(1));
    }
}
