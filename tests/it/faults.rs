//! Proof under faults, with real processes: the `outreach` binary as daemons
//! (`outreach run`), the CLI for imports and counts, a real SMTP server in
//! this process (tests/it/common/smtp.rs). The delivery guarantees must hold when
//!
//! - two daemons share one PostgreSQL database and split a run;
//! - a daemon is killed with SIGKILL mid-send and started again (SQLite and
//!   PostgreSQL): every customer ends `sent` once or `unknown`, never twice,
//!   and `unknown` holds only what was on the wire (one per connection);
//! - the SMTP server is down when the daemon starts and comes back later;
//! - PostgreSQL goes away mid-send (every connection cut, new ones refused)
//!   and comes back: the daemon rides it out;
//! - the clock jumps (NTP steps back an hour, a wrong clock days ahead and
//!   corrected, a step back inside the repeated DST hour): no occurrence runs
//!   twice and catch-up follow docs/schedules.md (in process, tests/it/common/app.rs);
//! - the outbox folder of the file transport cannot be created;
//! - a daemon with a rate limit is stopped and started again, or shares the
//!   limit with a second daemon on one PostgreSQL database: never more than
//!   the limit in a minute;
//! - the file system under the SQLite database fills up (a small tmpfs) when
//!   a run is started, in the middle of planning and in the middle of
//!   sending, and is freed again: nothing is reported done that was not
//!   stored, and nobody gets a message twice.

use crate::common;

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::daemon::{Daemon, json};
use common::smtp::{self, Received};
use common::{
    Db, Env, backend_test, free_port, fresh_postgres, http_get, stderr, stdout, wait_for,
};

// ------------------------------------------------------------------ helpers

/// A campaign whose schedule never fires during a test: runs are started by hand.
const CAMPAIGN: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "news"
kind = "status_update"
schedule = "0 3 29 2 *"
template = "status_update"
"#;

fn address(i: usize) -> String {
    format!("kunde{i:06}@example.de")
}

/// Writes `n` consenting customers to a CSV and imports them with the CLI.
fn import_customers(env: &Env, n: usize) {
    let mut csv = String::from("email,consent\n");
    for i in 0..n {
        csv.push_str(&address(i));
        csv.push_str(",yes\n");
    }
    let path = env.write("customers.csv", &csv);
    let out = env.run(&["import", "customers", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "import failed: {}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("imported {n},")),
        "{}",
        stdout(&out)
    );
}

/// `outreach runs start news`; returns the run id.
fn start_run(env: &Env) -> i64 {
    let out = env.run(&["runs", "start", "news"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    text.split_whitespace()
        .nth(1)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no run id in {text:?}"))
}

/// Outbox messages by state (`outreach status --json`).
fn queue(env: &Env) -> BTreeMap<String, i64> {
    serde_json::from_value(json(env, &["status", "--json"])["queue"].clone()).unwrap()
}

/// A run's state and its messages by state (`outreach runs list --json`).
fn run_counts(env: &Env, run: i64) -> (String, BTreeMap<String, i64>) {
    let list = json(env, &["runs", "list", "--json"]);
    let entry = list
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["run"]["id"] == run)
        .unwrap_or_else(|| panic!("run {run} not listed: {list}"))
        .clone();
    (
        entry["run"]["state"].as_str().unwrap().to_string(),
        serde_json::from_value(entry["messages"].clone()).unwrap(),
    )
}

fn count(map: &BTreeMap<String, i64>, state: &str) -> i64 {
    map.get(state).copied().unwrap_or(0)
}

/// Polls `status --json` until `total` messages exist and none is planned or sending.
fn wait_drained(env: &Env, total: i64, timeout: Duration, what: &str) -> BTreeMap<String, i64> {
    let deadline = Instant::now() + timeout;
    loop {
        let q = queue(env);
        if q.values().sum::<i64>() == total && count(&q, "planned") + count(&q, "sending") == 0 {
            return q;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not drained within {timeout:?}: {q:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Environment for sending to the test SMTP server on `port` with `connections` sessions.
fn smtp_env(port: u16, connections: u32) -> Vec<(&'static str, String)> {
    vec![
        ("OUTREACH__MAIL__TRANSPORT", "smtp".into()),
        ("OUTREACH__MAIL__SMTP__HOST", "\"127.0.0.1\"".into()),
        ("OUTREACH__MAIL__SMTP__PORT", port.to_string()),
        ("OUTREACH__MAIL__SMTP__TLS", "none".into()),
        ("OUTREACH__MAIL__SMTP__TIMEOUT_SECS", "10".into()),
        ("OUTREACH__MAIL__SMTP__CONNECTIONS", connections.to_string()),
        ("OUTREACH__MAIL__RATE_PER_MINUTE", "0".into()),
        ("OUTREACH__MAIL__GIVE_UP_AFTER", "\"1h\"".into()),
    ]
}

/// Recipients the SMTP server accepted, with how often each.
fn received_per_address(received: &Received) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    for (to, _) in received.messages.lock().unwrap().iter() {
        for t in to {
            *per.entry(t.clone()).or_insert(0) += 1;
        }
    }
    per
}

fn assert_nobody_twice(per: &HashMap<String, usize>, what: &str) {
    let twice: Vec<_> = per.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: {} customers got the run more than once, e.g. {:?}",
        twice.len(),
        &twice[..twice.len().min(5)]
    );
}

/// Every customer's message state in the database: (email, state).
async fn message_states(url: &str) -> Vec<(String, String)> {
    const SQL: &str =
        "SELECT c.email, m.state FROM messages m JOIN customers c ON c.id = m.customer_id";
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        let rows = sqlx::query_as(SQL).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    }
}

/// Drops the database of `url` at once if it is PostgreSQL's: the tests
/// that call it leave thousands of rows behind.
async fn drop_if_postgres(url: &str) {
    if let Some(base) = url
        .starts_with("postgres")
        .then(common::postgres_server)
        .flatten()
    {
        drop_postgres(&base, url).await;
    }
}

async fn drop_postgres(base: &str, url: &str) {
    use sqlx::Connection;
    let name = url::Url::parse(url)
        .unwrap()
        .path()
        .trim_matches('/')
        .to_string();
    if let Ok(mut conn) = sqlx::PgConnection::connect(base).await {
        let _ = sqlx::raw_sql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await;
    }
}

/// Forwards every connection on `listener` to 127.0.0.1:`target`: lets an
/// SMTP server appear on a port chosen before it existed.
fn forward(listener: TcpListener, target: u16) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), server.try_clone().unwrap()),
                (server, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(Shutdown::Write);
                });
            }
        }
    });
}

