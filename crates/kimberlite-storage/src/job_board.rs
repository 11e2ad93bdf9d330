//! [`JobBoard`]: where a store posts work for its long-lived helper threads.
//!
//! Both of the store's helpers (verified reads, [`crate::verify_pool`]; encoding a large
//! batch beside its appender, [`crate::batch_job`]) work the same way: the calling thread posts a job and
//! works on it itself; helpers started once per store wake up, claim what is left of the job,
//! and go back to sleep. The job does its own claiming (each job type knows its pieces), so a
//! caller never waits for a helper that has not started. This module is only the board: post,
//! wake, take, shut down.
//!
//! Helpers are started at the first job that wants them and told to exit when the board is
//! dropped; they are not joined (an idle helper holds nothing but the board).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Work a helper can share: `run` claims and does pieces until none is left unclaimed.
pub trait BoardJob: Send + Sync + 'static {
    /// Does unclaimed pieces of the job until none is left.
    fn run(&self);
}

/// Locks, ignoring poison: every value behind the store's helper locks is replaced whole, so
/// a panic elsewhere cannot leave one half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins (each a CPU pause) a thread makes, waiting for a piece another thread is working
/// on, before it sleeps: a piece (a chunk of 64 events, a block of 32 frames) is due within
/// ~5-15 µs, sooner than a sleep and a wake-up take on the machine of `docs/PERFORMANCE.md`.
const SPINS_BEFORE_SLEEP: usize = 4_096;

/// Spins up to [`SPINS_BEFORE_SLEEP`] times until `done` says so; returns whether it did (if
/// not, the caller goes on to sleep on its condition variable).
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    for _ in 0..SPINS_BEFORE_SLEEP {
        if done() {
            return true;
        }
        std::hint::spin_loop();
    }
    done()
}

/// Where a thread waits for a condition other threads make true (a chunk encoded, the last
/// block of a read verified): it spins briefly ([`spin_until`]), then sleeps; a thread that
/// makes the condition true calls [`Wakeup::notify`], which takes the lock only when someone
/// sleeps.
///
/// The condition must be read and made true with `SeqCst` atomics: either the waiter sees it
/// true, or the notifier sees the waiter counted among the sleepers and notifies under the
/// lock, which the waiter holds from counting itself until it waits.
#[derive(Debug, Default)]
pub(crate) struct Wakeup {
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    condvar: Condvar,
}

impl Wakeup {
    /// Returns once `ready` is true.
    pub(crate) fn wait_until(&self, ready: impl Fn() -> bool) {
        if spin_until(&ready) {
            return;
        }
        let mut guard = lock(&self.lock);
        self.sleepers.fetch_add(1, Ordering::SeqCst);
        while !ready() {
            guard = self
                .condvar
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.sleepers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Wakes the threads waiting in [`Self::wait_until`]; call it after making their
    /// condition true.
    pub(crate) fn notify(&self) {
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _guard = lock(&self.lock);
            self.condvar.notify_all();
        }
    }
}

#[derive(Debug)]
struct State<J> {
    job: Option<Arc<J>>,
    /// Bumped for each job posted, so a helper runs each job at most once.
    generation: u64,
    /// Bumped by [`JobBoard::wake_ahead`].
    wake_calls: u64,
    shutdown: bool,
}

#[derive(Debug)]
struct Shared<J> {
    state: Mutex<State<J>>,
    wake: Condvar,
    /// `state.generation`, readable without the lock, for a helper that watches for the next
    /// job before it goes to sleep.
    posted: AtomicU64,
    /// How long a helper watches for the next job after one, before it sleeps.
    watch: Duration,
}

/// The job board of one store's helpers of one kind; see the module docs.
#[derive(Debug)]
pub struct JobBoard<J: BoardJob> {
    shared: Arc<Shared<J>>,
    name: &'static str,
    started: usize,
}

impl<J: BoardJob> JobBoard<J> {
    /// A board whose helper threads are named `name`; none is started yet. After a job, a
    /// helper watches for the next one for `watch` (spinning) before it sleeps: worth it
    /// where jobs come back to back, since a wake-up costs tens of microseconds on the machine
    /// of `docs/PERFORMANCE.md`; a waste of a core where they do not.
    #[must_use]
    pub fn new(name: &'static str, watch: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    job: None,
                    generation: 0,
                    wake_calls: 0,
                    shutdown: false,
                }),
                wake: Condvar::new(),
                posted: AtomicU64::new(0),
                watch,
            }),
            name,
            started: 0,
        }
    }

    /// Helper threads started so far.
    #[must_use]
    pub fn started(&self) -> usize {
        self.started
    }

    /// Starts helpers until `wanted` have been started. One that fails to start is not
    /// retried now: its share is done by whoever runs the job (the caller at worst).
    pub fn start_helpers(&mut self, wanted: usize) {
        while self.started < wanted {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || helper(&shared));
            self.started += 1;
            if spawned.is_err() {
                return;
            }
        }
    }

    /// Posts `job` and wakes the helpers; the caller then works on it too.
    pub fn post(&self, job: &Arc<J>) {
        let mut state = lock(&self.shared.state);
        state.job = Some(Arc::clone(job));
        state.generation += 1;
        self.shared
            .posted
            .store(state.generation, Ordering::Release);
        drop(state);
        self.shared.wake.notify_all();
    }

    /// Wakes the helpers ahead of a job the caller is about to post (a read that is still
    /// reading its frames), so that they are running when it comes: each watches for a job for
    /// up to [`WATCH_AFTER_WAKE_AHEAD`], then sleeps again.
    pub fn wake_ahead(&self) {
        lock(&self.shared.state).wake_calls += 1;
        self.shared.wake.notify_all();
    }

    /// Takes the posted job down (once the caller has what it needs from it), so the board
    /// does not keep it alive.
    pub fn clear(&self) {
        lock(&self.shared.state).job = None;
    }
}

