//! Operator control with the real binary against a running daemon, on both
//! backends: pausing all customer email (staff email goes on) and resuming,
//! pausing one campaign, stopping a run mid-send under a rate limit, who got
//! what (`runs show`), absences from the command line with a callback date
//! that survives the move, the digest once a day, approving unchanged text,
//! and commands that take effect within a second. What depends on the date
//! (occurrences skipped while paused, a run held too long, a birthday
//! voucher once a year, a callback after a move) runs in process with
//! explicit times.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{Datelike, Days, NaiveDate, Utc, Weekday};
use common::app::{TestApp, berlin};
use common::daemon::{Daemon, json};
use common::smtp::{self, Received};
use common::wait_for;
use common::{Db, Env, backend_test, stderr, stdout};
use outreach::approval::Decision;
use outreach::schedule::start_now;

/// Rules whose schedules never fire during a test (29 February, 03:00):
/// runs are started by hand. Lena works every day and gets her digest late
/// at night, so the daemon does not send it while a test runs.
const RULES: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[staff]]
id = "lena"
name = "Lena"
email = "lena@cafe-test.example"
days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
digest_at = "23:59"

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"

[[campaign]]
id = "freigabe"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"
approval = "required"
approvers = ["maria"]

[[campaign]]
id = "frisch"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"
require_fresh_text = true

[[checkin]]
id = "anrufe"
audience = "true"
schedule = "0 3 29 2 *"
assign = "owner"
min_days_between_personal_contacts = 30
due_in = "0d"
escalate_after = "30d"
expire_after = "60d"
reason = "Einfach nachfragen."
template = "checkin"
"#;

const MARIA: &str = "maria@cafe-test.example";
const LENA: &str = "lena@cafe-test.example";

/// When each message reached the test SMTP server, and to whom.
type Arrivals = Arc<Mutex<Vec<(Instant, Vec<String>)>>>;

struct Setup {
    env: Env,
    received: Received,
    arrivals: Arrivals,
}

/// A config with [`RULES`] sending to a test SMTP server; `mail` is added
/// to the `[mail.smtp]` part (e.g. `connections = 1`), `limit` replaces the
/// rate limit.
fn setup(url: &str, limit: u32, mail: &str) -> Setup {
    let arrivals: Arrivals = Arc::default();
    let log = arrivals.clone();
    let (port, received) = smtp::start(Some(Arc::new(move |to: &[String]| {
        log.lock().unwrap().push((Instant::now(), to.to_vec()))
    })));
    let env = Env::new(url, RULES);
    let fragment = smtp::smtp_config(port)
        .replace("rate_per_minute = 0", &format!("rate_per_minute = {limit}"))
        + mail;
    env.write("conf.d/10-smtp.toml", &fragment);
    Setup {
        env,
        received,
        arrivals,
    }
}

impl Setup {
    /// Customer emails that arrived (not staff addresses).
    fn to_customers(&self) -> Vec<(Instant, String)> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(at, to)| to.iter().map(move |t| (*at, t.clone())))
            .filter(|(_, to)| to.ends_with("@example.de"))
            .collect()
    }

    /// The first customer email that arrived at or after `since`, how long after.
    fn first_after(&self, since: Instant) -> Option<Duration> {
        self.to_customers()
            .iter()
            .filter(|(at, _)| *at >= since)
            .map(|(at, _)| *at - since)
            .min()
    }
}

/// `outreach ARGS` as user "tester"; must succeed; its stdout.
fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.command(args).env("USER", "tester").output().unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// `outreach ARGS` must fail with exit status 1 and one line that says `says`.
fn refused(env: &Env, args: &[&str], says: &str) {
    let out = env.command(args).env("USER", "tester").output().unwrap();
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{args:?}: {}{err}",
        stdout(&out)
    );
    assert_eq!(err.lines().count(), 1, "{args:?}: one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(says),
        "{args:?}: {err}"
    );
}

/// `n` customers `kunde{i}@example.de` who agreed to email.
fn customers(env: &Env, n: usize) {
    let mut csv = String::from("email,name,consent\n");
    for i in 0..n {
        csv.push_str(&format!("kunde{i}@example.de,Kunde {i},yes\n"));
    }
    import(env, &csv);
}

fn import(env: &Env, csv: &str) {
    let path = env.write(&format!("import-{}.csv", rand::random::<u32>()), csv);
    ok(env, &["import", "customers", path.to_str().unwrap()]);
}

/// `outreach runs start RULE`: the run id.
fn start(env: &Env, rule: &str) -> i64 {
    let text = ok(env, &["runs", "start", rule]);
    text.split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no run id in {text:?}"))
}

fn show(env: &Env, run: i64) -> serde_json::Value {
    json(env, &["runs", "show", &run.to_string(), "--json"])
}

