//! The HTTP server under abuse, against the real binary on loopback: a
//! thousand connections that never finish their headers neither keep
//! `/healthz` from answering nor the daemon from stopping; beyond
//! `http.max_connections` new connections are refused at once; a client
//! that stalls in its headers is cut off after `http.header_timeout`; and
//! probes arriving together all get the same, healthy answer.

use crate::common;

use std::time::{Duration, Instant};

use common::Env;
use common::daemon::Daemon;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The test holds a thousand sockets and the daemon as many: lift the
/// soft open-file limit (both inherit it) towards the hard one.
#[allow(unsafe_code)]
fn raise_open_file_limit(want: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit only read and write the struct they are given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        if limit.rlim_cur < want {
            limit.rlim_cur = want.min(limit.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        }
    }
    assert!(
        limit.rlim_cur >= 2100,
        "open-file limit {} too low for this test",
        limit.rlim_cur
    );
}

/// A daemon on a free loopback port with `extra` config, serving.
fn daemon(extra: &str) -> (Env, Daemon, u16) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/db.sqlite", dir.path().display());
    let env = Env::in_dir(dir, &url, extra);
    let daemon = Daemon::start(&env, "daemon", &[]);
    let port = daemon.port;
    (env, daemon, port)
}

/// A whole GET on a new connection: the status line and the body, or
/// `None` if it did not come within `within`.
async fn get(port: u16, path: &str, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await.ok()?;
        Some(response)
    })
    .await
    .ok()
    .flatten()
}

/// A connection that sent part of a request's headers and then nothing.
async fn half_open(port: u16) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .await
        .unwrap();
    stream
}

/// Waits up to `within` for the daemon to exit; its status, or `None`.
fn exited(daemon: &mut Daemon, within: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_half_open_connections_neither_block_healthz_nor_hold_up_sigterm() {
    raise_open_file_limit(4096);
    let (_env, mut daemon, port) = daemon("");
    let mut held = Vec::new();
    for _ in 0..1000 {
        held.push(half_open(port).await);
    }
    let health = get(port, "/healthz", Duration::from_secs(1)).await;
    let health = health.expect("/healthz did not answer within 1 s");
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    daemon.signal("-TERM");
    let status = exited(&mut daemon, Duration::from_secs(10))
        .expect("the daemon still runs 10 s after SIGTERM");
    assert!(status.success(), "{status}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn beyond_max_connections_a_new_connection_is_refused_at_once() {
    let (_env, _daemon, port) = daemon("\n[http]\nmax_connections = 20\n");
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(half_open(port).await);
    }
    // Connections are accepted in order: the twenty hold every place.
    // It gets a 503, or, if its request arrived after the server closed
    // it, a reset; either way at once, and never the page.
    let refused = tokio::time::timeout(Duration::from_secs(1), async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        Ok::<_, std::io::Error>(response)
    })
    .await;
    match refused {
        Ok(Ok(text)) => assert!(
            text.is_empty() || text.starts_with("HTTP/1.1 503"),
            "{text}"
        ),
        Ok(Err(e)) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            ),
            "{e}"
        ),
        Err(_) => panic!("the 21st connection was neither answered nor closed within 1 s"),
    }
    drop(held);
    // Their places free up as they close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(text) = get(port, "/healthz", Duration::from_secs(1)).await
            && text.starts_with("HTTP/1.1 200")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no place freed after the connections closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stalls_in_its_headers_is_cut_off_after_header_timeout() {
    let (_env, _daemon, port) = daemon("\n[http]\nheader_timeout = \"1s\"\n");
    let mut stalled = half_open(port).await;
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the stalled connection was still open after 5 s"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_probes_at_once_all_get_the_same_healthy_answer() {
    let (_env, _daemon, port) = daemon("");
    let probes: Vec<_> = (0..200)
        .map(|_| tokio::spawn(get(port, "/healthz", Duration::from_secs(10))))
        .collect();
    let mut statuses = std::collections::BTreeMap::new();
    for probe in probes {
        let answer = probe.await.unwrap().unwrap_or_else(|| "no answer".into());
        let status = answer.lines().next().unwrap_or("").to_string();
        let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
        *statuses.entry((status, body)).or_insert(0) += 1;
    }
    assert_eq!(statuses.len(), 1, "{statuses:#?}");
    let ((status, _), n) = statuses.into_iter().next().unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert_eq!(n, 200);
}
