//! `outreach run` starts on a fresh database, serves /healthz on loopback
//! and exits cleanly on SIGTERM.

use crate::common;

use common::daemon::Daemon;
use common::{Db, Env, backend_test};

backend_test!(run_migrates_serves_healthz_and_stops_on_sigterm);
async fn run_migrates_serves_healthz_and_stops_on_sigterm(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let mut daemon = Daemon::start(&env, "daemon", &[]);
    let (_, health) = daemon.healthz();
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("database: reachable"), "{health}");
    assert!(health.contains("mail: writing files to"), "{health}");
    daemon.stop();
    // It migrated: the CLI sees the schema without migrating again.
    let out = env.run(&["migrate"]);
    assert!(out.status.success());
}
