//! Requests that follow streams (tails, long polls): woken by the store's new durable events,
//! counted, and ended when the server shuts down.
//!
//! The store calls [`Followers::wake`] (registered with `Kimberlite::on_durable`) whenever
//! durable heads advance; followers wait on a [`Notify`] rather than on a blocking-pool
//! thread, so idle tails hold no thread that appends need, and nothing spins. A follower
//! registers its interest (`Notified::enable`) before it looks at the stream, so an event made
//! durable between its look and its wait still wakes it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::error::ApiError;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Followers {
    /// Notified (all waiters) when durable heads advance.
    durable: Notify,
    /// Turns true when the server shuts down: followers end.
    closing: watch::Sender<bool>,
    /// Tails open now.
    tails: AtomicUsize,
}

impl Followers {
    /// Followers of `store`'s streams, woken by its new durable events.
    pub(crate) fn of_store(store: &kimberlite::Kimberlite) -> Arc<Self> {
        let followers = Arc::new(Self {
            durable: Notify::new(),
            closing: watch::Sender::new(false),
            tails: AtomicUsize::new(0),
        });
        let woken = Arc::clone(&followers);
        store.on_durable(move || woken.wake());
        followers
    }

    /// Wakes every follower waiting now: durable heads advanced.
    pub(crate) fn wake(&self) {
        self.durable.notify_waiters();
    }

    /// Ends every tail and long poll (at their next wait): the server is shutting down.
    pub(crate) fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Tails open now.
    pub(crate) fn open_tails(&self) -> usize {
        self.tails.load(Ordering::SeqCst)
    }

    /// Counts a tail as open until the guard drops.
    pub(crate) fn open_tail(self: &Arc<Self>) -> OpenTail {
        self.tails.fetch_add(1, Ordering::SeqCst);
        OpenTail {
            followers: Arc::clone(self),
        }
    }

    /// Waits until `durable_end` (a look at the stream, run after this follower registered
    /// for wake-ups) says the stream holds an event at `from`, or until `wait` passed or the
    /// server closes; returns the stream's durable end as last seen.
    pub(crate) async fn wait_for_events<F, Fut>(
        &self,
        from: u64,
        wait: Duration,
        mut durable_end: F,
    ) -> Result<u64, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<u64, ApiError>>,
    {
        let deadline = tokio::time::Instant::now() + wait;
        let mut closing = self.closing.subscribe();
        loop {
            let notified = self.durable.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let end = durable_end().await?;
            if end > from || *closing.borrow() {
                return Ok(end);
            }
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep_until(deadline) => return Ok(end),
                _ = closing.changed() => return Ok(end),
            }
        }
    }

    /// Waits for a wake-up or for the server to close; false when it closes. `notified`
    /// must have been enabled before the caller last looked at the stream.
    pub(crate) async fn next_wake(
        &self,
        notified: std::pin::Pin<&mut tokio::sync::futures::Notified<'_>>,
    ) -> bool {
        let mut closing = self.closing.subscribe();
        if *closing.borrow() {
            return false;
        }
        tokio::select! {
            () = notified => true,
            _ = closing.wait_for(|closed| *closed) => false,
        }
    }

    /// A registration for the next wake-up, to enable before looking at the stream.
    pub(crate) fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.durable.notified()
    }
}

/// A tail counted as open; see [`Followers::open_tail`].
#[derive(Debug)]
pub(crate) struct OpenTail {
    followers: Arc<Followers>,
}

impl Drop for OpenTail {
    fn drop(&mut self) {
        self.followers.tails.fetch_sub(1, Ordering::SeqCst);
    }
}
