//! Customer lists as shops have them, imported with one command: German
//! Excel's CSV in Windows-1252, Excel's "Unicode Text", and workbooks
//! written by LibreOffice (tests/fixtures/import/make.sh made them all).
//! Where the spreadsheet program's own reading can decide a fact (which
//! row a value is in), the test compares with it.

use crate::common;

use std::path::PathBuf;

use common::{Db, Env, backend_test, stderr, stdout};
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    common::repo_path("tests/fixtures/import").join(name)
}

fn show(env: &Env, key: &str) -> Value {
    let out = env.run(&["customers", "show", key, "--json"]);
    assert!(out.status.success(), "show {key}: {}", stderr(&out));
    serde_json::from_str::<Value>(&stdout(&out)).unwrap()["customer"].clone()
}

fn import(env: &Env, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["import", "customers", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    env.run(&args)
}

backend_test!(a_german_excel_csv_in_windows_1252_goes_in_with_one_command);
async fn a_german_excel_csv_in_windows_1252_goes_in_with_one_command(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let out = import(&env, &fixture("kunden-excel.csv"), &[]);
    let text = stdout(&out);
    // The bad row makes the command fail; the good ones are in.
    assert_eq!(out.status.code(), Some(1), "{url}: {text}{}", stderr(&out));
    assert!(
        text.starts_with("imported 4, updated 0, unchanged 0, rejected 1"),
        "{text}"
    );
    assert!(
        text.contains("as text in windows-1252 (detected), columns separated by \";\""),
        "{text}"
    );
    assert!(
        text.contains("columns kept as custom attributes: \"Stadtteil\""),
        "{text}"
    );
    // Row 4 as Excel shows it: row 2 holds a line break in a quoted cell.
    assert!(
        text.contains("line 4: E-Mail: invalid email: `zoe.gross@beispiel`"),
        "{text}"
    );

    let erika = show(&env, "erika.schaefer@example.de");
    assert_eq!(erika["salutation"], "ms");
    assert_eq!(erika["first_name"], "Erika");
    assert_eq!(erika["last_name"], "Schäfer");
    assert_eq!(erika["name"], "Erika Schäfer");
    assert_eq!(erika["phone"], "+49 221 555 0201");
    assert_eq!(erika["birthday"], "1980-12-24");
    assert_eq!(erika["customer_since"], "2015-03-01");
    assert_eq!(erika["consent"], true);
    // Excel's CR LF in the cell becomes one kind of line break.
    assert_eq!(erika["note"], "Mag Käsekuchen.\nRuft lieber vormittags an.");
    assert_eq!(erika["attributes"]["stadtteil"], "Ehrenfeld");
    let juergen = show(&env, "juergen.mueller@example.de");
    assert_eq!(juergen["birthday"], "1975-07-03", "DD.MM.YY");
    assert_eq!(juergen["consent"], true, "x is yes");
    assert_eq!(juergen["note"], "5 € Gutschein eingelöst", "0x80 is €");
    let kim = show(&env, "kim.weiss@example.de");
    assert_eq!(kim["consent"], false);
    assert_eq!(kim["consent_source"], "import", "a no records its source");
    assert_eq!(kim["salutation"], Value::Null, "Divers: no salutation");
    let oemer = show(&env, "oemer.oeztuerk@example.de");
    assert!(
        oemer["consent_at"]
            .as_str()
            .unwrap()
            .starts_with("2023-05-12"),
        "{oemer}"
    );
    assert_eq!(oemer["birthday"], "1988-02-29");

    let again = import(&env, &fixture("kunden-excel.csv"), &[]);
    assert!(
        stdout(&again).starts_with("imported 0, updated 0, unchanged 4, rejected 1"),
        "{}",
        stdout(&again)
    );
}

#[tokio::test]
async fn rows_and_values_match_what_libreoffice_reads_from_the_same_csv() {
    // kunden-excel.xlsx is LibreOffice's own reading of kunden-excel.csv
    // (German locale): its row numbers and date cells are LibreOffice's.
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for file in ["kunden-excel.csv", "kunden-excel.xlsx"] {
        let url = format!("sqlite://{}/{file}.db", dir.path().display());
        let env = Env::new(&url, "");
        let out = import(&env, &fixture(file), &[]);
        let rejected: Vec<String> = stdout(&out)
            .lines()
            .filter(|l| l.starts_with("line "))
            .map(String::from)
            .collect();
        let customers: Vec<Value> = [
            "erika.schaefer@example.de",
            "juergen.mueller@example.de",
            "kim.weiss@example.de",
            "oemer.oeztuerk@example.de",
        ]
        .iter()
        .map(|email| {
            let mut c = show(&env, email);
            for volatile in ["id", "created_at", "updated_at"] {
                c[volatile] = Value::Null;
            }
            if let Some(at) = c["consent_at"].as_str()
                && !at.starts_with("2023")
            {
                c["consent_at"] = "today".into();
            }
            c
        })
        .collect();
        seen.push((rejected, customers));
    }
    assert_eq!(
        seen[0].0,
        ["line 4: E-Mail: invalid email: `zoe.gross@beispiel` has no top-level domain after the @"]
    );
    assert_eq!(seen[0], seen[1]);
}

#[tokio::test]
async fn excel_unicode_text_is_utf16_with_tabs() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, "");
    let out = import(&env, &fixture("kunden-unicode.txt"), &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(text.starts_with("imported 2,"), "{text}");
    assert!(
        text.contains("as text in UTF-16LE (byte order mark), columns separated by tabs"),
        "{text}"
    );
    let ruya = show(&env, "ruya.sahin@example.de");
    assert_eq!(ruya["name"], "Rüya Şahin");
    assert_eq!(
        show(&env, "lukasz.nowak@example.de")["first_name"],
        "Łukasz"
    );
}

