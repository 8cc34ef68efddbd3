//! Shared test helpers: a config in a temp folder, one database per test on
//! each backend (SQLite file; PostgreSQL when `TEST_POSTGRES_URL` is set)
//! with `backend_test!`, and the real `outreach` binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod app;
pub mod daemon;
pub mod dkim;
pub mod dovecot;
pub mod mail;
pub mod smtp;

pub const BIN: &str = env!("CARGO_BIN_EXE_outreach");

/// One test's database on one backend, and the temp folder the test works
/// in (the SQLite file lives there too).
pub struct Db {
    pub dir: TempDir,
    pub url: String,
}

impl Db {
    /// A fresh SQLite file.
    pub fn sqlite() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("outreach.db").display());
        Db { dir, url }
    }

    /// A fresh PostgreSQL database on the server of `TEST_POSTGRES_URL`, or
    /// `None` when it is not set.
    pub async fn postgres() -> Option<Db> {
        Some(Db {
            dir: tempfile::tempdir().unwrap(),
            url: fresh_postgres(&postgres_server()?).await,
        })
    }

    /// One more fresh database on the same backend as `self`.
    pub async fn another(&self) -> Db {
        if self.url.starts_with("sqlite:") {
            Db::sqlite()
        } else {
            Db::postgres()
                .await
                .expect("a PostgreSQL test runs with a server")
        }
    }
}

/// The PostgreSQL server of `TEST_POSTGRES_URL`, or `None` when it is not
/// set. The note then goes straight to stderr, past the test harness's
/// capture, so that a run without PostgreSQL says so instead of passing its
/// PostgreSQL tests quietly.
pub fn postgres_server() -> Option<String> {
    match std::env::var("TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => Some(base),
        _ => {
            static NOTE: std::sync::Once = std::sync::Once::new();
            NOTE.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "note: TEST_POSTGRES_URL is not set: the PostgreSQL tests (`::postgres` and the PostgreSQL-only ones) pass without running"
                );
            });
            None
        }
    }
}

/// `backend_test!(name)` above `async fn name(db: Db)` makes one test per
/// backend, `name::sqlite` and `name::postgres`, each with its own `Db`.
/// A second argument is passed to `#[tokio::test(...)]`, e.g.
/// `backend_test!(name, flavor = "multi_thread")`. A body that never gets
/// its tests is dead code, which the lints refuse.
macro_rules! backend_test {
    ($name:ident $(, $($arg:tt)+)?) => {
        mod $name {
            #[tokio::test$(($($arg)+))?]
            async fn sqlite() {
                super::$name($crate::common::Db::sqlite()).await
            }

            #[tokio::test$(($($arg)+))?]
            async fn postgres() {
                if let Some(db) = $crate::common::Db::postgres().await {
                    super::$name(db).await
                }
            }
        }
    };
}
pub(crate) use backend_test;

/// Creates an empty database on the server of `base` and returns its URL.
/// Its name carries this machine and this test process: the first call in a
/// process drops the databases of this machine's test processes that have
/// ended, so the shared server does not fill up with them (tests do not
/// drop their own). Other machines' databases are left alone.
pub async fn fresh_postgres(base: &str) -> String {
    use sqlx::Connection;
    static SWEPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    let host = hostname::get().unwrap_or_default();
    // FNV-1a: a short, stable tag for the host name.
    let tag = host
        .as_encoded_bytes()
        .iter()
        .copied()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        }) as u32;
    let prefix = format!("outreach_test_{tag:08x}_");
    let name = format!("{prefix}{}_{}", std::process::id(), rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(base)
        .await
        .expect("connect to TEST_POSTGRES_URL");
    if !SWEPT.swap(true, std::sync::atomic::Ordering::SeqCst) {
        let names: Vec<(String,)> =
            sqlx::query_as("SELECT datname FROM pg_database WHERE starts_with(datname, $1)")
                .bind(&prefix)
                .fetch_all(&mut conn)
                .await
                .expect("list test databases");
        for (old,) in names {
            let pid = old[prefix.len()..].split('_').next().unwrap_or_default();
            if !Path::new(&format!("/proc/{pid}")).exists() {
                // Another sweeping process may have dropped it first.
                let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {old} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
    }
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = url::Url::parse(base).expect("TEST_POSTGRES_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A minimal valid config using the shipped templates.
pub fn base_config(db_url: &str, outbox: &Path) -> String {
    format!(
        r#"
[business]
name = "Café Test"
timezone = "Europe/Berlin"
locale = "de"
from = "Café Test <hallo@cafe-test.example>"
postal_address = "Teststraße 1, 50667 Köln"
base_url = "http://127.0.0.1:8080"

[database]
url = "{db_url}"

[mail]
file_dir = "{outbox}"

[templates]
dir = "{templates}"

# The outbox files carry the real clock's time, tests tick with their own:
# tests of retention set it in a conf.d fragment.
[retention]
outbox_files = "36500d"

[[staff]]
id = "maria"
name = "Maria"
email = "maria@cafe-test.example"

[[staff]]
id = "jonas"
name = "Jonas"
email = "jonas@cafe-test.example"
manager = "maria"
"#,
        outbox = outbox.display(),
        templates = repo_path("templates").display()
    )
}

pub struct Env {
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A temp folder with `outreach.toml` = base config + `extra`.
    pub fn new(db_url: &str, extra: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        Env::in_dir(dir, db_url, extra)
    }

    pub fn in_dir(dir: TempDir, db_url: &str, extra: &str) -> Env {
        let config = dir.path().join("outreach.toml");
        let text = base_config(db_url, &dir.path().join("outbox")) + extra;
        std::fs::write(&config, text).unwrap();
        Env { dir, config }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.arg("--config").arg(&self.config).args(args);
        // As systemd's WorkingDirectory: files a daemon keeps by default
        // (the PostgreSQL send journal) stay in the test's folder.
        cmd.current_dir(self.dir.path());
        cmd.env_remove("RUST_LOG");
        for (k, _) in std::env::vars() {
            if k.starts_with("OUTREACH") {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run outreach")
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET over HTTP/1.0 to a daemon on loopback: (status code, whole response).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

/// Polls `cond` every 100 ms until it holds; fails the test after `timeout`.
pub fn wait_for(what: &str, timeout: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + timeout;
    while !cond() {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {timeout:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
