//! Group commit's writer queue: appenders that arrive together are written by one of them.
//!
//! Under [`crate::Durability::GroupCommit`] an append does not take the store's lock itself: it
//! queues its request and parks. The first caller to find no *leader* becomes one: it takes
//! every queued request (its own included), makes the appends under one hold of the write lock,
//! in queue order (each with its own `ExpectedOffset` check and its own result), waits for a
//! sync that covers them all ([`crate::commit`]), hands each caller its result and unparks it,
//! then unparks the first caller that queued meanwhile, to lead the next group.
//!
//! Why: with one thread per append, sixteen threads on two cores each took the write lock in
//! turn, and every hand-off of that lock was a wake-up on the critical path between two syncs.
//! A writer queue (LevelDB's design) pays one lock hold per group, and a caller only queues and
//! parks. Measured against the previous store in `docs/PERFORMANCE.md`.
//!
//! Within a group, consecutive small appends to one stream that accept any offset (and whose
//! events the backend cannot refuse for their size) are written with one backend call, as one
//! batch: one `write` instead of one per caller, as LevelDB merges a group into one log record.
//! Each caller still gets the offsets of its own events, and the chain head after its own last
//! event, computed from the head before the run ([`ChainHash::compute`], about 0.3 µs per
//! 256-byte event); the last of those is the backend's own head (checked in debug builds).
//! Appends with an expected offset keep their own call, so each check sees the appends queued
//! before it. Measured with `group_commit` (binaries alternated six times): 4.47-4.77x, mean
//! 4.59, one thread's synced appends before; 4.63-5.04x, mean 4.79, after.
//!
//! Kept: what each caller sees is what a lone `append` would return, in the order the queue
//! holds; an append returns only once a sync covers it; a failed append (a conflict, an empty
//! batch) fails that caller only, and a failed write or sync fails the rest of the group with
//! [`Error::Poisoned`] (the leader gets the error itself). A leader that panics poisons the
//! store and releases every caller of its group with `Poisoned`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, RecordKind, StreamId};

use crate::append::{AppendResult, ExpectedOffset};
use crate::error::{Error, Result};
use crate::store::{Kimberlite, PendingWrite, State, StreamHead};
use crate::MAX_EVENT_BYTES;

/// One caller's append, waiting to be made by a leader.
struct Request {
    id: StreamId,
    events: Vec<Bytes>,
    expected: ExpectedOffset,
}

/// The most events an append may hold to be written in one call with its neighbours: each
/// caller's head is computed again from the events (about 0.3 µs for 256 bytes) to save its
/// own backend call (a `write`, ~5-10 µs here), which only pays for small appends. A large
/// append is one batch anyway.
const RUN_EVENTS_MAX: usize = 8;

impl Request {
    /// Whether this request can be written in one backend call with its neighbours for the
    /// same stream: it accepts any offset, holds a few events ([`RUN_EVENTS_MAX`] at most), and
    /// none is too large (so the only refusals left are the stream's own, which would refuse
    /// each request alike).
    fn joins_a_run(&self) -> bool {
        self.expected == ExpectedOffset::Any
            && (1..=RUN_EVENTS_MAX).contains(&self.events.len())
            && self
                .events
                .iter()
                .all(|event| event.len() <= MAX_EVENT_BYTES)
    }
}

/// A queued caller: where its leader puts its result, and whom to unpark then.
struct Slot {
    result: Mutex<Option<Result<AppendResult>>>,
    thread: Thread,
}

impl Slot {
    fn finish(&self, result: Result<AppendResult>) {
        *lock(&self.result) = Some(result);
        self.thread.unpark();
    }
}

#[derive(Default)]
struct Queue {
    /// Requests no leader has taken yet, with their callers' slots, in arrival order.
    waiting: VecDeque<(Request, Arc<Slot>)>,
    leader_active: bool,
}

impl Queue {
    /// Unparks the first waiting caller, to lead the next group.
    fn wake_next_leader(&self) {
        if let Some((_, next)) = self.waiting.front() {
            next.thread.unpark();
        }
    }
}

/// The queue of appends waiting for a leader. See the module docs.
#[derive(Default)]
pub(crate) struct WriterQueue {
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for WriterQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WriterQueue(..)")
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here only moves values in or out: nothing is left half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Releases a group's callers with `Poisoned` if its leader unwinds, so none parks forever.
struct GroupGuard<'a> {
    store: &'a Kimberlite,
    group: &'a [Arc<Slot>],
    finished: bool,
}

impl Drop for GroupGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.inner.commit.poison();
            for slot in self.group {
                if lock(&slot.result).is_none() {
                    slot.finish(Err(Error::Poisoned));
                }
            }
            let mut queue = lock(&self.store.inner.writers.queue);
            queue.leader_active = false;
            queue.wake_next_leader();
        }
    }
}

