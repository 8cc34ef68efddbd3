//! The daemon's working set for one configuration: settings, compiled
//! templates, the link signer and the store. A reload (SIGHUP) builds a new
//! [`App`] and swaps it in only if everything in it loaded.

use std::sync::{Arc, RwLock};

use anyhow::{Context, Result};
use base64::Engine;

use crate::config::{Campaign, Checkin, Config, Rules, Settings};
use crate::message::templates::Templates;
use crate::secret::Secret;
use crate::store::Store;
use crate::tokens::Signer;

pub struct App {
    pub config: Config,
    pub templates: Templates,
    pub signer: Signer,
    pub store: Store,
    /// Identifies this process in claims and leases (several daemons may share PostgreSQL).
    pub instance: String,
}

impl App {
    pub async fn build(config: Config, store: Store, instance: String) -> Result<Self> {
        let templates = Templates::load(
            &config.settings.templates.dir,
            &config.settings.business.locale,
        )
        .with_context(|| format!("{}: templates.dir", config.path.display()))?;
        let signer = Signer::new(token_keys(&config, &store).await?);
        let suppression_key = match &config.resolved.suppression_key {
            Some(key) => key.clone(),
            None => kept_secret(&store, "suppression_key").await?,
        };
        store
            .use_suppression_key(&suppression_key)
            .await
            .with_context(|| format!("{}: security.suppression_key_file", config.path.display()))?;
        Ok(App {
            config,
            templates,
            signer,
            store,
            instance,
        })
    }

    pub fn settings(&self) -> &Settings {
        &self.config.settings
    }

    /// The campaigns and check-in rules, resolved.
    pub fn rules(&self) -> &Rules {
        &self.config.resolved.rules
    }

    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.rules().campaign(id)
    }

    pub fn checkin(&self, id: &str) -> Option<&Checkin> {
        self.rules().checkin(id)
    }

    /// The domain of the sender address, for Message-IDs.
    pub fn mail_domain(&self) -> String {
        self.settings()
            .business
            .from
            .parse::<lettre::message::Mailbox>()
            .map(|m| m.email.domain().to_string())
            .unwrap_or_else(|_| "outreach.invalid".into())
    }

    /// An absolute link to one of our pages.
    pub fn link(&self, path: &str) -> String {
        format!(
            "{}{path}",
            self.settings().business.base_url.trim_end_matches('/')
        )
    }
}

/// Configured keys, or one generated on first start and kept in the database
/// (so links keep working across restarts and between daemons).
async fn token_keys(config: &Config, store: &Store) -> Result<Vec<Secret>> {
    if !config.resolved.token_keys.is_empty() {
        return Ok(config.resolved.token_keys.clone());
    }
    Ok(vec![kept_secret(store, "token_key").await?])
}

/// A random 32-byte secret generated once and kept in the database under
/// `name`, for secrets the config does not name a file for.
async fn kept_secret(store: &Store, name: &str) -> Result<Secret> {
    let generated: [u8; 32] = rand::random();
    let encoded = base64::engine::general_purpose::STANDARD.encode(generated);
    let stored = store.kv_get_or_insert(name, &encoded).await?;
    let key = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .with_context(|| format!("the {name} stored in the database is damaged"))?;
    Ok(Secret::from_bytes(key))
}

/// The current [`App`], swapped on reload; readers take a cheap `Arc` clone.
#[derive(Clone)]
pub struct Shared(Arc<RwLock<Arc<App>>>);

impl Shared {
    pub fn new(app: App) -> Self {
        Shared(Arc::new(RwLock::new(Arc::new(app))))
    }

    pub fn current(&self) -> Arc<App> {
        self.0
            .read()
            .expect("the app lock is never poisoned: no code panics while holding it")
            .clone()
    }

    pub fn replace(&self, app: App) {
        *self
            .0
            .write()
            .expect("the app lock is never poisoned: no code panics while holding it") =
            Arc::new(app);
    }
}
