//! Requests that follow streams (tails, long polls): woken by the store's new durable events,
//! counted, and ended when the server shuts down.
//!
//! The store calls [`Followers::wake`] (registered with `Kimberlite::on_durable`) with the
//! streams whose durable heads advanced; followers wait on their stream's [`Notify`] rather
//! than on a blocking-pool thread, so idle tails hold no thread that appends need, nothing
//! spins, and an append wakes only the followers of its own stream (each then reads on the
//! blocking pool). A follower registers its interest (`Notified::enable`) before it looks at
//! the stream, so an event made durable between its look and its wait still wakes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use kimberlite::StreamId;
use tokio::sync::{watch, Notify};

use crate::error::ApiError;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Followers {
    /// Per stream followed now: notified (all waiters) when its durable head advances.
    /// Entries are dropped with their last follower.
    streams: Mutex<HashMap<StreamId, Weak<Notify>>>,
    /// Turns true when the server shuts down: followers end.
    closing: watch::Sender<bool>,
    /// Tails open now.
    tails: AtomicUsize,
}

impl Followers {
    /// Followers of `store`'s streams, woken by its new durable events.
    pub(crate) fn of_store(store: &kimberlite::Kimberlite) -> Arc<Self> {
        let followers = Arc::new(Self {
            streams: Mutex::new(HashMap::new()),
            closing: watch::Sender::new(false),
            tails: AtomicUsize::new(0),
        });
        let woken = Arc::clone(&followers);
        store.on_durable(move |streams| woken.wake(streams));
        followers
    }

    /// Wakes every follower of `streams` waiting now: their durable heads advanced.
    pub(crate) fn wake(&self, streams: &[StreamId]) {
        let followed = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for id in streams {
            if let Some(notify) = followed.get(id).and_then(Weak::upgrade) {
                notify.notify_waiters();
            }
        }
    }

    /// Wakes every follower waiting now (cluster mode: the replica applied entries).
    pub(crate) fn wake_all(&self) {
        let followed = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        for notify in followed.values().filter_map(Weak::upgrade) {
            notify.notify_waiters();
        }
    }

    /// What wakes the followers of stream `id`: hold it while following.
    pub(crate) fn watch(&self, id: StreamId) -> Arc<Notify> {
        let mut followed = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(notify) = followed.get(&id).and_then(Weak::upgrade) {
            return notify;
        }
        followed.retain(|_, notify| notify.strong_count() > 0);
        let notify = Arc::new(Notify::new());
        followed.insert(id, Arc::downgrade(&notify));
        notify
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
        id: StreamId,
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
        let durable = self.watch(id);
        loop {
            let notified = durable.notified();
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
    /// (from [`Followers::watch`]) must have been enabled before the caller last looked at
    /// the stream.
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

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;

    fn is_ready(future: std::pin::Pin<&mut impl Future>) -> bool {
        let mut context = Context::from_waker(Waker::noop());
        matches!(future.poll(&mut context), Poll::Ready(_))
    }

    #[test]
    fn an_append_wakes_the_followers_of_its_stream_only_and_entries_go_with_them() {
        let followers = Followers::of_store(&kimberlite::Kimberlite::in_memory());
        let (a, b) = (StreamId::new(1), StreamId::new(2));
        let watched = followers.watch(a);
        {
            let mut notified = pin!(watched.notified());
            notified.as_mut().enable();
            followers.wake(&[b]);
            assert!(!is_ready(notified.as_mut()), "woken by another stream");
            followers.wake(&[b, a]);
            assert!(is_ready(notified.as_mut()));
        }
        assert!(
            Arc::ptr_eq(&watched, &followers.watch(a)),
            "one Notify per stream"
        );
        drop(watched);
        let _b = followers.watch(b);
        let followed = followers.streams.lock().unwrap();
        assert_eq!(
            followed.len(),
            1,
            "the entry of a stream nobody follows is dropped"
        );
    }
}
