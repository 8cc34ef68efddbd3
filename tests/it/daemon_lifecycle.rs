//! `outreach run` starts on a fresh database, serves /healthz on loopback
//! and exits cleanly on SIGTERM.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Db, Env, backend_test, free_port};

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

backend_test!(run_migrates_serves_healthz_and_stops_on_sigterm);
async fn run_migrates_serves_healthz_and_stops_on_sigterm(Db { url, .. }: Db) {
    let env = Env::new(&url, "");
    let port = free_port();
    let mut daemon = common::Daemon(
        env.command(&["run"])
            .env("OUTREACH__HTTP__LISTEN", format!("\"127.0.0.1:{port}\""))
            .spawn()
            .unwrap(),
    );
    let child = &mut daemon.0;
    let deadline = Instant::now() + Duration::from_secs(30);
    let health = loop {
        if let Some(body) = get(port, "/healthz") {
            break body;
        }
        assert!(Instant::now() < deadline, "daemon did not come up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        health.starts_with("HTTP/1.0 200") || health.starts_with("HTTP/1.1 200"),
        "{health}"
    );
    assert!(health.contains("database: reachable"), "{health}");
    assert!(health.contains("mail: writing files to"), "{health}");
    unsafe_sigterm(child.id());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    // It migrated: the CLI sees the schema without migrating again.
    let out = env.run(&["migrate"]);
    assert!(out.status.success());
}

fn unsafe_sigterm(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