/// A run's message count in `state` (and with `reason`, if given).
fn count(shown: &serde_json::Value, state: &str, reason: Option<&str>) -> i64 {
    shown["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["state"] == state && reason.is_none_or(|r| c["reason"] == r))
        .map(|c| c["n"].as_i64().unwrap())
        .sum()
}

fn run_state(env: &Env, run: i64) -> String {
    show(env, run)["run"]["state"].as_str().unwrap().to_string()
}

fn wait_for_state(env: &Env, run: i64, state: &str) {
    wait_for(
        &format!("run {run} {state}"),
        Duration::from_secs(20),
        || run_state(env, run) == state,
    );
}

/// Today in Berlin, where the business is.
fn today() -> NaiveDate {
    Utc::now()
        .with_timezone(&chrono_tz::Europe::Berlin)
        .date_naive()
}

// ------------------------------------------------------------------ pausing

backend_test!(a_pause_holds_customer_email_but_not_staff_email_and_resume_sends_all_of_it_once);
async fn a_pause_holds_customer_email_but_not_staff_email_and_resume_sends_all_of_it_once(
    Db { url, .. }: Db,
) {
    let s = setup(&url, 0, "");
    let env = &s.env;
    customers(env, 5);
    let daemon = Daemon::start(env, "daemon", &[]);
    refused(
        env,
        &["pause", "--until", &today().to_string()],
        "is not after today",
    );
    assert!(json(env, &["status", "--json"])["hold"].is_null());
    let said = ok(env, &["pause", "--note", "Betriebsferien"]);
    assert!(
        said.contains("all customer email is paused (Betriebsferien)"),
        "{said}"
    );
    let news = start(env, "news");
    let freigabe = start(env, "freigabe");
    // Staff email goes on: the approval request reaches Maria.
    wait_for("the approval request", Duration::from_secs(20), || {
        s.received.count_to(MARIA) == 1
    });
    wait_for_state(env, freigabe, "awaiting_approval");
    ok(env, &["runs", "approve", &freigabe.to_string()]);
    // Both runs held; the second was marked after the workers had been
    // woken with the first one held: they claimed nothing.
    for run in [news, freigabe] {
        wait_for("the run held", Duration::from_secs(20), || {
            !show(env, run)["run"]["held_since"].is_null()
        });
    }
    assert!(s.to_customers().is_empty(), "{:?}", s.to_customers());
    assert_eq!(count(&show(env, news), "planned", None), 5, "{url}");
    let status = ok(env, &["status"]);
    assert!(
        status.contains("HOLD: all customer email paused (Betriebsferien)"),
        "{status}"
    );
    assert!(
        status.contains(&format!(
            "run {news} (news): 5 planned, held: all customer email paused (Betriebsferien)"
        )),
        "{status}"
    );
    // Probes may be answered from a check up to a second old.
    wait_for("/healthz shows the hold", Duration::from_secs(5), || {
        daemon
            .healthz()
            .1
            .contains("hold: all customer email paused (Betriebsferien); planned messages wait")
    });
    let (code, health) = daemon.healthz();
    assert_eq!(code, 200, "a pause is no fault: {health}");
    assert_eq!(daemon.metric("outreach_customer_email_held"), 1.0);

    let said = ok(env, &["resume"]);
    let resumed = Instant::now();
    assert!(said.contains("all customer email resumed"), "{said}");
    wait_for("everything sent", Duration::from_secs(30), || {
        s.to_customers().len() == 10
    });
    let after = s.first_after(resumed).unwrap();
    assert!(
        after < Duration::from_secs(1),
        "{url}: the first email {after:?} after `resume`"
    );
    for i in 0..5 {
        assert_eq!(
            s.received.count_to(&format!("kunde{i}@example.de")),
            2,
            "{url}: once per run"
        );
    }
    for run in [news, freigabe] {
        wait_for_state(env, run, "done");
        assert_eq!(count(&show(env, run), "sent", None), 5);
    }
    refused(
        env,
        &["resume"],
        "customer email is not paused; nothing changed",
    );
    assert_eq!(daemon.metric("outreach_customer_email_held"), 0.0);
    assert!(json(env, &["status", "--json"])["hold"].is_null());
}

backend_test!(a_paused_campaign_refuses_runs_start_names_its_pause_and_resumes);
async fn a_paused_campaign_refuses_runs_start_names_its_pause_and_resumes(Db { url, .. }: Db) {
    let env = Env::new(&url, RULES);
    let until = today() + Days::new(10);
    let german = until.format("%d.%m.%Y").to_string();
    refused(
        &env,
        &["campaigns", "pause", "nope"],
        "no campaign or check-in rule \"nope\"",
    );
    refused(
        &env,
        &["campaigns", "pause", "news", "--until", "2020-01-01"],
        "--until 2020-01-01 is not after today",
    );
    refused(&env, &["campaigns", "resume", "news"], "news is not paused");
    let before = json(&env, &["campaigns", "list", "--json"]);
    assert!(
        before
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "enabled")
    );
    // Both ways of writing a day are understood.
    let said = ok(
        &env,
        &[
            "campaigns",
            "pause",
            "news",
            "--until",
            &german,
            "--note",
            "Umbau",
        ],
    );
    assert!(
        said.contains(&format!("news is paused until {german} (Umbau)")),
        "{said}"
    );
    refused(
        &env,
        &["runs", "start", "news"],
        &format!("news is paused until {german} (Umbau); nothing started"),
    );
    let list = json(&env, &["campaigns", "list", "--json"]);
    let news = list
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "news")
        .unwrap();
    assert_eq!(news["state"], "paused");
    assert_eq!(news["paused"]["created_by"], "tester (command line)");
    // The next occurrence is the first after the pause.
    let next: chrono::DateTime<Utc> = serde_json::from_value(news["next"].clone()).unwrap();
    assert!(next.date_naive() >= until, "{next}");
    let plain = ok(&env, &["campaigns", "list"]);
    assert!(plain.contains("next (Europe/Berlin)"), "{plain}");
    assert!(plain.contains("anniversary") || plain.contains("0 3 29 2 *"));
    assert!(
        plain.lines().any(
            |l| l.starts_with("news ") && l.contains(&format!("paused until {german} (Umbau)"))
        ),
        "{plain}"
    );
    ok(
        &env,
        &[
            "campaigns",
            "pause",
            "anrufe",
            "--until",
            &until.to_string(),
        ],
    );
    refused(&env, &["runs", "start", "anrufe"], "anrufe is paused until");
    assert!(ok(&env, &["campaigns", "resume", "news"]).contains("news resumed"));
    assert!(ok(&env, &["runs", "start", "news"]).contains("started"));
    ok(&env, &["campaigns", "resume", "anrufe"]);
}

