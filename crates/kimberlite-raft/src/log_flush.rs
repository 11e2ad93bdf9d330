//! The leader's Raft log synced beside replication (docs/REPLICATION.md, section "The Raft
//! log"). The leader's own normal entries are written unsynced and openraft is told at once,
//! so it replicates them while [`LogFlusher`]'s thread syncs the file; [`Flushed`] publishes
//! how far the log is durable, and everything that depends on an entry being committed on the
//! leader (its apply, the answer at commit, the followers' commit, the saved committed id)
//! waits for it: the effective commit is openraft's clamped to the leader's durable log.
//!
//! Ordering: every synced write bumps [`Durable::epoch`], and a background sync publishes only
//! if no synced write came after the write it covers (a truncation may have removed its
//! entries; a synced write covers everything before it anyway). A failed background sync
//! latches: the log refuses every later write, and the waits fail.

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use kimberlite_storage::FileHandle;
use openraft::LogId;
use tokio::sync::watch;

use crate::types::NodeId;

/// How far a node's Raft log is durable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    /// Every entry up to this log id is durable.
    pub(crate) log_id: Option<LogId<NodeId>>,
    /// Bumped by each synced write (see the module documentation).
    epoch: u64,
    /// A background sync failed: the log's tail is unknown (fail-stop).
    pub(crate) failure: Option<String>,
}

/// The published [`Durable`] of one log. Cheap to clone: clones share it.
#[derive(Debug, Clone)]
pub(crate) struct Flushed {
    sender: Arc<watch::Sender<Durable>>,
}

impl Flushed {
    /// A log durable up to `log_id` (as replayed at open).
    pub(crate) fn new(log_id: Option<LogId<NodeId>>) -> Self {
        let durable = Durable {
            log_id,
            ..Durable::default()
        };
        Self {
            sender: Arc::new(watch::channel(durable).0),
        }
    }

    /// The state now.
    pub(crate) fn now(&self) -> Durable {
        self.sender.borrow().clone()
    }

    /// A synced write made the whole file durable; the log's last log id is now `last`
    /// (lower than before after a truncation).
    pub(crate) fn synced(&self, last: Option<LogId<NodeId>>) {
        self.sender.send_modify(|durable| {
            durable.epoch += 1;
            durable.log_id = last;
        });
    }

    /// A background sync of the writes up to `log_id`, queued at `epoch`, is done: true if
    /// that moved the durable log id.
    fn advanced(&self, log_id: LogId<NodeId>, epoch: u64) -> bool {
        self.sender.send_if_modified(|durable| {
            let later = durable.log_id.is_none_or(|at| at.index < log_id.index);
            if durable.epoch == epoch && later {
                durable.log_id = Some(log_id);
                return true;
            }
            false
        })
    }

    /// A sync of the writes up to `log_id`, made since the last synced write.
    pub(crate) fn job(&self, log_id: LogId<NodeId>, handle: Option<Box<dyn FileHandle>>) -> Job {
        Job {
            log_id,
            epoch: self.sender.borrow().epoch,
            handle,
        }
    }

    /// [`Self::advanced`] for `job`, without its sync.
    #[cfg(test)]
    pub(crate) fn advanced_for_tests(&self, job: Job) -> bool {
        self.advanced(job.log_id, job.epoch)
    }

    /// The log failed: its tail is unknown until it is reopened.
    pub(crate) fn failed(&self, failure: String) {
        self.sender.send_modify(|durable| {
            durable.failure.get_or_insert(failure);
        });
    }

    /// `committed` clamped to the durable log: the part of it durable on this node too.
    pub(crate) fn clamp(&self, committed: Option<LogId<NodeId>>) -> Option<LogId<NodeId>> {
        let durable = self.sender.borrow().log_id;
        match (committed, durable) {
            (Some(committed), Some(durable)) if durable.index < committed.index => Some(durable),
            (Some(committed), Some(_)) => Some(committed),
            _ => None,
        }
    }

    /// Waits until the entry at `index` is durable; an error once a background sync failed.
    pub(crate) async fn wait_for(&self, index: u64) -> Result<(), String> {
        let mut receiver = self.sender.subscribe();
        let durable = receiver
            .wait_for(|durable| {
                durable.failure.is_some() || durable.log_id.is_some_and(|at| at.index >= index)
            })
            .await
            .map_err(|error| error.to_string())?;
        match &durable.failure {
            Some(failure) => Err(failure.clone()),
            None => Ok(()),
        }
    }
}

/// One sync to run: the writes up to `log_id`, queued at `epoch`, in the file `handle` names
/// (`None`: a log that is never synced, for tests that do not crash).
pub(crate) struct Job {
    log_id: LogId<NodeId>,
    epoch: u64,
    handle: Option<Box<dyn FileHandle>>,
}

/// The thread that syncs one log's deferred writes.
pub(crate) struct LogFlusher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for LogFlusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogFlusher").finish_non_exhaustive()
    }
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    flushed: Flushed,
    /// Called after the durable log id moved (the answers at commit it releases).
    on_flushed: Box<dyn Fn() + Send + Sync>,
    /// While true, the thread waits before its sync (tests: the leader's log not yet durable).
    #[cfg(test)]
    held: (Mutex<bool>, Condvar),
}

#[derive(Default)]
struct Queue {
    /// The latest job: a sync of the file covers every earlier write to it, so a job queued
    /// while another waits replaces it.
    next: Option<Job>,
    stop: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain fields: a panic elsewhere leaves them consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LogFlusher {
    /// Starts the thread, publishing to `flushed`, calling `on_flushed` after each advance.
    pub(crate) fn start(
        flushed: Flushed,
        on_flushed: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            flushed,
            on_flushed: Box::new(on_flushed),
            #[cfg(test)]
            held: (Mutex::new(false), Condvar::new()),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("raft-log-flusher".into())
                .spawn(move || run(&shared))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `job` (replacing one not yet started).
    pub(crate) fn queue(&self, job: Job) {
        lock(&self.shared.queue).next = Some(job);
        self.shared.work.notify_one();
    }

    /// Holds (or releases) the thread before its next sync.
    #[cfg(test)]
    pub(crate) fn hold(&self, held: bool) {
        *lock(&self.shared.held.0) = held;
        self.shared.held.1.notify_all();
    }
}

impl Drop for LogFlusher {
    /// Stops the thread once it has run what is queued.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_one();
        #[cfg(test)]
        self.hold(false);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The thread: runs each job, until stopped or a sync fails.
fn run(shared: &Shared) {
    loop {
        let job = {
            let mut queue = lock(&shared.queue);
            while queue.next.is_none() && !queue.stop {
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            match queue.next.take() {
                Some(job) => job,
                None => return,
            }
        };
        #[cfg(test)]
        {
            let mut held = lock(&shared.held.0);
            while *held {
                held = shared
                    .held
                    .1
                    .wait(held)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let synced = job.handle.map_or(Ok(()), |mut handle| handle.sync_data());
        match synced {
            Ok(()) => {
                if shared.flushed.advanced(job.log_id, job.epoch) {
                    (shared.on_flushed)();
                }
            }
            Err(error) => {
                shared.flushed.failed(format!(
                    "raft log: a background sync up to index {} failed: {error}",
                    job.log_id.index
                ));
                (shared.on_flushed)();
                return;
            }
        }
    }
}
