//! Loyalty triggers (birthdays, customer anniversaries, a tier reached on
//! import), voucher pools (imported and generated codes, one per customer,
//! an empty pool), the approval gate (approve, cancel, expiry, the `/a/`
//! page) and the freshness guard, with explicit dates, on SQLite and
//! PostgreSQL.

use crate::common;

use base64::Engine;
use chrono::{DateTime, Utc};
use common::app::{TestApp, berlin};
use common::{Db, backend_test};
use outreach::approval::Decision;

const NO_LIMITS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""
"#;

/// One email from the outbox, decoded for assertions: the subject (RFC 2047
/// words decoded) and every body part decoded, one after the other.
struct Mail {
    to: String,
    subject: String,
    body: String,
}

impl Mail {
    fn parse(raw: &str) -> Mail {
        let mail = common::mail::Mail::parse(raw);
        let body = mail
            .parts
            .iter()
            .map(|p| p.2.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        Mail {
            to: mail.to,
            subject: mail.subject,
            body,
        }
    }

    fn to(&self) -> &str {
        &self.to
    }
}

fn mails(t: &TestApp) -> Vec<Mail> {
    t.outbox_mails().iter().map(|m| Mail::parse(m)).collect()
}

/// Mails whose `To:` is exactly this address.
fn mails_to(t: &TestApp, address: &str) -> Vec<Mail> {
    mails(t).into_iter().filter(|m| m.to() == address).collect()
}

async fn customer_id(t: &TestApp, key: &str) -> i64 {
    t.app.store.find_customer(key).await.unwrap().unwrap().id
}

async fn run_state(t: &TestApp, run: i64) -> (String, String) {
    let r = t.app.store.run(run).await.unwrap().unwrap();
    (r.state.to_string(), r.detail)
}

// ---------------------------------------------------------------- birthdays

const BIRTHDAY: &str = r#"
[[campaign]]
id = "geburtstag"
kind = "loyalty"
trigger = { anniversary_of = "birthday", at = "09:00" }
template = "birthday"
"#;

backend_test!(
    birthday_greetings_go_out_at_nine_berlin_on_the_day_and_leap_day_birthdays_on_28_february
);
async fn birthday_greetings_go_out_at_nine_berlin_on_the_day_and_leap_day_birthdays_on_28_february(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, &format!("{NO_LIMITS}{BIRTHDAY}")).await;
    t.import(
        "external_id,email,name,locale,consent,birthday\n\
         A,anna@example.de,Anna,de,yes,1970-02-28\n\
         L,leo@example.de,Leo,de,yes,1980-02-29\n\
         E,eve@example.com,Eve,en,yes,1975-02-28\n\
         B,ben@example.de,Ben,de,yes,1985-03-01\n\
         C,clara@example.de,Clara,de,no,1990-02-28\n\
         D,dora@example.de,Dora,de,yes,\n",
    )
    .await;
    // 2027 is a common year: no 29 February.
    t.tick(berlin(2027, 2, 28, 8, 59)).await;
    t.deliver_all(berlin(2027, 2, 28, 8, 59)).await;
    assert!(t.runs_of("geburtstag").await.is_empty(), "{url}");
    assert!(t.outbox_mails().is_empty(), "{url}: nothing before 09:00");

    let nine = berlin(2027, 2, 28, 9, 0);
    t.tick(nine).await;
    t.deliver_all(nine).await;
    let runs = t.runs_of("geburtstag").await;
    assert_eq!(runs.len(), 1, "{url}");
    assert_eq!(runs[0].occurrence, nine);
    assert_eq!(runs[0].trigger, "schedule");
    let run = runs[0].id;
    let mut counts = t.counts(run).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            ("sent".to_string(), None, 3),
            ("suppressed".to_string(), Some("no consent".to_string()), 1)
        ],
        "{url}: Anna, Leo (29 Feb) and Eve; Clara has not consented"
    );
    let anna = mails_to(&t, "anna@example.de");
    assert_eq!(anna.len(), 1, "{url}");
    assert_eq!(anna[0].subject, "Alles Gute zum Geburtstag, Anna!");
    assert!(
        anna[0].body.contains("alles Gute zum Geburtstag"),
        "{}",
        anna[0].body
    );
    assert_eq!(
        mails_to(&t, "leo@example.de")[0].subject,
        "Alles Gute zum Geburtstag, Leo!",
        "{url}: 29 February is celebrated on 28 February in a common year"
    );
    assert_eq!(mails_to(&t, "eve@example.com").len(), 1, "{url}");
    for nobody in ["ben@example.de", "clara@example.de", "dora@example.de"] {
        assert!(mails_to(&t, nobody).is_empty(), "{url}: {nobody}");
    }

    // The next morning it is Ben's turn, and Leo does not get a second one.
    let next = berlin(2027, 3, 1, 9, 0);
    t.tick(next).await;
    t.deliver_all(next).await;
    assert_eq!(t.runs_of("geburtstag").await.len(), 2, "{url}");
    assert_eq!(mails_to(&t, "ben@example.de").len(), 1, "{url}");
    assert_eq!(mails_to(&t, "leo@example.de").len(), 1, "{url}");
    assert_eq!(mails_to(&t, "anna@example.de").len(), 1, "{url}");
    assert_eq!(t.outbox_mails().len(), 4, "{url}");
}

// ------------------------------------------------------ customer anniversary

const ANNIVERSARY: &str = r#"
[[campaign]]
id = "kundenjubilaeum"
kind = "loyalty"
trigger = { anniversary_of = "customer_since", at = "09:30" }
template = "anniversary"
"#;

