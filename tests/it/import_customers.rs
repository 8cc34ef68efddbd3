//! `outreach import customers` on real database files and PostgreSQL.

use crate::common;

use common::{Db, Env, backend_test, stderr, stdout};
use serde_json::Value;

fn show_json(env: &Env, key: &str) -> Value {
    let out = env.run(&["customers", "show", key, "--json"]);
    assert!(out.status.success(), "show {key}: {}", stderr(&out));
    serde_json::from_str(&stdout(&out)).unwrap()
}

backend_test!(the_example_csv_imports_completely_and_reimports_as_unchanged);
async fn the_example_csv_imports_completely_and_reimports_as_unchanged(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = common::repo_path("config/customers.example.csv");
    let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{url}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("imported 12, updated 0, unchanged 0, rejected 0"),
        "{}",
        stdout(&out)
    );
    let again = env.run(&["import", "customers", csv.to_str().unwrap()]);
    assert!(
        stdout(&again).starts_with("imported 0, updated 0, unchanged 12, rejected 0"),
        "{}",
        stdout(&again)
    );

    let anna = show_json(&env, "K-1001");
    let c = &anna["customer"];
    assert_eq!(c["email"], "anna.becker@example.de");
    assert_eq!(c["consent"], true);
    assert_eq!(c["consent_source"], "Anmeldeformular Theke");
    assert!(c["consent_at"].as_str().unwrap().starts_with("2023-04-12"));
    assert_eq!(c["tags"], serde_json::json!(["newsletter", "stammgast"]));
    assert_eq!(c["attributes"]["stadtteil"], "Ehrenfeld");
    assert_eq!(c["owner"], "maria");
    assert_eq!(
        (&c["salutation"], &c["first_name"], &c["last_name"]),
        (&"ms".into(), &"Anna".into(), &"Becker".into())
    );
    // Phone consent and do-not-call are separate from email consent.
    let elif = show_json(&env, "elif.yilmaz@example.de");
    assert_eq!(elif["customer"]["phone_consent"], true);
    assert_eq!(elif["customer"]["do_not_call"], true);
    let clara = show_json(&env, "K-1003");
    assert_eq!(clara["customer"]["consent"], false);
    assert_eq!(clara["customer"]["phone_consent"], true);
}

backend_test!(bad_rows_are_reported_by_line_and_good_rows_are_kept);
async fn bad_rows_are_reported_by_line_and_good_rows_are_kept(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = env.write(
        "bad.csv",
        "email,name,owner,birthday,consent\n\
         ok1@example.de,Ok Eins,maria,1970-01-31,yes\n\
         not-an-email,Kaputt,,,\n\
         ok2@example.de,Ok Zwei,ghost,,\n\
         ok3@example.de,Ok Drei,,31.02.1980,\n\
         ok4@example.de,Ok Vier,jonas,24.12.1980,2020-05-01\n\
         ok1@example.de,Doppelt,,,\n\
         esc@example.de,\u{1b}[2JAnsi,,,\n",
    );
    let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.starts_with("imported 2, updated 0, unchanged 0, rejected 5"),
        "{text}"
    );
    assert!(
        text.contains("line 8: `name` contains the control character U+001B; remove it"),
        "{text}"
    );
    assert!(text.contains("line 3: email: invalid email"), "{text}");
    assert!(text.contains("line 4: unknown owner \"ghost\""), "{text}");
    assert!(
        text.contains("line 5: birthday \"31.02.1980\" is not a date"),
        "{text}"
    );
    assert!(
        text.contains("line 7: same email ok1@example.de as line 2"),
        "{text}"
    );
    assert!(stderr(&out).contains("5 row(s) rejected"));
    let vier = show_json(&env, "ok4@example.de");
    assert_eq!(vier["customer"]["birthday"], "1980-12-24");
    assert_eq!(vier["customer"]["consent_source"], "import");
}

