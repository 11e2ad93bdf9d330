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
pub(crate) struct SyncHelper {
    thread: Mutex<SyncThread>,
}

impl Default for SyncHelper {
    fn default() -> Self {
        Self {
            thread: Mutex::new(SyncThread::new("kimberlite-sync")),
        }
    }
}

impl std::fmt::Debug for SyncHelper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncHelper").finish_non_exhaustive()
    }
}

/// A thread that runs the segment syncs handed to it, in turn, and hands each job back with
/// its outcome: the sync helper's, and the writeback's (`crate::writeback`). Started at the
/// first job, and again at the next job after it stopped; it ends with its owner.
pub(crate) struct SyncThread {
    name: &'static str,
    /// `None` until the first job, and again after the thread stopped.
    link: Option<Link>,
}

/// The channels to a running thread (it ends once `jobs` is dropped).
struct Link {
    jobs: Sender<Vec<SegmentSync>>,
    done: Receiver<Done>,
}

impl SyncThread {
    /// A thread named `name`, not started yet.
    pub(crate) fn new(name: &'static str) -> Self {
        Self { name, link: None }
    }

    /// Hands `syncs` to the thread, starting it if needed; gives them back when there is no
    /// thread to run them (the caller then runs them itself).
    pub(crate) fn send(&mut self, syncs: Vec<SegmentSync>) -> Result<(), Vec<SegmentSync>> {
        if self.link.is_none() {
            self.link = Link::start(self.name);
        }
        let Some(link) = &self.link else {
            return Err(syncs);
        };
        link.jobs.send(syncs).map_err(|refused| {
            // The thread is gone: start another next time.
            self.link = None;
            refused.0
        })
    }

    /// Waits for the job sent last; a thread that stopped meanwhile is an error.
    pub(crate) fn wait(&mut self) -> Done {
        let received = self.link.as_ref().and_then(|link| link.done.recv().ok());
        received.unwrap_or_else(|| self.stopped())
    }

    /// The job sent last if it has finished.
    pub(crate) fn poll(&mut self) -> Option<Done> {
        let received = self.link.as_ref()?.done.try_recv();
        match received {
            Ok(done) => Some(done),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(self.stopped()),
        }
    }

    fn stopped(&mut self) -> Done {
        self.link = None;
        let error = StorageError::Io {
            context: format!("the thread {} stopped during a sync", self.name),
            source: std::io::Error::other("sync thread ended"),
        };
        (Vec::new(), Err(error))
    }
}

impl Link {
    fn start(name: &str) -> Option<Self> {
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
        let Ok(mut helper) = self.thread.try_lock() else {
            return run_in_turn(syncs);
        };
        let others = syncs.split_off(1);
        if let Err(refused) = helper.send(others) {
            syncs.extend(refused);
            return run_in_turn(syncs);
        }
        let mine = run_in_turn(syncs);
        let (others, theirs) = helper.wait();
        syncs.extend(others);
        mine.and(theirs)
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