backend_test!(status_and_campaigns_list_agree_on_when_a_paused_rule_runs_next);
async fn status_and_campaigns_list_agree_on_when_a_paused_rule_runs_next(Db { url, .. }: Db) {
    let daily = "\n[[campaign]]\nid = \"taeglich\"\nkind = \"status_update\"\n\
                 schedule = \"0 9 * * *\"\ntemplate = \"status_update\"\n";
    let env = Env::new(&url, &format!("{RULES}{daily}"));
    // Both as `status` shows them: business time, to the minute.
    let next_of = |env: &Env| {
        let status = json(env, &["status", "--json"])["next_runs"].clone();
        let list = json(env, &["campaigns", "list", "--json"]);
        let listed = |id: &str| {
            let entry = list
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == id)
                .unwrap();
            serde_json::from_value::<Option<chrono::DateTime<Utc>>>(entry["next"].clone())
                .unwrap()
                .map(|t| {
                    t.with_timezone(&chrono_tz::Europe::Berlin)
                        .format("%Y-%m-%d %H:%M")
                        .to_string()
                })
        };
        let shown = |id: &str| status[id].as_str().map(String::from);
        for id in ["taeglich", "news"] {
            assert_eq!(shown(id), listed(id), "{id}: status {status}, list {list}");
        }
        (shown("taeglich"), shown("news"))
    };
    let (daily_next, news_next) = next_of(&env);
    assert!(daily_next.is_some() && news_next.is_some());

    let until = today() + Days::new(5);
    ok(
        &env,
        &[
            "campaigns",
            "pause",
            "taeglich",
            "--until",
            &until.to_string(),
        ],
    );
    ok(&env, &["campaigns", "pause", "news", "--note", "Umbau"]);
    let (daily_next, news_next) = next_of(&env);
    assert_eq!(
        daily_next,
        Some(format!("{until} 09:00")),
        "the first occurrence after the pause"
    );
    assert_eq!(news_next, None, "paused without an end: no next run");
}

