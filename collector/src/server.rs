//! The HTTP front of the collector: accepts TCP connections, serves the axum
//! [`Router`] over HTTP/1.1 with hyper, and keeps slow or abusive clients from
//! using up file descriptors or holding a shutdown open.
//!
//! # Model
//!
//! * **Caps.** At most [`ServerOptions::max_connections`] connections are open at
//!   once (never more than the soft `RLIMIT_NOFILE` minus a reserve of 64 for the
//!   database, the listener and logs), and at most [`ServerOptions::max_per_ip`] from
//!   one client address (IPv4-mapped IPv6 addresses count as their IPv4 address).
//! * **Eviction instead of refusal.** A new connection over a cap does not wait and
//!   is not refused while there is something to evict: it closes the *oldest*
//!   connection of its address (per-address cap) or the oldest of all (global
//!   cap) that is not serving a request. Candidates, in order of preference:
//!   1. *idle*: no request inside the router. This covers keep-alive connections
//!      between requests and clients still sending a request head (slowloris);
//!   2. *stalled on its body*: the one request in flight is waiting, right now, for
//!      more of the client's request body (a half-sent body).
//!
//!   A connection whose request is being handled (the handler runs, or response
//!   bytes are still waiting for room in the socket's send buffer) is never
//!   evicted. If every connection in the way is busy, the new connection is closed
//!   at once. So a flood of slow connections from one address evicts itself, and a
//!   fresh request from the same address (say `/healthz`) is still answered.
//! * **Busy tracking.** Each connection has a small shared state: a count of
//!   requests in flight (raised when hyper hands a parsed head to the service,
//!   lowered when hyper has taken the whole response body, or dropped it), a count
//!   of those waiting on the request body (kept by a wrapper around the body the
//!   handler reads), whether the last write to the socket would block (response
//!   bytes still queued in hyper), and the time it last became idle. The registry
//!   of connections (one `Mutex`, ordered by age) reads these to pick a victim.
//! * **Timeouts.** The whole request head must arrive within
//!   [`ServerOptions::header_timeout`] (hyper's `header_read_timeout`). Hyper starts
//!   that clock when it begins waiting for a head, which on a keep-alive connection
//!   is when the previous response was written, so a keep-alive connection is closed
//!   after `min(idle_timeout, header_timeout)` without a request. The idle clock
//!   starts when hyper has taken the whole response body, so a client too slow to
//!   read its response also gets `idle_timeout` to do so. Request *bodies* are
//!   not timed here: handlers read them with [`read_body_limited`], which bounds the
//!   total time and size.
//! * **Accept errors** (`EMFILE` and the like) are logged and retried after 50 ms.
//! * **Shutdown.** When the shutdown future completes, the listener is closed;
//!   connections without a request in flight are closed at once; the others get
//!   hyper's graceful shutdown (the response in progress is completed, then the
//!   connection closes). After [`ServerOptions::shutdown_grace`] whatever is left is
//!   dropped, so [`serve`] returns at most that long after the signal.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    convert::Infallible,
    future::Future,
    net::{IpAddr, SocketAddr},
    pin::{Pin, pin},
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{Notify, watch},
    task::JoinSet,
};
use tower::Service as _;

/// Descriptors kept free for everything but client connections.
const FD_RESERVE: u64 = 64;
/// Pause after a failed `accept` (typically `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Limits of the HTTP front (all have safe defaults; see [`Default`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerOptions {
    /// Global cap on open connections (default 4096; never more than the soft
    /// file-descriptor limit minus a reserve of 64).
    pub max_connections: usize,
    /// Cap on open connections per client address (default 256).
    pub max_per_ip: usize,
    /// The whole request head must arrive within this (default 10 s).
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this
    /// (default 30 s; the header timeout applies too, see the module docs).
    pub idle_timeout: Duration,
    /// After the shutdown signal, in-flight requests get this long; then every
    /// connection is dropped (default 5 s).
    pub shutdown_grace: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 4096,
            max_per_ip: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
        }
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the resulting soft
/// limit (`u64::MAX` for unlimited; on failure the unchanged one, or 0 if unknown).
pub fn raise_fd_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the file-descriptor limit");
            soft_fd_limit().unwrap_or(0)
        }
    }
}