backend_test!(
    a_customer_anniversary_thanks_for_the_right_number_of_years_counted_from_the_day_of_the_run
);
async fn a_customer_anniversary_thanks_for_the_right_number_of_years_counted_from_the_day_of_the_run(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, &format!("{NO_LIMITS}{ANNIVERSARY}")).await;
    t.import(
        "external_id,email,name,locale,consent,customer_since\n\
         A,anna@example.de,Anna,de,yes,2019-06-15\n\
         B,ben@example.com,Ben,en,yes,2030-06-15\n\
         C,clara@example.de,Clara,de,yes,2031-06-15\n\
         D,dora@example.de,Dora,de,yes,2019-06-16\n",
    )
    .await;
    // Far from today's date on purpose: the years must come from the run's day.
    t.tick(berlin(2031, 6, 15, 9, 0)).await;
    let at = berlin(2031, 6, 15, 9, 30);
    t.tick(at).await;
    t.deliver_all(at).await;
    let anna = mails_to(&t, "anna@example.de");
    assert_eq!(anna.len(), 1, "{url}");
    assert_eq!(anna[0].subject, "12 Jahre – danke!", "{url}");
    assert!(
        anna[0]
            .body
            .contains("heute vor 12 Jahren waren Sie zum ersten Mal bei uns"),
        "{}",
        anna[0].body
    );
    let ben = mails_to(&t, "ben@example.com");
    assert_eq!(ben.len(), 1, "{url}");
    assert_eq!(ben[0].subject, "1 year – thank you!");
    assert!(
        ben[0]
            .body
            .contains("It is 1 year today since you first came to see us."),
        "{}",
        ben[0].body
    );
    assert!(
        mails_to(&t, "clara@example.de").is_empty(),
        "{url}: the first day itself is no anniversary"
    );
    assert!(
        mails_to(&t, "dora@example.de").is_empty(),
        "{url}: her day is tomorrow"
    );
    // Delivered a day late (e.g. after an outage), the count does not change.
    let dora_day = berlin(2031, 6, 16, 9, 30);
    t.tick(dora_day).await;
    t.deliver_all(dora_day + chrono::Duration::days(1)).await;
    let dora = mails_to(&t, "dora@example.de");
    assert_eq!(dora.len(), 1, "{url}");
    assert_eq!(dora[0].subject, "12 Jahre – danke!", "{url}");
}

// ------------------------------------------------------------ tier reached

const TIER: &str = r#"
[[campaign]]
id = "neue-stufe"
kind = "loyalty"
trigger = { attribute_changed = "tier", to = "Gold" }
template = "tier_reached"
"#;

backend_test!(an_import_that_raises_a_customer_to_gold_starts_a_run_for_exactly_that_customer);
async fn an_import_that_raises_a_customer_to_gold_starts_a_run_for_exactly_that_customer(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, &format!("{NO_LIMITS}{TIER}")).await;
    let first = t
        .import(
            "external_id,email,name,consent,tier,points\n\
             A,anna@example.de,Anna,yes,Silber,120\n\
             B,ben@example.de,Ben,yes,Silber,130\n\
             C,clara@example.de,Clara,yes,Bronze,40\n\
             D,dora@example.de,Dora,yes,Gold,900\n",
        )
        .await;
    let at = berlin(2026, 11, 23, 12, 0);
    assert!(
        outreach::triggers::on_import(&t.app, &first.changes, at)
            .await
            .unwrap()
            .is_empty(),
        "{url}: a first import changes nobody's tier"
    );
    let second = t
        .import(
            "external_id,email,name,consent,tier,points\n\
             A,anna@example.de,Anna,yes,Gold,510\n\
             B,ben@example.de,Ben,yes,Silber,180\n\
             C,clara@example.de,Clara,yes,Silber,140\n\
             D,dora@example.de,Dora,yes,Gold,950\n\
             E,emil@example.de,Emil,yes,Gold,700\n",
        )
        .await;
    let at = berlin(2026, 11, 24, 12, 0);
    let started = outreach::triggers::on_import(&t.app, &second.changes, at)
        .await
        .unwrap();
    assert_eq!(started.len(), 1, "{url}: {started:?}");
    let (campaign, run, customers) = started[0].clone();
    assert_eq!((campaign.as_str(), customers), ("neue-stufe", 1), "{url}");
    t.tick(at).await;
    t.deliver_all(at).await;
    let r = t.app.store.run(run).await.unwrap().unwrap();
    assert_eq!(r.trigger, "attribute_change");
    assert_eq!(
        t.counts(run).await,
        [("sent".to_string(), None, 1)],
        "{url}"
    );
    let anna = mails_to(&t, "anna@example.de");
    assert_eq!(anna.len(), 1, "{url}");
    assert_eq!(anna[0].subject, "Sie sind jetzt Gold-Gast bei Café Test");
    assert!(
        anna[0].body.contains("die Stufe **Gold** erreicht")
            || anna[0]
                .body
                .contains("die Stufe <strong>Gold</strong> erreicht"),
        "{}",
        anna[0].body
    );
    assert_eq!(
        t.outbox_mails().len(),
        1,
        "{url}: Ben (points only), Clara (not Gold), Dora (already Gold) and Emil (new) get nothing"
    );
    // Importing the same file again changes nothing and starts nothing.
    let again = t
        .import(
            "external_id,email,name,consent,tier,points\n\
             A,anna@example.de,Anna,yes,Gold,510\n",
        )
        .await;
    assert!(
        outreach::triggers::on_import(&t.app, &again.changes, berlin(2026, 11, 25, 12, 0))
            .await
            .unwrap()
            .is_empty()
    );
}