backend_test!(
    while_paused_a_rules_occurrences_are_skipped_with_the_reason_and_enabled_false_pauses_for_good
);
async fn while_paused_a_rules_occurrences_are_skipped_with_the_reason_and_enabled_false_pauses_for_good(
    Db { url, .. }: Db,
) {
    let extra = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "woche"
kind = "status_update"
schedule = "0 10 * * Thu"
template = "status_update"

[[campaign]]
id = "aus"
kind = "status_update"
schedule = "0 10 * * Thu"
template = "status_update"
enabled = false

[[checkin]]
id = "anruf"
schedule = "0 7 * * Mon"
reason = "Nachfragen."
template = "checkin"
"#;
    let t = TestApp::new(&url, extra).await;
    t.tick(berlin(2026, 11, 25, 12, 0)).await;
    let now = berlin(2026, 11, 25, 12, 5);
    let until = NaiveDate::from_ymd_opt(2026, 12, 4).unwrap();
    outreach::control::pause(&t.app, Some("woche"), Some(until), "Umbau", "tester", now)
        .await
        .unwrap();
    outreach::control::pause(&t.app, Some("anruf"), None, "", "tester", now)
        .await
        .unwrap();
    let t = &t;
    let held = |rule: &'static str| async move {
        start_now(&t.app, rule, now).await.unwrap_err().to_string()
    };
    assert!(
        held("aus")
            .await
            .contains("aus is disabled in the config (enabled = false)")
    );
    assert!(
        held("woche")
            .await
            .contains("woche is paused until 04.12.2026 (Umbau)")
    );

    for at in [
        berlin(2026, 11, 26, 10, 0),
        berlin(2026, 11, 30, 7, 0),
        berlin(2026, 12, 3, 10, 0),
        berlin(2026, 12, 7, 7, 0),
        berlin(2026, 12, 10, 10, 0),
    ] {
        t.tick(at).await;
    }
    let runs = |rule: &'static str| async move {
        t.runs_of(rule)
            .await
            .into_iter()
            .map(|r| {
                (
                    r.occurrence.with_timezone(&chrono_tz::Europe::Berlin).day(),
                    r.state.to_string(),
                    r.detail,
                )
            })
            .collect::<Vec<_>>()
    };
    let paused = "paused until 04.12.2026 (Umbau)".to_string();
    assert_eq!(
        runs("woche").await,
        [
            (26, "skipped".into(), paused.clone()),
            (3, "skipped".into(), paused),
            (10, "done".into(), String::new()),
        ],
        "{url}: the pause ended when 4 December began"
    );
    let disabled = "disabled in the config (enabled = false)".to_string();
    assert_eq!(
        runs("aus").await,
        [
            (26, "skipped".into(), disabled.clone()),
            (3, "skipped".into(), disabled.clone()),
            (10, "skipped".into(), disabled),
        ],
        "{url}"
    );
    assert_eq!(
        runs("anruf").await,
        [
            (30, "skipped".into(), "paused".into()),
            (7, "skipped".into(), "paused".into())
        ],
        "{url}"
    );
}

// --------------------------------------------------------- held too long

backend_test!(
    a_run_whose_messages_waited_longer_than_allowed_goes_back_to_a_person_a_short_wait_does_not
);
async fn a_run_whose_messages_waited_longer_than_allowed_goes_back_to_a_person_a_short_wait_does_not(
    Db { url, .. }: Db,
) {
    let t = TestApp::new(&url, RULES).await;
    t.import("email,consent\nanna@example.de,yes\nben@example.de,yes\n")
        .await;
    let monday = berlin(2026, 11, 23, 10, 0);
    let control = |days: u64, minutes: i64| {
        monday + chrono::Duration::days(days as i64) + chrono::Duration::minutes(minutes)
    };
    // A short pause: the run goes on by itself.
    let short = start_now(&t.app, "news", monday).await.unwrap();
    outreach::control::pause(&t.app, None, None, "", "tester", monday)
        .await
        .unwrap();
    t.tick(control(0, 1)).await;
    assert_eq!(t.deliver_all(control(0, 1)).await, 0, "{url}: held");
    assert!(
        t.app
            .store
            .run(short)
            .await
            .unwrap()
            .unwrap()
            .held_since
            .is_some()
    );
    outreach::control::resume(&t.app, None, control(0, 60))
        .await
        .unwrap();
    t.tick(control(0, 61)).await;
    assert_eq!(t.deliver_all(control(0, 61)).await, 2, "{url}");

    // A pause of four days: longer than the three a run without approval may wait.
    let long = start_now(&t.app, "news", control(1, 0)).await.unwrap();
    outreach::control::pause(&t.app, None, None, "Umbau", "tester", control(1, 0))
        .await
        .unwrap();
    t.tick(control(1, 1)).await;
    assert_eq!(t.deliver_all(control(1, 1)).await, 0);
    let asked_before = t.mails_to(MARIA).len();
    outreach::control::resume(&t.app, None, control(5, 0))
        .await
        .unwrap();
    t.tick(control(5, 1)).await;
    let run = t.app.store.run(long).await.unwrap().unwrap();
    assert_eq!(run.state, "awaiting_approval", "{url}");
    assert!(
        run.detail.starts_with(
            "held by a pause since 2026-11-24 10:00 Europe/Berlin, longer than 3 days: approve again"
        ),
        "{}",
        run.detail
    );
    assert_eq!(
        t.mails_to(MARIA).len(),
        asked_before + 1,
        "{url}: a person is asked"
    );
    assert_eq!(
        t.deliver_all(control(5, 1)).await,
        0,
        "{url}: nothing before"
    );
    outreach::approval::decide(&t.app, long, Decision::Approve, "maria", control(5, 5))
        .await
        .unwrap();
    assert_eq!(t.deliver_all(control(5, 5)).await, 2, "{url}");
}

