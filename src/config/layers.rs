//! Layering of configuration sources: the main TOML file, then every
//! `conf.d/*.toml` beside it (in name order), then `OUTREACH__SECTION__KEY`
//! environment variables.
//!
//! We merge the layers ourselves instead of through the `config` crate for two
//! reasons a user notices: arrays of tables (`[[campaign]]`, `[[staff]]`) from
//! a `conf.d` file are *appended* to those of the main file rather than
//! replacing them, and every key remembers which file (or variable) it came
//! from, so an error can name the file the admin has to edit.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml::{Table, Value};

/// Prefix of environment variables that override config keys.
pub const ENV_PREFIX: &str = "OUTREACH__";

/// The merged configuration plus where each part of it came from.
#[derive(Debug, Default)]
pub struct Layered {
    pub table: Table,
    /// Key path (`mail.smtp.port`, `campaign[2]`) → source that set it last.
    origins: BTreeMap<String, String>,
    /// The main file, used when no more specific origin is known.
    main: String,
}

impl Layered {
    /// Reads `main`, its `conf.d/`, and the given environment variables.
    pub fn load(main: &Path, env: impl IntoIterator<Item = (String, String)>) -> Result<Self> {
        let mut layered = Layered {
            main: main.display().to_string(),
            ..Default::default()
        };
        layered.merge_file(main)?;
        for fragment in conf_d_files(main)? {
            layered.merge_file(&fragment)?;
        }
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, raw) in vars {
            layered.apply_env(&name, &raw)?;
        }
        Ok(layered)
    }

    /// The file or variable that set `path` (or its closest parent).
    pub fn origin_of(&self, path: &str) -> &str {
        let mut candidate = path.to_string();
        loop {
            if let Some(origin) = self.origins.get(&candidate) {
                return origin;
            }
            match candidate.rfind(['.', '[']) {
                Some(cut) => candidate.truncate(cut),
                None => return &self.main,
            }
        }
    }

    fn merge_file(&mut self, path: &Path) -> Result<()> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read config file", path.display()))?;
        let table: Table = toml::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not valid TOML: {}",
                path.display(),
                e.to_string().trim()
            )
        })?;
        let origin = path.display().to_string();
        merge_table(&mut self.table, table, "", &origin, &mut self.origins);
        Ok(())
    }

    fn apply_env(&mut self, name: &str, raw: &str) -> Result<()> {
        let keys: Vec<String> = name[ENV_PREFIX.len()..]
            .split("__")
            .map(|k| k.to_ascii_lowercase())
            .collect();
        if keys.iter().any(|k| k.is_empty()) {
            anyhow::bail!(
                "environment variable {name}: empty key segment; use OUTREACH__SECTION__KEY"
            );
        }
        let value = parse_env_value(raw);
        let (last, parents) = keys.split_last().expect("split yields at least one key");
        let mut table = &mut self.table;
        for key in parents {
            let entry = table
                .entry(key.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                anyhow::anyhow!("environment variable {name}: `{key}` is not a section")
            })?;
        }
        table.insert(last.clone(), value);
        self.origins
            .insert(keys.join("."), format!("environment variable {name}"));
        Ok(())
    }
}

/// `conf.d/*.toml` next to the main file, sorted by name; none if the folder is absent.
fn conf_d_files(main: &Path) -> Result<Vec<PathBuf>> {
    let dir = main.parent().unwrap_or(Path::new(".")).join("conf.d");
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}: cannot list directory", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// An environment value is read as a TOML value when it is one (`2525`,
/// `true`, `""`, `["mon","tue"]`), otherwise as a plain string.
fn parse_env_value(raw: &str) -> Value {
    toml::from_str::<Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| Value::String(raw.to_string()))
}

fn merge_table(
    into: &mut Table,
    from: Table,
    prefix: &str,
    origin: &str,
    origins: &mut BTreeMap<String, String>,
) {
    for (key, value) in from {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match (into.get_mut(&key), value) {
            (Some(Value::Table(existing)), Value::Table(new)) => {
                merge_table(existing, new, &path, origin, origins);
            }
            (Some(Value::Array(existing)), Value::Array(new)) if is_array_of_tables(&new) => {
                for item in new {
                    origins.insert(format!("{path}[{}]", existing.len()), origin.to_string());
                    existing.push(item);
                }
            }
            (_, value) => {
                if let Value::Array(items) = &value {
                    for i in 0..items.len() {
                        origins.insert(format!("{path}[{i}]"), origin.to_string());
                    }
                }
                record_origins(&value, &path, origin, origins);
                into.insert(key, value);
            }
        }
    }
}

fn record_origins(value: &Value, path: &str, origin: &str, origins: &mut BTreeMap<String, String>) {
    origins.insert(path.to_string(), origin.to_string());
    if let Value::Table(t) = value {
        for (k, v) in t {
            record_origins(v, &format!("{path}.{k}"), origin, origins);
        }
    }
}

fn is_array_of_tables(items: &[Value]) -> bool {
    !items.is_empty() && items.iter().all(Value::is_table)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn conf_d_appends_arrays_of_tables_and_overrides_scalars() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "outreach.toml",
            "[mail]\nrate_per_minute = 10\n[[staff]]\nid = \"anna\"\n",
        );
        write(
            dir.path(),
            "conf.d/10-more.toml",
            "[mail]\nrate_per_minute = 20\n[[staff]]\nid = \"ben\"\n",
        );
        let layered = Layered::load(&main, Vec::new()).unwrap();
        assert_eq!(
            layered.table["mail"]["rate_per_minute"].as_integer(),
            Some(20)
        );
        assert_eq!(layered.table["staff"].as_array().unwrap().len(), 2);
        assert!(layered.origin_of("staff[1].id").ends_with("10-more.toml"));
        assert!(layered.origin_of("staff[0].id").ends_with("outreach.toml"));
        assert!(
            layered
                .origin_of("mail.rate_per_minute")
                .ends_with("10-more.toml")
        );
    }

    #[test]
    fn environment_variables_override_nested_keys_with_typed_values() {
        let dir = tempfile::tempdir().unwrap();
        let main = write(
            dir.path(),
            "outreach.toml",
            "[limits]\nquiet_hours = \"20:00-08:00\"\n",
        );
        let env = vec![
            ("OUTREACH__MAIL__SMTP__PORT".to_string(), "2525".to_string()),
            (
                "OUTREACH__LIMITS__QUIET_HOURS".to_string(),
                "\"\"".to_string(),
            ),
            (
                "OUTREACH__BUSINESS__NAME".to_string(),
                "Café Linde".to_string(),
            ),
            ("UNRELATED".to_string(), "x".to_string()),
        ];
        let layered = Layered::load(&main, env).unwrap();
        assert_eq!(
            layered.table["mail"]["smtp"]["port"].as_integer(),
            Some(2525)
        );
        assert_eq!(layered.table["limits"]["quiet_hours"].as_str(), Some(""));
        assert_eq!(
            layered.table["business"]["name"].as_str(),
            Some("Café Linde")
        );
        assert_eq!(
            layered.origin_of("mail.smtp.port"),
            "environment variable OUTREACH__MAIL__SMTP__PORT"
        );
    }
}
