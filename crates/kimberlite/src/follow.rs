//! Following a stream: [`Kimberlite::wait_for_events`] (a thread waits) and
//! [`Kimberlite::on_durable`] (an async runtime is told), over the store's `DurableWatch`
//! (module `durable_watch`, which says when it is published and the lock order).

use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};

use kimberlite_types::{Offset, StreamId};

use crate::error::Result;
use crate::head::StreamHead;
use crate::store::Kimberlite;

impl Kimberlite {
    /// Waits until stream `id` holds a durable event at offset `from` (its durable next
    /// offset passes `from`), or until `timeout` has passed; returns the durable head then
    /// (compare its `next_offset` with `from` to tell which). Blocks the calling thread; async
    /// code registers a waker with [`Kimberlite::on_durable`] instead.
    ///
    /// Errors: as [`Kimberlite::head`].
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use kimberlite::{ExpectedOffset, Kimberlite};
    /// let store = Kimberlite::in_memory();
    /// let id = store.create_stream("audit")?;
    /// let writer = store.clone();
    /// let appending = std::thread::spawn(move || writer.append(id, ["a"], ExpectedOffset::Any));
    /// let head = store.wait_for_events(id, 0.into(), Duration::from_secs(60))?;
    /// assert_eq!(head.next_offset.as_u64(), 1);
    /// appending.join().unwrap()?;
    /// # Ok::<(), kimberlite::Error>(())
    /// ```
    pub fn wait_for_events(
        &self,
        id: StreamId,
        from: Offset,
        timeout: Duration,
    ) -> Result<StreamHead> {
        let watch = &self.inner.durable_watch;
        let deadline = Instant::now().checked_add(timeout);
        let mut generation = watch.generation();
        loop {
            let head = self.head(id)?;
            if head.next_offset > from {
                return Ok(head);
            }
            let left = match deadline {
                Some(deadline) => deadline.saturating_duration_since(Instant::now()),
                None => Duration::MAX,
            };
            if left.is_zero() {
                return Ok(head);
            }
            let seen = *generation;
            let (guard, _) = watch
                .advanced
                .wait_timeout_while(generation, left, |now| *now == seen)
                .unwrap_or_else(PoisonError::into_inner);
            generation = guard;
        }
    }

    /// Calls `listener` with the streams whose durable heads advanced, each time some do,
    /// after the store's lock is released, on the thread that made them durable: it must
    /// return quickly (wake a task, set a flag) and should not call back into the store. For
    /// async readers that follow streams.
    pub fn on_durable(&self, listener: impl Fn(&[StreamId]) + Send + Sync + 'static) {
        self.inner.durable_watch.listen(Arc::new(listener));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::config::{Config, Durability};
    use crate::head::ExpectedOffset;

    #[test]
    fn waiters_and_listeners_wake_on_durable_events_under_every_policy() {
        for durability in [
            Durability::SyncEachAppend,
            Durability::GroupCommit,
            Durability::Unsynced,
        ] {
            let store = Kimberlite::in_memory_with(Config::default().durability(durability));
            let id = store.create_stream("s").unwrap();
            let other = store.create_stream("other").unwrap();
            let told = Arc::new(Mutex::new(Vec::new()));
            let recorded = Arc::clone(&told);
            store.on_durable(move |streams| {
                recorded.lock().unwrap().push(streams.to_vec());
            });
            let idle = store
                .wait_for_events(id, Offset::ZERO, Duration::from_millis(20))
                .unwrap();
            assert_eq!(idle.next_offset, Offset::ZERO, "{durability:?}: timed out");
            let writer = store.clone();
            let appending = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                writer.append(id, ["a", "b"], ExpectedOffset::Any).unwrap();
            });
            let head = store
                .wait_for_events(id, Offset::ZERO, Duration::from_secs(60))
                .unwrap();
            assert_eq!(head.next_offset, Offset::new(2), "{durability:?}");
            appending.join().unwrap();
            assert_eq!(told.lock().unwrap().concat(), [id], "{durability:?}");
            store.append(other, ["x"], ExpectedOffset::Any).unwrap();
            assert_eq!(
                told.lock().unwrap().concat(),
                [id, other],
                "{durability:?}: each stream told once, when its events became durable"
            );
            // Already past: returns at once.
            let head = store
                .wait_for_events(id, Offset::new(1), Duration::from_secs(60))
                .unwrap();
            assert_eq!(head.next_offset, Offset::new(2));
        }
    }

    #[test]
    fn waiting_on_an_unknown_stream_is_an_error() {
        let store = Kimberlite::in_memory();
        assert!(store
            .wait_for_events(StreamId::new(42), Offset::ZERO, Duration::from_millis(1))
            .is_err());
    }
}