backend_test!(status_and_runs_show_say_why_messages_wait);
async fn status_and_runs_show_say_why_messages_wait(Db { url, .. }: Db) {
    // Quiet hours from an hour ago to two hours ahead, in Berlin time.
    let berlin = Utc::now().with_timezone(&chrono_tz::Europe::Berlin);
    let clock = |t: chrono::DateTime<chrono_tz::Tz>| t.format("%H:%M").to_string();
    let (from, until) = (
        clock(berlin - chrono::Duration::hours(1)),
        clock(berlin + chrono::Duration::hours(2)),
    );
    let s = setup(&url, 0, "");
    let env = &s.env;
    env.write(
        "conf.d/20-quiet.toml",
        &format!("[limits]\nquiet_hours = \"{from}-{until}\"\n"),
    );
    import(
        env,
        "email,name,consent,timezone\n\
         a@example.de,A,yes,\nb@example.de,B,yes,\n\
         ny@example.de,NY,yes,America/New_York\n",
    );
    let _daemon = Daemon::start(env, "daemon", &[]);
    let run = start(env, "news");
    // Six hours behind, New York is not in its quiet hours: that one goes.
    wait_for("New York's email", Duration::from_secs(20), || {
        s.received.count_to("ny@example.de") == 1
    });
    let why = format!("2 planned: quiet hours in Europe/Berlin until {until}");
    let status = ok(env, &["status"]);
    assert!(
        status.contains(&format!("run {run} (news): {why}")),
        "{url}: {status}"
    );
    assert_eq!(show(env, run)["waiting"], serde_json::json!([why]));
    let plain = ok(env, &["runs", "show", &run.to_string()]);
    assert!(plain.contains(&format!("Waiting:\n  {why}")), "{plain}");
}

// ------------------------------------------------------------------ stopping

backend_test!(stopping_a_run_mid_send_under_a_rate_limit_suppresses_the_rest_and_records_who);
async fn stopping_a_run_mid_send_under_a_rate_limit_suppresses_the_rest_and_records_who(
    Db { url, .. }: Db,
) {
    // 10 a minute: the first 10 go at once, the next 10 are claimed and
    // wait a minute for their slots, the last 10 wait in the queue.
    let s = setup(&url, 10, "connections = 1\n");
    let env = &s.env;
    customers(env, 30);
    import(
        env,
        "email,name,consent\nohne@example.de,Ohne Zustimmung,no\n",
    );
    let _daemon = Daemon::start(env, "daemon", &[]);
    let run = start(env, "news");
    wait_for("the first minute's share", Duration::from_secs(30), || {
        s.to_customers().len() == 10
    });
    wait_for("the next batch claimed", Duration::from_secs(30), || {
        count(&show(env, run), "sending", None) == 10
    });
    let said = ok(
        env,
        &["runs", "stop", &run.to_string(), "--note", "falscher Text"],
    );
    assert!(
        said.contains(&format!(
            "run {run} of news stopped (was sending): 10 planned message(s) suppressed (\"stopped\")"
        )),
        "{said}"
    );
    // The claimed batch does not sit out its minute's wait.
    wait_for("every message settled", Duration::from_secs(20), || {
        let shown = show(env, run);
        count(&shown, "planned", None) + count(&shown, "sending", None) == 0
    });
    assert_eq!(s.to_customers().len(), 10, "{url}: nothing after the stop");
    let shown = show(env, run);
    assert_eq!(count(&shown, "sent", None), 10, "{url}: each recorded");
    assert_eq!(count(&shown, "suppressed", Some("stopped")), 20, "{url}");
    assert_eq!(count(&shown, "suppressed", Some("no consent")), 1);
    assert_eq!(shown["run"]["state"], "stopped");
    assert_eq!(shown["run"]["stopped_by"], "tester (command line)");
    assert!(!shown["run"]["stopped_at"].is_null());
    assert_eq!(shown["recipients"].as_array().unwrap().len(), 31);
    let sent = 10;

    // Who got what.
    let plain = ok(env, &["runs", "show", &run.to_string()]);
    assert!(
        plain.contains("stopped by tester (command line) at ")
            && plain.contains("Europe/Berlin: falscher Text"),
        "{plain}"
    );
    assert!(
        plain.contains("Recipients (31; times in Europe/Berlin):"),
        "{plain}"
    );
    let line = plain
        .lines()
        .find(|l| l.contains("<kunde0@example.de>"))
        .unwrap();
    assert!(line.contains(" sent "), "{line}");
    let ohne = plain
        .lines()
        .find(|l| l.contains("ohne@example.de"))
        .unwrap();
    assert!(
        ohne.contains("suppressed") && ohne.ends_with("no consent"),
        "{ohne}"
    );
    let only = ok(
        env,
        &[
            "runs",
            "show",
            &run.to_string(),
            "--state",
            "suppressed",
            "--reason",
            "stop",
        ],
    );
    assert_eq!(
        only.lines()
            .filter(|l| l.trim_start().starts_with("customer "))
            .count(),
        30 - sent,
        "{only}"
    );
    assert!(
        only.lines()
            .all(|l| !l.contains("no consent") || !l.starts_with("  customer"))
    );

    refused(
        env,
        &["runs", "stop", &run.to_string()],
        "is stopped already; nothing to stop",
    );
    refused(env, &["runs", "stop", "9999"], "no run 9999");
    refused(env, &["runs", "show", "9999"], "no run 9999");
    let out = env
        .command(&["runs", "show", "1", "--state", "gone"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out)
            .contains("\"gone\" is not a message state; use one of: planned, sending, sent")
    );
}