/// The soft `RLIMIT_NOFILE`, where there is one.
fn soft_fd_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft)
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Why [`read_body_limited`] failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is (or declares itself) longer than the limit.
    TooLarge,
    /// The whole body did not arrive within the timeout.
    Timeout,
    /// The connection failed or the body was malformed.
    Other(String),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::TooLarge => f.write_str("request body too large"),
            BodyError::Timeout => f.write_str("request body not received in time"),
            BodyError::Other(e) => write!(f, "cannot read the request body: {e}"),
        }
    }
}

impl std::error::Error for BodyError {}

/// Reads the whole `body`, at most `limit` bytes, within `timeout` in total (not
/// per chunk: a body trickled a byte at a time still fails after `timeout`).
///
/// # Errors
/// [`BodyError::TooLarge`] as soon as the body declares or delivers more than
/// `limit` bytes, [`BodyError::Timeout`] when it is not complete within `timeout`,
/// [`BodyError::Other`] when the connection fails.
pub async fn read_body_limited(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, BodyError> {
    tokio::time::timeout(timeout, collect_limited(body, limit))
        .await
        .unwrap_or(Err(BodyError::Timeout))
}

async fn collect_limited(mut body: Body, limit: usize) -> Result<Bytes, BodyError> {
    let limit64 = u64::try_from(limit).unwrap_or(u64::MAX);
    if body.size_hint().lower() > limit64 {
        return Err(BodyError::TooLarge);
    }
    let mut first: Option<Bytes> = None;
    let mut buf: Vec<u8> = Vec::new();
    let mut len = 0usize;
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| BodyError::Other(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            prev => {
                if let Some(p) = prev {
                    buf.extend_from_slice(&p);
                }
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| Bytes::from(buf)))
}

/// What the registry and the connection task share about one connection.
struct ConnState {
    /// Requests inside the router, from the parsed head to the written response.
    in_flight: AtomicUsize,
    /// Of those, how many are waiting right now for more of the request body.
    body_waits: AtomicUsize,
    /// The last write to the socket would block: hyper still holds unsent
    /// response bytes (the client reads slowly).
    write_blocked: AtomicBool,
    /// When `in_flight` last fell to 0 (or the connection opened), in ms since
    /// [`Shared::epoch`].
    idle_since_ms: AtomicU64,
    /// Wakes the connection task to close it (eviction).
    evict: Notify,
}

/// How willing we are to evict a connection; lower is more willing.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Load {
    Idle,
    BodyStalled,
    Busy,
}

impl ConnState {
    fn load(&self) -> Load {
        let n = self.in_flight.load(Ordering::Acquire);
        if self.write_blocked.load(Ordering::Acquire) {
            Load::Busy
        } else if n == 0 {
            Load::Idle
        } else if self.body_waits.load(Ordering::Acquire) >= n {
            Load::BodyStalled
        } else {
            Load::Busy
        }
    }
}

struct Entry {
    ip: IpAddr,
    state: Arc<ConnState>,
}

/// The open connections, by id; ids grow, so id order is age order.
#[derive(Default)]
struct Registry {
    next_id: u64,
    conns: BTreeMap<u64, Entry>,
    per_ip: HashMap<IpAddr, BTreeSet<u64>>,
}

impl Registry {
    /// The oldest evictable connection among `ids` (oldest first): the first idle
    /// one, else the first stalled on its body.
    fn victim(&self, ids: impl Iterator<Item = u64>) -> Option<u64> {
        let mut stalled = None;
        for id in ids {
            match self.conns.get(&id).map(|e| e.state.load()) {
                Some(Load::Idle) => return Some(id),
                Some(Load::BodyStalled) if stalled.is_none() => stalled = Some(id),
                _ => {}
            }
        }
        stalled
    }

