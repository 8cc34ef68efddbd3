//! `outreach check` refuses bad configs with the file and key named.

use crate::common;

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
    // Its http://127.0.0.1 is fine for trying it out, and says what comes next.
    assert!(text.contains("note: business.base_url"), "{text}");
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
fn every_problem_is_named_in_one_check() {
    // An unknown key, a value of the wrong type and a bad schedule: all
    // three at once, not one per try.
    let (out, _env) = check_with(
        "[[campaign]]\nid = \"wochenbrief\"\nkind = \"status_update\"\nschedule = \"Donnerstag\"\n\
         template = \"status_update\"\napprovel = \"required\"\n\
         [mail.smtp]\nport = \"fünfundzwanzig\"\n",
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.starts_with("error: the configuration has 3 problems:"),
        "{err}"
    );
    for expected in [
        "campaign[0] (\"wochenbrief\").approvel: unknown field `approvel`",
        "mail.smtp.port: invalid type: string \"fünfundzwanzig\", expected u16",
        "campaign[0] (\"wochenbrief\").schedule: `Donnerstag` has 1 fields",
    ] {
        assert!(err.contains(expected), "{expected}\n{err}");
    }
}

#[test]
fn a_wrong_value_hides_no_other_key_and_is_not_also_called_missing() {
    // Outside lists only the refused key itself is set aside.
    let (out, _env) = check_with("[limits]\nfrequency_cap = 5\nquiet_hours = \"immer\"\n");
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the configuration has 2 problems:"),
        "{err}"
    );
    assert!(
        err.contains("limits.frequency_cap: invalid type: integer `5`"),
        "{err}"
    );
    assert!(err.contains("limits.quiet_hours: "), "{err}");
    // A required key with a wrong value: its own problem, not "missing" too.
    let (out, _env) = check_with(
        "[[campaign]]\nid = \"x\"\nkind = \"newsletter\"\nschedule = \"0 9 * * *\"\ntemplate = \"status_update\"\n",
    );
    let err = stderr(&out);
    assert!(
        err.starts_with("error: the configuration has 1 problem:"),
        "{err}"
    );
    assert!(
        err.contains("campaign[0] (\"x\").kind: unknown variant `newsletter`"),
        "{err}"
    );
    assert!(!err.contains("missing field"), "{err}");
}

#[test]
fn bad_crontab_is_refused_with_the_campaign_key() {
    assert_refused(
        "[[campaign]]\nid = \"news\"\nkind = \"status_update\"\nschedule = \"0 25 * * *\"\ntemplate = \"status_update\"\n",
        &["campaign[0] (\"news\").schedule", "not a valid crontab"],
    );
}

#[test]
fn unknown_time_zone_is_refused() {
    assert_refused(
        "[[staff]]\nid = \"lea\"\nname = \"Lea\"\nemail = \"lea@x.example\"\ntimezone = \"Europe/Cologne\"\n",
        &[
            "staff[2] (\"lea\").timezone",
            "unknown time zone \"Europe/Cologne\"",
        ],
    );
}

#[test]
fn unknown_staff_and_template_are_refused() {
    assert_refused(
        "[[campaign]]\nid = \"news\"\nkind = \"status_update\"\nschedule = \"0 9 * * *\"\ntemplate = \"nope\"\napproval = \"required\"\napprovers = [\"ghost\"]\n",
        &[
            "campaign[0] (\"news\").approvers[0]",
            "unknown staff id \"ghost\"",
            "campaign[0] (\"news\").template",
            "unknown template \"nope\"",
        ],
    );
}

#[test]
fn duplicate_ids_are_refused() {
    assert_refused(
        "[[staff]]\nid = \"maria\"\nname = \"Maria 2\"\nemail = \"m2@x.example\"\n",
        &["staff[2] (\"maria\").id", "duplicate id \"maria\""],
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
        err.contains(&format!(
            "{}: campaign[0] (\"x\").schedule",
            fragment.display()
        )),
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

/// `check` with `business.base_url` set by a conf.d fragment.
fn check_base_url(base_url: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    env.write(
        "conf.d/10-url.toml",
        &format!("[business]\nbase_url = \"{base_url}\"\n"),
    );
    env.run(&["check"])
}

#[test]
fn a_plain_http_base_url_is_refused_with_what_to_do() {
    for base_url in [
        "http://outreach.cafe-linde.de",
        "http://192.168.1.10:8080",
        "ftp://x.example",
    ] {
        let out = check_base_url(base_url);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{base_url}: {err}");
        assert!(err.contains("10-url.toml: business.base_url"), "{err}");
        assert!(err.contains(base_url), "{err}");
    }
    let err = stderr(&check_base_url("http://outreach.cafe-linde.de"));
    assert!(
        err.contains("one-click unsubscribe over https") && err.contains("reverse proxy"),
        "{err}"
    );
}

#[test]
fn a_replaced_staff_template_that_uses_a_value_that_does_not_exist_is_refused_with_its_file_and_line()
 {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let templates = env.dir.path().join("templates");
    std::fs::create_dir_all(&templates).unwrap();
    for entry in std::fs::read_dir(common::repo_path("templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, templates.join(path.file_name().unwrap())).unwrap();
    }
    env.write(
        "conf.d/10-templates.toml",
        &format!("[templates]\ndir = \"{}\"\n", templates.display()),
    );
    let ok = env.run(&["check"]);
    assert!(ok.status.success(), "{}", stderr(&ok));

    // An admin adjusts the German task page and mistypes a value.
    let page = templates.join("task_page.de.html");
    let text = std::fs::read_to_string(&page)
        .unwrap()
        .replace("{{ call.phone }}</a>", "{{ call.telefon }}</a>");
    std::fs::write(&page, text).unwrap();
    let out = env.run(&["check"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("task_page (de): {}: line 11", page.display())),
        "{err}"
    );
    assert!(err.contains("undefined"), "{err}");
}

#[test]
fn https_is_accepted_and_http_only_on_loopback_with_a_note() {
    for base_url in [
        "https://outreach.cafe-linde.de",
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        let out = check_base_url(base_url);
        assert!(out.status.success(), "{base_url}: {}", stderr(&out));
        let note = stdout(&out).contains("note: business.base_url");
        assert_eq!(
            note,
            base_url.starts_with("http:"),
            "{base_url}: {}",
            stdout(&out)
        );
    }
}

#[test]
fn an_smtp_ca_file_without_a_certificate_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = sqlite(&dir);
    let env = Env::in_dir(dir, &url, "");
    let key = common::repo_path("tests/fixtures/dkim/ed25519.pem");
    for (ca, says) in [
        (key.display().to_string(), "holds no certificate"),
        ("/nonexistent/relay-ca.pem".to_string(), "cannot read"),
    ] {
        env.write(
            "conf.d/10-ca.toml",
            &format!("[mail.smtp]\nca_file = \"{ca}\"\n"),
        );
        let out = env.run(&["check"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("mail.smtp.ca_file") && err.contains(&ca) && err.contains(says),
            "{err}"
        );
    }
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