impl<J: BoardJob> Drop for JobBoard<J> {
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.wake.notify_all();
    }
}

/// How long a helper woken by [`JobBoard::wake_ahead`] watches for the job. A read of 1,000
/// events spends ~50 µs reading its frames before it posts them; a wake-up takes tens of
/// microseconds on the machine of `docs/PERFORMANCE.md`.
pub const WATCH_AFTER_WAKE_AHEAD: Duration = Duration::from_micros(200);

/// Spins between two looks at the clock while a helper watches for the next job: reading
/// the clock at every spin made it ~5% of a read's profile (on the otherwise idle core).
const SPINS_PER_CLOCK_READ: usize = 64;

/// Spins until a job after generation `seen` is posted or `watch` has passed.
fn watch_for_next_job(posted: &AtomicU64, seen: u64, watch: Duration) {
    let watching = Instant::now();
    while watching.elapsed() < watch {
        for _ in 0..SPINS_PER_CLOCK_READ {
            if posted.load(Ordering::Acquire) != seen {
                return;
            }
            std::hint::spin_loop();
        }
    }
}

/// A helper: runs each newly posted job, until the board is dropped.
fn helper<J: BoardJob>(shared: &Shared<J>) {
    let mut seen = 0;
    let mut seen_wake_calls = 0;
    loop {
        let job = {
            let mut state = lock(&shared.state);
            loop {
                if state.shutdown {
                    return;
                }
                if state.generation != seen {
                    seen = state.generation;
                    if let Some(job) = &state.job {
                        break Some(Arc::clone(job));
                    }
                }
                if state.wake_calls != seen_wake_calls {
                    seen_wake_calls = state.wake_calls;
                    break None;
                }
                state = shared
                    .wake
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let watch = match job {
            Some(job) => {
                job.run();
                shared.watch
            }
            None => WATCH_AFTER_WAKE_AHEAD,
        };
        watch_for_next_job(&shared.posted, seen, watch);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl BoardJob for Counting {
        fn run(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn wait_for(mut condition: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !condition() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn each_helper_runs_each_posted_job_once() {
        let mut board = JobBoard::new("test-helper", Duration::from_micros(50));
        board.start_helpers(2);
        board.start_helpers(1); // Never fewer than already started.
        assert_eq!(board.started(), 2);
        let job = Arc::new(Counting::default());
        board.post(&job);
        assert!(wait_for(|| job.0.load(Ordering::SeqCst) == 2));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(job.0.load(Ordering::SeqCst), 2, "no helper ran it twice");
        board.clear();
        assert!(wait_for(|| Arc::strong_count(&job) == 1));
    }

    #[test]
    fn a_helper_woken_ahead_runs_the_job_posted_next() {
        let mut board = JobBoard::new("test-helper", Duration::ZERO);
        board.start_helpers(1);
        board.wake_ahead();
        board.wake_ahead();
        let job = Arc::new(Counting::default());
        board.post(&job);
        assert!(wait_for(|| job.0.load(Ordering::SeqCst) == 1));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(job.0.load(Ordering::SeqCst), 1, "run once");
    }

    #[test]
    fn watching_ends_at_the_next_job_or_when_the_watch_is_over() {
        let posted = AtomicU64::new(3);
        let start = Instant::now();
        watch_for_next_job(&posted, 2, Duration::from_secs(60));
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "a job was already posted"
        );
        let start = Instant::now();
        watch_for_next_job(&posted, 3, Duration::from_millis(20));
        assert!(start.elapsed() >= Duration::from_millis(20));
        let posted = Arc::new(posted);
        let poster = {
            let posted = Arc::clone(&posted);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(10));
                posted.store(4, Ordering::Release);
            })
        };
        let start = Instant::now();
        watch_for_next_job(&posted, 3, Duration::from_secs(60));
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "saw the job posted meanwhile"
        );
        poster.join().unwrap();
    }

    #[test]
    fn a_dropped_board_stops_its_helpers() {
        let mut board: JobBoard<Counting> = JobBoard::new("test-helper", Duration::from_micros(50));
        board.start_helpers(2);
        let shared = Arc::clone(&board.shared);
        drop(board);
        assert!(
            wait_for(|| Arc::strong_count(&shared) == 1),
            "the helpers did not exit"
        );
    }
}