    fn remove(&mut self, id: u64) -> Option<Entry> {
        let entry = self.conns.remove(&id)?;
        if let Some(set) = self.per_ip.get_mut(&entry.ip) {
            set.remove(&id);
            if set.is_empty() {
                self.per_ip.remove(&entry.ip);
            }
        }
        Some(entry)
    }

    fn evict(&mut self, id: u64) {
        if let Some(entry) = self.remove(id) {
            entry.state.evict.notify_one();
        }
    }
}

/// State of one [`serve`] call shared with its connection tasks.
struct Shared {
    registry: Mutex<Registry>,
    max_connections: usize,
    max_per_ip: usize,
    epoch: Instant,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Registry> {
        // A panic while holding the lock leaves the maps consistent enough.
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Registers a connection from `ip`, evicting one if a cap is reached; `None`
    /// when a cap is reached and nothing can be evicted.
    fn admit(&self, ip: IpAddr) -> Option<(u64, Arc<ConnState>)> {
        let mut reg = self.lock();
        let own = reg.per_ip.get(&ip).map_or(0, BTreeSet::len);
        if own >= self.max_per_ip {
            let ids = reg.per_ip.get(&ip).into_iter().flatten().copied();
            let victim = reg.victim(ids)?;
            reg.evict(victim);
        }
        if reg.conns.len() >= self.max_connections {
            let victim = reg.victim(reg.conns.keys().copied())?;
            reg.evict(victim);
        }
        let id = reg.next_id;
        reg.next_id += 1;
        let state = Arc::new(ConnState {
            in_flight: AtomicUsize::new(0),
            body_waits: AtomicUsize::new(0),
            write_blocked: AtomicBool::new(false),
            idle_since_ms: AtomicU64::new(self.now_ms()),
            evict: Notify::new(),
        });
        reg.conns.insert(
            id,
            Entry {
                ip,
                state: Arc::clone(&state),
            },
        );
        reg.per_ip.entry(ip).or_default().insert(id);
        Some((id, state))
    }
}

/// Removes a connection from the registry when its task ends (or is aborted).
struct Registered {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.lock().remove(self.id);
    }
}