backend_test!(outreach_import_customers_starts_the_tier_run_and_says_so);
async fn outreach_import_customers_starts_the_tier_run_and_says_so(Db { url, .. }: Db) {
    let env = common::Env::new(&url, &format!("{NO_LIMITS}{TIER}"));
    let first = env.write(
        "first.csv",
        "external_id,email,consent,tier\nA,anna@example.de,yes,Silber\nB,ben@example.de,yes,Silber\n",
    );
    let out = env.run(&["import", "customers", first.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(!common::stdout(&out).contains("neue-stufe"));
    let second = env.write(
        "second.csv",
        "external_id,email,consent,tier\nA,anna@example.de,yes,Gold\nB,ben@example.de,yes,Silber\n",
    );
    let dry = env.run(&["import", "customers", second.to_str().unwrap(), "--dry-run"]);
    assert!(dry.status.success(), "{}", common::stderr(&dry));
    assert!(
        !common::stdout(&dry).contains("neue-stufe"),
        "{url}: a dry run starts nothing: {}",
        common::stdout(&dry)
    );
    let out = env.run(&["import", "customers", second.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(
        text.contains("neue-stufe") && text.contains("1 customer"),
        "{url}: {text}"
    );
    let list = env.run(&["runs", "list", "--json"]);
    let runs: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let runs = runs.as_array().unwrap();
    assert_eq!(runs.len(), 1, "{url}: {runs:?}");
    assert_eq!(runs[0]["run"]["rule_id"], "neue-stufe");
    assert_eq!(runs[0]["run"]["trigger"], "attribute_change");
}

// ---------------------------------------------------------------- vouchers

const IMPORTED_POOL: &str = r#"
[[voucher_pool]]
id = "dank"
value = "10 € auf Ihren nächsten Besuch"
valid_days = 5

[[campaign]]
id = "gutschein"
kind = "voucher"
schedule = "0 11 * * Mon"
template = "voucher"
voucher_pool = "dank"
"#;

backend_test!(importing_voucher_codes_rejects_duplicates_in_the_file_and_in_the_pool_by_line);
async fn importing_voucher_codes_rejects_duplicates_in_the_file_and_in_the_pool_by_line(
    Db { url, .. }: Db,
) {
    let env = common::Env::new(&url, &format!("{NO_LIMITS}{IMPORTED_POOL}"));
    let file = env.write(
        "codes.csv",
        "code\nDANK-0001\nDANK-0002\nDANK-0001\n\nDANK-0003\nDANK 0004\n",
    );
    let out = env.run(&["import", "vouchers", "dank", file.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{url}: {text}");
    assert!(text.contains("added 3, rejected 2"), "{text}");
    assert!(text.contains("line 4: duplicate of line 2"), "{text}");
    assert!(
        text.contains("line 7: \"DANK 0004\" is not a code"),
        "{text}"
    );
    assert!(
        common::stderr(&out).contains("2 line(s) rejected; the other codes were added"),
        "{}",
        common::stderr(&out)
    );

    // One per line, no header; two already in the pool.
    let more = env.write("more.txt", "DANK-0003\nDANK-0005\nDANK-0002\n");
    let out = env.run(&["import", "vouchers", "dank", more.to_str().unwrap()]);
    let text = common::stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{url}: {text}");
    assert!(text.contains("added 1, rejected 2"), "{text}");
    assert!(
        text.contains("line 1: \"DANK-0003\" is already in pool dank"),
        "{text}"
    );
    assert!(
        text.contains("line 3: \"DANK-0002\" is already in pool dank"),
        "{text}"
    );

    let clean = env.write("clean.csv", "id;code\n1;DANK-0006\n2;DANK-0007\n");
    let out = env.run(&["import", "vouchers", "dank", clean.to_str().unwrap()]);
    assert!(out.status.success(), "{}", common::stderr(&out));
    assert!(common::stdout(&out).contains("added 2, rejected 0"));

    // A CSV without a `code` column is refused as a whole, not imported row by row.
    let unnamed = env.write("unnamed.csv", "nr;gutschein\n1;DANK-0008\n");
    let out = env.run(&["import", "vouchers", "dank", unnamed.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{url}");
    assert!(
        common::stderr(&out)
            .contains("unnamed.csv: line 1 has several columns but none is named \"code\""),
        "{}",
        common::stderr(&out)
    );
    let again = env.write("again.txt", "DANK-0008\n");
    let out = env.run(&["import", "vouchers", "dank", again.to_str().unwrap()]);
    assert!(
        common::stdout(&out).contains("added 1, rejected 0"),
        "{url}: nothing of the refused file was added: {}",
        common::stdout(&out)
    );

    let out = env.run(&["import", "vouchers", "nope", clean.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        common::stderr(&out).contains("unknown voucher pool \"nope\""),
        "{}",
        common::stderr(&out)
    );
}

const ADMIN: &str = "[business]\nadmin_email = \"chef@cafe-test.example\"\n";

async fn add_codes(t: &TestApp, pool: &str, codes: &str) {
    let path = t
        .dir
        .path()
        .join(format!("codes-{}.txt", rand::random::<u32>()));
    std::fs::write(&path, codes).unwrap();
    let report = outreach::vouchers::import(&t.app, pool, &path)
        .await
        .unwrap();
    assert!(report.rejected.is_empty(), "{:?}", report.rejected);
}

async fn voucher_run(t: &TestApp, now: DateTime<Utc>) -> i64 {
    let run = outreach::schedule::start_now(&t.app, "gutschein", now)
        .await
        .unwrap();
    t.tick(now).await;
    t.deliver_all(now).await;
    run
}

/// The code each customer got in a run (None: suppressed).
async fn codes_of(t: &TestApp, run: i64, keys: &[&str]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for key in keys {
        let id = customer_id(t, key).await;
        out.push(t.app.store.message_voucher(run, id).await.unwrap());
    }
    out
}

backend_test!(each_imported_code_goes_to_one_customer_once_and_an_empty_pool_suppresses_and_tells_the_admin_once);
async fn each_imported_code_goes_to_one_customer_once_and_an_empty_pool_suppresses_and_tells_the_admin_once(
    Db { url, .. }: Db,
) {
    // The schedule (New Year's Day) never fires here; runs are started by hand.
    let extra = format!("{NO_LIMITS}{IMPORTED_POOL}").replace("0 11 * * Mon", "0 11 1 1 *");
    let t = TestApp::with_fragment(&url, &extra, ADMIN).await;
    t.import(
        "external_id,email,name,locale,consent\n\
         A,anna@example.de,Anna,de,yes\n\
         B,ben@example.com,Ben,en,yes\n\
         C,clara@example.de,Clara,de,yes\n\
         D,dora@example.de,Dora,de,yes\n\
         E,emil@example.de,Emil,de,yes\n",
    )
    .await;
    add_codes(&t, "dank", "DANK-0001\nDANK-0002\nDANK-0003\n").await;
    let everyone = ["A", "B", "C", "D", "E"];

    // 00:30 in Berlin is still the day before in UTC: validity counts from the Berlin day.
    let first = voucher_run(&t, berlin(2026, 11, 30, 0, 30)).await;
    assert_eq!(
        codes_of(&t, first, &everyone).await,
        [
            Some("DANK-0001".to_string()),
            Some("DANK-0002".to_string()),
            Some("DANK-0003".to_string()),
            None,
            None
        ],
        "{url}"
    );
    let mut counts = t.counts(first).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            ("sent".to_string(), None, 3),
            (
                "suppressed".to_string(),
                Some("pool exhausted".to_string()),
                2
            )
        ],
        "{url}"
    );
    let anna = &mails_to(&t, "anna@example.de")[0];
    assert!(
        anna.body
            .contains("Ihr Code: DANK-0001 – gültig bis 05.12.2026"),
        "{url}: {}",
        anna.body
    );
    assert!(
        anna.body.contains("10 € auf Ihren nächsten Besuch"),
        "{}",
        anna.body
    );
    let ben = &mails_to(&t, "ben@example.com")[0];
    assert!(
        ben.body
            .contains("Your code: DANK-0002 – valid until 5 December 2026"),
        "{url}: {}",
        ben.body
    );
    assert!(
        mails_to(&t, "clara@example.de")[0]
            .body
            .contains("DANK-0003")
    );
    for nobody in ["dora@example.de", "emil@example.de"] {
        assert!(mails_to(&t, nobody).is_empty(), "{url}: {nobody}");
    }
    let notices = mails_to(&t, "chef@cafe-test.example");
    assert_eq!(notices.len(), 1, "{url}");
    assert_eq!(notices[0].subject, "Keine Gutscheincodes mehr in „dank“");
    assert!(
        notices[0].body.contains("outreach import vouchers dank"),
        "{}",
        notices[0].body
    );

    // A second run: those with a code get no second one from the pool, the
    // others still none; and the admin is not told again. The reasons say which is which.
    let second = voucher_run(&t, berlin(2026, 12, 7, 11, 0)).await;
    assert_eq!(
        codes_of(&t, second, &everyone).await,
        [None, None, None, None, None]
    );
    let mut counts = t.counts(second).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            (
                "suppressed".to_string(),
                Some("already received a code from pool dank".to_string()),
                3
            ),
            (
                "suppressed".to_string(),
                Some("pool exhausted".to_string()),
                2
            ),
        ],
        "{url}"
    );
    assert_eq!(mails_to(&t, "chef@cafe-test.example").len(), 1, "{url}");

    // Refilled: Dora and Emil get theirs; Anna, Ben and Clara had their share.
    add_codes(&t, "dank", "DANK-0004\nDANK-0005\nDANK-0006\n").await;
    let third = voucher_run(&t, berlin(2026, 12, 14, 11, 0)).await;
    assert_eq!(
        codes_of(&t, third, &everyone).await,
        [
            None,
            None,
            None,
            Some("DANK-0004".to_string()),
            Some("DANK-0005".to_string())
        ],
        "{url}"
    );
    let dora = &mails_to(&t, "dora@example.de")[0];
    assert!(
        dora.body
            .contains("Ihr Code: DANK-0004 – gültig bis 19.12.2026"),
        "{url}: {}",
        dora.body
    );
    assert_eq!(t.count(third, "sent").await, 2);
    assert_eq!(mails_to(&t, "chef@cafe-test.example").len(), 1, "{url}");
    // Every code went to exactly one customer, and every customer got at most one.
    let mut given: Vec<String> = Vec::new();
    for run in [first, second, third] {
        given.extend(codes_of(&t, run, &everyone).await.into_iter().flatten());
    }
    given.sort();
    let before = given.len();
    given.dedup();
    assert_eq!((before, given.len()), (5, 5), "{url}: {given:?}");
    for address in [
        "anna@example.de",
        "ben@example.com",
        "clara@example.de",
        "dora@example.de",
        "emil@example.de",
    ] {
        assert_eq!(mails_to(&t, address).len(), 1, "{url}: {address}");
    }
}

backend_test!(a_generated_pool_gives_every_customer_a_unique_code_of_its_pattern);
async fn a_generated_pool_gives_every_customer_a_unique_code_of_its_pattern(Db { url, .. }: Db) {
    let extra = format!("{NO_LIMITS}{IMPORTED_POOL}")
        .replace("0 11 * * Mon", "0 11 1 1 *")
        .replace(
            "valid_days = 5",
            "valid_days = 90\npattern = \"LINDE-XXXX-XXXX\"",
        )
        .replace(
            "value = \"10 € auf Ihren nächsten Besuch\"",
            "value = { de = \"10 € auf Ihren nächsten Besuch\", en = \"€10 off your next visit\" }",
        );
    let t = TestApp::new(&url, &extra).await;
    let mut csv = String::from("external_id,email,locale,consent\n");
    let keys: Vec<String> = (0..40).map(|i| format!("K{i:02}")).collect();
    for (i, key) in keys.iter().enumerate() {
        let locale = if i % 2 == 0 { "de" } else { "en" };
        csv.push_str(&format!("{key},kunde{i}@example.de,{locale},yes\n"));
    }
    t.import(&csv).await;
    let run = voucher_run(&t, berlin(2026, 11, 23, 12, 0)).await;
    assert_eq!(t.count(run, "sent").await, 40, "{url}");
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let codes: Vec<String> = codes_of(&t, run, &keys)
        .await
        .into_iter()
        .flatten()
        .collect();
    assert_eq!(codes.len(), 40);
    let unique: std::collections::HashSet<&String> = codes.iter().collect();
    assert_eq!(unique.len(), 40, "{url}: {codes:?}");
    for code in &codes {
        let ok = code.len() == 15
            && code.starts_with("LINDE-")
            && code.as_bytes()[10] == b'-'
            && code[6..10]
                .chars()
                .chain(code[11..].chars())
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        assert!(ok, "{code}");
    }
    // The customer's own code in their mail, the date in their locale.
    let de = &mails_to(&t, "kunde0@example.de")[0];
    assert!(
        de.body
            .contains(&format!("Ihr Code: {} – gültig bis 21.02.2027", codes[0])),
        "{url}: {}",
        de.body
    );
    let en = &mails_to(&t, "kunde1@example.de")[0];
    assert!(
        en.body.contains(&format!(
            "Your code: {} – valid until 21 February 2027",
            codes[1]
        )),
        "{url}: {}",
        en.body
    );
    // The voucher's value in the customer's language.
    assert!(
        en.body.contains("<strong>€10 off your next visit</strong>")
            && !en.body.contains("auf Ihren nächsten Besuch"),
        "{}",
        en.body
    );
    assert!(
        de.body
            .contains("<strong>10 € auf Ihren nächsten Besuch</strong>"),
        "{}",
        de.body
    );
    // One per customer: the next run gives nobody a second code (and no admin notice).
    let again = voucher_run(&t, berlin(2026, 11, 30, 12, 0)).await;
    assert_eq!(
        t.counts(again).await,
        [(
            "suppressed".to_string(),
            Some("already received a code from pool dank".to_string()),
            40
        )],
        "{url}"
    );
    assert_eq!(t.outbox_mails().len(), 40, "{url}");
}

// ------------------------------------------------------------ approval gate

const WEEKLY: &str = r#"
[[campaign]]
id = "wochenbrief"
kind = "status_update"
schedule = "0 10 * * Thu"
template = "status_update"
approval = "required"
approvers = ["jonas"]
approval_timeout = "24h"
"#;

const THREE: &str = "external_id,email,name,locale,consent\n\
    A,anna@example.de,Anna,de,yes\n\
    B,ben@example.com,Ben,en,yes\n\
    C,clara@example.de,Clara,de,no\n";

/// A TestApp whose weekly run of 26 Nov 2026 10:00 is planned and waiting.
async fn waiting_run(url: &str) -> (TestApp, i64) {
    let t = TestApp::new(url, &format!("{NO_LIMITS}{WEEKLY}")).await;
    t.import(THREE).await;
    t.tick(berlin(2026, 11, 25, 12, 0)).await; // the daemon starts on Wednesday
    t.tick(berlin(2026, 11, 26, 10, 0)).await;
    let runs = t.runs_of("wochenbrief").await;
    assert_eq!(runs.len(), 1, "{url}");
    (t, runs[0].id)
}

fn approval_link(mail: &Mail) -> String {
    let start = mail
        .body
        .find("http://127.0.0.1:8080/a/")
        .unwrap_or_else(|| panic!("no approval link in {}", mail.body));
    mail.body[start..]
        .split(|c: char| c.is_whitespace() || c == '"' || c == '<')
        .next()
        .unwrap()
        .to_string()
}

async fn http(
    router: &axum::Router,
    method: &str,
    path: &str,
    form: Option<&str>,
) -> (axum::http::StatusCode, String) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form.unwrap_or("").to_string()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

/// No link in `text` (an email or a page) carries an unsubscribe token that
/// works: whoever reads it cannot act on a customer.
fn assert_no_customer_token(t: &TestApp, text: &str, now: DateTime<Utc>) {
    // Quoted-printable may break a link across lines: read the decoded parts too.
    let decoded = if text.contains("Content-Type") {
        common::mail::Mail::parse(text)
            .parts
            .iter()
            .map(|p| p.2.clone())
            .collect::<Vec<_>>()
            .join("\n")
    } else {
        text.to_string()
    };
    for (i, _) in decoded.match_indices("/u/") {
        let token: String = decoded[i + 3..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || "-_.".contains(*c))
            .collect();
        assert!(
            t.app
                .signer
                .verify(&token, outreach::tokens::Purpose::Unsubscribe, now)
                .is_err(),
            "a working unsubscribe link: /u/{token}"
        );
    }
}

fn customer_mails(t: &TestApp) -> usize {
    ["anna@example.de", "ben@example.com", "clara@example.de"]
        .iter()
        .map(|a| mails_to(t, a).len())
        .sum()
}

backend_test!(a_run_needing_approval_is_prepared_and_sends_nothing_until_approved_through_the_link);
async fn a_run_needing_approval_is_prepared_and_sends_nothing_until_approved_through_the_link(
    Db { url, .. }: Db,
) {
    let (t, run) = waiting_run(&url).await;
    let now = berlin(2026, 11, 26, 10, 0);
    assert_eq!(
        run_state(&t, run).await,
        (
            "awaiting_approval".to_string(),
            "waiting for approval".to_string()
        ),
        "{url}"
    );
    let mut counts = t.counts(run).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            ("planned".to_string(), None, 2),
            ("suppressed".to_string(), Some("no consent".to_string()), 1)
        ],
        "{url}: the run is prepared"
    );
    assert_eq!(t.deliver_all(now).await, 0, "{url}");
    assert_eq!(t.deliver_all(now + chrono::Duration::hours(12)).await, 0);
    assert_eq!(customer_mails(&t), 0, "{url}: nothing before approval");

    // The approver (only the configured one) gets counts, a sample and the link.
    assert!(mails_to(&t, "maria@cafe-test.example").is_empty());
    let raw: Vec<String> = t
        .outbox_mails()
        .into_iter()
        .filter(|m| m.contains("To: jonas@cafe-test.example"))
        .collect();
    assert_eq!(raw.len(), 1, "{url}");
    let request = Mail::parse(&raw[0]);
    assert_eq!(
        request.subject,
        format!("Freigabe nötig: wochenbrief (Lauf {run})")
    );
    let parts = common::mail::Mail::parse(&raw[0]);
    let (text, html) = (parts.text(), parts.html());
    assert!(
        text.contains("- 2 gehen nach der Freigabe hinaus"),
        "{text}"
    );
    assert!(
        text.contains("- 1 gehen nicht hinaus (keine Einwilligung)"),
        "{text}"
    );
    assert!(
        text.contains(
            "Beispiel: so liest es Anna\n\nBetreff: Wie es uns bei Café Test gerade geht"
        ),
        "{text}"
    );
    assert!(
        text.contains("\n> Was geöffnet ist: Dienstag bis Samstag, 8 bis 18 Uhr."),
        "the sample, quoted: {text}"
    );
    // One HTML document, the sample inside it, the link to decide below the sample.
    assert_eq!(html.matches("<!DOCTYPE html>").count(), 1, "{html}");
    assert_eq!(html.matches("<html").count(), 1, "{html}");
    assert_eq!(html.matches("<body").count(), 1, "{html}");
    let sample_at = html
        .find("Dienstag bis Samstag, 8 bis 18 Uhr")
        .expect("the sample");
    let link_at = html.find("http://127.0.0.1:8080/a/").expect("the link");
    assert!(sample_at < link_at, "the decision below the sample: {html}");
    // No link in it acts on a customer: the sample's unsubscribe link is inert.
    assert_no_customer_token(&t, &raw[0], now);
    assert!(
        html.contains("href=\"http://127.0.0.1:8080/u/sample\""),
        "{html}"
    );
    let link = approval_link(&request);
    let token = link.rsplit('/').next().unwrap().to_string();
    assert_eq!(
        t.app
            .signer
            .verify_holder(&token, outreach::tokens::Purpose::Approval, now),
        Ok((run, Some("jonas".to_string()))),
        "{url}: the link is for this run and this approver"
    );
    assert!(
        t.app
            .signer
            .verify(
                &token,
                outreach::tokens::Purpose::Approval,
                now + chrono::Duration::hours(25)
            )
            .is_err(),
        "the link expires with the approval timeout"
    );

    // The HTTP handler checks expiry against the wall clock, so over HTTP we
    // use a link for the same run and approver that is valid today.
    let token = t.app.signer.sign_for(
        outreach::tokens::Purpose::Approval,
        run,
        "jonas",
        Utc::now() + chrono::Duration::hours(24),
    );
    let router = t.router().await;
    let (status, page) = http(&router, "GET", &format!("/a/{token}"), None).await;
    assert_eq!(status, 200, "{url}");
    assert!(
        page.contains("Stand:</strong> wartet auf Freigabe"),
        "{page}"
    );
    assert!(
        !page.contains("awaiting_approval"),
        "German words, not states: {page}"
    );
    assert!(page.contains("Hallo Jonas,"), "{page}");
    let form_at = page.find("value=\"approve\"").expect("approve");
    assert!(page.contains("value=\"cancel\""), "{page}");
    let sample_at = page
        .find("Dienstag bis Samstag, 8 bis 18 Uhr")
        .expect("the sample");
    assert!(sample_at < form_at, "the buttons below the sample: {page}");
    assert_eq!(page.matches("<!DOCTYPE html>").count(), 1, "{page}");
    assert!(
        page.contains("<td class=\"n\">2</td><td>gehen nach der Freigabe hinaus</td>"),
        "{page}"
    );
    assert_no_customer_token(&t, &page, Utc::now());
    let (status, _) = http(&router, "GET", &format!("/a/{token}"), None).await;
    assert_eq!(status, 200);
    assert_eq!(
        run_state(&t, run).await.0,
        "awaiting_approval",
        "{url}: GET changes nothing"
    );
    assert_eq!(t.deliver_all(now).await, 0);
    // An approver who follows the sample's unsubscribe link and confirms changes nothing.
    let (status, page) = http(&router, "GET", "/u/sample", None).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Beispiel"), "{page}");
    let (status, _) = http(&router, "POST", "/u/sample", Some("")).await;
    assert_eq!(status, 200);
    for key in ["A", "B", "C"] {
        let customer = t.app.store.find_customer(key).await.unwrap().unwrap();
        assert!(
            customer.unsubscribed_at.is_none(),
            "{url}: {key} unsubscribed by a sample"
        );
    }

    // A forged link (another run id under the real signature), a task link
    // and an expired link get a plain error page, no data.
    let (payload, tag) = token.split_once('.').unwrap();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(b64.decode(payload).unwrap()).unwrap();
    let forged_payload = payload.replacen(&format!(".{run}."), &format!(".{}.", run + 1), 1);
    assert_ne!(payload, forged_payload);
    let forged = format!("{}.{tag}", b64.encode(forged_payload));
    let task = t.app.signer.sign(
        outreach::tokens::Purpose::Task,
        run,
        Utc::now() + chrono::Duration::hours(1),
    );
    let expired = t.app.signer.sign(
        outreach::tokens::Purpose::Approval,
        run,
        Utc::now() - chrono::Duration::hours(1),
    );
    for (bad, status) in [
        (&forged, 404),
        (&task, 404),
        (&expired, 410),
        (&"garbage".to_string(), 404),
    ] {
        for method in ["GET", "POST"] {
            let (got, page) = http(
                &router,
                method,
                &format!("/a/{bad}"),
                Some("action=approve"),
            )
            .await;
            assert_eq!(got, status, "{url}: {method} {bad}");
            assert!(page.contains("Dieser Link funktioniert nicht"), "{page}");
            assert!(
                !page.contains("wochenbrief") && !page.contains("Anna"),
                "no data: {page}"
            );
        }
    }
    assert_eq!(run_state(&t, run).await.0, "awaiting_approval", "{url}");

    let (status, page) = http(
        &router,
        "POST",
        &format!("/a/{token}"),
        Some("action=approve"),
    )
    .await;
    assert_eq!(status, 200, "{url}: {page}");
    assert!(page.contains("Danke, freigegeben."), "{page}");
    assert!(
        page.contains("Stand:</strong> freigegeben, wird versendet (Jonas,"),
        "{page}"
    );
    // Decided: the page no longer asks to read it before it goes out.
    assert!(!page.contains("bevor sie an die Kundschaft geht"), "{page}");
    assert!(
        page.contains("was mit dieser E-Mail geschehen ist"),
        "{page}"
    );
    let r = t.app.store.run(run).await.unwrap().unwrap();
    assert_eq!(
        (r.state.as_str(), r.decided_by.as_deref()),
        ("sending", Some("jonas")),
        "{url}: the approver's own link records them"
    );
    assert_eq!(t.deliver_all(now).await, 2, "{url}");
    assert_eq!(mails_to(&t, "anna@example.de").len(), 1);
    assert_eq!(mails_to(&t, "ben@example.com").len(), 1);
    assert!(mails_to(&t, "clara@example.de").is_empty());
    // A second decision changes nothing.
    let (_, page) = http(
        &router,
        "POST",
        &format!("/a/{token}"),
        Some("action=cancel"),
    )
    .await;
    assert!(page.contains("Darüber wurde schon entschieden."), "{page}");
    assert_eq!(t.count(run, "sent").await, 2, "{url}");
}

backend_test!(an_approved_run_sends_and_a_cancelled_one_suppresses_its_messages_with_who_cancelled);
async fn an_approved_run_sends_and_a_cancelled_one_suppresses_its_messages_with_who_cancelled(
    Db { url, .. }: Db,
) {
    let (t, first) = waiting_run(&url).await;
    let now = berlin(2026, 11, 26, 10, 5);
    assert_eq!(
        outreach::approval::decide(&t.app, first, Decision::Approve, "jonas", now)
            .await
            .unwrap(),
        "sending"
    );
    assert_eq!(t.deliver_all(now).await, 2, "{url}");
    t.tick(now).await;
    assert_eq!(run_state(&t, first).await.0, "done", "{url}");

    // Next Thursday's run is cancelled by the approver.
    let next = berlin(2026, 12, 3, 10, 0);
    t.tick(next).await;
    let second = t.runs_of("wochenbrief").await[1].id;
    assert_eq!(run_state(&t, second).await.0, "awaiting_approval", "{url}");
    assert_eq!(
        outreach::approval::decide(&t.app, second, Decision::Cancel, "jonas", next)
            .await
            .unwrap(),
        "cancelled"
    );
    let mut counts = t.counts(second).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            ("suppressed".to_string(), Some("no consent".to_string()), 1),
            (
                "suppressed".to_string(),
                Some("run cancelled by jonas".to_string()),
                2
            )
        ],
        "{url}"
    );
    assert_eq!(t.deliver_all(next).await, 0);
    assert!(
        outreach::approval::decide(&t.app, second, Decision::Approve, "maria", next)
            .await
            .is_err(),
        "decided is decided"
    );

    // And the one after, cancelled through the link.
    let third_at = berlin(2026, 12, 10, 10, 0);
    t.tick(third_at).await;
    let third = t.runs_of("wochenbrief").await[2].id;
    let token = t.app.signer.sign(
        outreach::tokens::Purpose::Approval,
        third,
        Utc::now() + chrono::Duration::hours(1),
    );
    let (status, page) = http(
        &t.router().await,
        "POST",
        &format!("/a/{token}"),
        Some("action=cancel"),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Abgebrochen."), "{page}");
    assert_eq!(t.count(third, "planned").await, 0);
    assert!(
        t.counts(third).await.contains(&(
            "suppressed".to_string(),
            Some("run cancelled by approval link".to_string()),
            2
        )),
        "{url}"
    );
    assert_eq!(t.deliver_all(third_at).await, 0);
    assert_eq!(
        mails_to(&t, "anna@example.de").len(),
        1,
        "{url}: only the approved run"
    );
    assert_eq!(
        mails_to(&t, "jonas@cafe-test.example").len(),
        3,
        "{url}: one request per run"
    );
}

backend_test!(a_run_nobody_approves_expires_after_the_timeout_and_its_messages_are_suppressed);
async fn a_run_nobody_approves_expires_after_the_timeout_and_its_messages_are_suppressed(
    Db { url, .. }: Db,
) {
    let (t, run) = waiting_run(&url).await;
    t.tick(berlin(2026, 11, 27, 9, 59)).await;
    assert_eq!(
        run_state(&t, run).await.0,
        "awaiting_approval",
        "{url}: 23h59 later"
    );
    let late = berlin(2026, 11, 27, 10, 1);
    t.tick(late).await;
    assert_eq!(
        run_state(&t, run).await,
        (
            "expired".to_string(),
            "nobody approved it in time".to_string()
        ),
        "{url}"
    );
    let mut counts = t.counts(run).await;
    counts.sort();
    assert_eq!(
        counts,
        [
            (
                "suppressed".to_string(),
                Some("approval expired".to_string()),
                2
            ),
            ("suppressed".to_string(), Some("no consent".to_string()), 1)
        ],
        "{url}"
    );
    assert_eq!(t.deliver_all(late).await, 0);
    assert_eq!(customer_mails(&t), 0, "{url}");
    let err = outreach::approval::decide(&t.app, run, Decision::Approve, "jonas", late)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("is expired, not awaiting approval"),
        "{err}"
    );
}

// ---------------------------------------------------------- freshness guard

/// Delivers everything due with a given daemon (e.g. one reloaded after a template edit).
async fn deliver_with(app: &outreach::app::App, t: &TestApp, now: DateTime<Utc>) -> usize {
    let mut mailer = outreach::mailer::MailerSettings::from_config(&app.config)
        .open()
        .unwrap();
    let mut total = 0;
    loop {
        let n = outreach::deliver::deliver_batch(app, &t.delivery, &mut mailer, now)
            .await
            .unwrap();
        if n == 0 {
            return total;
        }
        total += n;
    }
}

backend_test!(an_unchanged_status_text_is_held_for_a_person_and_an_edited_one_goes_out);
async fn an_unchanged_status_text_is_held_for_a_person_and_an_edited_one_goes_out(
    Db { url, .. }: Db,
) {
    // Our own copy of the templates, to edit between runs.
    let templates = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(common::repo_path("templates")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, templates.path().join(path.file_name().unwrap())).unwrap();
    }
    let extra = format!(
        "{NO_LIMITS}\n[[campaign]]\nid = \"lage\"\nkind = \"status_update\"\nschedule = \"0 10 * * Thu\"\n\
         template = \"status_update\"\nrequire_fresh_text = true\n"
    );
    let fragment = format!("[templates]\ndir = \"{}\"\n", templates.path().display());
    let t = TestApp::with_fragment(&url, &extra, &fragment).await;
    t.import(THREE).await;
    t.tick(berlin(2026, 11, 25, 12, 0)).await;

    let first_at = berlin(2026, 11, 26, 10, 0);
    t.tick(first_at).await;
    let first = t.runs_of("lage").await[0].id;
    assert_eq!(
        run_state(&t, first).await.0,
        "sending",
        "{url}: the first text goes out"
    );
    assert_eq!(t.deliver_all(first_at).await, 2);
    t.tick(first_at + chrono::Duration::minutes(1)).await;
    assert_eq!(run_state(&t, first).await.0, "done");

    // A week later, same text: held, and a person is asked.
    let second_at = berlin(2026, 12, 3, 10, 0);
    t.tick(second_at).await;
    let second = t.runs_of("lage").await[1].id;
    let (state, detail) = run_state(&t, second).await;
    assert_eq!(state, "awaiting_approval", "{url}");
    assert_eq!(
        detail,
        format!("held: the text is the same as in run {first}; update the template, then approve"),
        "{url}"
    );
    assert_eq!(t.count(second, "planned").await, 2);
    assert_eq!(t.deliver_all(second_at).await, 0, "{url}: nothing sent");
    assert_eq!(mails_to(&t, "anna@example.de").len(), 1);
    // No approvers configured: the staff without a manager (Maria) are asked.
    let asked = mails_to(&t, "maria@cafe-test.example");
    assert_eq!(asked.len(), 1, "{url}");
    assert!(
        asked[0].body.contains(&format!(
            "Der Text ist derselbe wie beim letzten Versand (Lauf {first})."
        )),
        "{}",
        asked[0].body
    );
    assert!(
        asked[0].body.contains("http://127.0.0.1:8080/a/"),
        "{}",
        asked[0].body
    );
    assert!(mails_to(&t, "jonas@cafe-test.example").is_empty());

    // The admin writes this week's news and reloads the daemon.
    let file = templates.path().join("status_update.de.md");
    let text = std::fs::read_to_string(&file).unwrap().replace(
        "Dienstag bis Samstag, 8 bis 18 Uhr.",
        "ab dieser Woche auch sonntags, 9 bis 14 Uhr.",
    );
    std::fs::write(&file, text).unwrap();
    let reloaded = t.sibling("test").await;
    let third_at = berlin(2026, 12, 10, 10, 0);
    outreach::daemon::tick(&reloaded, &t.delivery, third_at)
        .await
        .unwrap();
    let third = t.runs_of("lage").await[2].id;
    assert_eq!(
        run_state(&t, third).await,
        ("sending".to_string(), String::new()),
        "{url}: fresh text is not held"
    );
    assert_eq!(deliver_with(&reloaded, &t, third_at).await, 2, "{url}");
    let anna = mails_to(&t, "anna@example.de");
    assert_eq!(anna.len(), 2, "{url}");
    assert!(
        anna.iter().any(|m| m
            .body
            .contains("ab dieser Woche auch sonntags, 9 bis 14 Uhr.")),
        "{url}: the new text went out"
    );
    assert_eq!(
        mails_to(&t, "maria@cafe-test.example").len(),
        1,
        "{url}: nobody asked this time"
    );
    // The held run, left alone, expired meanwhile (default timeout 48h).
    assert_eq!(run_state(&t, second).await.0, "expired", "{url}");
}

