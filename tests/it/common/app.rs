//! A library-level test harness: the same [`App`] the daemon builds, on a
//! config written to a temp folder, driven step by step with explicit times
//! (no sleeping, no wall clock).

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Tz;
use http_body_util::BodyExt;
use outreach::app::App;
use outreach::config::Config;
use outreach::deliver::{Delivery, deliver_batch};
use outreach::import::{ImportOptions, ImportReport, import_customers};
use outreach::mailer::MailerSettings;
use outreach::store::Store;
use tempfile::TempDir;

/// An HTTP response's body as text.
pub async fn body_text(response: axum::response::Response) -> String {
    String::from_utf8(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap()
}

/// A GET request for the router.
pub fn get(path: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::get(path)
        .body(axum::body::Body::empty())
        .unwrap()
}

/// A form POST for the router.
pub fn post(path: &str, form: &str) -> axum::http::Request<axum::body::Body> {
    axum::http::Request::post(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(axum::body::Body::from(form.to_string()))
        .unwrap()
}

pub struct TestApp {
    pub app: App,
    pub delivery: Arc<Delivery>,
    pub dir: TempDir,
}

pub fn berlin(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    let tz: Tz = "Europe/Berlin".parse().unwrap();
    tz.with_ymd_and_hms(y, mo, d, h, mi, 0)
        .earliest()
        .unwrap()
        .with_timezone(&Utc)
}

/// Today (by Berlin's calendar) at `h:mi` Berlin time: for tests that run
/// on the real day but must stay before (or after) a time of day.
pub fn berlin_today(h: u32, mi: u32) -> DateTime<Utc> {
    let today = Utc::now().with_timezone(&chrono_tz::Europe::Berlin);
    berlin(today.year(), today.month(), today.day(), h, mi)
}

impl TestApp {
    /// `extra` is appended to the base config (campaigns, limits …).
    pub async fn new(db_url: &str, extra: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        Self::in_dir(dir, db_url, extra).await
    }

    /// Like [`TestApp::new`], plus a `conf.d/10-test.toml` fragment (e.g. `[mail]` overrides).
    pub async fn with_fragment(db_url: &str, extra: &str, fragment: &str) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("conf.d")).unwrap();
        std::fs::write(dir.path().join("conf.d/10-test.toml"), fragment).unwrap();
        Self::in_dir(dir, db_url, extra).await
    }

    pub async fn in_dir(dir: TempDir, db_url: &str, extra: &str) -> TestApp {
        let text = super::base_config(db_url, &dir.path().join("outbox")) + extra;
        Self::with_config(dir, db_url, &text).await
    }

    /// A whole config of the test's own (its staff, its business), written
    /// to `outreach.toml` in `dir`.
    pub async fn with_config(dir: TempDir, db_url: &str, text: &str) -> TestApp {
        let path = dir.path().join("outreach.toml");
        std::fs::write(&path, text).unwrap();
        let config = Config::load_with_env(&path, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        let store = Store::connect(db_url, 4).await.unwrap();
        store.migrate().await.unwrap();
        let app = App::build(config, store, "test".into()).await.unwrap();
        TestApp {
            app,
            delivery: Arc::new(Delivery::default()),
            dir,
        }
    }

    /// A second daemon (or the same after a restart) on the same database and config.
    pub async fn sibling(&self, instance: &str) -> App {
        let config = Config::load_with_env(&self.app.config.path, Vec::new()).unwrap();
        App::build(config, self.app.store.clone(), instance.into())
            .await
            .unwrap()
    }

    pub async fn import(&self, csv: &str) -> ImportReport {
        let path = self
            .dir
            .path()
            .join(format!("import-{}.csv", rand::random::<u32>()));
        std::fs::write(&path, csv).unwrap();
        let report = import_customers(
            &self.app.store,
            &path,
            ImportOptions {
                default_consent_source: "test".into(),
                ..ImportOptions::new(&self.app.config, false)
            },
        )
        .await
        .unwrap();
        assert!(report.rejected.is_empty(), "{:?}", report.rejected);
        report
    }

    /// The HTTP router of a daemon on this database, sharing our delivery state.
    pub async fn router(&self) -> axum::Router {
        let shared = outreach::app::Shared::new(self.sibling("http").await);
        outreach::http::router(outreach::http::AppState::new(shared, self.delivery.clone()))
    }

    pub async fn tick(&self, now: DateTime<Utc>) {
        outreach::daemon::tick(&self.app, &self.delivery, now)
            .await
            .unwrap();
    }

    /// Delivers batches until nothing is due at `now`; returns how many were handled.
    pub async fn deliver_all(&self, now: DateTime<Utc>) -> usize {
        let mut mailer = MailerSettings::from_config(&self.app.config)
            .open()
            .unwrap();
        let mut total = 0;
        loop {
            let n = deliver_batch(&self.app, &self.delivery, &mut mailer, now)
                .await
                .unwrap();
            if n == 0 {
                return total;
            }
            total += n;
        }
    }

    pub fn outbox(&self) -> PathBuf {
        self.dir.path().join("outbox")
    }

    /// The `.eml` files written so far, as text.
    pub fn outbox_mails(&self) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.outbox()) else {
            return Vec::new();
        };
        entries
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect()
    }

    /// Mails to one address (customer emails only, not staff mails).
    pub fn mails_to(&self, address: &str) -> Vec<String> {
        self.outbox_mails()
            .into_iter()
            .filter(|m| m.contains(&format!("To: {address}")))
            .collect()
    }

    /// Message counts by state for a run, with suppression reasons.
    pub async fn counts(&self, run: i64) -> Vec<(String, Option<String>, i64)> {
        self.app
            .store
            .run_counts(&[run])
            .await
            .unwrap()
            .into_iter()
            .map(|c| (c.state.to_string(), c.reason, c.n))
            .collect()
    }

    pub async fn count(&self, run: i64, state: &str) -> i64 {
        self.counts(run)
            .await
            .iter()
            .filter(|c| c.0 == state)
            .map(|c| c.2)
            .sum()
    }

    pub async fn runs_of(&self, rule: &str) -> Vec<outreach::store::Run> {
        let mut runs: Vec<_> = self
            .app
            .store
            .recent_runs(10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.rule_id == rule)
            .collect();
        runs.sort_by_key(|r| r.id);
        runs
    }
}