/// Marks one request in flight until dropped (with the response body).
struct BusyGuard {
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl BusyGuard {
    fn enter(state: &Arc<ConnState>, shared: &Arc<Shared>) -> Self {
        state.in_flight.fetch_add(1, Ordering::AcqRel);
        BusyGuard {
            state: Arc::clone(state),
            shared: Arc::clone(shared),
        }
    }
}

impl Drop for BusyGuard {
    fn drop(&mut self) {
        // Set the idle time first, so the idle timer never sees a stale one.
        self.state
            .idle_since_ms
            .store(self.shared.now_ms(), Ordering::Release);
        self.state.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The request body as the handler sees it: counts the time it waits for the client.
struct WatchedBody {
    inner: Incoming,
    state: Arc<ConnState>,
    waiting: bool,
}

impl WatchedBody {
    fn set_waiting(&mut self, waiting: bool) {
        if self.waiting != waiting {
            self.waiting = waiting;
            if waiting {
                self.state.body_waits.fetch_add(1, Ordering::AcqRel);
            } else {
                self.state.body_waits.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        self.set_waiting(polled.is_pending());
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for WatchedBody {
    fn drop(&mut self) {
        self.set_waiting(false);
    }
}

/// The response body, holding the request's [`BusyGuard`] until it is written.
struct GuardedBody {
    inner: Body,
    _busy: BusyGuard,
}

impl HttpBody for GuardedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client's socket, noting whether writes to it would block.
struct TrackedIo {
    inner: TcpStream,
    state: Arc<ConnState>,
}

impl TrackedIo {
    fn note<T>(&self, polled: Poll<T>) -> Poll<T> {
        self.state
            .write_blocked
            .store(polled.is_pending(), Ordering::Release);
        polled
    }
}

impl AsyncRead for TrackedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TrackedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.note(polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.note(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The per-connection hyper service: the router, with `ConnectInfo` and busy tracking.
#[derive(Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    state: Arc<ConnState>,
    shared: Arc<Shared>,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let busy = BusyGuard::enter(&self.state, &self.shared);
        let (mut parts, body) = req.into_parts();
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = Body::new(WatchedBody {
            inner: body,
            state: Arc::clone(&self.state),
            waiting: false,
        });
        // `Router`'s `poll_ready` is always ready.
        let fut = self.router.clone().call(Request::from_parts(parts, body));
        Box::pin(async move {
            let resp = fut.await?;
            Ok(resp.map(|inner| Body::new(GuardedBody { inner, _busy: busy })))
        })
    }
}

/// Serves `router` on `listener` until `shutdown` completes. Every request carries
/// `ConnectInfo<SocketAddr>`. Returns once every connection is closed, at most
/// [`ServerOptions::shutdown_grace`] after the signal.
///
/// # Errors
/// None today: accept errors are logged and retried, connection errors end only
/// their connection. The `io::Result` matches `axum::serve`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    opts: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let fd_cap = soft_fd_limit().map_or(usize::MAX, |soft| {
        usize::try_from(soft.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
    });
    let max_connections = opts.max_connections.min(fd_cap).max(1);
    if max_connections < opts.max_connections {
        tracing::warn!(
            max_connections,
            asked = opts.max_connections,
            "connection cap lowered to the file-descriptor limit"
        );
    }
    let shared = Arc::new(Shared {
        registry: Mutex::new(Registry::default()),
        max_connections,
        max_per_ip: opts.max_per_ip.max(1),
        epoch: Instant::now(),
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(opts.header_timeout)
        .keep_alive(true);
    let http = Arc::new(http);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    let mut refused: u64 = 0;

    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => log_join(done),
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Some((id, state)) = shared.admit(peer.ip().to_canonical()) else {
                        refused += 1;
                        if refused.is_power_of_two() {
                            tracing::warn!(%peer, refused, "connection cap reached and every connection busy: closing new connection");
                        }
                        drop(stream);
                        continue;
                    };
                    let conn = Conn {
                        shared: Arc::clone(&shared),
                        http: Arc::clone(&http),
                        router: router.clone(),
                        idle_timeout: opts.idle_timeout,
                        stop: stop_rx.clone(),
                        id,
                        state,
                        peer,
                    };
                    tasks.spawn(conn.run(stream));
                }
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!(error = %e, "accept: connection failed before it was accepted");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed; retrying in 50 ms");
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(ACCEPT_BACKOFF) => {}
                    }
                }
            },
        }
    }