/// The send journal's default folder: beside the SQLite file, or in the
/// daemon's working directory (the test's folder) for PostgreSQL.
fn journal_dir(env: &Env, url: &str) -> PathBuf {
    match url.strip_prefix("sqlite://") {
        Some(db) => Path::new(db).parent().unwrap().join("journal"),
        None => env.dir.path().join("data/journal"),
    }
}

fn eml_recipients(dir: &Path) -> HashMap<String, usize> {
    let mut per = HashMap::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return per;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "eml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let to = text
                .lines()
                .find_map(|l| l.strip_prefix("To: "))
                .unwrap_or_else(|| panic!("no To: in {}", path.display()))
                .trim()
                .to_string();
            *per.entry(to).or_insert(0) += 1;
        }
    }
    per
}

// -------------------------------------------------------------------- tests

/// Customers for the two-daemon test. 10,000 fits the budget: see the timings it prints.
const SCALE_OUT_CUSTOMERS: usize = 10_000;

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_postgres_database_split_a_run_and_send_each_customer_once() {
    let Some(base) = common::postgres_server() else {
        return;
    };
    let url = fresh_postgres(&base).await;
    let t0 = Instant::now();
    let env = Env::new(&url, CAMPAIGN);
    let n = SCALE_OUT_CUSTOMERS;
    import_customers(&env, n);
    let imported = t0.elapsed();
    let (smtp_port, received) = smtp::start(None);
    // The test server serves 4 sessions at a time: 2 per daemon.
    let vars = smtp_env(smtp_port, 2);
    let mut a = Daemon::start(&env, "daemon-a", &vars);
    let mut b = Daemon::start(&env, "daemon-b", &vars);
    let t1 = Instant::now();
    let run = start_run(&env);
    let q = wait_drained(&env, n as i64, Duration::from_secs(120), "two daemons");
    let sending = t1.elapsed();
    assert_eq!(count(&q, "sent"), n as i64, "{q:?}");
    let (_, messages) = run_counts(&env, run);
    assert_eq!(count(&messages, "sent"), n as i64, "{messages:?}");
    wait_for("the run is done", Duration::from_secs(15), || {
        run_counts(&env, run).0 == "done"
    });

    // Exactly one message per customer reached the server.
    let per = received_per_address(&received);
    assert_nobody_twice(&per, "two daemons");
    assert_eq!(received.total(), n, "messages received");
    for i in 0..n {
        assert_eq!(per.get(&address(i)), Some(&1), "{}", address(i));
    }
    // Both daemons did part of the work, and together exactly all of it.
    let (sent_a, sent_b) = (a.sent(), b.sent());
    eprintln!(
        "two daemons: {n} customers imported in {imported:.1?}; run sent in {sending:.1?} \
         (daemon a sent {sent_a}, daemon b sent {sent_b})"
    );
    assert_eq!(sent_a + sent_b, n as f64);
    assert!(
        sent_a > 0.0 && sent_b > 0.0,
        "one daemon did everything: a {sent_a}, b {sent_b}"
    );
    a.stop();
    b.stop();
    drop_postgres(&base, &url).await;
}

/// Customers for the kill test: enough that the kill lands mid-send.
const KILL_CUSTOMERS: usize = 3_000;
/// SMTP sessions of the killed daemon.
const KILL_CONNECTIONS: u32 = 4;
/// What the send journal leaves `unknown` after a kill: each connection has
/// at most one message between its `wire` line and the server's reply.
const UNKNOWN_PER_CONNECTION: i64 = 1;

