//! `outreach run` as a real process for tests: its own HTTP port and log
//! file, started and stopped the way systemd would, plus small helpers for
//! driving it with the CLI.

use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::{Env, free_port, http_get, stderr};

pub fn json(env: &Env, args: &[&str]) -> serde_json::Value {
    let out = env.run(args);
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

/// An `outreach run` process with its own HTTP port and log file.
pub struct Daemon {
    pub child: Child,
    pub port: u16,
    log: PathBuf,
    name: String,
}

impl Daemon {
    /// Starts `outreach run` on `env` with `vars` and waits until it answers
    /// on HTTP; fails the test with the log if it exits or does not come up.
    pub fn start(env: &Env, name: &str, vars: &[(&str, String)]) -> Daemon {
        let mut daemon = Daemon::spawn(env, name, vars);
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(daemon.port, "/healthz").is_none() {
            if let Ok(Some(status)) = daemon.child.try_wait() {
                panic!("{name} exited ({status}) on start:\n{}", daemon.log());
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not come up:\n{}",
                daemon.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    /// Starts `outreach run` without waiting for it: for tests that watch
    /// the start itself (the readiness notification). Its stderr goes to
    /// `<name>.log` in the test's folder.
    pub fn spawn(env: &Env, name: &str, vars: &[(&str, String)]) -> Daemon {
        let port = free_port();
        let log = env.dir.path().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut cmd = env.command(&["run"]);
        cmd.env("OUTREACH__HTTP__LISTEN", format!("\"127.0.0.1:{port}\""))
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn outreach run");
        Daemon {
            child,
            port,
            log,
            name: name.to_string(),
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn healthz(&self) -> (u16, String) {
        http_get(self.port, "/healthz")
            .unwrap_or_else(|| panic!("{}: /healthz did not answer", self.name))
    }

    /// One sample of `/metrics`, e.g. `outreach_send_attempts_total{result="sent"}`.
    pub fn metric(&self, series: &str) -> f64 {
        let (code, text) = http_get(self.port, "/metrics")
            .unwrap_or_else(|| panic!("{}: /metrics did not answer", self.name));
        assert_eq!(code, 200, "{text}");
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no {series} in {text}", self.name))
    }

    pub fn sent(&self) -> f64 {
        self.metric("outreach_send_attempts_total{result=\"sent\"}")
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Sends `signal` (as `kill` takes it: `-HUP`, `-TERM`).
    pub fn signal(&self, signal: &str) {
        let status = std::process::Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "{}: kill {signal}: {status}\n{}",
            self.name,
            self.log()
        );
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{}: {status}\n{}", self.name, self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
