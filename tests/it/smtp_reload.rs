//! A reload reaches the running delivery workers: a rotated SMTP password
//! file or a new `mail.smtp.timeout_secs` makes them open new sessions with
//! the new values (SIGHUP to a real daemon, a TLS relay with AUTH).

use std::time::Duration;

use crate::common::daemon::Daemon;
use crate::common::smtp::{RelayTls, relay_config, start_relay};
use crate::common::{Env, stderr, stdout, wait_for};
use mailin_embedded::AuthMechanism;

const NEWS: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 1 1 *"
template = "status_update"
"#;

const USER: &str = "outreach";
const OLD_PASSWORD: &str = "Winter 2025 Linde!";
const NEW_PASSWORD: &str = "Sommer 2026 Linde!";

fn start_run(env: &Env) {
    let out = env.run(&["runs", "start", "news"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_rotated_password_and_a_new_timeout_reach_the_workers_on_reload() {
    // The relay already takes only the new password.
    let relay = start_relay(RelayTls::Starttls, AuthMechanism::Plain, USER, NEW_PASSWORD);
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::in_dir(dir, &url, NEWS);
    let password_file = env.write("smtp-password", &format!("{OLD_PASSWORD}\n"));
    let ca_file = env.write("relay-ca.pem", &relay.ca_pem);
    let mail = relay_config(&relay, RelayTls::Starttls, USER, &password_file)
        + &format!("ca_file = \"{}\"\n", ca_file.display())
        // One worker: one session, so the logins can be counted.
        + "connections = 1\n";
    env.write("conf.d/10-relay.toml", &mail);
    env.write(
        "customers.csv",
        "email,consent\neins@example.de,yes\nzwei@example.de,yes\n",
    );
    let out = env.run(&["import", "customers", "customers.csv"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let daemon = Daemon::start(&env, "daemon", &[]);
    start_run(&env);
    wait_for(
        "the messages wait for a login",
        Duration::from_secs(30),
        || stdout(&env.run(&["status"])).contains("authentication failed"),
    );
    assert_eq!(relay.received.total(), 0);

    // The password is rotated in its file; the config text is unchanged.
    env.write("smtp-password", &format!("{NEW_PASSWORD}\n"));
    daemon.signal("-HUP");
    // The failed session put them off for its backoff (30 s): they go out at
    // their next try, with the new password.
    wait_for("both messages are sent", Duration::from_secs(90), || {
        relay.received.total() == 2
    });
    let logins = relay.logins.lock().unwrap().clone();
    assert!(
        logins.iter().any(|l| !l.1) && logins.last() == Some(&("PLAIN", true)),
        "refused with the old password, taken with the new one: {logins:?}\n{}",
        daemon.log()
    );

    // Only the timeout changes: the session check and the worker's next
    // session each log in again with it, instead of the worker going on in
    // the session opened with the old timeout.
    env.write(
        "conf.d/10-relay.toml",
        &mail.replace("timeout_secs = 5", "timeout_secs = 7"),
    );
    let before = relay.logins.lock().unwrap().len();
    daemon.signal("-HUP");
    wait_for("the reload is taken", Duration::from_secs(30), || {
        daemon.log().matches("configuration reloaded").count() == 2
    });
    start_run(&env);
    wait_for("the next run is sent", Duration::from_secs(30), || {
        relay.received.total() == 4
    });
    let logins = relay.logins.lock().unwrap().clone();
    assert_eq!(
        logins[before..],
        [("PLAIN", true), ("PLAIN", true)],
        "{}",
        daemon.log()
    );
}
