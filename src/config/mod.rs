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
        let (settings, mut problems) = read_settings(&layered);
        let Some(settings) = settings else {
            return Err(ConfigError(named(problems, &layered.table)));
        };
        let resolved =
            match validate::validate(&settings, &|key| layered.origin_of(key).to_string()) {
                Ok(resolved) if problems.is_empty() => resolved,
                Ok(_) => return Err(ConfigError(named(problems, &layered.table))),
                Err(ConfigError(found)) => {
                    // A value taken out to read on (a wrong type; its
                    // default stood in) may make its list item look wrong
                    // for that alone: its first problem stands for the
                    // item. Outside lists only the key itself is set aside.
                    // An unknown key taken out changed nothing.
                    let taken: Vec<String> = problems
                        .iter()
                        .filter(|p| !p.message.starts_with("unknown field"))
                        .map(|p| item_of(&p.key).unwrap_or(&p.key).to_string())
                        .collect();
                    problems.extend(found.into_iter().filter(|p| {
                        !taken
                            .iter()
                            .any(|t| *t == p.key || item_of(&p.key) == Some(t))
                    }));
                    return Err(ConfigError(named(problems, &layered.table)));
                }
            };
        Ok(Config {
            path: path.to_path_buf(),
            settings: Arc::new(settings),
            resolved: Arc::new(resolved),
        })
    }
}

/// At most this many keys are taken out of a file to find its next problem.
const MAX_READ_PROBLEMS: usize = 20;

/// The settings, and every key serde refused: each refused key (an unknown
/// or misspelt key, a value of the wrong type) is taken out and the rest
/// read again, so that one `check` names them all instead of one per try.
/// A missing key cannot be taken out: reading ends there, without settings.
fn read_settings(layered: &layers::Layered) -> (Option<Settings>, Vec<Problem>) {
    let mut value = toml::Value::Table(layered.table.clone());
    let mut problems = Vec::new();
    // The key last taken out, as `item.key`.
    let mut last_taken: Option<String> = None;
    loop {
        let e = match serde_path_to_error::deserialize(value.clone()) {
            Ok(settings) => return (Some(settings), problems),
            Err(e) => e,
        };
        let key = e.path().to_string();
        let problem = Problem {
            origin: layered.origin_of(&key).to_string(),
            message: explain_serde(&e.inner().to_string()),
            key,
        };
        if let Some(missing) = missing_field(&problem.message) {
            // A required key taken out for its wrong value is not missing
            // to the admin, who wrote it: its first problem says it all.
            let full = match problem.key.as_str() {
                "." => missing.to_string(),
                item => format!("{item}.{missing}"),
            };
            if last_taken.as_deref() != Some(full.as_str()) {
                problems.push(problem);
            }
            return (None, problems);
        }
        let mut path: Vec<_> = e.path().iter().collect();
        // A wrong element takes its whole list along: taking out just the
        // element would shift the ones after it under the same index.
        if matches!(path.last(), Some(serde_path_to_error::Segment::Seq { .. })) {
            path.pop();
        }
        let taken = take_out(&mut value, &path);
        last_taken = Some(problem.key.clone());
        problems.push(problem);
        if !taken || problems.len() >= MAX_READ_PROBLEMS {
            return (None, problems);
        }
    }
}

/// Removes the key at `path` from `value`; false if there is none.
fn take_out(value: &mut toml::Value, path: &[&serde_path_to_error::Segment]) -> bool {
    use serde_path_to_error::Segment;
    use toml::Value;
    match path {
        [] => false,
        [last] => match (value, last) {
            (Value::Table(t), Segment::Map { key }) => t.remove(key.as_str()).is_some(),
            (Value::Array(a), Segment::Seq { index }) if *index < a.len() => {
                a.remove(*index);
                true
            }
            _ => false,
        },
        [first, rest @ ..] => {
            let inner = match (value, first) {
                (Value::Table(t), Segment::Map { key }) => t.get_mut(key.as_str()),
                (Value::Array(a), Segment::Seq { index }) => a.get_mut(*index),
                _ => None,
            };
            inner.is_some_and(|inner| take_out(inner, rest))
        }
    }
}

/// The list item a key is in: `campaign[6]` of `campaign[6].schedule`.
fn item_of(key: &str) -> Option<&str> {
    key.find(']').map(|end| &key[..=end])
}

/// `kind` of serde's "missing field `kind`".
fn missing_field(message: &str) -> Option<&str> {
    message.strip_prefix("missing field `")?.split('`').next()
}

/// Keys in a list of rules or staff name the item's id too:
/// `campaign[6] ("wochenbrief").schedule` is found in the file by its id.
fn named(problems: Vec<Problem>, table: &toml::Table) -> Vec<Problem> {
    problems
        .into_iter()
        .map(|mut p| {
            let Some(item) = item_of(&p.key).map(str::to_string) else {
                return p;
            };
            let id = item.split_once('[').and_then(|(list, index)| {
                let index: usize = index.trim_end_matches(']').parse().ok()?;
                table.get(list)?.as_array()?.get(index)?.get("id")?.as_str()
            });
            if let Some(id) = id {
                p.key = format!("{item} (\"{id}\"){}", &p.key[item.len()..]);
            }
            p
        })
        .collect()
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
