//! A database written by an earlier release migrates forward with nothing
//! lost. The fixtures under `tests/fixtures/migrations/` are SQL dumps that
//! `make.sh` there recorded by driving that release's binary through a day
//! of work; each is loaded into a fresh database, migrated by the current
//! binary, and read back through the command line.

use std::collections::BTreeMap;

use crate::common::daemon::json;
use crate::common::{Db, Env, backend_test, repo_path, stdout};
use serde_json::{Value, json};
use sqlx::Connection;

/// The releases recorded so far; each has `NAME.sqlite.sql` and
/// `NAME.postgres.sql`.
const RELEASES: &[&str] = &["v0.1.0"];

fn fixture(name: &str) -> String {
    let path = repo_path(&format!("tests/fixtures/migrations/{name}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Loads a release's dump for `db`'s backend into `db`, and returns the
/// number of rows in each table.
async fn load(release: &str, db: &Db) -> BTreeMap<String, i64> {
    if db.url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(&format!("{}?mode=rwc", db.url))
            .await
            .unwrap();
        sqlx::raw_sql(&fixture(&format!("{release}.sqlite.sql")))
            .execute(&mut conn)
            .await
            .unwrap();
        let counts = sqlite_counts(&mut conn).await;
        conn.close().await.unwrap();
        counts
    } else {
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql(&fixture(&format!("{release}.postgres.sql")))
            .execute(&mut conn)
            .await
            .unwrap();
        let counts = postgres_counts(&mut conn).await;
        conn.close().await.unwrap();
        counts
    }
}

async fn sqlite_counts(conn: &mut sqlx::SqliteConnection) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{t}\""))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        counts.insert(t, n);
    }
    counts
}

async fn postgres_counts(conn: &mut sqlx::PgConnection) -> BTreeMap<String, i64> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' \
         AND tablename <> '_sqlx_migrations'",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    let mut counts = BTreeMap::new();
    for t in tables {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM public.\"{t}\""))
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        counts.insert(t, n);
    }
    counts
}

async fn counts(url: &str) -> BTreeMap<String, i64> {
    if url.starts_with("sqlite:") {
        let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlite_counts(&mut conn).await
    } else {
        let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
        postgres_counts(&mut conn).await
    }
}

fn config() -> String {
    format!(
        "[limits]\nfrequency_cap = \"\"\nquiet_hours = \"\"\n\n{}",
        fixture("rules.toml")
    )
}

backend_test!(databases_of_earlier_releases_migrate_forward_with_nothing_lost);
async fn databases_of_earlier_releases_migrate_forward_with_nothing_lost(db: Db) {
    for release in RELEASES {
        // Each dump creates its tables: a database of its own per release.
        let db = db.another().await;
        let before = load(release, &db).await;
        let url = db.url.clone();
        {
            let env = Env::new(&url, &config());
            let out = env.run(&["migrate"]);
            assert!(out.status.success(), "{release} on {url}: {out:?}");

            // Every table keeps every row, and every reference holds.
            let after = counts(&url).await;
            if url.starts_with("sqlite:") {
                let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
                let broken: Vec<(String, i64, String, i64)> =
                    sqlx::query_as("PRAGMA foreign_key_check")
                        .fetch_all(&mut conn)
                        .await
                        .unwrap();
                assert!(broken.is_empty(), "{release} on {url}: {broken:?}");
            }
            for (table, n) in &before {
                assert_eq!(
                    after.get(table),
                    Some(n),
                    "{release} on {url}: rows of {table}"
                );
            }

            // Runs keep their rule, kind, state and their messages' states.
            let runs: Vec<Value> = json(&env, &["runs", "list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    json!([
                        r["run"]["id"],
                        r["run"]["rule_id"],
                        r["run"]["rule_kind"],
                        r["run"]["state"],
                        r["messages"],
                        r["suppressed"]
                    ])
                })
                .collect();
            assert_eq!(
                runs,
                vec![
                    json!([5, "news", "campaign", "sending", {"planned": 8}, {}]),
                    json!([4, "news", "campaign", "stopped", {"suppressed": 8}, {"stopped": 8}]),
                    json!([3, "frisch", "campaign", "awaiting_approval", {"planned": 9}, {}]),
                    json!([2, "anrufen", "checkin", "done", {}, {}]),
                    json!([1, "news", "campaign", "done", {"sent": 9}, {}]),
                ],
                "{release} on {url}"
            );

            // Call tasks keep their state and outcome; the agreed callback
            // keeps its day and its caller.
            let tasks: Vec<Value> = json(&env, &["tasks", "list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .map(|t| &t["task"])
                .map(|t| {
                    json!([
                        t["id"],
                        t["kind"],
                        t["state"],
                        t["outcome"],
                        t["customer_id"]
                    ])
                })
                .collect();
            for expected in [
                json!([1, "call", "done", "reached", 1]),
                json!([2, "call", "done", "callback", 4]),
                json!([3, "call", "expired", "not_reached", 3]),
                json!([4, "call", "open", null, 9]),
                json!([5, "call", "open", null, 6]),
                json!([6, "callback", "open", null, 4]),
            ] {
                assert!(
                    tasks.contains(&expected),
                    "{release} on {url}: {expected} not in {tasks:?}"
                );
            }
            let callback = json(&env, &["tasks", "list", "--json"])
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["task"].clone())
                .find(|t| t["kind"] == "callback")
                .unwrap();
            assert_eq!(callback["staff_id"], "maria", "{release} on {url}");
            assert_eq!(
                callback["agreed_on"], callback["due_on"],
                "{release} on {url}"
            );

            // The call list: everyone taken off it onto a list.
            let status = json(&env, &["status", "--json"]);
            assert_eq!(status["call_list"]["waiting"], 0, "{release} on {url}");
            assert_eq!(status["tasks"]["maria"]["open"], 2, "{release} on {url}");
            assert_eq!(status["tasks"]["jonas"]["open"], 1, "{release} on {url}");

            // Objections stay, and the forgotten customer stays forgotten:
            // importing the same list again does not bring them back.
            let ben = json(
                &env,
                &["customers", "show", "ben.kraus@example.de", "--json"],
            );
            assert!(
                !ben["customer"]["unsubscribed_at"].is_null(),
                "{release} on {url}"
            );
            let julia = json(
                &env,
                &["customers", "show", "julia.roth@example.de", "--json"],
            );
            assert_eq!(julia["customer"]["do_not_call"], true, "{release} on {url}");
            let csv = repo_path("config/customers.example.csv");
            let out = env.run(&["import", "customers", csv.to_str().unwrap()]);
            assert!(out.status.success(), "{release} on {url}: {out:?}");
            assert!(
                stdout(&out).contains("skipped as forgotten 1"),
                "{release} on {url}: {}",
                stdout(&out)
            );
            let out = env.run(&["customers", "show", "clara.schmidt@example.de"]);
            assert!(
                !out.status.success(),
                "{release} on {url}: forgotten came back"
            );
            let ben = json(
                &env,
                &["customers", "show", "ben.kraus@example.de", "--json"],
            );
            assert!(
                !ben["customer"]["unsubscribed_at"].is_null(),
                "{release} on {url}"
            );
        }
    }
}
