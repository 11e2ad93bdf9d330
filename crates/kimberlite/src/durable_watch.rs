//! Waiting for new durable events: a reader that follows a stream (a server's tail or long
//! poll) is woken when events become durable instead of polling the store.
//!
//! Every place that moves a stream's durable head (an append under `SyncEachAppend` or
//! `Unsynced`, a group commit sync) calls [`DurableWatch::publish`] once the store's lock is
//! released: it bumps a generation, wakes [`Kimberlite::wait_for_events`] callers, and calls
//! the listeners registered with [`Kimberlite::on_durable`] (an async runtime's notifier:
//! waiting there holds no thread); those two are in `follow.rs`. Lock order: the generation,
//! then the store's lock; never the reverse, which is why publishing waits until the store's
//! lock is released.
//!
//! [`Kimberlite::wait_for_events`]: crate::Kimberlite::wait_for_events
//! [`Kimberlite::on_durable`]: crate::Kimberlite::on_durable

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use kimberlite_types::StreamId;

/// A function called after durable heads advanced.
pub(crate) type Listener = Arc<dyn Fn(&[StreamId]) + Send + Sync>;

/// See the module docs.
#[derive(Default)]
pub(crate) struct DurableWatch {
    /// Bumped at every publish; waiters sleep on `advanced` until it moves.
    generation: Mutex<u64>,
    pub(crate) advanced: Condvar,
    listeners: Mutex<Vec<Listener>>,
}

impl std::fmt::Debug for DurableWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableWatch").finish_non_exhaustive()
    }
}

impl DurableWatch {
    pub(crate) fn generation(&self) -> MutexGuard<'_, u64> {
        // A counter: a panic elsewhere cannot leave it half-written.
        self.generation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells waiters and listeners that the durable heads of `streams` advanced. Call with no
    /// store lock held.
    pub(crate) fn publish(&self, streams: &[StreamId]) {
        if streams.is_empty() {
            return;
        }
        {
            let mut generation = self.generation();
            *generation = generation.wrapping_add(1);
        }
        self.advanced.notify_all();
        let listeners = self
            .listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for listener in listeners {
            listener(streams);
        }
    }

    /// Adds a listener, called at every publish.
    pub(crate) fn listen(&self, listener: Listener) {
        self.listeners
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(listener);
    }
}