// ------------------------------------------------------------------ staff

backend_test!(absences_from_the_command_line_move_calls_at_once_and_an_agreed_callback_stays);
async fn absences_from_the_command_line_move_calls_at_once_and_an_agreed_callback_stays(
    Db { url, .. }: Db,
) {
    let s = setup(&url, 0, "");
    let env = &s.env;
    import(
        env,
        "external_id,email,name,phone,consent,phone_consent,owner\n\
         A,anna@example.de,Anna,+49 221 555 100,yes,yes,lena\n\
         B,ben@example.de,Ben,+49 221 555 101,yes,yes,lena\n\
         C,clara@example.de,Clara,+49 221 555 102,yes,no,lena\n",
    );
    let _daemon = Daemon::start(env, "daemon", &[]);
    let run = start(env, "anrufe");
    wait_for_state(env, run, "done");
    let shown = ok(env, &["runs", "show", &run.to_string()]);
    assert!(shown.contains("planned as calls: 2"), "{shown}");
    assert!(shown.contains("Left out: 1"), "{shown}");
    assert!(shown.contains("no phone consent (consumer)"), "{shown}");

    // The digest: once a day, by hand or not, unless asked again.
    let first = ok(env, &["tasks", "digest", "--staff", "lena"]);
    assert!(first.contains("digest sent to lena"), "{first}");
    assert_eq!(s.received.count_to(LENA), 1);
    let second = ok(env, &["tasks", "digest", "--staff", "lena"]);
    assert!(
        second.contains("not sent again (--again sends it anyway)"),
        "{second}"
    );
    assert_eq!(s.received.count_to(LENA), 1, "{url}: not twice");
    ok(env, &["tasks", "digest", "--staff", "lena", "--again"]);
    assert_eq!(s.received.count_to(LENA), 2, "{url}: --again");

    // Anna asks to be called back on a weekday in two weeks.
    let tasks = |staff: &str| {
        json(
            env,
            &["tasks", "list", "--staff", staff, "--open", "--json"],
        )
    };
    let anna = tasks("lena")
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["customer"] == "Anna")
        .unwrap()["task"]["id"]
        .to_string();
    let callback = (14..21)
        .map(|d| today() + Days::new(d))
        .find(|d| d.weekday() == Weekday::Wed)
        .unwrap();
    ok(
        env,
        &[
            "tasks",
            "done",
            &anna,
            "--outcome",
            "callback",
            "--callback-on",
            &callback.to_string(),
        ],
    );

    refused(
        env,
        &[
            "staff",
            "away",
            "nobody",
            "--from",
            "2030-01-01",
            "--to",
            "2030-01-02",
        ],
        "no staff member \"nobody\"",
    );
    refused(
        env,
        &[
            "staff",
            "away",
            "lena",
            "--from",
            "2020-01-01",
            "--to",
            "2020-01-02",
        ],
        "--to 2020-01-02 is in the past",
    );
    refused(env, &["staff", "back", "lena"], "lena is not away today");
    let from = today().format("%d.%m.%Y").to_string();
    let to = (today() + Days::new(2)).to_string();
    ok(
        env,
        &[
            "staff", "away", "lena", "--from", &from, "--to", &to, "--note", "Urlaub",
        ],
    );
    let said_at = Instant::now();
    // What falls inside the absence leaves her list; the callback agreed
    // for after it stays hers.
    wait_for("lena's calls moved", Duration::from_secs(20), || {
        tasks("lena")
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["customer"] == "Anna")
    });
    let moved_in = said_at.elapsed();
    assert!(
        moved_in < Duration::from_secs(1),
        "{url}: moved after {moved_in:?}"
    );
    let all = json(env, &["tasks", "list", "--open", "--json"]);
    let anna_now = all
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["customer"] == "Anna")
        .unwrap();
    assert_eq!(anna_now["task"]["staff_id"], "lena", "{url}: hers");
    assert_eq!(
        anna_now["task"]["due_on"],
        callback.to_string(),
        "{url}: the agreed day stays"
    );

    let listed = json(env, &["staff", "list", "--json"]);
    let lena = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "lena")
        .unwrap();
    assert_eq!(lena["away_today"], true);
    assert_eq!(lena["absences"][0]["note"], "Urlaub");
    assert_eq!(lena["absences"][0]["source"]["by"], "tester (command line)");
    let status = ok(env, &["status"]);
    let away = status
        .lines()
        .skip_while(|l| *l != "Away today:")
        .nth(1)
        .unwrap_or("");
    assert!(away.contains("lena") && away.contains("Urlaub"), "{status}");

    assert!(ok(env, &["staff", "back", "lena"]).contains("lena is back from today"));
    refused(env, &["staff", "back", "lena"], "lena is not away today");
    let listed = json(env, &["staff", "list", "--json"]);
    assert_eq!(listed[2]["away_today"], false, "{listed}");
}