#[tokio::test]
async fn workbooks_give_cell_values_date_cells_and_sheet_row_numbers() {
    let dir = tempfile::tempdir().unwrap();
    for file in ["kunden.xlsx", "kunden.ods", "kunden.xls"] {
        let url = format!("sqlite://{}/{file}.db", dir.path().display());
        let env = Env::new(&url, "");
        let out = import(&env, &fixture(file), &[]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {text}{}", stderr(&out));
        assert!(
            text.starts_with("imported 3, updated 0, unchanged 0, rejected 1"),
            "{file}: {text}"
        );
        assert!(
            text.contains(&format!(
                "read {} as sheet \"Kunden\", the first of 2 (choose another with --sheet)",
                fixture(file).display()
            )),
            "{file}: {text}"
        );
        assert!(
            text.contains("line 4: `Geburtsdatum` (column H) holds the spreadsheet error #N/A"),
            "{file}: {text}"
        );
        let erika = show(&env, "K-2001");
        assert_eq!(erika["points"], 120, "{file}: the formula's value");
        assert_eq!(erika["birthday"], "1980-12-24", "{file}: a date cell");
        assert_eq!(erika["customer_since"], "2015-03-01");
        assert_eq!(
            erika["attributes"]["besuche"], "12",
            "{file}: a number as text"
        );
        let firm = show(&env, "K-2002");
        assert_eq!(firm["consent"], true, "{file}: a boolean cell");
        assert_eq!(firm["company"], "Zweirad Kölsch GmbH");
        assert_eq!(firm["is_business"], true, "{file}: a company is a business");
        assert_eq!(firm["name"], "Zweirad Kölsch GmbH (Jürgen Müller)");
        let family = show(&env, "2004");
        assert_eq!(family["external_id"], "2004", "{file}: a whole number");
        assert_eq!(family["salutation"], "family");
        assert!(
            family["consent_at"]
                .as_str()
                .unwrap()
                .starts_with("2024-02-01"),
            "{file}: consent from a date cell"
        );

        let second = import(&env, &fixture(file), &["--sheet", "Lieferanten"]);
        assert!(second.status.success(), "{file}: {}", stderr(&second));
        assert!(stdout(&second).contains("as sheet \"Lieferanten\""));
        assert_eq!(
            show(&env, "bestellung@muehle-moll.example")["name"],
            "Mühle Moll"
        );
        let missing = import(&env, &fixture(file), &["--sheet", "Kundschaft"]);
        assert_eq!(missing.status.code(), Some(1));
        assert!(
            stderr(&missing).contains(&format!(
                "{}: there is no sheet \"Kundschaft\"; the sheets are \"Kunden\", \"Lieferanten\"",
                fixture(file).display()
            )),
            "{}",
            stderr(&missing)
        );
    }
}

#[test]
fn files_that_cannot_be_read_as_a_customer_table_are_refused_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, "");
    let fails = |file: &std::path::Path, extra: &[&str], expected: &str| {
        let out = import(&env, file, extra);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        let err = stderr(&out);
        assert!(err.contains(expected), "{}: {err}", file.display());
        assert!(
            err.contains(&file.display().to_string()),
            "names the file: {err}"
        );
    };
    fails(
        &fixture("merged-header.xlsx"),
        &[],
        "sheet \"Kunden\": the header cells B1:C1 are merged; unmerge them so that each column has its own name in row 1",
    );
    fails(
        &fixture("not-a-workbook.zip"),
        &[],
        "this ZIP file is neither an .xlsx nor an .ods workbook",
    );
    let png = env.dir.path().join("kunden.csv");
    std::fs::write(&png, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap();
    fails(
        &png,
        &[],
        "is not a table in a text format (it has NUL bytes)",
    );
    fails(&env.write("leer.csv", ""), &[], "the file is empty");
    fails(
        &fixture("kunden-excel.csv"),
        &["--encoding", "klingonisch"],
        "--encoding \"klingonisch\" is not an encoding name; use one such as UTF-8, windows-1252",
    );
    fails(
        &fixture("kunden-excel.csv"),
        &["--sheet", "Kunden"],
        "--sheet \"Kunden\" is for .xlsx and .ods workbooks",
    );
    fails(
        &fixture("kunden.xlsx"),
        &["--encoding", "UTF-8"],
        "--encoding is for text files",
    );
    fails(
        &env.write(
            "doppelt.csv",
            "E-Mail;Name;Email\na@example.de;A;a@example.de\n",
        ),
        &[],
        "row 1 (the header): columns \"E-Mail\" (A) and \"Email\" (C) are all read as email",
    );
}

