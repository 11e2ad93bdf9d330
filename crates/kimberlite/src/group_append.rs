//! Appends under group commit: each caller queues its request ([`crate::writers`]) and the
//! leader of a group makes the group's appends under one hold of the write lock, merges runs
//! of small appends into one backend call, waits for one sync and hands out the results.
//! The module docs of `writers.rs` say why and what is kept.

use std::sync::{Arc, Mutex};
use std::thread;

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, RecordKind, StreamId};

use crate::error::{Error, Result};
use crate::head::{AppendResult, ExpectedOffset, StreamHead};
use crate::state::{PendingWrite, State};
use crate::store::Kimberlite;
use crate::writers::{lock, Request, Slot};

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
        let (results, last_seq) = self.write_group(requests);
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

    /// Writes `requests` in order under one hold of the write lock, runs of small appends to
    /// one stream merged into one backend call ([`Request::joins_a_run`]); nothing synced.
    /// Returns each request's result and the write sequence number of the last one written
    /// (what a sync must cover), `None` when none was.
    pub(crate) fn write_group(
        &self,
        requests: Vec<Request>,
    ) -> (Vec<Result<AppendResult>>, Option<u64>) {
        let mut results = Vec::with_capacity(requests.len());
        let mut last_seq = None;
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
        (results, last_seq)
    }

    /// Appends `run` (requests for stream `id`, in queue order): one request alone as it
    /// comes; several that [`Request::joins_a_run`] with one backend call, which writes their
    /// events in order, each request's events as a batch of its own (all-or-nothing across a
    /// crash, whatever becomes of the others), and each caller gets the offsets and the chain head of
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
        let batch_lens: Vec<usize> = run.iter().map(|request| request.events.len()).collect();
        let mut head = state.heads.get(&id).and_then(|heads| heads.written.hash);
        let merged =
            self.append_batches_locked(state, id, events, &batch_lens, ExpectedOffset::Any, None);
        let merged = match merged {
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
