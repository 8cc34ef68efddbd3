//! Configuration: find the file, layer it ([`layers`]), deserialize it into
//! typed sections ([`model`]) and validate it as a whole ([`validate`]),
//! which resolves campaigns and check-in rules ([`rules`]) with their
//! parsed schedules, audiences and durations.
//!
//! Nothing runs on a config that failed validation: `outreach check` lists
//! every problem, `outreach run` refuses to start, and a reload (SIGHUP) keeps
//! the old config. Each problem names the file (or environment variable) and
//! the key to fix.

mod layers;
pub mod model;
mod rules;
mod validate;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use layers::ENV_PREFIX;
pub use model::*;
pub use rules::{Campaign, Checkin, Rules};
pub use validate::{HttpLimits, Resolved, RetentionAges, StaffRules};

/// One thing wrong with the configuration, located for the admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file or environment variable to edit.
    pub origin: String,
    /// The key, e.g. `campaign[1].schedule` (id "weekly-news").
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.key, self.message)
    }
}

/// All problems found in one configuration.
#[derive(Debug)]
pub struct ConfigError(pub Vec<Problem>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the configuration has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A loaded, validated configuration; cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub settings: Arc<Settings>,
    pub resolved: Arc<Resolved>,
}

impl Config {
    /// `--config`, else `$OUTREACH_CONFIG`, else `./config/outreach.toml`,
    /// else `/etc/outreach/outreach.toml`.
    pub fn locate(explicit: Option<&Path>) -> PathBuf {
        if let Some(path) = explicit {
            return path.to_path_buf();
        }
        if let Some(env) = std::env::var_os("OUTREACH_CONFIG").filter(|v| !v.is_empty()) {
            return PathBuf::from(env);
        }
        let local = PathBuf::from("config/outreach.toml");
        if local.exists() {
            return local;
        }
        PathBuf::from("/etc/outreach/outreach.toml")
    }

    /// Loads and validates, reading overrides from the process environment.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let layered = layers::Layered::load(path, env).map_err(|e| {
            ConfigError(vec![Problem {
                origin: path.display().to_string(),
                key: "(file)".into(),
                message: format!("{e:#}"),
            }])
        })?;
        let settings: Settings = serde_path_to_error::deserialize(toml::Value::Table(
            layered.table.clone(),
        ))
        .map_err(|e| {
            let key = e.path().to_string();
            ConfigError(vec![Problem {
                origin: layered.origin_of(&key).to_string(),
                key,
                message: explain_serde(&e.into_inner().to_string()),
            }])
        })?;
        let resolved = validate::validate(&settings, &|key| layered.origin_of(key).to_string())?;
        Ok(Config {
            path: path.to_path_buf(),
            settings: Arc::new(settings),
            resolved: Arc::new(resolved),
        })
    }
}

/// serde's messages are precise but terse; add the fix for the common ones.
/// toml appends "\nin `key`" to each, which the problem names already.
fn explain_serde(message: &str) -> String {
    let message = message.split("\nin `").next().unwrap_or(message).trim_end();
    if message.starts_with("unknown field") {
        format!("{message}; remove the key or fix its spelling")
    } else if message.starts_with("missing field") {
        format!("{message}; add it to this section")
    } else {
        message.to_string()
    }
}
