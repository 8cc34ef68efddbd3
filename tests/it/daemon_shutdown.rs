//! `daemon::run` takes its shutdown from the caller: when that future
//! resolves, the daemon stops everything it started and returns, no signal
//! involved (`outreach run` passes SIGTERM and Ctrl-C).

use std::time::Duration;

use crate::common::{Db, Env, backend_test, free_port, http_get, wait_for};

backend_test!(
    the_daemon_stops_cleanly_when_its_caller_says_so,
    flavor = "multi_thread"
);
async fn the_daemon_stops_cleanly_when_its_caller_says_so(Db { url, .. }: Db) {
    {
        let home = tempfile::tempdir().unwrap();
        let port = free_port();
        let env = Env::in_dir(home, &url, "");
        // The journal in the test's folder, not under the working directory.
        let config = outreach::config::Config::load_with_env(
            &env.config,
            [
                (
                    "OUTREACH__HTTP__LISTEN".to_string(),
                    format!("\"127.0.0.1:{port}\""),
                ),
                (
                    "OUTREACH__MAIL__JOURNAL_DIR".to_string(),
                    format!("\"{}\"", env.dir.path().join("journal").display()),
                ),
            ],
        )
        .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let daemon = tokio::spawn(outreach::daemon::run(config, async {
            let _ = stopped.await;
        }));
        tokio::task::spawn_blocking(move || {
            wait_for("/healthz answers 200", Duration::from_secs(30), || {
                http_get(port, "/healthz").is_some_and(|(code, _)| code == 200)
            })
        })
        .await
        .unwrap();
        assert!(!daemon.is_finished(), "{url}: the daemon ended on its own");

        stop.send(()).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(30), daemon)
            .await
            .expect("the daemon stopped within 30 s")
            .expect("the daemon did not panic");
        result.unwrap_or_else(|e| panic!("{url}: {e:#}"));
        assert!(
            http_get(port, "/healthz").is_none(),
            "{url}: the HTTP server is closed"
        );
    }
}