#[test]
fn the_encoding_can_be_given_and_a_wrong_one_loses_no_good_row_silently() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, "");
    // UTF-8 is wrong for this file: every row with an umlaut is refused, by name.
    let out = import(
        &env,
        &fixture("kunden-excel.csv"),
        &["--encoding", "UTF-8", "--dry-run"],
    );
    let text = stdout(&out);
    assert!(
        text.contains("as text in UTF-8 (given with --encoding)"),
        "{text}"
    );
    assert!(
        text.contains(
            "line 2: `Nachname` contains \u{FFFD} where the file's encoding had no character"
        ),
        "{text}"
    );
    // "latin1" is a label of windows-1252, as in every browser.
    let out = import(
        &env,
        &fixture("kunden-excel.csv"),
        &["--encoding", "latin1"],
    );
    assert!(
        stdout(&out).contains("as text in windows-1252 (given with --encoding)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        show(&env, "erika.schaefer@example.de")["last_name"],
        "Schäfer"
    );
}

backend_test!(config_maps_other_headers_and_dry_run_shows_the_whole_mapping);
async fn config_maps_other_headers_and_dry_run_shows_the_whole_mapping(Db { url, .. }: Db) {
    let env = Env::new(
        &url,
        "[import.columns]\n\"Treuepunkte\" = \"points\"\n\"Viertel\" = \"attributes.stadtteil\"\n\"Interne Notiz\" = \"ignore\"\n",
    );
    let csv = env.write(
        "liste.csv",
        "E-Mail;Treuepunkte;Viertel;Interne Notiz;Lieblingskuchen\nanna@example.de;340;Ehrenfeld;schwierig;Käsekuchen\n",
    );
    let dry = import(&env, &csv, &["--dry-run"]);
    let text = stdout(&dry);
    for line in [
        "    A  E-Mail → email",
        "    B  Treuepunkte → points",
        "    C  Viertel → custom attribute \"stadtteil\"",
        "    D  Interne Notiz → (ignored)",
        "    E  Lieblingskuchen → custom attribute \"lieblingskuchen\"",
        "columns kept as custom attributes: \"Viertel\", \"Lieblingskuchen\"",
    ] {
        assert!(text.contains(line), "{url}: {line}\n{text}");
    }
    let out = import(&env, &csv, &[]);
    assert!(
        !stdout(&out).contains("    A  E-Mail"),
        "only a dry run lists every column"
    );
    let anna = show(&env, "anna@example.de");
    assert_eq!(anna["points"], 340);
    assert_eq!(anna["attributes"]["stadtteil"], "Ehrenfeld");
    assert_eq!(anna["attributes"]["lieblingskuchen"], "Käsekuchen");
    assert!(anna["attributes"].get("interne notiz").is_none());
}

