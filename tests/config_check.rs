//! `outreach check` refuses bad configs with the file and key named.

mod common;

use common::{Env, stderr, stdout};

fn sqlite(env_dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}/db.sqlite", env_dir.path().display())
}

/// Writes a config with `extra` appended and runs `check`.
fn check_with(extra: &str) -> (std::process::Output, Env) {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, extra);
    (env.run(&["check"]), env)
}

fn assert_refused(extra: &str, expected: &[&str]) {
    let (out, env) = check_with(extra);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "expected exit 1; stderr: {err}");
    assert!(
        err.contains(&env.config.display().to_string()),
        "file not named in: {err}"
    );
    for piece in expected {
        assert!(err.contains(piece), "`{piece}` missing in: {err}");
    }
}

#[test]
fn the_shipped_example_config_passes_and_shows_next_runs() {
    let out = std::process::Command::new(common::BIN)
        .current_dir(common::repo_path(""))
        .args(["--config", "config/outreach.toml", "check"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("configuration is valid"), "{text}");
    assert!(
        text.contains("wochenbrief (0 10 * * Thu): next Thu"),
        "{text}"
    );
}

#[test]
fn unknown_keys_are_refused_with_file_and_key() {
    assert_refused(
        "[limits]\nquiet_hourz = \"\"\n",
        &["limits.quiet_hourz", "unknown field"],
    );
}

#[test]
fn each_problem_is_one_line_with_its_fix() {
    let (out, _env) = check_with("[limits]\nquiet_hourz = \"\"\n");
    let err = stderr(&out);
    let line = err
        .lines()
        .find(|l| l.contains("limits.quiet_hourz: unknown field"))
        .unwrap_or_else(|| panic!("no problem line in: {err}"));
    assert!(
        line.ends_with("; remove the key or fix its spelling"),
        "the fix is not on the problem's line: {err}"
    );
    assert_eq!(err.lines().count(), 2, "header and one problem: {err}");
}

#[test]
fn bad_crontab_is_refused_with_the_campaign_key() {
    assert_refused(
        "[[campaign]]\nid = \"news\"\nkind = \"status_update\"\nschedule = \"0 25 * * *\"\ntemplate = \"status_update\"\n",
        &["campaign[0].schedule", "not a valid crontab"],
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    assert_refused(
        "[[staff]]\nid = \"lea\"\nname = \"Lea\"\nemail = \"lea@x.example\"\ntimezone = \"Europe/Cologne\"\n",
        &["staff[2].timezone", "unknown time zone \"Europe/Cologne\""],
    );
}

#[test]
fn unknown_staff_and_template_are_refused() {
    assert_refused(
        "[[campaign]]\nid = \"news\"\nkind = \"status_update\"\nschedule = \"0 9 * * *\"\ntemplate = \"nope\"\napproval = \"required\"\napprovers = [\"ghost\"]\n",
        &[
            "campaign[0].approvers[0]",
            "unknown staff id \"ghost\"",
            "campaign[0].template",
            "unknown template \"nope\"",
        ],
    );
}

#[test]
fn duplicate_ids_are_refused() {
    assert_refused(
        "[[staff]]\nid = \"maria\"\nname = \"Maria 2\"\nemail = \"m2@x.example\"\n",
        &["staff[2].id", "duplicate id \"maria\""],
    );
}

#[test]
fn a_missing_secret_file_is_refused() {
    assert_refused(
        "[security]\ntoken_key_file = \"/nonexistent/token-key\"\n",
        &[
            "security.token_key_file",
            "cannot read secret file /nonexistent/token-key",
        ],
    );
}

#[test]
fn problems_in_conf_d_name_the_conf_d_file() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let fragment = env.write("conf.d/20-campaigns.toml", "[[campaign]]\nid = \"x\"\nkind = \"status_update\"\nschedule = \"nonsense\"\ntemplate = \"status_update\"\n");
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains(&format!("{}: campaign[0].schedule", fragment.display())),
        "{err}"
    );
}

#[test]
fn environment_overrides_apply_and_are_named_when_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let out = env
        .command(&["check"])
        .env("OUTREACH__LIMITS__FREQUENCY_CAP", "often")
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("environment variable OUTREACH__LIMITS__FREQUENCY_CAP: limits.frequency_cap"),
        "{err}"
    );
    let out = env
        .command(&["check"])
        .env("OUTREACH__LIMITS__QUIET_HOURS", "\"\"")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_missing_database_password_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let out = env
        .command(&["check"])
        .env(
            "OUTREACH__DATABASE__PASSWORD_FILE",
            "/nonexistent/db-password",
        )
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("database.password_file: cannot read secret file /nonexistent/db-password"),
        "{err}"
    );
}

#[test]
fn a_dkim_key_that_is_not_a_pem_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("dkim.pem");
    std::fs::write(&key, "not a key\n").unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::in_dir(
        dir,
        &url,
        &format!(
            "[mail.dkim]\nselector = \"s\"\ndomain = \"d.example\"\nprivate_key_file = \"{}\"\n",
            key.display()
        ),
    );
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("mail.dkim.private_key_file: not an RSA private key"),
        "{err}"
    );
}

#[test]
fn closing_days_and_the_business_contact_are_checked_with_the_file_that_set_them() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let fragment = env.write(
        "conf.d/10-closed.toml",
        "[business]\nclosed = [\"holidays:de\", \"24.12.\", \"12-24\"]\ncontact_staff = \"chef\"\n",
    );
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    for piece in [
        format!(
            "{}: business.closed[1]: \"24.12.\" is not a closing day",
            fragment.display()
        ),
        "write a date (\"2026-12-24\"), a day every year (\"12-24\")".to_string(),
        format!(
            "{}: business.contact_staff: unknown staff id \"chef\"",
            fragment.display()
        ),
    ] {
        assert!(err.contains(&piece), "`{piece}` missing in: {err}");
    }
    assert!(
        !err.contains("closed[0]") && !err.contains("closed[2]"),
        "{err}"
    );
}
