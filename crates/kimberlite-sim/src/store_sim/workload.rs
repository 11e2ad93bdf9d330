//! What a round does to the store: create a stream, append from several threads at once, sync.

use std::collections::BTreeMap;

use bytes::Bytes;
use kimberlite::{AppendResult, Durability, Error, ExpectedOffset, Offset, StreamId};
use rand::seq::SliceRandom;
use rand::Rng;

use super::batches::event_payload;
use super::state::{Check, StoreRun, APPENDERS_MAX, STREAMS_MAX};
use super::turns::run_jobs;

/// One thread's append of a round.
pub(super) struct Request {
    pub(super) name: String,
    pub(super) id: StreamId,
    pub(super) events: Vec<Bytes>,
    pub(super) expected: ExpectedOffset,
}

impl StoreRun {
    pub(super) fn create_stream(&mut self) -> Check {
        if self.models.len() >= STREAMS_MAX {
            return Ok(());
        }
        let name = format!("stream-{}", self.names_used);
        self.names_used += 1;
        match self.store()?.create_stream(&name) {
            Ok(_) => {
                // `create_stream` syncs its catalogue event under every durability policy.
                self.models.entry(name).or_default();
                Ok(())
            }
            Err(error) => self.failed("create_stream", &error),
        }
    }

    /// The requests of one round: 1–4 batches of 1–8 events, each to a random stream.
    fn requests(&mut self) -> Vec<Request> {
        let appenders = self.rng.random_range(1..=APPENDERS_MAX);
        let mut requests = Vec::with_capacity(appenders);
        for thread in 0..appenders {
            let Some((name, id)) = self.pick_stream() else {
                break;
            };
            let count = self.rng.random_range(1..=8usize);
            let batch = format!("{name}/{}/{thread}", self.step);
            let events = (0..count)
                .map(|i| {
                    let padding = "x".repeat(self.rng.random_range(0..200));
                    event_payload(&batch, i, count, &padding)
                })
                .collect();
            let len = self.models.get(&name).map_or(0, |model| model.events.len()) as u64;
            let expected = if self.rng.random_bool(0.2) {
                ExpectedOffset::Exact(Offset::new(len))
            } else {
                ExpectedOffset::Any
            };
            requests.push(Request {
                name,
                id,
                events,
                expected,
            });
        }
        requests
    }

    /// 1–4 threads append at once; under `Unsynced`, a `sync()` may follow.
    pub(super) fn append_round(&mut self) -> Check {
        let requests = self.requests();
        if requests.is_empty() {
            return Ok(());
        }
        // Group commit merges only what is in flight at once, so its appenders run together
        // and the operating system interleaves them; under the other policies the threads
        // take turns in an order drawn from the seed, so the run replays exactly.
        let order = (self.durability != Durability::GroupCommit).then(|| {
            let mut order: Vec<usize> = (0..requests.len()).collect();
            order.shuffle(&mut self.rng);
            order
        });
        let store = self.store()?.clone();
        let jobs: Vec<_> = requests
            .iter()
            .map(|request| {
                let store = store.clone();
                move || store.append(request.id, request.events.clone(), request.expected)
            })
            .collect();
        let results = run_jobs(jobs, order.as_deref());
        let mut acknowledged: BTreeMap<String, BTreeMap<u64, Bytes>> = BTreeMap::new();
        for (request, result) in requests.into_iter().zip(results) {
            let result = result.map_err(|_| "an appending thread panicked".to_owned())?;
            self.acknowledge(request, result, &mut acknowledged)?;
        }
        self.take_acknowledged(acknowledged)?;
        if self.poisoned {
            return self.check_fail_stop();
        }
        self.check_heads()?;
        if self.durability == Durability::Unsynced && self.rng.random_bool(0.3) {
            self.sync()?;
        }
        Ok(())
    }

    /// Checks an append's result is what a lone append would have returned, and collects its
    /// events by offset (a failed append's events go to the failed batches).
    fn acknowledge(
        &mut self,
        request: Request,
        result: kimberlite::Result<AppendResult>,
        acknowledged: &mut BTreeMap<String, BTreeMap<u64, Bytes>>,
    ) -> Check {
        let appended = match result {
            Ok(appended) => appended,
            Err(Error::OffsetConflict { .. }) if request.expected != ExpectedOffset::Any => {
                return Ok(());
            }
            Err(error) => {
                self.failed.push(request.events);
                return self.failed("append", &error);
            }
        };
        self.stats.appends += 1;
        let first = appended.first_offset.as_u64();
        let count = request.events.len() as u64;
        if appended.next_offset.as_u64() != first + count {
            return Err(format!(
                "{}: append of {count} events at {first} returned next offset {}",
                request.name, appended.next_offset
            ));
        }
        if let ExpectedOffset::Exact(expected) = request.expected {
            if appended.first_offset != expected {
                return Err(format!(
                    "{}: append expecting {expected} went to {first}",
                    request.name
                ));
            }
        }
        let stream = acknowledged.entry(request.name.clone()).or_default();
        for (offset, event) in (first..).zip(request.events) {
            if stream.insert(offset, event).is_some() {
                return Err(format!(
                    "{}: offset {offset} acknowledged to two appends",
                    request.name
                ));
            }
        }
        Ok(())
    }

    /// Adds a round's acknowledged events to the models: they must continue each stream
    /// densely. Under a syncing policy they are durable, and so is everything before them.
    fn take_acknowledged(&mut self, acknowledged: BTreeMap<String, BTreeMap<u64, Bytes>>) -> Check {
        let durable = self.durability != Durability::Unsynced;
        for (name, events) in acknowledged {
            let model = self.models.entry(name.clone()).or_default();
            for (offset, event) in events {
                if offset != model.events.len() as u64 {
                    return Err(format!(
                        "{name}: offset {offset} acknowledged while {} events are known (a hole)",
                        model.events.len()
                    ));
                }
                model.events.push(event);
            }
            if durable {
                model.durable = model.events.len();
            }
        }
        Ok(())
    }

    /// Fail-stop: after a failed write or sync the store refuses appends until reopened.
    fn check_fail_stop(&mut self) -> Check {
        let Some((name, id)) = self.pick_stream() else {
            return Ok(());
        };
        let event = Bytes::from(format!("{name}/{}/after-failure", self.step));
        match self
            .store()?
            .append(id, [event.clone()], ExpectedOffset::Any)
        {
            Ok(appended) => Err(format!(
                "{name}: an append after a failure was acknowledged at {} (not fail-stop)",
                appended.first_offset
            )),
            Err(_) => {
                self.failed.push(vec![event]);
                Ok(())
            }
        }
    }

    /// `Kimberlite::sync`: every acknowledged append and stream creation becomes durable. It
    /// also writes the Merkle trees' buffered nodes, unsynced, which a later crash may lose or
    /// tear (reopen repairs them from the log).
    pub(super) fn sync(&mut self) -> Check {
        match self.store()?.sync() {
            Ok(()) => {
                for model in self.models.values_mut() {
                    model.durable = model.events.len();
                }
                Ok(())
            }
            Err(error) => self.failed("sync", &error),
        }
    }
}