impl Kimberlite {
    /// An append under group commit: queued, made by a leader with the appends queued beside
    /// it, returned once a sync covers it.
    pub(crate) fn append_grouped(
        &self,
        id: StreamId,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<AppendResult> {
        let writers = &self.inner.writers;
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            thread: thread::current(),
        });
        let request = Request {
            id,
            events,
            expected,
        };
        let mut queue = lock(&writers.queue);
        queue.waiting.push_back((request, Arc::clone(&slot)));
        loop {
            if let Some(result) = lock(&slot.result).take() {
                return result;
            }
            if queue.leader_active {
                drop(queue);
                // An unpark that comes before this park is not lost, and a spurious return
                // just checks again.
                thread::park();
                queue = lock(&writers.queue);
                continue;
            }
            queue.leader_active = true;
            let (requests, group): (Vec<Request>, Vec<Arc<Slot>>) = queue.waiting.drain(..).unzip();
            drop(queue);
            let mut guard = GroupGuard {
                store: self,
                group: &group,
                finished: false,
            };
            self.lead(requests, &group);
            guard.finished = true;
            queue = lock(&writers.queue);
            queue.leader_active = false;
            queue.wake_next_leader();
        }
    }

    /// Makes the group's appends (`requests[i]` is the request of `group[i]`), syncs them,
    /// and hands every caller its result.
    fn lead(&self, requests: Vec<Request>, group: &[Arc<Slot>]) {
        let mut results = Vec::with_capacity(group.len());
        let mut last_seq = None;
        {
            let mut state = self.write_state();
            let mut requests = requests.into_iter().peekable();
            while let Some(first) = requests.next() {
                let id = first.id;
                let joins = first.joins_a_run();
                let mut run = vec![first];
                while let Some(next) =
                    requests.next_if(|next| joins && next.id == id && next.joins_a_run())
                {
                    run.push(next);
                }
                for result in self.append_run(&mut state, id, run) {
                    if let Ok(appended) = &result {
                        state.written_seq += 1;
                        let seq = state.written_seq;
                        state.pending.push_back(PendingWrite {
                            seq,
                            stream: id,
                            head: StreamHead {
                                next_offset: appended.next_offset,
                                hash: Some(appended.head),
                            },
                        });
                        last_seq = Some(seq);
                    }
                    results.push(result);
                }
            }
        }
        let synced = match last_seq {
            Some(seq) => self.inner.commit.wait_durable(seq, || self.sync_written()),
            None => Ok(()),
        };
        // After a failed sync nobody in the group is durable: the leader gets the sync's own
        // error, the rest `Poisoned`.
        let sync_failed = synced.is_err();
        let mut sync_error = synced.err();
        let leader = thread::current().id();
        for (slot, result) in group.iter().zip(results) {
            let result = match result {
                Ok(_) if sync_failed => Err(if slot.thread.id() == leader {
                    sync_error.take().unwrap_or(Error::Poisoned)
                } else {
                    Error::Poisoned
                }),
                other => other,
            };
            slot.finish(result);
        }
    }

    /// Appends `run` (requests for stream `id`, in queue order): one request alone as it
    /// comes; several that [`Request::joins_a_run`] with one backend call, which writes their
    /// events as one batch, in order, and each caller gets the offsets and the chain head of
    /// its own events, as if it had been appended alone right after the one before it.
    fn append_run(
        &self,
        state: &mut State,
        id: StreamId,
        run: Vec<Request>,
    ) -> Vec<Result<AppendResult>> {
        if run.len() < 2 {
            return self.append_each(state, id, run);
        }
        let events: Vec<Bytes> = run.iter().flat_map(|r| r.events.iter().cloned()).collect();
        let mut head = state.heads.get(&id).and_then(|heads| heads.written.hash);
        let merged = match self.append_locked(state, id, events, ExpectedOffset::Any) {
            Ok(merged) => merged,
            Err(error) if self.inner.commit.failed() => {
                // The write failed and the store stopped (fail-stop): the first caller gets the
                // error, the others `Poisoned`, as if each had been appended in turn.
                let rest = self.append_each(state, id, run.into_iter().skip(1));
                return std::iter::once(Err(error)).chain(rest).collect();
            }
            Err(_) => {
                // A refusal that wrote nothing (an unknown or damaged stream, or offsets that
                // would pass the last one for the run but not for its first appends): each
                // request is asked again on its own, for its own answer.
                return self.append_each(state, id, run);
            }
        };
        let mut next = merged.first_offset;
        let mut results = Vec::with_capacity(run.len());
        for request in &run {
            let first_offset = next;
            for (offset, event) in (first_offset.as_u64()..).zip(&request.events) {
                head = Some(ChainHash::compute(
                    head.as_ref(),
                    Offset::new(offset),
                    RecordKind::Data,
                    event,
                ));
            }
            next = Offset::new(first_offset.as_u64() + request.events.len() as u64);
            let appended = AppendResult {
                first_offset,
                next_offset: next,
                head: head.unwrap_or(merged.head),
            };
            results.push(Ok(appended));
        }
        debug_assert_eq!(
            head,
            Some(merged.head),
            "the run's heads follow the backend's chain"
        );
        results
    }

    /// Appends each of `requests` to stream `id` on its own, in order.
    fn append_each(
        &self,
        state: &mut State,
        id: StreamId,
        requests: impl IntoIterator<Item = Request>,
    ) -> Vec<Result<AppendResult>> {
        requests
            .into_iter()
            .map(|request| self.append_locked(state, id, request.events, request.expected))
            .collect()
    }
}