backend_test!(a_callback_agreed_for_after_an_absence_stays_with_its_caller_on_its_day);
async fn a_callback_agreed_for_after_an_absence_stays_with_its_caller_on_its_day(
    Db { url, .. }: Db,
) {
    // Lena is away the week after the call, written in the config; the
    // callback she agreed is for after her return.
    let extra = RULES.replace(
        "digest_at = \"23:59\"",
        "digest_at = \"23:59\"\nabsences = [{ from = 2026-11-24, to = 2026-11-27 }]",
    );
    let t = TestApp::new(&url, &extra).await;
    t.import(
        "external_id,email,name,phone,consent,phone_consent,owner\n\
         A,anna@example.de,Anna,+49 221 555 100,yes,yes,lena\n",
    )
    .await;
    let monday = berlin(2026, 11, 23, 9, 0);
    start_now(&t.app, "anrufe", monday).await.unwrap();
    t.tick(monday).await;
    let call = t
        .app
        .store
        .tasks(Some("lena"), true)
        .await
        .unwrap()
        .remove(0);
    let thursday = NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
    outreach::tasks::record_outcome(&t.app, call.id, "callback", None, Some(thursday), monday)
        .await
        .unwrap();
    t.tick(berlin(2026, 11, 24, 8, 0)).await;
    let open = t.app.store.tasks(None, true).await.unwrap();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0].staff_id, "lena", "{url}: hers, not moved");
    assert_eq!(open[0].due_on, thursday, "{url}: the callback day stays");
}

backend_test!(a_digest_sent_at_digest_at_is_not_sent_again_by_hand);
async fn a_digest_sent_at_digest_at_is_not_sent_again_by_hand(Db { url, .. }: Db) {
    let t = TestApp::new(&url, RULES).await;
    t.import(
        "external_id,email,name,phone,consent,phone_consent,owner\n\
         A,anna@example.de,Anna,+49 221 555 100,yes,yes,maria\n",
    )
    .await;
    let monday = berlin(2026, 11, 23, 7, 0);
    start_now(&t.app, "anrufe", monday).await.unwrap();
    t.tick(monday).await;
    let digest_at = berlin(2026, 11, 23, 8, 30);
    t.tick(digest_at).await;
    let digests = || {
        t.mails_to(MARIA)
            .iter()
            .filter(|m| m.contains("Subject: Ihre Anrufe"))
            .count()
    };
    assert_eq!(digests(), 1, "{url}: sent at digest_at");
    let maria = t.app.settings().staff[0].clone();
    use outreach::tasks::digest::{SentNow, send_now};
    let later = berlin(2026, 11, 23, 11, 0);
    assert_eq!(
        send_now(&t.app, &maria, false, later).await.unwrap(),
        SentNow::AlreadySent(digest_at)
    );
    assert_eq!(digests(), 1, "{url}: not twice");
}

// --------------------------------------------- approval, and taking effect at once

backend_test!(commands_reach_the_daemon_within_a_second_and_unchanged_text_needs_force);
async fn commands_reach_the_daemon_within_a_second_and_unchanged_text_needs_force(
    Db { url, .. }: Db,
) {
    let s = setup(&url, 0, "");
    let env = &s.env;
    customers(env, 3);
    let _daemon = Daemon::start(env, "daemon", &[]);

    let before = Instant::now();
    let news = start(env, "news");
    let started = Instant::now();
    wait_for("news sent", Duration::from_secs(20), || {
        s.to_customers().len() == 3
    });
    let after = s
        .first_after(before)
        .unwrap()
        .saturating_sub(started - before);
    assert!(
        after < Duration::from_secs(1),
        "{url}: `runs start` took {after:?}\n{}",
        _daemon.log()
    );
    wait_for_state(env, news, "done");
    refused(
        env,
        &["runs", "stop", &news.to_string()],
        &format!("run {news} is done already; nothing to stop"),
    );

    // Approved three times: each first email within a second (the
    // workers used to notice only on their next 2-second look).
    for round in 1..=3 {
        let run = start(env, "freigabe");
        wait_for_state(env, run, "awaiting_approval");
        ok(env, &["runs", "approve", &run.to_string()]);
        let approved = Instant::now();
        wait_for("sent", Duration::from_secs(20), || {
            s.to_customers().len() == 3 + 3 * round
        });
        let after = s.first_after(approved).unwrap_or_default();
        assert!(
            after < Duration::from_secs(1),
            "{url}: `runs approve` took {after:?}"
        );
    }

    // Unchanged text: held, and approved only knowingly.
    let first = start(env, "frisch");
    wait_for_state(env, first, "done");
    let again = start(env, "frisch");
    wait_for_state(env, again, "awaiting_approval");
    let id = again.to_string();
    refused(
        env,
        &["runs", "approve", &id],
        &format!(
            "run {again} is held because its text is the same as in run {first}; update the template, or send it unchanged with `outreach runs approve {again} --force`"
        ),
    );
    assert_eq!(
        run_state(env, again),
        "awaiting_approval",
        "nothing changed"
    );
    assert!(ok(env, &["runs", "approve", &id, "--force"]).contains("sending"));
    wait_for_state(env, again, "done");
    let shown = show(env, again);
    assert_eq!(
        shown["run"]["detail"],
        format!("approved by tester (command line) with the text unchanged since run {first}")
    );
    assert_eq!(shown["run"]["decided_by"], "tester (command line)");
    assert_eq!(count(&shown, "sent", None), 3);
}

