//! What a config or a file may cost: an audience or template that runs away
//! is refused with its campaign named (by `check`, and at run time without
//! holding anything up); an import file with too many columns or a
//! monstrous row is refused with the line named; line breaks in imported
//! one-line fields are normalised.

use crate::common;

use std::time::{Duration, Instant};

use chrono::Utc;
use common::app::TestApp;
use common::{Db, Env, backend_test, stderr, stdout};

/// Without fuel this runs for seconds and takes gigabytes per evaluation.
const RUNAWAY_AUDIENCE: &str =
    "range(100000) | map('string') | join | length > range(100000) | map('string') | join | length";

fn campaign(id: &str, audience: &str, template: &str) -> String {
    format!(
        "\n[[campaign]]\nid = \"{id}\"\nkind = \"status_update\"\nschedule = \"0 3 1 1 *\"\naudience = \"{audience}\"\ntemplate = \"{template}\"\n"
    )
}

/// Runs `args` and gives up after `within` (killing it): a check that
/// never ends is a failure too.
fn run_within(env: &Env, args: &[&str], within: Duration) -> std::process::Output {
    let mut child = env
        .command(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + within;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("`outreach {}` still ran after {within:?}", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn check_refuses_a_runaway_audience_and_a_runaway_template_with_the_campaign_named() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let templates = dir.path().join("templates");
    std::fs::create_dir(&templates).unwrap();
    for entry in std::fs::read_dir(common::repo_path("templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, templates.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::write(
        templates.join("endlos.de.md"),
        "subject: Hallo\n{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}\n",
    )
    .unwrap();
    let extra = campaign(
        "teuer",
        &RUNAWAY_AUDIENCE.replace('"', "\\\""),
        "status_update",
    ) + &campaign("schleife", "true", "endlos");
    let env = Env::in_dir(dir, &url, &extra);
    env.write(
        "conf.d/10-templates.toml",
        &format!("[templates]\ndir = \"{}\"\n", templates.display()),
    );
    let out = run_within(&env, &["check"], Duration::from_secs(60));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}{}", stdout(&out));
    assert!(
        err.contains("teuer: audience") && err.contains("simplify it"),
        "{err}"
    );
    assert!(
        err.contains("schleife (de)") && err.contains("simplify the template"),
        "{err}"
    );
}

backend_test!(a_runaway_audience_stops_its_run_with_the_campaign_named_and_plans_nothing);
async fn a_runaway_audience_stops_its_run_with_the_campaign_named_and_plans_nothing(
    Db { url, .. }: Db,
) {
    let extra = format!(
        "[limits]\nquiet_hours = \"\"\n{}",
        campaign(
            "teuer",
            &RUNAWAY_AUDIENCE.replace('"', "\\\""),
            "status_update"
        )
    );
    let t = TestApp::new(&url, &extra).await;
    t.import("email,name,consent\nanna@example.de,Anna,yes\nbob@example.de,Bob,yes\n")
        .await;
    let now = Utc::now();
    let run = outreach::schedule::start_now(&t.app, "teuer", now)
        .await
        .unwrap();
    t.tick(now).await;
    let run = t.app.store.run(run).await.unwrap().unwrap();
    assert_eq!(run.state, "skipped", "{url}: {run:?}");
    assert!(
        run.detail.starts_with("teuer: audience") && run.detail.contains("simplify it"),
        "{url}: {}",
        run.detail
    );
    assert_eq!(t.deliver_all(now).await, 0, "{url}: nothing is sent");
}

fn import(env: &Env, name: &str, csv: &str) -> std::process::Output {
    let path = env.write(name, csv);
    env.run(&["import", "customers", path.to_str().unwrap()])
}

backend_test!(an_import_with_too_many_columns_or_a_monstrous_row_is_refused_with_the_line_named);
async fn an_import_with_too_many_columns_or_a_monstrous_row_is_refused_with_the_line_named(
    Db { url, .. }: Db,
) {
    let env = Env::new(&url, "");
    let header: Vec<String> = (0..300).map(|i| format!("c{i}")).collect();
    let wide = format!(
        "email,{}\nanna@example.de,{}\n",
        header.join(","),
        vec!["x"; 300].join(",")
    );
    let out = import(&env, "wide.csv", &wide);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{url}: {err}");
    assert!(
        err.contains("row 1 (the header) has 301 columns; at most 256"),
        "{err}"
    );

    let long = format!(
        "email,name,notiz\nanna@example.de,Anna,kurz\nbob@example.de,Bob,\"{}\"\n",
        "y".repeat(2 * 1024 * 1024)
    );
    let out = import(&env, "long.csv", &long);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{url}: {err}");
    assert!(
        err.contains("long.csv") && err.contains("row 3: a row is longer than 1 MiB"),
        "{err}"
    );
    let status = env.run(&["customers", "show", "anna@example.de"]);
    assert!(
        !status.status.success(),
        "{url}: nothing of the file is imported"
    );
}

backend_test!(line_breaks_in_imported_one_line_fields_become_spaces_and_stay_in_attributes);
async fn line_breaks_in_imported_one_line_fields_become_spaces_and_stay_in_attributes(
    Db { url, .. }: Db,
) {
    let env = Env::new(&url, "");
    let csv = "email,name,adresse\nanna@example.de,\"Anna\rBeck\",\"Hof 3\r\nHinterhaus\"\n";
    let out = import(&env, "breaks.csv", csv);
    assert!(out.status.success(), "{url}: {}", stderr(&out));
    let show = env.run(&["customers", "show", "anna@example.de", "--json"]);
    let doc: serde_json::Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(doc["customer"]["name"], "Anna Beck", "{url}");
    assert_eq!(
        doc["customer"]["attributes"]["adresse"], "Hof 3\nHinterhaus",
        "{url}"
    );
}