backend_test!(upserts_by_external_id_then_email_and_only_present_columns_change);
async fn upserts_by_external_id_then_email_and_only_present_columns_change(Db { url, .. }: Db) {
    let env = Env::new(&url, "[import]\ndefault_consent_source = \"Papierliste\"\n");
    let first = env.write("a.csv", "external_id;email;name;consent;tier;tags\nK1;k1@example.de;Karl;ja;Silber;\"a;b\"\nK2;k2@example.de;Kim;nein;Bronze;\n");
    assert!(
        env.run(&["import", "customers", first.to_str().unwrap()])
            .status
            .success()
    );
    // New email for K1 (keyed by external_id), tier up for K2 via email key only.
    let second = env.write(
        "b.csv",
        "external_id,email,tier\nK1,karl.neu@example.de,Gold\n,k2@example.de,Silber\n",
    );
    let out = env.run(&["import", "customers", second.to_str().unwrap()]);
    assert!(
        stdout(&out).starts_with("imported 0, updated 2"),
        "{}",
        stdout(&out)
    );
    let k1 = show_json(&env, "K1");
    assert_eq!(k1["customer"]["email"], "karl.neu@example.de");
    assert_eq!(
        k1["customer"]["consent"], true,
        "consent column absent: unchanged"
    );
    assert_eq!(k1["customer"]["consent_source"], "Papierliste");
    assert_eq!(k1["customer"]["tags"], serde_json::json!(["a", "b"]));
    let history: Vec<String> = k1["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["detail"].as_str().unwrap().to_string())
        .collect();
    assert!(
        history.iter().any(|d| d == "tier: Silber → Gold"),
        "{history:?}"
    );
    let k2 = show_json(&env, "k2@example.de");
    assert_eq!(k2["customer"]["external_id"], "K2");
    assert_eq!(k2["customer"]["tier"], "Silber");
}

backend_test!(dry_run_counts_but_writes_nothing);
async fn dry_run_counts_but_writes_nothing(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = env.write("a.csv", "email\nx1@example.de\nx2@example.de\nkaputt\n");
    let out = env.run(&["import", "customers", csv.to_str().unwrap(), "--dry-run"]);
    assert!(
        stdout(&out).contains("would have imported 2"),
        "{}",
        stdout(&out)
    );
    // It fails as the import would, without claiming to have kept anything.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("1 row(s) rejected; fix them in the file and import it again (a real import would keep the good rows)"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.run(&["customers", "show", "x1@example.de"])
            .status
            .code(),
        Some(1)
    );
}

backend_test!(a_forgotten_customer_is_never_reimported);
async fn a_forgotten_customer_is_never_reimported(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = env.write(
        "a.csv",
        "external_id,email,name,consent\nF1,Frida@Example.de,Frida,yes\n",
    );
    assert!(
        env.run(&["import", "customers", csv.to_str().unwrap()])
            .status
            .success()
    );
    let export = env.run(&["customers", "export", "F1"]);
    assert!(
        stdout(&export).contains("\"name\": \"Frida\""),
        "{}",
        stdout(&export)
    );
    let forget = env.run(&["customers", "forget", "frida@example.de"]);
    assert!(forget.status.success(), "{}", stderr(&forget));
    assert_eq!(env.run(&["customers", "show", "F1"]).status.code(), Some(1));
    // Same person in a later export of the shop system, even with another case or without the id.
    let again = env.write("b.csv", "email,name,consent\nfrida@example.DE,Frida,yes\n");
    let out = env.run(&["import", "customers", again.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("skipped as forgotten 1"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("line 2: skipped"), "{}", stdout(&out));
    assert_eq!(
        env.run(&["customers", "show", "frida@example.de"])
            .status
            .code(),
        Some(1)
    );
}

backend_test!(a_row_with_several_problems_names_each_on_a_line_of_its_own);
async fn a_row_with_several_problems_names_each_on_a_line_of_its_own(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = env.write(
        "a.csv",
        "email;birthday;customer_since\nanna@example.de;31/01/1970;13.13.2020\n",
    );
    let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{url}: {text}");
    assert!(text.contains("rejected 1"), "{text}");
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("line 2: ")).collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("line 2: birthday \"31/01/1970\" is not a date;"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(
            "line 2: customer_since \"13.13.2020\" is not a date: there is no month 13;"
        ),
        "{text}"
    );
}

backend_test!(an_import_that_starts_a_run_says_so_once_on_stdout);
async fn an_import_that_starts_a_run_says_so_once_on_stdout(Db { url, .. }: Db) {
    let env = Env::new(
        &url,
        "[[campaign]]\nid = \"gold\"\nkind = \"loyalty\"\ntemplate = \"tier_reached\"\n\
         trigger = { attribute_changed = \"tier\", to = \"Gold\" }\n",
    );
    let before = env.write("a.csv", "email;consent;tier\nanna@example.de;ja;Silber\n");
    assert!(
        env.run(&["import", "customers", before.to_str().unwrap()])
            .status
            .success()
    );
    let after = env.write("b.csv", "email;consent;tier\nanna@example.de;ja;Gold\n");
    let out = env.run(&["import", "customers", after.to_str().unwrap()]);
    assert!(out.status.success(), "{url}: {}", stderr(&out));
    assert!(
        stdout(&out).contains("of gold started for 1 customer(s) whose value changed"),
        "{}",
        stdout(&out)
    );
    // The log's info line would only repeat it.
    assert_eq!(stderr(&out), "", "{url}");
}

#[tokio::test]
async fn a_missing_key_column_is_explained_with_the_columns_found() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, "");
    let nokey = env.write("nokey.csv", "name,Telefon\nA,1\n");
    let out = env.run(&["import", "customers", nokey.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "nokey.csv: row 1 (the header): no column identifies the customers: none of \"name\", \"Telefon\" is read as email or external_id"
        ),
        "{}",
        stderr(&out)
    );
}

