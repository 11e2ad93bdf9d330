//! [`AppliedSaver`]: makes applied batches durable after they are answered, off the
//! acknowledgement path (docs/REPLICATION.md, section "State beside the store").
//!
//! Applying a batch writes its events to the store unsynced and queues the batch's record of
//! the applied state. One thread per state machine, started with it, saves what is queued:
//! it syncs the store's segments, then appends the records queued before that sync began and
//! syncs them. So the applied state file never says an entry is applied whose events the
//! store could lose; the store may be ahead of it, which applying again handles. Records
//! queued while a save runs wait for the next one, which covers them all: one store sync and
//! one record sync for any number of batches; after a save the thread waits [`SAVE_PACE`], so
//! that under steady appends its syncs stay few beside the Raft log's.
//!
//! Records are taken from the queue only under the files' lock, so they reach the file in
//! apply order whoever saves them: the thread, or [`AppliedSaver::flush`] (before a snapshot
//! is built, an install, a rewrite, a close). A failed save latches: nothing more is saved,
//! and the state machine refuses later applies ([`crate::Halt::SaveFailed`]).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kimberlite::Kimberlite;
use openraft::LogId;

use crate::applied_file::{AppliedFile, AppliedRecord, AppliedState};
use crate::types::NodeId;

/// The least time between two saves of the thread: about this much more is applied again
/// after a crash, and under steady appends a node makes two syncs per this time beside its
/// Raft log's, however many batches it applies.
pub const SAVE_PACE: Duration = Duration::from_millis(100);

/// The background saver of one state machine's applied state.
#[derive(Debug)]
pub(crate) struct AppliedSaver {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    queue: Mutex<Queue>,
    /// Wakes the thread when records are queued or it must stop.
    work: Condvar,
    files: Mutex<Files>,
}

#[derive(Debug, Default)]
struct Queue {
    records: Vec<AppliedRecord>,
    /// The last applied log id the file holds durably (as far as this saver wrote it).
    saved: Option<LogId<NodeId>>,
    /// The file has grown enough to be rewritten whole.
    rewrite_wanted: bool,
    failure: Option<String>,
    stop: bool,
}

#[derive(Debug)]
struct Files {
    store: Kimberlite,
    /// `None` once closed: nothing more is written.
    file: Option<AppliedFile>,
    /// Whether the store is synced before records are saved (not under `Unsynced`).
    sync_store: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain fields updated together: a panic elsewhere leaves them consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl AppliedSaver {
    /// Starts saving records for `file`, syncing `store` first when `sync_store`; the file
    /// holds `saved` as its last applied log id.
    pub(crate) fn start(
        store: Kimberlite,
        file: AppliedFile,
        sync_store: bool,
        saved: Option<LogId<NodeId>>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                saved,
                ..Queue::default()
            }),
            work: Condvar::new(),
            files: Mutex::new(Files {
                store,
                file: Some(file),
                sync_store,
            }),
        });
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("applied-saver".into())
                .spawn(move || run(&shared))?
        };
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `record`, whose batch is applied (its events written to the store), for the
    /// next save.
    pub(crate) fn queue(&self, record: AppliedRecord) {
        lock(&self.shared.queue).records.push(record);
        self.shared.work.notify_one();
    }

    /// Why saving stopped, if it did.
    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.shared.queue).failure.clone()
    }

    /// Whether the file has grown enough to be rewritten whole ([`Self::flush`] with the
    /// whole state).
    pub(crate) fn rewrite_wanted(&self) -> bool {
        lock(&self.shared.queue).rewrite_wanted
    }

    /// The last applied log id the applied state file holds durably.
    pub(crate) fn saved(&self) -> Option<LogId<NodeId>> {
        lock(&self.shared.queue).saved
    }

    /// Saves every record queued now (and, with `full`, rewrites the file as that state,
    /// which must cover them), returning once they are durable. The caller holds the state
    /// machine's lock, so nothing is queued meanwhile.
    pub(crate) fn flush(&self, full: Option<AppliedState>) -> Result<(), String> {
        let mut files = lock(&self.shared.files);
        self.shared.save(&mut files, full)
    }

    /// Has the files of a new generation saved from now on (the caller flushed the old
    /// one's records first).
    pub(crate) fn replace(
        &self,
        store: Kimberlite,
        file: AppliedFile,
        saved: Option<LogId<NodeId>>,
    ) {
        let mut files = lock(&self.shared.files);
        files.store = store;
        files.file = Some(file);
        lock(&self.shared.queue).saved = saved;
    }

    /// Saves what is queued (a stopped node applies less again), then writes nothing more and
    /// releases the store.
    pub(crate) fn close(&self) {
        let mut files = lock(&self.shared.files);
        let _ = self.shared.save(&mut files, None);
        files.file = None;
        files.store = Kimberlite::in_memory();
    }
}

impl Drop for AppliedSaver {
    /// Stops the thread once it has saved what is queued.
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.work.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Shared {
    /// Syncs the store, then appends the queued records (or rewrites the file as `full`) and
    /// syncs them. Called with the files' lock held.
    fn save(&self, files: &mut Files, full: Option<AppliedState>) -> Result<(), String> {
        let records = {
            let mut queue = lock(&self.queue);
            if let Some(failure) = &queue.failure {
                return Err(failure.clone());
            }
            std::mem::take(&mut queue.records)
        };
        let Some(file) = files.file.as_mut() else {
            // Closed: the node stopped; what is queued is applied again at its next start.
            return Ok(());
        };
        if records.is_empty() && full.is_none() {
            return Ok(());
        }
        let saved = match &full {
            Some(state) => Some(state.last_applied),
            None => records.last().map(|record| match record {
                AppliedRecord::Batch { last_applied, .. } => *last_applied,
                AppliedRecord::Full(state) => state.last_applied,
            }),
        };
        let outcome = (|| {
            if files.sync_store {
                // The store's events before the records that say they are applied.
                files.store.sync_segments().map_err(|e| e.to_string())?;
            }
            match &full {
                Some(state) => file.rewrite(state),
                None => file.append(&records),
            }
            .map_err(|e| e.to_string())?;
            Ok::<bool, String>(file.wants_rewrite(&AppliedState::default()))
        })();
        let mut queue = lock(&self.queue);
        match outcome {
            Ok(rewrite_wanted) => {
                if let Some(saved) = saved {
                    queue.saved = saved;
                }
                queue.rewrite_wanted = rewrite_wanted;
                Ok(())
            }
            Err(failure) => {
                queue.failure = Some(failure.clone());
                Err(failure)
            }
        }
    }
}

/// The thread: saves whenever records are queued, until stopped (after saving what is
/// queued) or a save fails.
fn run(shared: &Shared) {
    loop {
        {
            let mut queue = lock(&shared.queue);
            while queue.records.is_empty() && !queue.stop {
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if queue.records.is_empty() || queue.failure.is_some() {
                return;
            }
        }
        {
            let mut files = lock(&shared.files);
            if shared.save(&mut files, None).is_err() {
                return;
            }
        }
        pause(shared);
    }
}

/// Waits [`SAVE_PACE`] after a save (less if stopped), so that the batches applied meanwhile
/// share the next save: fewer syncs beside the Raft log's, which acknowledgements wait for.
fn pause(shared: &Shared) {
    let until = Instant::now() + SAVE_PACE;
    let mut queue = lock(&shared.queue);
    while !queue.stop {
        let Some(left) = until.checked_duration_since(Instant::now()) else {
            return;
        };
        queue = shared
            .work
            .wait_timeout(queue, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}