// ------------------------------------------------------------------ vouchers

backend_test!(a_birthday_voucher_goes_once_per_birthday_whether_started_by_hand_or_by_the_schedule);
async fn a_birthday_voucher_goes_once_per_birthday_whether_started_by_hand_or_by_the_schedule(
    Db { url, .. }: Db,
) {
    let extra = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[voucher_pool]]
id = "geschenk"
value = "Ein Stück Kuchen"
pattern = "GEB-XXXXXX"
per_customer = 1

[[campaign]]
id = "geburtstag"
kind = "voucher"
trigger = { anniversary_of = "birthday", at = "09:00" }
template = "voucher"
voucher_pool = "geschenk"
"#;
    let t = TestApp::new(&url, extra).await;
    t.import("email,name,consent,birthday\nanna@example.de,Anna,yes,1980-03-14\n")
        .await;
    t.tick(berlin(2027, 3, 13, 12, 0)).await;
    // 2027: the schedule first, then a start by hand the same day.
    t.tick(berlin(2027, 3, 14, 9, 0)).await;
    let by_hand = start_now(&t.app, "geburtstag", berlin(2027, 3, 14, 11, 0))
        .await
        .unwrap();
    t.tick(berlin(2027, 3, 14, 11, 0)).await;
    t.deliver_all(berlin(2027, 3, 14, 11, 1)).await;
    let scheduled = t.runs_of("geburtstag").await[0].id;
    assert_eq!(t.count(scheduled, "sent").await, 1, "{url}");
    assert_eq!(
        t.counts(by_hand).await,
        [(
            "suppressed".to_string(),
            Some(format!(
                "already received a code for this occasion (run {scheduled})"
            )),
            1
        )],
        "{url}"
    );
    // 2028: by hand first, then the schedule; a new code, one again.
    t.tick(berlin(2028, 3, 13, 12, 0)).await;
    let early = start_now(&t.app, "geburtstag", berlin(2028, 3, 14, 8, 0))
        .await
        .unwrap();
    t.tick(berlin(2028, 3, 14, 8, 0)).await;
    t.tick(berlin(2028, 3, 14, 9, 0)).await;
    t.deliver_all(berlin(2028, 3, 14, 9, 1)).await;
    assert_eq!(
        t.count(early, "sent").await,
        1,
        "{url}: a new year, a new code"
    );
    let later = t.runs_of("geburtstag").await.last().unwrap().id;
    assert_ne!(later, early);
    assert_eq!(t.count(later, "suppressed").await, 1, "{url}");
    let mails = t.mails_to("anna@example.de");
    assert_eq!(mails.len(), 2, "{url}: one a year");
    let t = &t;
    let anna = t
        .app
        .store
        .find_customer("anna@example.de")
        .await
        .unwrap()
        .unwrap()
        .id;
    let code = |run| async move {
        t.app
            .store
            .message_voucher(run, anna)
            .await
            .unwrap()
            .unwrap()
    };
    let (first, second) = (code(scheduled).await, code(early).await);
    assert_ne!(first, second);
    for code in [first, second] {
        assert!(mails.iter().any(|m| m.contains(&code)), "{code}");
    }
}

// ------------------------------------------------------------------ times

backend_test!(times_shown_to_people_are_business_time_with_the_zone_named);
async fn times_shown_to_people_are_business_time_with_the_zone_named(Db { url, .. }: Db) {
    let env = Env::new(&url, RULES);
    customers(&env, 1);
    start(&env, "news");
    let shown = json(&env, &["customers", "show", "kunde0@example.de", "--json"]);
    let at: chrono::DateTime<Utc> =
        serde_json::from_value(shown["history"][0]["at"].clone()).unwrap();
    let berlin_time = at
        .with_timezone(&chrono_tz::Europe::Berlin)
        .format("%Y-%m-%d %H:%M")
        .to_string();
    let plain = ok(&env, &["customers", "show", "kunde0@example.de"]);
    assert!(
        plain.contains("History (times in Europe/Berlin):"),
        "{plain}"
    );
    assert!(plain.contains(&format!("  {berlin_time}  ")), "{plain}");
    let runs = ok(&env, &["runs", "list"]);
    assert!(runs.contains(" Europe/Berlin (manual)"), "{runs}");
}