backend_test!(large_files_import_in_chunks_and_one_email_cannot_belong_to_two_rows);
async fn large_files_import_in_chunks_and_one_email_cannot_belong_to_two_rows(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let mut csv = String::from("external_id;email;name;consent;tags\n");
    for i in 0..2500 {
        csv.push_str(&format!("E{i};kunde{i}@example.de;Kunde {i};ja;\"a;b\"\n"));
    }
    // Another id with an address already used above (in the same chunk and in a later one).
    csv.push_str("X1;kunde3@example.de;Doppelt;ja;\n");
    csv.push_str("X2;kunde2400@example.de;Doppelt;ja;\n");
    let file = env.write("big.csv", &csv);
    let out = env.run(&["import", "customers", file.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.starts_with("imported 2500, updated 0, unchanged 0, rejected 2"),
        "{url}: {text}"
    );
    assert!(
        text.contains("line 2502: email kunde3@example.de already belongs"),
        "{text}"
    );
    assert!(
        text.contains("line 2503: email kunde2400@example.de is used by another row of this file"),
        "{text}"
    );
    let again = env.run(&["import", "customers", file.to_str().unwrap()]);
    assert!(
        stdout(&again).starts_with("imported 0, updated 0, unchanged 2500, rejected 2"),
        "{}",
        stdout(&again)
    );
    let last = show_json(&env, "E2499");
    assert_eq!(last["customer"]["tags"], serde_json::json!(["a", "b"]));
    assert_eq!(
        last["history"][0]["detail"],
        "created from import line 2501 of big.csv"
    );
}

backend_test!(line_breaks_are_kept_but_other_control_characters_are_refused);
async fn line_breaks_are_kept_but_other_control_characters_are_refused(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let csv = env.write(
        "notes.csv",
        "email,Notiz\n\
         a@example.de,\"Ruft lieber abends an.\r\nHund heißt Bello.\"\n\
         b@example.de,\"klingelt\u{7}\"\n",
    );
    let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
    let text = stdout(&out);
    assert!(
        text.starts_with("imported 1, updated 0, unchanged 0, rejected 1"),
        "{text}"
    );
    assert!(
        text.contains("line 3: `Notiz` contains the control character U+0007"),
        "{text}"
    );
    // Kept as line breaks of one kind (CR LF and CR become LF).
    let a = show_json(&env, "a@example.de");
    // "Notiz" is the note field; its line break stays in it (and in row 2).
    assert_eq!(
        a["customer"]["note"],
        "Ruft lieber abends an.
Hund heißt Bello."
    );
}