backend_test!(
    sigkill_mid_send_loses_nothing_and_sends_nobody_twice,
    flavor = "multi_thread"
);
async fn sigkill_mid_send_loses_nothing_and_sends_nobody_twice(Db { url, .. }: Db) {
    let env = Env::new(&url, CAMPAIGN);
    let n = KILL_CUSTOMERS;
    import_customers(&env, n);
    let (smtp_port, received) = smtp::start(None);
    let vars = smtp_env(smtp_port, KILL_CONNECTIONS);
    let mut first = Daemon::start(&env, "first", &vars);
    let run = start_run(&env);
    // Kill once about a third went out.
    wait_for("a third sent", Duration::from_secs(60), || {
        received.total() >= n / 3
    });
    first.kill9();
    let at_kill = received.total();
    let (_, before) = run_counts(&env, run);
    assert!(
        at_kill < n,
        "{url}: everything was sent before the kill; the test needs more customers"
    );
    // On both backends the claims of the dead daemon (up to three batches
    // per connection) are settled by its send journal at the restart, not
    // by their lease running out.
    let mut second = Daemon::start(&env, "second", &vars);
    let q = wait_drained(&env, n as i64, Duration::from_secs(90), &url);
    let (_, after) = run_counts(&env, run);
    let (sent, unknown) = (count(&after, "sent"), count(&after, "unknown"));
    eprintln!(
        "{url}: killed with {at_kill} received by the server and {before:?} recorded; \
         after restart {after:?}, server received {}",
        received.total()
    );
    assert_eq!(sent + unknown, n as i64, "{url}: nothing lost: {q:?}");
    assert!(
        unknown <= UNKNOWN_PER_CONNECTION * i64::from(KILL_CONNECTIONS),
        "{url}: {unknown} unknown, more than were on the wire (one per connection)"
    );
    // The server never got a customer twice; everyone recorded sent got it once.
    let per = received_per_address(&received);
    assert_nobody_twice(&per, &url);
    for (email, state) in message_states(&url).await {
        match state.as_str() {
            "sent" => assert_eq!(per.get(&email), Some(&1), "{url}: {email} is sent"),
            "unknown" => assert!(per.get(&email).copied().unwrap_or(0) <= 1),
            other => panic!("{url}: {email} ended {other}"),
        }
    }
    assert!(received.total() as i64 >= sent);
    assert!(received.total() as i64 <= sent + unknown);
    second.stop();
    assert!(
        second
            .log()
            .contains("send journal of a stopped daemon reconciled"),
        "{url}: the restart says what the journal settled:\n{}",
        second.log()
    );
    let journals: Vec<_> = std::fs::read_dir(journal_dir(&env, &url))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(
        journals.is_empty(),
        "{url}: journals left after a clean stop: {journals:?}"
    );
    drop_if_postgres(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_server_down_at_start_then_back_every_message_goes_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/outreach.db", dir.path().display());
    let env = Env::in_dir(dir, &url, CAMPAIGN);
    let n = 40;
    import_customers(&env, n);
    // Nothing listens on this port until we say so.
    let port = free_port();
    let mut daemon = Daemon::start(&env, "daemon", &smtp_env(port, 2));
    let (code, health) = daemon.healthz();
    assert_eq!(code, 503, "{health}");
    assert!(health.contains("not reachable"), "{health}");
    let run = start_run(&env);
    // The daemon tried, could not connect, and says why the messages wait.
    wait_for("first attempts", Duration::from_secs(30), || {
        stdout(&env.run(&["status"])).contains(&format!("cannot connect to 127.0.0.1:{port}"))
    });
    assert!(
        daemon
            .log()
            .contains("SMTP session check failed; messages will wait"),
        "{}",
        daemon.log()
    );
    let (_, messages) = run_counts(&env, run);
    assert_eq!(count(&messages, "planned"), n as i64, "{messages:?}");
    let down_since = Instant::now();
    // Nothing marks "still nothing sent": the workers now wait out their
    // session backoff (30 s); a short look confirms they do.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&run_counts(&env, run).1, "planned"), n as i64);
    assert_eq!(daemon.healthz().0, 503);

    // The server comes back on that port.
    let (smtp_port, received) = smtp::start(None);
    forward(TcpListener::bind(("127.0.0.1", port)).unwrap(), smtp_port);
    // (A probe may be answered from a check up to a second old.)
    wait_for(
        "/healthz to see the server back",
        Duration::from_secs(5),
        || daemon.healthz().0 == 200,
    );
    let q = wait_drained(&env, n as i64, Duration::from_secs(120), "after the outage");
    eprintln!(
        "smtp outage: all {n} sent {:.1?} after the server came back (retry backoff)",
        down_since.elapsed()
    );
    assert_eq!(count(&q, "sent"), n as i64, "{q:?}");
    let per = received_per_address(&received);
    assert_nobody_twice(&per, "after the outage");
    assert_eq!(received.total(), n);
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_outbox_folder_keeps_messages_queued_with_a_clear_error() {
    let n = 25;
    let (env, mut daemon, outbox, run) = daemon_with_blocked_outbox(n);
    // The workers tried to open the transport and gave up for now.
    wait_for(
        "the transport error is logged",
        Duration::from_secs(15),
        || daemon.log().contains("cannot open the mail transport"),
    );
    let (_, messages) = run_counts(&env, run);
    assert_eq!(
        messages,
        BTreeMap::from([("planned".to_string(), n as i64)]),
        "messages stay queued"
    );
    let log = daemon.log();
    assert!(
        log.contains("cannot open the mail transport"),
        "the log says what is wrong:\n{log}"
    );

    // Fixed: the folder can be created now; everything goes out once.
    std::fs::remove_file(outbox.parent().unwrap()).unwrap();
    let q = wait_drained(&env, n as i64, Duration::from_secs(40), "after the fix");
    assert_eq!(count(&q, "sent"), n as i64, "{q:?}");
    let per = eml_recipients(&outbox);
    assert_eq!(per.len(), n, "{per:?}");
    assert!(per.values().all(|c| *c == 1), "{per:?}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn outbox_folder_replaced_by_a_file_while_running_keeps_messages_queued() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/outreach.db", dir.path().display());
    let env = Env::in_dir(dir, &url, CAMPAIGN);
    let n = 25;
    import_customers(&env, n);
    let mut daemon = Daemon::start(&env, "daemon", &[]);
    // The transport opened (and created the folder); now writes fail.
    let outbox = env.dir.path().join("outbox");
    wait_for("the outbox folder exists", Duration::from_secs(10), || {
        outbox.is_dir()
    });
    std::fs::remove_dir(&outbox).unwrap();
    std::fs::write(&outbox, "not a folder").unwrap();
    let run = start_run(&env);
    wait_for("every message tried once", Duration::from_secs(30), || {
        daemon.metric("outreach_send_attempts_total{result=\"failed_temporary\"}") >= n as f64
    });
    let (_, messages) = run_counts(&env, run);
    assert_eq!(
        messages,
        BTreeMap::from([("planned".to_string(), n as i64)]),
        "messages wait for a retry"
    );
    let log = daemon.log();
    assert!(
        log.contains("cannot write to the outbox folder"),
        "the log says what is wrong:\n{log}"
    );
    assert_eq!(daemon.sent(), 0.0);
    daemon.stop();
}

/// The unwritable-outbox setup: customers imported, a daemon writing to a
/// folder under a regular file (tests run as root, where permissions do not
/// stop writes), a run planned. Returns (env, daemon, outbox folder, run).
fn daemon_with_blocked_outbox(n: usize) -> (Env, Daemon, PathBuf, i64) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/outreach.db", dir.path().display());
    let env = Env::in_dir(dir, &url, CAMPAIGN);
    import_customers(&env, n);
    let blocker = env.dir.path().join("afile");
    std::fs::write(&blocker, "not a folder").unwrap();
    let outbox = blocker.join("outbox");
    let vars = [(
        "OUTREACH__MAIL__FILE_DIR",
        format!("\"{}\"", outbox.display()),
    )];
    let daemon = Daemon::start(&env, "daemon", &vars);
    let run = start_run(&env);
    wait_for("the run is planned", Duration::from_secs(30), || {
        run_counts(&env, run).0 == "sending"
    });
    (env, daemon, outbox, run)
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_outbox_error_names_the_folder() {
    let (_env, mut daemon, outbox, _) = daemon_with_blocked_outbox(3);
    wait_for(
        "the transport error is logged",
        Duration::from_secs(15),
        || daemon.log().contains("cannot open the mail transport"),
    );
    let log = daemon.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot open the mail transport"))
        .unwrap();
    // Today: "cannot open the mail transport; retrying in 10 s error=Not a directory (os error 20)".
    assert!(
        line.contains(&outbox.display().to_string()),
        "an admin cannot tell which folder to fix: {line}"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn unwritable_outbox_makes_healthz_unhealthy() {
    let (_env, mut daemon, outbox, _) = daemon_with_blocked_outbox(3);
    let (code, health) = daemon.healthz();
    // As for an unreachable SMTP server: 503, and the line says why messages wait.
    assert_eq!(code, 503, "{health}");
    assert!(health.contains(&outbox.display().to_string()), "{health}");
    daemon.stop();
}

// ------------------------------------------------- PostgreSQL goes away

/// A TCP proxy in front of PostgreSQL that the test can take down like a
/// server restart: [`PgProxy::down`] cuts every proxied connection and closes
/// the port (new connections are refused), [`PgProxy::up`] opens it again.
/// The shared PostgreSQL server itself is never touched.
struct PgProxy {
    port: u16,
    state: std::sync::Arc<ProxyState>,
}

#[derive(Default)]
struct ProxyState {
    up: std::sync::atomic::AtomicBool,
    stopped: std::sync::atomic::AtomicBool,
    /// Both ends of every proxied connection, to cut them.
    open: std::sync::Mutex<Vec<TcpStream>>,
    /// Connections accepted while up, over the proxy's life.
    accepted: std::sync::atomic::AtomicUsize,
}

impl PgProxy {
    fn start(target: u16) -> PgProxy {
        use std::sync::atomic::Ordering::SeqCst;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState::default());
        state.up.store(true, SeqCst);
        let shared = state.clone();
        std::thread::spawn(move || {
            let mut listener = Some(listener);
            while !shared.stopped.load(SeqCst) {
                if !shared.up.load(SeqCst) {
                    // Closed port: connecting is refused, as while PostgreSQL restarts.
                    listener = None;
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                let l = listener.get_or_insert_with(|| {
                    // std sets SO_REUSEADDR, so the port can be bound again at once.
                    TcpListener::bind(("127.0.0.1", port)).expect("rebind the proxy port")
                });
                l.set_nonblocking(true).unwrap();
                let client = match l.accept() {
                    Ok((client, _)) => client,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(_) => continue,
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                {
                    // Checked under the lock `down` takes: a connection
                    // accepted while the cut was made must not outlive it.
                    let mut open = shared.open.lock().unwrap();
                    if !shared.up.load(SeqCst) {
                        let _ = client.shutdown(Shutdown::Both);
                        let _ = server.shutdown(Shutdown::Both);
                        continue;
                    }
                    shared.accepted.fetch_add(1, SeqCst);
                    open.push(client.try_clone().unwrap());
                    open.push(server.try_clone().unwrap());
                }
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        PgProxy { port, state }
    }

    /// `url` (a database on the PostgreSQL server) reached through this proxy.
    fn url(&self, url: &str) -> String {
        let mut url = url::Url::parse(url).unwrap();
        url.set_port(Some(self.port)).unwrap();
        url.to_string()
    }

    /// Like a PostgreSQL restart: every connection is cut, new ones are refused.
    fn down(&self) -> usize {
        use std::sync::atomic::Ordering::SeqCst;
        let open: Vec<TcpStream> = {
            let mut open = self.state.open.lock().unwrap();
            self.state.up.store(false, SeqCst);
            std::mem::take(&mut *open)
        };
        for s in &open {
            let _ = s.shutdown(Shutdown::Both);
        }
        // Wait until the acceptor has closed the port.
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the proxy port stays open");
            std::thread::sleep(Duration::from_millis(10));
        }
        open.len() / 2
    }

    fn up(&self) {
        self.state
            .up
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn accepted(&self) -> usize {
        self.state
            .accepted
            .load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.state.stopped.store(true, SeqCst);
        for s in std::mem::take(&mut *self.state.open.lock().unwrap()) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// One GET over HTTP/1.0 with a read timeout of `within`: (status code, whole response).
fn http_get_within(port: u16, path: &str, within: Duration) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(within)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, text))
}

/// Customers for the database outage test: enough that the outage lands mid-send.
const OUTAGE_CUSTOMERS: usize = 2_000;
/// SMTP sessions of the daemon in the outage test.
const OUTAGE_CONNECTIONS: u32 = 4;
/// The outage test's lease: claims lost in the cut settle after it, not
/// after the production ten minutes.
const LEASE: &str = "20s";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restart_mid_send_daemon_rides_it_out_loses_nothing_and_sends_nobody_twice() {
    let Some(base) = common::postgres_server() else {
        return;
    };
    let url = fresh_postgres(&base).await;
    let target = url::Url::parse(&url).unwrap().port().unwrap_or(5432);
    let proxy = PgProxy::start(target);
    // The CLI (imports, counts) talks to PostgreSQL directly; only the daemon goes through the proxy.
    let env = Env::new(&url, CAMPAIGN);
    let n = OUTAGE_CUSTOMERS;
    import_customers(&env, n);
    // A server that takes a few milliseconds per message, so that the cut
    // finds workers mid-send, not only waiting for the database.
    let (smtp_port, received) = smtp::start(Some(std::sync::Arc::new(|_: &[String]| {
        std::thread::sleep(Duration::from_millis(3))
    })));
    let mut vars = smtp_env(smtp_port, OUTAGE_CONNECTIONS);
    vars.push((
        "OUTREACH__DATABASE__URL",
        format!("\"{}\"", proxy.url(&url)),
    ));
    vars.push((outreach::timings::LEASE_VAR, LEASE.into()));
    let mut daemon = Daemon::start(&env, "daemon", &vars);
    assert_eq!(daemon.healthz().0, 200, "healthy before the outage");
    let run = start_run(&env);
    wait_for("a quarter sent", Duration::from_secs(60), || {
        received.total() >= n / 4
    });

    // PostgreSQL "restarts": every connection is cut, the port refuses for a while.
    let cut = proxy.down();
    let at_cut = received.total();
    let down_at = Instant::now();
    assert!(cut > 0, "the daemon had no database connection to cut");
    assert!(
        at_cut < n,
        "everything was sent before the outage; the test needs more customers"
    );
    // /healthz says so, promptly: its database check gives up after 2 s
    // rather than wait for the pool's acquire timeout (10 s), so a health
    // checker with a short timeout sees 503 and the reason, not a timeout.
    // Every answer comes within 4 s.
    let ask = |what: &str| {
        let asked = Instant::now();
        let (code, health) = http_get_within(daemon.port, "/healthz", Duration::from_secs(30))
            .unwrap_or_else(|| panic!("/healthz did not answer {what}\n{}", daemon.log()));
        let answered_in = asked.elapsed();
        assert!(
            answered_in < Duration::from_secs(4),
            "/healthz took {answered_in:.1?} to answer {what}: {health}"
        );
        (code, health)
    };
    // Probes share a check for a second, so the first answer after the cut
    // may still be the one from before it (the health check just above).
    let mut answer = None;
    wait_for("/healthz to see the outage", Duration::from_secs(5), || {
        answer.insert(ask("during the outage")).0 != 200
    });
    let (code, health) = answer.expect("asked at least once");
    assert_eq!(code, 503, "unhealthy while the database is away: {health}");
    assert!(health.contains("database:"), "{health}");
    assert!(!health.contains("database: reachable"), "{health}");
    // And again, while the outage goes on (no check left hanging).
    let (code, health) = ask("the second time");
    assert_eq!(code, 503, "{health}");
    // Whatever was sent during the outage could not be recorded: nothing more
    // may be claimed, so the server receives at most the batches in flight.
    let in_flight = (OUTAGE_CONNECTIONS as usize) * outreach::deliver::BATCH as usize;
    assert!(
        received.total() <= at_cut + in_flight,
        "{} sent while the database was away (at most {in_flight} were claimed)",
        received.total() - at_cut
    );
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited when the database went away:\n{}",
        daemon.log()
    );
    let down_for = down_at.elapsed();

    // PostgreSQL is back.
    let before_up = proxy.accepted();
    proxy.up();
    wait_for("the daemon reconnects", Duration::from_secs(20), || {
        proxy.accepted() > before_up
    });
    wait_for("/healthz is healthy again", Duration::from_secs(20), || {
        http_get(daemon.port, "/healthz").is_some_and(|(code, _)| code == 200)
    });
    // Everything not in flight at the cut goes out now. Claims whose answer
    // was lost in the cut stay `sending` until their lease (shortened to
    // LEASE here) runs out, then become `unknown`.
    wait_drained(&env, n as i64, Duration::from_secs(60), "after the outage");
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "the daemon exited:\n{}",
        daemon.log()
    );

    // Nothing lost: every customer's message ended sent, or unknown (bounded).
    let (_, messages) = run_counts(&env, run);
    let (sent, unknown) = (count(&messages, "sent"), count(&messages, "unknown"));
    eprintln!(
        "postgres outage: {cut} connections cut with {at_cut} received, down for {down_for:.1?}; \
         after: {messages:?}, server received {}",
        received.total()
    );
    assert_eq!(
        sent + unknown,
        n as i64,
        "every message ends sent or unknown: {messages:?}\n{}",
        daemon.log()
    );
    assert!(
        unknown
            <= outreach::deliver::IN_FLIGHT_BATCHES as i64
                * outreach::deliver::BATCH
                * i64::from(OUTAGE_CONNECTIONS),
        "{unknown} unknown, more than the batches in flight per connection"
    );
    let per = received_per_address(&received);
    assert_nobody_twice(&per, "postgres outage");
    for (email, state) in message_states(&url).await {
        match state.as_str() {
            "sent" => assert_eq!(per.get(&email), Some(&1), "{email} is sent"),
            "unknown" => assert!(per.get(&email).copied().unwrap_or(0) <= 1),
            other => panic!("{email} ended {other}"),
        }
    }
    assert!(received.total() as i64 >= sent);
    assert!(received.total() as i64 <= sent + unknown);
    wait_for("the run is done", Duration::from_secs(15), || {
        run_counts(&env, run).0 == "done"
    });
    daemon.stop();
    drop(proxy);
    drop_postgres(&base, &url).await;
}

// ------------------------------------------------------- the rate limit

/// `mail.rate_per_minute` of the rate tests: small, so a minute's worth goes
/// out at once and the test can watch the limit hold for the rest of it.
const RATE: usize = 12;

fn rate_env(port: u16, connections: u32) -> Vec<(&'static str, String)> {
    let mut vars = smtp_env(port, connections);
    vars.retain(|(k, _)| *k != "OUTREACH__MAIL__RATE_PER_MINUTE");
    vars.push(("OUTREACH__MAIL__RATE_PER_MINUTE", RATE.to_string()));
    vars
}

/// Waits for a minute's worth to arrive, then a little longer: the server
/// must hold exactly [`RATE`] messages.
fn assert_one_minutes_worth(received: &Received, what: &str) {
    wait_for("a minute's worth sent", Duration::from_secs(30), || {
        received.total() >= RATE
    });
    // A limit holding is nothing happening: no event to wait for, so the
    // test watches for a while.
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(received.total(), RATE, "{what}");
}

backend_test!(
    the_rate_limit_holds_across_a_restart_and_sigterm_ends_the_wait,
    flavor = "multi_thread"
);
async fn the_rate_limit_holds_across_a_restart_and_sigterm_ends_the_wait(Db { url, .. }: Db) {
    let env = Env::new(&url, CAMPAIGN);
    let n = 3 * RATE;
    import_customers(&env, n);
    let (smtp_port, received) = smtp::start(None);
    let vars = rate_env(smtp_port, 2);
    let mut first = Daemon::start(&env, "first", &vars);
    let run = start_run(&env);
    assert_one_minutes_worth(
        &received,
        &format!("{url}: more than the limit in a minute"),
    );
    // Its workers now wait up to a minute for a slot: SIGTERM ends the
    // wait, and what they held goes back to the queue.
    let asked = Instant::now();
    first.stop();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{url}: stopping took {:?} while waiting for the rate limit",
        asked.elapsed()
    );
    let (_, messages) = run_counts(&env, run);
    assert_eq!(count(&messages, "sent"), RATE as i64, "{url}: {messages:?}");
    assert_eq!(
        count(&messages, "planned"),
        (n - RATE) as i64,
        "{url}: the rest is not back in the queue: {messages:?}"
    );
    // A restart within the same minute does not open a fresh one.
    let mut second = Daemon::start(&env, "second", &vars);
    // As in assert_one_minutes_worth: the limit holding is nothing
    // happening, watched for a while.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(
        received.total(),
        RATE,
        "{url}: the restarted daemon sent more within the same minute"
    );
    second.stop();
    assert_nobody_twice(&received_per_address(&received), &url);
    drop_if_postgres(&url).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_daemons_on_one_postgres_database_share_one_rate_limit() {
    let Some(base) = common::postgres_server() else {
        return;
    };
    let url = fresh_postgres(&base).await;
    let env = Env::new(&url, CAMPAIGN);
    // Enough that both daemons hold work whatever the batch size: two
    // daemons, two workers each, a full batch being sent (and, without a
    // limit, one claimed ahead).
    import_customers(&env, 2 * 2 * 2 * outreach::deliver::BATCH as usize);
    let (smtp_port, received) = smtp::start(None);
    let vars = rate_env(smtp_port, 2);
    let mut a = Daemon::start(&env, "daemon-a", &vars);
    let mut b = Daemon::start(&env, "daemon-b", &vars);
    start_run(&env);
    // Both take part: each holds claims while it waits for slots.
    let mut db = {
        use sqlx::Connection;
        sqlx::PgConnection::connect(&url).await.unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (holders,): (i64,) = sqlx::query_as(
            "SELECT count(DISTINCT claimed_by) FROM messages WHERE claimed_by IS NOT NULL",
        )
        .fetch_one(&mut db)
        .await
        .unwrap();
        if holders == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "both daemons never held claims at once"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_one_minutes_worth(&received, "two daemons together sent more than the limit");
    a.stop();
    b.stop();
    assert_nobody_twice(&received_per_address(&received), "two daemons");
    drop_postgres(&base, &url).await;
}

// ------------------------------------------------------- the clock jumps
//
// In process (tests/it/common/app.rs): the daemon's tick driven with the wall
// clock an NTP step or a wrong clock would show it, on every backend.

/// A daily 09:00 and an hourly campaign; no cap, no quiet hours.
const CLOCK: &str = r#"
[limits]
frequency_cap = ""
quiet_hours = ""

[[campaign]]
id = "daily"
kind = "status_update"
schedule = "0 9 * * *"
template = "status_update"

[[campaign]]
id = "hourly"
kind = "status_update"
schedule = "0 * * * *"
template = "status_update"
"#;

const CLOCK_CUSTOMER: &str = "uhr@example.de";

/// Ticks (and delivers) every `step` from `from` to `to`, both included,
/// as the daemon's loop would with a clock showing those times.
async fn tick_through(
    t: &common::app::TestApp,
    from: chrono::DateTime<chrono::Utc>,
    to: chrono::DateTime<chrono::Utc>,
    step: chrono::Duration,
) {
    let mut now = from;
    while now <= to {
        t.tick(now).await;
        t.deliver_all(now).await;
        now += step;
    }
}

/// A rule's runs as (local occurrence, trigger, state), oldest first.
async fn runs_local(t: &common::app::TestApp, rule: &str) -> Vec<(String, String, String)> {
    let tz: chrono_tz::Tz = "Europe/Berlin".parse().unwrap();
    let mut runs: Vec<_> = t
        .runs_of(rule)
        .await
        .into_iter()
        .map(|r| {
            (
                r.occurrence,
                r.occurrence
                    .with_timezone(&tz)
                    .format("%d.%m. %H:%M %Z")
                    .to_string(),
                r.trigger,
                r.state.to_string(),
            )
        })
        .collect();
    runs.sort();
    let occurrences: std::collections::HashSet<_> = runs.iter().map(|r| r.0).collect();
    assert_eq!(occurrences.len(), runs.len(), "{rule}: an occurrence twice");
    runs.into_iter().map(|r| (r.1, r.2, r.3)).collect()
}

fn expect(rows: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    rows.iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect()
}

/// Runs of `rule` that went out (not skipped).
async fn runs_sent(t: &common::app::TestApp, rule: &str) -> usize {
    let mut n = 0;
    for run in t.runs_of(rule).await {
        if run.state != "skipped" {
            assert_eq!(t.count(run.id, "sent").await, 1, "run {run:?}");
            n += 1;
        }
    }
    n
}

backend_test!(the_clock_stepping_back_an_hour_across_an_occurrence_runs_it_once);
async fn the_clock_stepping_back_an_hour_across_an_occurrence_runs_it_once(Db { url, .. }: Db) {
    use common::app::{TestApp, berlin};
    let minutes = chrono::Duration::minutes;
    let t = TestApp::new(&url, CLOCK).await;
    t.import(&format!("email,consent\n{CLOCK_CUSTOMER},yes\n"))
        .await;
    // Monday 2 November 2026: 08:30 to 09:20, 09:00 runs.
    tick_through(
        &t,
        berlin(2026, 11, 2, 8, 30),
        berlin(2026, 11, 2, 9, 20),
        minutes(5),
    )
    .await;
    // NTP steps the clock back an hour: 08:20 to 09:20 again.
    tick_through(
        &t,
        berlin(2026, 11, 2, 8, 20),
        berlin(2026, 11, 2, 9, 20),
        minutes(5),
    )
    .await;
    // Twice more, a few minutes each: the steps of a clock being slewed by hand.
    for back_to in [berlin(2026, 11, 2, 8, 59), berlin(2026, 11, 2, 9, 0)] {
        tick_through(&t, back_to, back_to + minutes(2), minutes(1)).await;
    }
    // On to 10:20, then the clock jumps forward 75 minutes over 11:00.
    tick_through(
        &t,
        berlin(2026, 11, 2, 9, 25),
        berlin(2026, 11, 2, 10, 20),
        minutes(5),
    )
    .await;
    tick_through(
        &t,
        berlin(2026, 11, 2, 11, 35),
        berlin(2026, 11, 2, 12, 10),
        minutes(5),
    )
    .await;

    assert_eq!(
        runs_local(&t, "daily").await,
        expect(&[("02.11. 09:00 CET", "schedule", "done")]),
        "{url}"
    );
    // 11:00 was passed over by the jump: 35 minutes late, within
    // limits.catch_up (6 h), so it runs once as a catch-up (docs/schedules.md).
    assert_eq!(
        runs_local(&t, "hourly").await,
        expect(&[
            ("02.11. 09:00 CET", "schedule", "done"),
            ("02.11. 10:00 CET", "schedule", "done"),
            ("02.11. 11:00 CET", "catch_up", "done"),
            ("02.11. 12:00 CET", "schedule", "done"),
        ]),
        "{url}"
    );
    // One mail per run that went out, to the one customer.
    let runs = runs_sent(&t, "daily").await + runs_sent(&t, "hourly").await;
    assert_eq!(runs, 5);
    assert_eq!(t.mails_to(CLOCK_CUSTOMER).len(), runs, "{url}");
}

backend_test!(the_clock_jumping_days_ahead_and_back_runs_no_occurrence_twice);
async fn the_clock_jumping_days_ahead_and_back_runs_no_occurrence_twice(Db { url, .. }: Db) {
    use common::app::{TestApp, berlin};
    let t = TestApp::new(
        &url,
        &CLOCK
            .replace("0 * * * *", "0 9 * * 6")
            .replace("\"hourly\"", "\"weekly\""),
    )
    .await;
    t.import(&format!("email,consent\n{CLOCK_CUSTOMER},yes\n"))
        .await;
    // Monday 2 November 2026, 08:00: the rules are seen for the first time.
    let hours = chrono::Duration::hours;
    tick_through(
        &t,
        berlin(2026, 11, 2, 8, 0),
        berlin(2026, 11, 2, 8, 30),
        hours(1),
    )
    .await;
    // The clock jumps to Thursday noon: Thursday 09:00 is 3 h late, within
    // limits.catch_up (6 h), and runs once; Monday to Wednesday are skipped.
    t.tick(berlin(2026, 11, 5, 12, 0)).await;
    t.deliver_all(berlin(2026, 11, 5, 12, 0)).await;
    // Then to Sunday 18:00: Sunday 09:00 is 9 h late, older than catch_up.
    // Saturday 09:00 (the weekly rule) too: skipped.
    tick_through(
        &t,
        berlin(2026, 11, 8, 18, 0),
        berlin(2026, 11, 8, 19, 0),
        hours(1),
    )
    .await;
    let first_pass = (
        runs_local(&t, "daily").await,
        runs_local(&t, "weekly").await,
    );
    assert_eq!(
        first_pass.0,
        expect(&[
            ("02.11. 09:00 CET", "schedule", "skipped"),
            ("03.11. 09:00 CET", "schedule", "skipped"),
            ("04.11. 09:00 CET", "schedule", "skipped"),
            ("05.11. 09:00 CET", "catch_up", "done"),
            ("06.11. 09:00 CET", "schedule", "skipped"),
            ("07.11. 09:00 CET", "schedule", "skipped"),
            ("08.11. 09:00 CET", "schedule", "skipped"),
        ]),
        "{url}"
    );
    assert_eq!(
        first_pass.1,
        expect(&[("07.11. 09:00 CET", "schedule", "skipped")]),
        "{url}"
    );
    // The wrong clock is corrected: back to Monday 08:00, and the real week
    // passes hour by hour. Every occurrence of that week already has its
    // record, so nothing runs again; the Monday after runs on time.
    tick_through(
        &t,
        berlin(2026, 11, 2, 8, 0),
        berlin(2026, 11, 9, 10, 0),
        hours(1),
    )
    .await;
    let mut daily = first_pass.0.clone();
    daily.push(("09.11. 09:00 CET".into(), "schedule".into(), "done".into()));
    assert_eq!(runs_local(&t, "daily").await, daily, "{url}");
    assert_eq!(runs_local(&t, "weekly").await, first_pass.1, "{url}");
    let runs = runs_sent(&t, "daily").await + runs_sent(&t, "weekly").await;
    assert_eq!(runs, 2);
    assert_eq!(t.mails_to(CLOCK_CUSTOMER).len(), runs, "{url}");
}

backend_test!(the_clock_stepping_back_in_the_repeated_dst_hour_runs_that_night_once);
async fn the_clock_stepping_back_in_the_repeated_dst_hour_runs_that_night_once(Db { url, .. }: Db) {
    use common::app::{TestApp, berlin};
    let minutes = chrono::Duration::minutes;
    // 02:30 exists twice on Sunday 25 October 2026 in Berlin (CEST, then CET).
    let t = TestApp::new(&url, &CLOCK.replace("0 9 * * *", "30 2 * * *")).await;
    t.import(&format!("email,consent\n{CLOCK_CUSTOMER},yes\n"))
        .await;
    let start = berlin(2026, 10, 25, 0, 0); // 00:00 CEST = 22:00 UTC
    // Through the night in UTC steps: 02:00–03:00 CEST, then 02:00–03:00 CET.
    tick_through(&t, start, start + minutes(5 * 60), minutes(5)).await;
    // NTP steps the clock back an hour inside the repeated hour
    // (02:45 CET → 02:45 CEST), and again half an hour later.
    let cet_0245 = start + minutes(3 * 60 + 45);
    tick_through(&t, cet_0245 - minutes(60), cet_0245, minutes(5)).await;
    tick_through(
        &t,
        cet_0245 - minutes(30),
        cet_0245 + minutes(60),
        minutes(5),
    )
    .await;
    // The next night: once, at 02:30 CET.
    let next = berlin(2026, 10, 26, 2, 0);
    tick_through(&t, next, next + minutes(60), minutes(5)).await;
    assert_eq!(
        runs_local(&t, "daily").await,
        expect(&[
            ("25.10. 02:30 CEST", "schedule", "done"),
            ("26.10. 02:30 CET", "schedule", "done"),
        ]),
        "{url}"
    );
    // The hourly rule: 02:00 is a wall-clock time that exists twice that
    // night, and like any such time it runs once (docs/schedules.md).
    let hourly = runs_local(&t, "hourly").await;
    assert_eq!(
        &hourly[..4],
        expect(&[
            ("25.10. 01:00 CEST", "schedule", "done"),
            ("25.10. 02:00 CEST", "schedule", "done"),
            ("25.10. 03:00 CET", "schedule", "done"),
            ("25.10. 04:00 CET", "schedule", "done"),
        ]),
        "{url}: {hourly:?}"
    );
    let runs = runs_sent(&t, "daily").await + runs_sent(&t, "hourly").await;
    assert_eq!(t.mails_to(CLOCK_CUSTOMER).len(), runs, "{url}");
}

// ---------------------------------------------------------------- disk full

/// A small tmpfs of its own (mounting needs root, which CI has), unmounted
/// when the test ends.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).unwrap();
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "this test fills a file system of its own and mounts a tmpfs for it: run it as root ({})",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(at)
    }

    /// Fills the file system until `leave` bytes are free.
    fn fill(&self, leave: u64) {
        use std::io::ErrorKind;
        let mut filler = std::fs::File::create(self.0.join("filler")).unwrap();
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match filler.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::StorageFull => break,
                Err(e) => panic!("filling the tmpfs: {e}"),
            }
        }
        let len = filler.metadata().unwrap().len();
        filler.set_len(len.saturating_sub(leave)).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.0.join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_under_the_database_is_never_a_false_success_and_nobody_gets_a_message_twice() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Tmpfs::mount(dir.path().join("fs"), "16m");
    let url = format!("sqlite://{}/outreach.db", fs.0.display());
    let env = Env::in_dir(dir, &url, CAMPAIGN);
    let n = 1000;
    import_customers(&env, n);
    // Slow enough that the disk can fill while the run is going out.
    let (smtp_port, received) = smtp::start(Some(std::sync::Arc::new(|_: &[String]| {
        std::thread::sleep(Duration::from_millis(4))
    })));
    let mut daemon = Daemon::start(&env, "full", &smtp_env(smtp_port, 2));

    // Full: starting a run fails, and says so; nothing was recorded.
    fs.fill(0);
    let out = env.run(&["runs", "start", "news"]);
    assert!(
        !out.status.success(),
        "`runs start` on a full disk reported: {}",
        stdout(&out)
    );
    assert!(stderr(&out).contains("full"), "{}", stderr(&out));
    assert_eq!(
        json(&env, &["runs", "list", "--json"]),
        serde_json::json!([])
    );
    // (A probe may be answered from a check up to a second old.)
    wait_for(
        "/healthz to report the full disk",
        Duration::from_secs(5),
        || {
            let (code, health) = daemon.healthz();
            code == 503 && health.contains("database:")
        },
    );
    let status = env.run(&["status"]);
    assert!(
        stdout(&status).contains("FAILING  database"),
        "{}",
        stdout(&status)
    );

    // Room for the run, not for its plan: planning fails, and resumes once
    // the disk has room.
    fs.free();
    fs.fill(64 * 1024);
    let run = start_run(&env);
    wait_for("planning to fail", Duration::from_secs(20), || {
        daemon.log().contains("planning failed; will retry")
    });
    assert_eq!(run_counts(&env, run).0, "planning");
    assert_eq!(received.total(), 0);
    fs.free();
    wait_for("sending to begin", Duration::from_secs(30), || {
        received.total() >= 100
    });

    // Full in the middle of sending: results wait, nothing is sent again.
    fs.fill(0);
    wait_for("a commit to fail", Duration::from_secs(20), || {
        daemon.log().contains("recording send results failed")
    });
    let (state, counts) = run_counts(&env, run);
    assert_eq!(state, "sending", "{counts:?}");
    assert!(
        (count(&counts, "sent") as usize) <= received.total(),
        "recorded as sent more than the server has: {counts:?} vs {}",
        received.total()
    );
    fs.free();

    let q = wait_drained(
        &env,
        n as i64,
        Duration::from_secs(120),
        "after the disk was freed",
    );
    assert_eq!(count(&q, "sent"), n as i64, "{q:?}\n{}", daemon.log());
    let per = received_per_address(&received);
    assert_nobody_twice(&per, "disk full");
    assert_eq!(per.len(), n, "every customer got the run");
    wait_for("the run to finish", Duration::from_secs(20), || {
        run_counts(&env, run).0 == "done"
    });
    daemon.stop();
}
