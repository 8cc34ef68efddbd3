//! Connections: the HTTP server's own accept loop, so that nobody can hold
//! it with connections that never finish a request (slowloris) and a stop
//! never waits on them.
//!
//! - At most `http.max_connections` are open at once, fewer if the
//!   open-file limit would not leave a quarter of itself for the database,
//!   the outbox and SMTP. Beyond that a connection gets a 503 and is closed
//!   at once, so a flood cannot take the files the daemon needs to work.
//! - A request's headers must arrive within `http.header_timeout`, also
//!   between requests on a kept-alive connection (hyper's header timer
//!   starts as soon as it waits for a request).
//! - A connection on which no byte moves for `http.idle_timeout` (a stalled
//!   body, a client that stops reading) is closed.
//! - On stop, connections with no request being answered are closed at
//!   once; the others get `http.shutdown_timeout` to finish, then are
//!   dropped.

use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use hyper::server::conn::http1;
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::{Config, HttpLimits};

/// What the server allows, fixed at start.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub times: HttpLimits,
}

impl Limits {
    /// `http.*` from the config, the connection cap lowered to what the
    /// open-file limit allows.
    pub fn from_config(config: &Config) -> Self {
        let configured = config.settings.http.max_connections as usize;
        let max_connections = match open_file_limit() {
            Some(limit) => {
                let allowed = limit.saturating_sub((limit / 4).max(64)).max(1) as usize;
                if allowed < configured {
                    warn!(
                        configured,
                        allowed,
                        open_file_limit = limit,
                        "http.max_connections lowered to what the open-file limit leaves; raise LimitNOFILE= (or ulimit -n)"
                    );
                }
                configured.min(allowed)
            }
            None => configured,
        };
        Limits {
            max_connections,
            times: config.resolved.http,
        }
    }
}

/// The soft limit on open files of this process.
#[allow(unsafe_code)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Serves `router` on `listener` until `stop` turns true, then drains.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = JoinSet::new();
    let mut refused = Refused::default();
    // Each connection watches its own copy.
    let stopping = stop.clone();
    let mut stopped = pin!(stopped(&mut stop));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => match permits.clone().try_acquire_owned() {
                    Ok(permit) => {
                        connections.spawn(connection(stream, router.clone(), limits.times, stopping.clone(), permit));
                    }
                    Err(_) => refused.refuse(stream, limits.max_connections),
                },
                // Out of file descriptors, or the peer gave up before we took
                // it: nothing to do for this one; don't spin on the error.
                Err(e) => {
                    warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = &mut stopped => break,
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(limits.times.shutdown_timeout, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!(
            connections = connections.len(),
            "requests still open after http.shutdown_timeout; closing them"
        );
        connections.shutdown().await;
    }
    Ok(())
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// Connections turned away at the cap, logged at most once a minute.
#[derive(Default)]
struct Refused {
    since_log: u64,
    logged: Option<Instant>,
}

impl Refused {
    fn refuse(&mut self, stream: TcpStream, cap: usize) {
        // Best effort, without waiting: the client learns why, or just sees
        // the close. What it already sent is read first, so that the close
        // is a plain end of the stream rather than a reset that can discard
        // the 503 before the client reads it.
        let mut sent = [0u8; 4096];
        let _ = stream.try_read(&mut sent);
        let _ = stream.try_write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n",
        );
        drop(stream);
        self.since_log += 1;
        if self
            .logged
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            warn!(
                refused = self.since_log,
                open = cap,
                "HTTP connections refused: http.max_connections are open"
            );
            self.logged = Some(Instant::now());
            self.since_log = 0;
        }
    }
}

/// One connection, holding its place under the cap until it ends.
async fn connection(
    stream: TcpStream,
    router: Router,
    times: HttpLimits,
    mut stop: watch::Receiver<bool>,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::new());
    // The peer, for handlers that need the client's address (the sign-up
    // form's limit per client), as axum's `ConnectInfo` would give it.
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let answering = Arc::new(AtomicUsize::new(0));
    let service = {
        let answering = answering.clone();
        let tower = TowerToHyperService::new(router);
        hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            if let Some(peer) = peer {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
            }
            let busy = Answering::start(&answering);
            let response = tower.call(request);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(times.header_timeout);
    let mut conn = pin!(builder.serve_connection(io, service));
    tokio::select! {
        _ = conn.as_mut() => return,
        _ = activity.idle_for(times.idle_timeout) => return,
        _ = stopped(&mut stop) => {}
    }
    // Nothing being answered (waiting for, or halfway through, a request's
    // headers): close now. Otherwise answer, then close; `serve` drops us
    // at its deadline.
    if answering.load(Ordering::Acquire) == 0 {
        return;
    }
    conn.as_mut().graceful_shutdown();
    if let Err(e) = conn.await {
        info!(error = %e, "an HTTP connection ended with an error while stopping");
    }
}

/// Counts a request from the moment its headers are in until its response
/// is handed to hyper.
struct Answering(Arc<AtomicUsize>);

impl Answering {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Answering(count.clone())
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// When a byte last moved on a connection.
struct Activity {
    start: Instant,
    /// Milliseconds after `start`.
    last: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle_for(&self, limit: Duration) {
        loop {
            let last = self.start + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let quiet = last.elapsed();
            if quiet >= limit {
                return;
            }
            tokio::time::sleep(limit - quiet).await;
        }
    }
}

/// A stream that records activity on every read or write that moved bytes.
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
