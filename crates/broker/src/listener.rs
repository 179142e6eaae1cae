//! The broker's TCP listener: HTTP/1.1 on hyper with the limits of `[listener]`, so that
//! connections nobody uses cannot exhaust the process's file descriptors.
//!
//! - A request's headers must be complete within `header_timeout` of the connection opening or of
//!   its previous answer (hyper's header read timeout): slow senders and idle kept-alive
//!   connections are closed. A long-polling `wait` or a stream of server-sent events has sent its
//!   headers, so it is not affected.
//! - A request body that sends nothing for `body_timeout` is cut off (408).
//! - One peer holds at most `max_connections_per_peer` connections; more are answered 429 and
//!   closed.
//! - At most `max_connections` are held in all. When full, the connection that has waited
//!   longest without sending a request is closed to make room, so that clients who speak at once
//!   are still served under a flood of silent connections; when every held connection is busy, a
//!   new one is answered 503 and closed.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::error::Error as StdError;
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, oneshot, watch};
use tower::Service as _;

use crate::config::ListenerLimits;

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then waits for the
/// connections in progress to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ListenerLimits,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let table = Arc::new(Table::new(limits));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    accept_failed(error).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let slot = match table.admit(peer.ip()).await {
            Ok(slot) => slot,
            Err(refusal) => {
                refuse(&stream, refusal);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            stream,
            slot,
            router.clone(),
            limits,
            stop_rx.clone(),
        ));
    }
    drop(listener);
    let _ = stop_tx.send(true);
    table.drained().await;
    Ok(())
}

/// Serves one connection until it ends, is evicted, or the server stops (gracefully).
async fn connection(
    stream: TcpStream,
    mut slot: Slot,
    router: Router,
    limits: ListenerLimits,
    mut stop: watch::Receiver<bool>,
) {
    let evicted = slot.evicted.take();
    let started = Arc::new(AtomicBool::new(false));
    let table = Arc::clone(&slot.table);
    let id = slot.id;
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        if !started.swap(true, Ordering::Relaxed) {
            table.started(id);
        }
        let request =
            request.map(|body| axum::body::Body::new(StallGuard::new(body, limits.body_timeout)));
        let mut router = router.clone();
        async move { Ok::<_, Infallible>(router.call(request).await.unwrap_or_else(|e| match e {})) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let mut evicted = std::pin::pin!(async move {
        // A started connection's sender is dropped, which is no eviction.
        let evicted = match evicted {
            Some(evicted) => evicted.await.is_ok(),
            None => false,
        };
        if !evicted {
            std::future::pending::<()>().await;
        }
    });
    let mut stopping = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended");
                }
                break;
            }
            () = &mut evicted => break,
            changed = stop.changed(), if !stopping => {
                stopping = true;
                if changed.is_ok() {
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }
    drop(slot);
}

/// Accepting fails when the process is out of file descriptors (or the peer left before it was
/// accepted): wait a moment rather than spin, as hyper's own server does.
async fn accept_failed(error: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted
    ) {
        return;
    }
    tracing::warn!(%error, "cannot accept a connection");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[derive(Debug, Clone, Copy)]
enum Refusal {
    Peer,
    Full,
}

/// Answers a refused connection with the JSON error (best effort: the socket's send buffer is
/// empty, so a short write succeeds unless the peer is already gone) and closes it.
fn refuse(stream: &TcpStream, refusal: Refusal) {
    let (status, code, message) = match refusal {
        Refusal::Peer => (
            "429 Too Many Requests",
            "too_many_connections",
            "this address holds too many connections to Countersign at once; close some and try again",
        ),
        Refusal::Full => (
            "503 Service Unavailable",
            "too_many_connections",
            "Countersign is serving as many connections as it can; try again in a moment",
        ),
    };
    let body = serde_json::json!({ "error": { "code": code, "message": message } }).to_string();
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// The peer a connection counts against: an IPv4 address, or an IPv6 /64 (one host's share of a
/// network, which it may fill with addresses at will).
fn peer_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// Every connection held, by peer, and those that have not sent a request yet, oldest first.
#[derive(Debug)]
struct Table {
    limits: ListenerLimits,
    inner: Mutex<Inner>,
    released: Notify,
}

#[derive(Debug, Default)]
struct Inner {
    total: usize,
    next_id: u64,
    per_peer: HashMap<IpAddr, usize>,
    /// Ids increase with time, so the first entry is the oldest.
    silent: BTreeMap<u64, oneshot::Sender<()>>,
}

/// One held connection; dropping it frees its place.
#[derive(Debug)]
struct Slot {
    table: Arc<Table>,
    id: u64,
    peer: IpAddr,
    evicted: Option<oneshot::Receiver<()>>,
}

impl Table {
    fn new(limits: ListenerLimits) -> Table {
        Table {
            limits,
            inner: Mutex::new(Inner::default()),
            released: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let peer = peer_key(ip);
        loop {
            // Registered before the check, so a release in between still wakes us.
            let released = self.released.notified();
            {
                let mut inner = self.lock();
                if inner.per_peer.get(&peer).copied().unwrap_or(0)
                    >= self.limits.max_connections_per_peer
                {
                    return Err(Refusal::Peer);
                }
                if inner.total < self.limits.max_connections {
                    inner.total += 1;
                    *inner.per_peer.entry(peer).or_insert(0) += 1;
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let (tx, rx) = oneshot::channel();
                    inner.silent.insert(id, tx);
                    return Ok(Slot {
                        table: Arc::clone(self),
                        id,
                        peer,
                        evicted: Some(rx),
                    });
                }
                match inner.silent.pop_first() {
                    Some((_, close)) => {
                        let _ = close.send(());
                    }
                    None => return Err(Refusal::Full),
                }
            }
            // The evicted connection frees its place as soon as its task sees the signal.
            if tokio::time::timeout(Duration::from_secs(1), released)
                .await
                .is_err()
            {
                return Err(Refusal::Full);
            }
        }
    }

    /// The connection sent its first request: it is in use, and no longer the first to go.
    fn started(&self, id: u64) {
        self.lock().silent.remove(&id);
    }

    async fn drained(&self) {
        loop {
            let released = self.released.notified();
            if self.lock().total == 0 {
                return;
            }
            released.await;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut inner = self.table.lock();
            inner.total = inner.total.saturating_sub(1);
            if let Some(n) = inner.per_peer.get_mut(&self.peer) {
                *n -= 1;
                if *n == 0 {
                    inner.per_peer.remove(&self.peer);
                }
            }
            inner.silent.remove(&self.id);
        }
        self.table.released.notify_waiters();
    }
}

/// The error a request body gives when it stalled; the body extractors answer 408 for it.
#[derive(Debug, thiserror::Error)]
#[error("the request body sent nothing for {}s", .0.as_secs())]
pub struct BodyStalled(pub Duration);

/// A request body that fails once it has sent nothing for the body timeout.
struct StallGuard {
    inner: Incoming,
    limit: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl StallGuard {
    fn new(inner: Incoming, limit: Duration) -> StallGuard {
        StallGuard {
            inner,
            limit,
            timer: Box::pin(tokio::time::sleep(limit)),
        }
    }
}

impl HttpBody for StallGuard {
    type Data = Bytes;
    type Error = Box<dyn StdError + Send + Sync>;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let deadline = tokio::time::Instant::now() + this.limit;
                this.timer.as_mut().reset(deadline);
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => match this.timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyStalled(this.limit))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
