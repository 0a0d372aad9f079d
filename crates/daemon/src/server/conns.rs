//! Bounds on API connections, so a local user holding sockets open cannot exhaust the daemon's
//! descriptors or memory:
//!
//! - a request head must arrive within [`HEADER_READ_TIMEOUT`] of the connection opening or
//!   of the previous response ending (hyper's header-read timer covers both, so it is also the
//!   idle keep-alive timeout), and is at most [`MAX_HEADER_BYTES`] (431 above);
//! - at most [`max_connections`] connections are open; when a new one arrives at the cap, the
//!   oldest *idle* connection (no request in flight, no response streaming) is closed to make
//!   room, so `docker ps` still gets through while thousands of idle sockets are held. Only
//!   when every connection is busy is the new one refused.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::Notify;

/// Time a client has to send a complete request head, on a new or an idle kept-alive
/// connection.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest request head (request line and headers) accepted; larger gets 431.
pub const MAX_HEADER_BYTES: usize = 256 << 10;

/// Upper bound of the connection cap whatever the descriptor limit.
const MAX_CONNECTIONS: usize = 2048;

/// The cap for a process allowed `nofile` descriptors: a quarter of them (containers, shims'
/// sockets and files need the rest), between 64 and [`MAX_CONNECTIONS`].
pub fn max_connections(nofile: u64) -> usize {
    usize::try_from(nofile / 4)
        .unwrap_or(MAX_CONNECTIONS)
        .clamp(64, MAX_CONNECTIONS)
}

/// One open connection as the tracker sees it.
struct Slot {
    busy: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

/// The open connections, oldest first.
pub struct Tracker {
    max: usize,
    state: Mutex<(u64, BTreeMap<u64, Slot>)>,
}

impl Tracker {
    /// A tracker admitting at most `max` connections.
    pub fn new(max: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            max,
            state: Mutex::new((0, BTreeMap::new())),
        })
    }

    /// Registers a new connection, closing the oldest idle one when at the cap; `None` when
    /// every open connection is busy (the new one must be refused).
    pub fn admit(self: &Arc<Self>) -> Option<ConnHandle> {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let (next, conns) = &mut *guard;
        if conns.len() >= self.max {
            let oldest_idle = conns
                .iter()
                .find(|(_, s)| s.busy.load(Ordering::Acquire) == 0)
                .map(|(id, _)| *id)?;
            if let Some(victim) = conns.remove(&oldest_idle) {
                // A stored permit: the victim sees it even if it is not waiting yet.
                victim.evict.notify_one();
            }
        }
        let id = *next;
        *next += 1;
        let busy = Arc::new(AtomicUsize::new(0));
        let evict = Arc::new(Notify::new());
        conns.insert(
            id,
            Slot {
                busy: busy.clone(),
                evict: evict.clone(),
            },
        );
        Some(ConnHandle {
            tracker: self.clone(),
            id,
            busy,
            evict,
        })
    }

    /// Connections currently open.
    pub fn open(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).1.len()
    }
}

/// A tracked connection; dropping it (the connection ended) frees its place.
pub struct ConnHandle {
    tracker: Arc<Tracker>,
    id: u64,
    busy: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

impl ConnHandle {
    /// Marks a request in flight until the returned guard is dropped (with its response body).
    pub fn request(&self) -> BusyGuard {
        self.busy.fetch_add(1, Ordering::AcqRel);
        BusyGuard(self.busy.clone())
    }

    /// Resolves when the tracker closed this connection to make room.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        let mut guard = self.tracker.state.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.remove(&self.id);
    }
}

/// A request in flight on its connection.
pub struct BusyGuard(Arc<AtomicUsize>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted as in flight until it is done or dropped:
/// a streaming response (logs, events) keeps its connection busy.
pub struct Tracked<B> {
    inner: B,
    _busy: BusyGuard,
}

impl<B> Tracked<B> {
    /// Wraps `inner`, holding `busy` as long as it lives.
    pub fn new(inner: B, busy: BusyGuard) -> Self {
        Tracked { inner, _busy: busy }
    }
}

impl<B: HttpBody + Unpin> HttpBody for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let t = Tracker::new(3);
        let a = t.admit().expect("a");
        let b = t.admit().expect("b");
        let c = t.admit().expect("c");
        let busy_a = a.request();
        // a is busy: b, the oldest idle one, is closed for d.
        let d = t.admit().expect("d");
        assert_eq!(t.open(), 3);
        assert!(b.evict.notified().now_or_never_ready());
        assert!(!a.evict.notified().now_or_never_ready());
        drop(b);
        assert_eq!(
            t.open(),
            3,
            "dropping an evicted handle frees nothing twice"
        );
        let _busy = [c.request(), d.request()];
        assert!(t.admit().is_none(), "all busy: the newcomer is refused");
        drop(busy_a);
        let e = t.admit().expect("a is idle again");
        assert!(a.evict.notified().now_or_never_ready());
        drop((a, e));
        assert_eq!(t.open(), 2);
    }

    #[test]
    fn cap_follows_the_descriptor_limit() {
        assert_eq!(max_connections(1024), 256);
        assert_eq!(max_connections(100), 64);
        assert_eq!(max_connections(1 << 20), MAX_CONNECTIONS);
    }

    trait NowOrNever {
        fn now_or_never_ready(self) -> bool;
    }

    impl<F: std::future::Future> NowOrNever for F {
        fn now_or_never_ready(self) -> bool {
            let mut f = std::pin::pin!(self);
            let waker = std::task::Waker::noop();
            f.as_mut().poll(&mut Context::from_waker(waker)).is_ready()
        }
    }
}
