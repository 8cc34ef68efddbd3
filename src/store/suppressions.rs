//! The suppression list: people who asked to be forgotten, kept as keyed
//! hashes so that an import can recognise them without the list holding
//! who they are.
//!
//! Callers speak in plain keys (`email:` or `external_id:` followed by the
//! SHA-256 of the value, see [`crate::domain::Email::suppression_key`]); the
//! list stores `hmac:` + HMAC-SHA256(secret, plain key). An unkeyed SHA-256
//! of an address is reversed by hashing a list of addresses; without the
//! secret the keyed one is not. Because the keyed form is computed from the
//! plain key, entries written before keying existed are keyed in place
//! ([`Store::use_suppression_key`]); until then they still match.

use std::collections::HashSet;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Store, dispatch};
use crate::secret::Secret;

const KEYED: &str = "hmac:";
/// Kept in `kv`: a keyed hash of a fixed text, to notice a changed secret.
const CHECK_KV: &str = "suppression_key_check";

fn keyed_with(secret: &Secret, plain: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.expose()).expect("HMAC takes keys of any length");
    mac.update(plain.as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(KEYED.len() + 64);
    out.push_str(KEYED);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

impl Store {
    /// Installs the secret that keys the suppression list and keys the
    /// entries still stored plain. Refused if entries were keyed with a
    /// different secret: with it they would never match again, and
    /// forgotten people could be imported anew.
    pub async fn use_suppression_key(&self, secret: &Secret) -> Result<()> {
        if let Some(installed) = self.suppression_key.get() {
            if installed.expose() != secret.expose() {
                bail!("the suppression key cannot change while outreach runs; restart it");
            }
            return Ok(());
        }
        let check = keyed_with(secret, "outreach suppression key check");
        let keyed: Vec<(String,)> = dispatch!(self, pool => {
            sqlx::query_as("SELECT key FROM suppressions").fetch_all(pool).await
        })
        .context("reading the suppression list")?;
        let (keyed, plain): (Vec<String>, Vec<String>) = keyed
            .into_iter()
            .map(|r| r.0)
            .partition(|k| k.starts_with(KEYED));
        match self.kv_get(CHECK_KV).await? {
            Some(stored) if stored != check && !keyed.is_empty() => bail!(
                "the suppression list was keyed with another secret than security.suppression_key_file \
                 (or the one kept in the database) holds now; restore the previous key file: with \
                 another key, {} forgotten people would no longer be recognised on import",
                keyed.len()
            ),
            Some(stored) if stored == check => {}
            _ => self.kv_set(CHECK_KV, &check).await?,
        }
        if !plain.is_empty() {
            dispatch!(self, pool => {
                let mut tx = pool.begin().await?;
                for key in &plain {
                    // (The keyed entry may exist: the same person forgotten again since.)
                    sqlx::query(
                        "INSERT INTO suppressions (key, reason, created_at)
                         SELECT $1, reason, created_at FROM suppressions WHERE key = $2
                         ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(keyed_with(secret, key))
                    .bind(key)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("DELETE FROM suppressions WHERE key = $1")
                        .bind(key)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await
            })
            .context("keying the suppression list")?;
            tracing::info!(entries = plain.len(), "suppression list keyed");
        }
        // Another task may have installed the same secret meanwhile.
        let _ = self.suppression_key.set(secret.clone());
        Ok(())
    }

    /// The stored form of a plain key.
    pub(super) fn keyed(&self, plain: &str) -> Result<String> {
        let secret = self
            .suppression_key
            .get()
            .context("the suppression key is not loaded (App::build loads it)")?;
        Ok(keyed_with(secret, plain))
    }

    /// Which of the plain `keys` are on the suppression list (keyed, or
    /// still plain from before keying).
    pub async fn suppressed_keys(&self, keys: &[String]) -> Result<HashSet<String>> {
        let mut found = HashSet::new();
        for chunk in keys.chunks(250) {
            let mut lookup: Vec<(String, &String)> = Vec::with_capacity(chunk.len() * 2);
            for plain in chunk {
                lookup.push((self.keyed(plain)?, plain));
                lookup.push((plain.clone(), plain));
            }
            let sql = format!(
                "SELECT key FROM suppressions WHERE key IN ({})",
                self.placeholders(1, lookup.len())
            );
            let rows: Vec<(String,)> = dispatch!(self, pool => {
                let mut q = sqlx::query_as(sql.as_str());
                for (stored, _) in &lookup {
                    q = q.bind(stored);
                }
                q.fetch_all(pool).await
            })
            .context("checking the suppression list")?;
            let hits: HashSet<String> = rows.into_iter().map(|r| r.0).collect();
            found.extend(
                lookup
                    .into_iter()
                    .filter(|(stored, _)| hits.contains(stored))
                    .map(|(_, plain)| plain.clone()),
            );
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_hashes_depend_on_the_secret_and_hide_the_plain_key() {
        let a = Secret::from_bytes(b"first secret".to_vec());
        let b = Secret::from_bytes(b"second secret".to_vec());
        let plain = "email:0123";
        assert!(keyed_with(&a, plain).starts_with(KEYED));
        assert_eq!(keyed_with(&a, plain).len(), KEYED.len() + 64);
        assert_eq!(keyed_with(&a, plain), keyed_with(&a, plain));
        assert_ne!(keyed_with(&a, plain), keyed_with(&b, plain));
        assert!(!keyed_with(&a, plain).contains("0123"));
    }
}