    drop(listener);
    let open = tasks.len();
    tracing::info!(open, grace = ?opts.shutdown_grace, "HTTP: stopped accepting; closing connections");
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(opts.shutdown_grace, async {
        while let Some(done) = tasks.join_next().await {
            log_join(done);
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = tasks.len(),
            "HTTP: shutdown grace over; dropping the remaining connections"
        );
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

fn log_join(done: Result<(), tokio::task::JoinError>) {
    if let Err(e) = done
        && e.is_panic()
    {
        tracing::error!(error = %e, "HTTP connection task panicked");
    }
}

/// Errors of `accept` that concern only the connection being accepted.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}

/// One accepted connection, before its task runs.
struct Conn {
    shared: Arc<Shared>,
    http: Arc<hyper::server::conn::http1::Builder>,
    router: Router,
    idle_timeout: Duration,
    stop: watch::Receiver<bool>,
    id: u64,
    state: Arc<ConnState>,
    peer: SocketAddr,
}

impl Conn {
    async fn run(self, stream: TcpStream) {
        let Conn {
            shared,
            http,
            router,
            idle_timeout,
            mut stop,
            id,
            state,
            peer,
        } = self;
        let _registered = Registered {
            shared: Arc::clone(&shared),
            id,
        };
        let service = ConnService {
            router,
            peer,
            state: Arc::clone(&state),
            shared: Arc::clone(&shared),
        };
        let io = TokioIo::new(TrackedIo {
            inner: stream,
            state: Arc::clone(&state),
        });
        let mut conn = pin!(http.serve_connection(io, service));
        let mut stopping = false;
        let idle_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
        loop {
            // While a request is in flight, look again one idle period later.
            let idle_since = if state.in_flight.load(Ordering::Acquire) == 0 {
                state.idle_since_ms.load(Ordering::Acquire)
            } else {
                shared.now_ms()
            };
            let wake = shared
                .epoch
                .checked_add(Duration::from_millis(idle_since.saturating_add(idle_ms)));
            let timer = tokio::time::sleep_until(
                wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
                    .into(),
            );
            tokio::select! {
                res = conn.as_mut() => {
                    if let Err(e) = res {
                        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
                    }
                    return;
                }
                () = state.evict.notified() => {
                    tracing::debug!(%peer, "HTTP connection evicted");
                    return;
                }
                changed = stop.changed(), if !stopping => {
                    let _ = changed; // a dropped sender means stop too
                    if state.load() == Load::Idle {
                        return;
                    }
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
                () = timer, if !stopping && wake.is_some() => {
                    let now = shared.now_ms();
                    let since = state.idle_since_ms.load(Ordering::Acquire);
                    if state.in_flight.load(Ordering::Acquire) == 0
                        && now.saturating_sub(since) >= idle_ms
                    {
                        tracing::debug!(%peer, "HTTP connection idle too long");
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{
        http::StatusCode,
        routing::{get, post},
    };
    use tokio::{net::TcpStream, sync::oneshot, task::JoinHandle};

    /// Extension methods over tokio's readiness API (the workspace builds tokio
    /// without `io-util`, which would rebuild everything that depends on it).
    trait Io {
        async fn write_all(&self, buf: &[u8]) -> std::io::Result<()>;
        async fn read_to_end(&self, out: &mut Vec<u8>) -> std::io::Result<usize>;
    }

    impl Io for TcpStream {
        async fn write_all(&self, mut buf: &[u8]) -> std::io::Result<()> {
            while !buf.is_empty() {
                self.writable().await?;
                match self.try_write(buf) {
                    Ok(n) => buf = &buf[n..],
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }

        async fn read_to_end(&self, out: &mut Vec<u8>) -> std::io::Result<usize> {
            let start = out.len();
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                self.readable().await?;
                match self.try_read(&mut buf) {
                    Ok(0) => return Ok(out.len() - start),
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }

    const BIG: usize = 8 << 20;
    const SLOW_HEAD: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\n";

    fn app() -> Router {
        Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(
                "/peer",
                get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
            )
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route("/big", get(|| async { vec![b'b'; BIG] }))
            .route(
                "/upload",
                post(|body: Body| async move {
                    match read_body_limited(body, 1 << 20, Duration::from_secs(60)).await {
                        Ok(b) => (StatusCode::OK, b.len().to_string()),
                        Err(e) => (StatusCode::BAD_REQUEST, e.to_string()),
                    }
                }),
            )
    }

    struct Server {
        addr: SocketAddr,
        stop: Option<oneshot::Sender<()>>,
        handle: JoinHandle<std::io::Result<()>>,
    }

    impl Server {
        async fn start(opts: ServerOptions) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let (tx, rx) = oneshot::channel::<()>();
            let handle = tokio::spawn(serve(listener, app(), opts, async {
                let _ = rx.await;
            }));
            Server {
                addr,
                stop: Some(tx),
                handle,
            }
        }

        /// Signals shutdown and returns how long `serve` took to return.
        async fn stop(mut self) -> Duration {
            let t = Instant::now();
            let _ = self.stop.take().unwrap().send(());
            tokio::time::timeout(Duration::from_secs(10), self.handle)
                .await
                .expect("serve did not return")
                .unwrap()
                .unwrap();
            t.elapsed()
        }
    }

    /// An HTTP/1.1 request with hyper's client over `stream`.
    async fn send(stream: TcpStream, req: hyper::Request<Body>) -> (StatusCode, Bytes) {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let resp = tx.send_request(req).await.unwrap();
        let status = resp.status();
        let body = read_body_limited(Body::new(resp.into_body()), 1 << 20, Duration::from_secs(5))
            .await
            .unwrap();
        (status, body)
    }

    async fn get_path(addr: SocketAddr, path: &str) -> (StatusCode, Bytes) {
        let stream = TcpStream::connect(addr).await.unwrap();
        let req = hyper::Request::get(path)
            .header("host", "x")
            .body(Body::empty())
            .unwrap();
        send(stream, req).await
    }

    async fn slowloris(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut conns = Vec::with_capacity(n);
        for _ in 0..n {
            let s = TcpStream::connect(addr).await.unwrap();
            s.write_all(SLOW_HEAD).await.unwrap();
            conns.push(s);
        }
        conns
    }

    /// Reads until the server closes; `None` if it did not within `within`.
    async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        let mut got = Vec::new();
        match tokio::time::timeout(within, s.read_to_end(&mut got)).await {
            Ok(_) => Some(got), // EOF or reset: closed
            Err(_) => None,
        }
    }

    async fn slowloris_then_healthz(opts: ServerOptions, n: usize) {
        let limit = raise_fd_limit();
        assert!(
            limit > 2 * n as u64 + 200,
            "fd limit {limit} too low for {n}"
        );
        let server = Server::start(opts).await;
        let t = Instant::now();
        let mut conns = slowloris(server.addr, n).await;
        let opened = t.elapsed();
        let t = Instant::now();
        let (status, body) =
            tokio::time::timeout(Duration::from_secs(2), get_path(server.addr, "/healthz"))
                .await
                .expect("/healthz not answered within 2 s");
        let answered = t.elapsed();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"ok");
        // The oldest slow connection was evicted: the server closed it.
        assert!(
            closed_within(&mut conns[0], Duration::from_secs(1))
                .await
                .is_some(),
            "oldest slowloris connection still open"
        );
        eprintln!("{n} slowloris opened in {opened:?}; /healthz answered in {answered:?}");
        drop(conns);
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_per_ip_cap_evicts_oldest() {
        let opts = ServerOptions {
            max_per_ip: 64,
            max_connections: 128,
            ..ServerOptions::default()
        };
        slowloris_then_healthz(opts, 1100).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_global_cap_evicts_oldest() {
        let opts = ServerOptions {
            max_per_ip: 10_000,
            max_connections: 64,
            ..ServerOptions::default()
        };
        slowloris_then_healthz(opts, 1100).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_defaults_1100() {
        slowloris_then_healthz(ServerOptions::default(), 1100).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slowloris_defaults_5000() {
        slowloris_then_healthz(ServerOptions::default(), 5000).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn half_sent_head_closed_after_header_timeout() {
        let server = Server::start(ServerOptions {
            header_timeout: Duration::from_secs(1),
            ..ServerOptions::default()
        })
        .await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        let t = Instant::now();
        s.write_all(SLOW_HEAD).await.unwrap();
        let got = closed_within(&mut s, Duration::from_secs(3))
            .await
            .expect("half-sent head still open after 3 s");
        let took = t.elapsed();
        eprintln!(
            "half-sent head closed after {took:?}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(
            took >= Duration::from_millis(900),
            "closed too early: {took:?}"
        );
        assert!(
            took < Duration::from_millis(1600),
            "closed too late: {took:?}"
        );
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_keep_alive_closed_after_idle_timeout() {
        let server = Server::start(ServerOptions {
            idle_timeout: Duration::from_millis(300),
            ..ServerOptions::default()
        })
        .await;
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let t = Instant::now();
        let got = closed_within(&mut s, Duration::from_secs(3))
            .await
            .expect("idle keep-alive connection still open after 3 s");
        let took = t.elapsed();
        assert!(got.starts_with(b"HTTP/1.1 200"), "{got:?}");
        assert!(
            took >= Duration::from_millis(250) && took < Duration::from_secs(1),
            "{took:?}"
        );
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_with_slowloris_and_trickled_body() {
        let server = Server::start(ServerOptions {
            shutdown_grace: Duration::from_secs(1),
            ..ServerOptions::default()
        })
        .await;
        let mut conns = slowloris(server.addr, 200).await;
        let up = TcpStream::connect(server.addr).await.unwrap();
        up.write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n")
            .await
            .unwrap();
        let trickle = tokio::spawn(async move {
            for _ in 0..100 {
                if up.write_all(b"x").await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let took = server.stop().await;
        eprintln!("serve returned {took:?} after the signal");
        assert!(took < Duration::from_secs(2), "shutdown took {took:?}");
        // The trickled request was in flight: it was given the grace period.
        assert!(took >= Duration::from_millis(900), "shutdown took {took:?}");
        assert!(
            closed_within(&mut conns[199], Duration::from_millis(500))
                .await
                .is_some()
        );
        trickle.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_info_reaches_handler() {
        let server = Server::start(ServerOptions::default()).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let local = stream.local_addr().unwrap();
        let req = hyper::Request::get("/peer")
            .header("host", "x")
            .body(Body::empty())
            .unwrap();
        let (status, body) = send(stream, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(std::str::from_utf8(&body).unwrap(), local.to_string());
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_flight_request_finishes_during_graceful_shutdown() {
        let server = Server::start(ServerOptions::default()).await;
        let addr = server.addr;
        let _idle = slowloris(addr, 5).await;
        let req = tokio::spawn(async move {
            let t = Instant::now();
            let r = get_path(addr, "/slow").await;
            (r, t.elapsed())
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let took = server.stop().await;
        let ((status, body), req_took) = req.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"done");
        assert!(req_took >= Duration::from_millis(300));
        // Returned once the slow request was done, not after the 5 s grace.
        eprintln!("serve returned {took:?} after the signal");
        assert!(took < Duration::from_secs(1), "{took:?}");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn busy_connection_is_not_evicted_new_one_is_closed() {
        let server = Server::start(ServerOptions {
            max_per_ip: 1,
            ..ServerOptions::default()
        })
        .await;
        let addr = server.addr;
        let busy = tokio::spawn(async move { get_path(addr, "/slow").await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let t = Instant::now();
        let _ = s.write_all(SLOW_HEAD).await;
        assert!(
            closed_within(&mut s, Duration::from_millis(500))
                .await
                .is_some()
        );
        assert!(t.elapsed() < Duration::from_millis(500));
        let (status, body) = busy.await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"done");
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slow_reader_keeps_its_response() {
        let server = Server::start(ServerOptions {
            max_per_ip: 1,
            ..ServerOptions::default()
        })
        .await;
        let mut reader = TcpStream::connect(server.addr).await.unwrap();
        reader
            .write_all(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        // The response is still being written: the newcomer is refused instead.
        let mut s = TcpStream::connect(server.addr).await.unwrap();
        assert!(
            closed_within(&mut s, Duration::from_millis(500))
                .await
                .is_some()
        );
        let got = closed_within(&mut reader, Duration::from_secs(3))
            .await
            .unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200"));
        assert!(got.ends_with(&[b'b'; 1000]));
        assert!(got.len() > BIG, "response cut at {}", got.len());
        server.stop().await;
    }

    /// Over a per-address cap of 3 with a busy request, a request stalled on its
    /// body and (if `with_idle`) a younger idle connection: which one goes?
    async fn eviction_order(with_idle: bool) {
        let server = Server::start(ServerOptions {
            max_per_ip: if with_idle { 3 } else { 2 },
            shutdown_grace: Duration::from_millis(200),
            ..ServerOptions::default()
        })
        .await;
        let addr = server.addr;
        let busy = tokio::spawn(async move { get_path(addr, "/slow").await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut stalled = TcpStream::connect(addr).await.unwrap();
        stalled
            .write_all(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nxxxxx")
            .await
            .unwrap();
        let mut idle = if with_idle {
            tokio::time::sleep(Duration::from_millis(50)).await;
            slowloris(addr, 1).await.pop()
        } else {
            None
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(get_path(addr, "/healthz").await.0, StatusCode::OK);
        let stalled_closed = closed_within(&mut stalled, Duration::from_millis(300))
            .await
            .is_some();
        if let Some(idle) = &mut idle {
            assert!(
                closed_within(idle, Duration::from_millis(300))
                    .await
                    .is_some()
            );
            assert!(
                !stalled_closed,
                "stalled body evicted while an idle one was there"
            );
        } else {
            assert!(stalled_closed, "stalled body not evicted");
        }
        let (status, body) = busy.await.unwrap();
        assert_eq!((status, &body[..]), (StatusCode::OK, &b"done"[..]));
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_evicted_before_stalled_body() {
        eviction_order(true).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stalled_body_evicted_before_busy() {
        eviction_order(false).await;
    }

    /// A body that yields one byte every `every`, `left` times.
    struct Trickle {
        sleep: Pin<Box<tokio::time::Sleep>>,
        every: Duration,
        left: usize,
    }

    impl Trickle {
        fn body(every: Duration, left: usize) -> Body {
            Body::new(Trickle {
                sleep: Box::pin(tokio::time::sleep(every)),
                every,
                left,
            })
        }
    }

    impl HttpBody for Trickle {
        type Data = Bytes;
        type Error = Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            std::task::ready!(self.sleep.as_mut().poll(cx));
            let next = tokio::time::Instant::now() + self.every;
            self.sleep.as_mut().reset(next);
            self.left -= 1;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"x")))))
        }
    }

    #[tokio::test]
    async fn read_body_limited_cases() {
        let second = Duration::from_secs(1);
        assert_eq!(
            read_body_limited(Body::from(vec![0u8; 11]), 10, second).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_body_limited(Trickle::body(Duration::from_millis(1), 11), 10, second).await,
            Err(BodyError::TooLarge)
        );
        assert_eq!(
            read_body_limited(Body::from("0123456789"), 10, second).await,
            Ok(Bytes::from_static(b"0123456789"))
        );
        assert_eq!(
            read_body_limited(Trickle::body(Duration::from_millis(20), 3), 10, second).await,
            Ok(Bytes::from_static(b"xxx"))
        );
        assert_eq!(
            read_body_limited(Body::empty(), 10, second).await,
            Ok(Bytes::new())
        );
        // 1 byte every 200 ms never stalls a per-chunk timeout; the total one fires.
        let t = Instant::now();
        assert_eq!(
            read_body_limited(Trickle::body(Duration::from_millis(200), 100), 1000, second).await,
            Err(BodyError::Timeout)
        );
        let took = t.elapsed();
        assert!(
            took >= second && took < Duration::from_millis(1300),
            "{took:?}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn upload_over_the_wire() {
        let server = Server::start(ServerOptions::default()).await;
        let stream = TcpStream::connect(server.addr).await.unwrap();
        let req = hyper::Request::post("/upload")
            .header("host", "x")
            .body(Body::from(vec![7u8; 5000]))
            .unwrap();
        let (status, body) = send(stream, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(&body[..], b"5000");
        server.stop().await;
    }
}