backend_test!(a_misspelt_header_is_named_and_a_misspelt_email_header_stops_the_import);
async fn a_misspelt_header_is_named_and_a_misspelt_email_header_stops_the_import(
    Db { url, .. }: Db,
) {
    let env = Env::new(&url, "");
    // Typed by hand in an office: the email column's header is off by a swap.
    let csv = env.write(
        "kunden.csv",
        "Kundennummer;E-Mial;Newsletter\nK-1;anna@example.de;ja\n",
    );
    let out = import(&env, &csv, &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{url}: {}", stdout(&out));
    assert!(
        err.contains(&format!(
            "{}: row 1 (the header): column B \"E-Mial\" looks like the email column but is not read as one",
            csv.display()
        )),
        "{err}"
    );
    assert!(err.contains("\"E-Mial\" = \"email\""), "{err}");
    let none = env.run(&["customers", "show", "K-1", "--json"]);
    assert!(!none.status.success(), "{url}: nothing was imported");

    // Another field's typo: imported, and said.
    let csv = env.write(
        "kunden2.csv",
        "Kundennummer;E-Mail;Geburtstg;Newsletter\nK-1;anna@example.de;31.01.1970;ja\n",
    );
    let out = import(&env, &csv, &[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{url}: {text}{}", stderr(&out));
    assert!(
        text.contains(
            "note: column C \"Geburtstg\" is kept as a custom attribute; if it holds birthday, correct the header, or map it in [import.columns] of the config: \"Geburtstg\" = \"birthday\""
        ),
        "{text}"
    );
    assert_eq!(show(&env, "K-1")["attributes"]["geburtstg"], "31.01.1970");
}

#[test]
fn check_refuses_a_column_rule_it_cannot_follow() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(
        &url,
        "[import.columns]\n\"Punkte\" = \"pionts\"\n\"E-Mail\" = \"email\"\n\"EMail\" = \"email\"\n",
    );
    let out = env.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("import.columns.\"Punkte\""), "{err}");
    assert!(err.contains("\"pionts\" is not a customer field"), "{err}");
    assert!(err.contains("import.columns.\"EMail\""), "{err}");
    assert!(err.contains("names the same column as \"E-Mail\""), "{err}");
}

backend_test!(rows_are_numbered_as_spreadsheets_show_them_in_rejections_skips_and_history);
async fn rows_are_numbered_as_spreadsheets_show_them_in_rejections_skips_and_history(
    Db { url, .. }: Db,
) {
    let env = Env::new(&url, "");
    let first = env.write("a.csv", "email;name\r\nfrida@example.de;Frida\r\n");
    assert!(import(&env, &first, &[]).status.success());
    assert!(
        env.run(&["customers", "forget", "frida@example.de"])
            .status
            .success()
    );
    let history = |key: &str| {
        let out = env.run(&["customers", "show", key, "--json"]);
        serde_json::from_str::<Value>(&stdout(&out)).unwrap()["history"][0]["detail"].clone()
    };
    // CRLF line ends (the csv crate reported each row one too early).
    let crlf = env.write(
        "crlf.csv",
        "email;name\r\nanna@example.de;Anna\r\nkaputt;Kaputt\r\nfrida@example.de;Frida\r\nben@example.de;Ben\r\n",
    );
    let text = stdout(&import(&env, &crlf, &[]));
    assert!(
        text.contains("line 3: email: invalid email"),
        "{url}: {text}"
    );
    assert!(
        text.contains("line 4: skipped: this person asked to be forgotten"),
        "{text}"
    );
    assert_eq!(
        history("ben@example.de"),
        "created from import line 5 of crlf.csv"
    );
    // A line break in a quoted cell stays in its row (it was counted as one).
    let quoted = env.write(
        "quoted.csv",
        "email;name;notiz\nclara@example.de;Clara;\"zwei\nZeilen\"\nkaputt;Kaputt;\ndora@example.de;Dora;\n",
    );
    let text = stdout(&import(&env, &quoted, &[]));
    assert!(
        text.contains("line 3: email: invalid email"),
        "{url}: {text}"
    );
    assert_eq!(
        history("dora@example.de"),
        "created from import line 4 of quoted.csv"
    );
}

#[test]
fn command_line_dates_take_the_forms_the_import_takes() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::new(&url, "");
    for date in ["10.12.2026", "2026-12-10", "10.12.26"] {
        let out = env.run(&[
            "tasks",
            "done",
            "999",
            "--outcome",
            "callback",
            "--callback-on",
            date,
        ]);
        // The date was read: what fails is the task.
        assert!(
            stderr(&out).contains("no task 999"),
            "{date}: {}",
            stderr(&out)
        );
    }
    let out = env.run(&[
        "tasks",
        "done",
        "999",
        "--outcome",
        "callback",
        "--callback-on",
        "12/10/2026",
    ]);
    // A mistake on the command line is one the user must fix: exit 1.
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\"12/10/2026\" is not a date; write YYYY-MM-DD or DD.MM.YYYY"),
        "{}",
        stderr(&out)
    );
}