backend_test!(a_run_stopped_after_its_first_emails_counts_as_sent_for_fresh_text);
async fn a_run_stopped_after_its_first_emails_counts_as_sent_for_fresh_text(Db { url, .. }: Db) {
    // Night in New York while Berlin has its morning: Ned's email waits.
    let extra = "[limits]\nfrequency_cap = \"\"\nquiet_hours = \"20:00-08:00\"\n\
         [[campaign]]\nid = \"lage\"\nkind = \"status_update\"\nschedule = \"0 3 29 2 *\"\n\
         template = \"status_update\"\nrequire_fresh_text = true\n";
    let t = TestApp::new(&url, extra).await;
    t.import(
        "email,name,consent,timezone\n\
         anna@example.de,Anna,yes,Europe/Berlin\n\
         ned@example.com,Ned,yes,America/New_York\n",
    )
    .await;
    let t = &t;
    let at = berlin(2026, 12, 3, 10, 0);
    let start = |minutes: i64| async move {
        let now = at + chrono::Duration::minutes(minutes);
        let run = outreach::schedule::start_now(&t.app, "lage", now)
            .await
            .unwrap();
        t.tick(now).await;
        run
    };
    let stop = |run: i64, minutes: i64| async move {
        outreach::control::stop(
            &t.app,
            run,
            "",
            "tester",
            at + chrono::Duration::minutes(minutes),
        )
        .await
        .unwrap();
    };

    // Stopped before anything went out: nobody read that text.
    let unread = start(0).await;
    assert_eq!(run_state(t, unread).await.0, "sending", "{url}");
    stop(unread, 1).await;
    let first = start(2).await;
    assert_eq!(
        run_state(t, first).await.0,
        "sending",
        "{url}: a text nobody got is not held"
    );

    // Anna gets it, Ned's waits for his morning; then the run is stopped.
    t.deliver_all(at + chrono::Duration::minutes(3)).await;
    assert_eq!(mails_to(t, "anna@example.de").len(), 1, "{url}");
    assert!(mails_to(t, "ned@example.com").is_empty(), "{url}");
    stop(first, 4).await;
    assert_eq!(run_state(t, first).await.0, "stopped", "{url}");

    // The same text again: held, naming the stopped run Anna got it from.
    let again = start(5).await;
    assert_eq!(
        run_state(t, again).await,
        (
            "awaiting_approval".to_string(),
            format!(
                "held: the text is the same as in run {first}; update the template, then approve"
            )
        ),
        "{url}"
    );
    t.deliver_all(at + chrono::Duration::minutes(6)).await;
    assert_eq!(mails_to(t, "anna@example.de").len(), 1, "{url}: not twice");
}
