//! The sync helper: a long-lived thread of the store that runs a group commit's segment syncs
//! beside the leader's, when one sync covers segments of several files (a server's stream
//! and its access log). Two `fdatasync`s at once take about the time of one on the devices
//! we measure, so the second file's flush leaves the critical path; the leader still returns
//! only once every sync has (`docs/PERFORMANCE.md`, "Design decisions"). The thread is
//! started at the first such sync, sleeps between jobs and ends with the store: a thread
//! started per sync cost more than the overlap saved.

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Mutex;

use kimberlite_storage::backend::SegmentSync;
use kimberlite_storage::StorageError;

/// What the helper hands back: the syncs it was given (the store records them) and the first
/// error among them.
pub(crate) type Done = (Vec<SegmentSync>, Result<(), StorageError>);

/// The store's sync helper, started on first use.
#[derive(Default)]
pub(crate) struct SyncHelper {
    /// `None` until a sync of several segments needs it, and again after it stopped.
    link: Mutex<Option<SyncThread>>,
}

impl std::fmt::Debug for SyncHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHelper").finish_non_exhaustive()
    }
}

/// A thread that runs the segment syncs handed to it, in turn, and hands each job back with
/// its outcome: the sync helper's, and the writeback's (`crate::writeback`). It ends once
/// `jobs` is dropped.
pub(crate) struct SyncThread {
    pub(crate) jobs: Sender<Vec<SegmentSync>>,
    pub(crate) done: Receiver<Done>,
}

impl SyncThread {
    /// Starts the thread `name`; `None` when it cannot be started (the caller then runs the
    /// syncs itself).
    pub(crate) fn start(name: &str) -> Option<Self> {
        let (jobs, job_queue) = mpsc::channel::<Vec<SegmentSync>>();
        let (done_sender, done) = mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(mut syncs) = job_queue.recv() {
                    let result = run_in_turn(&mut syncs);
                    if done_sender.send((syncs, result)).is_err() {
                        break;
                    }
                }
            })
            .ok()?;
        Some(Self { jobs, done })
    }
}

impl SyncHelper {
    /// Runs every sync of `syncs`: the first on this thread and, when there are more, the
    /// others on the helper at the same time. Returns once all have run, with `syncs` whole
    /// again (in another order), and the first error, if any.
    pub(crate) fn run_all(&self, syncs: &mut Vec<SegmentSync>) -> Result<(), StorageError> {
        if syncs.len() < 2 {
            return run_in_turn(syncs);
        }
        // One leader syncs at a time; should another come, it runs its syncs itself.
        let Ok(mut link) = self.link.try_lock() else {
            return run_in_turn(syncs);
        };
        if link.is_none() {
            *link = SyncThread::start("kimberlite-sync");
        }
        let Some(helper) = link.as_ref() else {
            return run_in_turn(syncs);
        };
        let others = syncs.split_off(1);
        if let Err(refused) = helper.jobs.send(others) {
            // The thread is gone: run them here, and start another next time.
            syncs.extend(refused.0);
            *link = None;
            return run_in_turn(syncs);
        }
        let mine = run_in_turn(syncs);
        match helper.done.recv() {
            Ok((others, theirs)) => {
                syncs.extend(others);
                mine.and(theirs)
            }
            Err(_) => {
                *link = None;
                mine.and(Err(StorageError::Io {
                    context: "the sync helper stopped during a sync".into(),
                    source: std::io::Error::other("sync helper thread ended"),
                }))
            }
        }
    }
}

/// Runs each of `syncs` in turn, all of them even after a failure; the first error.
pub(crate) fn run_in_turn(syncs: &mut [SegmentSync]) -> Result<(), StorageError> {
    let mut outcome = Ok(());
    for sync in syncs {
        let result = sync.run();
        if outcome.is_ok() {
            outcome = result;
        }
    }
    outcome
}
