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
type Done = (Vec<SegmentSync>, Result<(), StorageError>);

/// The store's sync helper, started on first use.
#[derive(Default)]
pub(crate) struct SyncHelper {
    /// `None` until a sync of several segments needs it, and again after it stopped.
    link: Mutex<Option<Link>>,
}

impl std::fmt::Debug for SyncHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHelper").finish_non_exhaustive()
    }
}

/// The channels to a running helper thread (it ends once `jobs` is dropped).
struct Link {
    jobs: Sender<Vec<SegmentSync>>,
    done: Receiver<Done>,
}

impl Link {
    /// Starts the thread; `None` when it cannot be started (the syncs then run in turn).
    fn start() -> Option<Self> {
        let (jobs, job_queue) = mpsc::channel::<Vec<SegmentSync>>();
        let (done_sender, done) = mpsc::channel::<Done>();
        std::thread::Builder::new()
            .name("kimberlite-sync".into())
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
            *link = Link::start();
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
