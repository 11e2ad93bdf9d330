//! [`JobBoard`]: where a store posts work for its helper threads.
//!
//! Both kinds of helper (verified reads, `verify_pool`, a board per store; encoding a large
//! batch beside its appender, `encoder`, one board shared by the stores that use it) work the
//! same way: the calling thread posts a job and works on it itself; helpers started once wake
//! up, claim what is left of the job, and go back to sleep. The job does its own claiming
//! (each job type knows its pieces), so a caller never waits for a helper that has not
//! started. This module is only the board: post, wake, take, shut down.
//!
//! Helpers are started at the first job that wants them and belong to the board: dropping it
//! tells them to exit and joins them, so no helper outlives what started it.
//!
//! After a job a helper may *watch* for the next one (spin) before it sleeps, because waking
//! a sleeping thread costs a large share of a short job. How long is the board's [`Watch`]:
//! never, or as long as the jobs have lately been coming ([`watch_after`]), so that a caller
//! posting jobs back to back (an import) finds its helper running and a caller posting now
//! and then costs no spinning at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Work a helper can share: `run` claims and does pieces until none is left unclaimed.
pub(crate) trait BoardJob: Send + Sync + 'static {
    /// Does unclaimed pieces of the job until none is left.
    fn run(&self);
}

/// Locks, ignoring poison: every value behind the store's helper locks is replaced whole, so
/// a panic elsewhere cannot leave one half-written.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins a thread makes, waiting for a piece another thread is working on, before it sleeps;
/// docs/PERFORMANCE.md, section "Spin-waits".
const SPINS_BEFORE_SLEEP: usize = 4_096;

/// Spins between two offers of the core to another runnable thread ([`yield_core`]) while a
/// thread spin-waits; docs/PERFORMANCE.md, section "Spin-waits".
const SPINS_PER_YIELD: usize = 64;

/// Offers this thread's core to another runnable thread (the store's tree worker, an
/// appender) and returns at once if there is none. Why: on two cores a spinning helper
/// otherwise holds a core that the tree worker needs for as long as it spins.
fn yield_core() {
    std::thread::yield_now();
}

/// Spins up to [`SPINS_BEFORE_SLEEP`] times until `done` says so, offering the core to other
/// threads every [`SPINS_PER_YIELD`] spins; returns whether it did (if not, the caller goes on
/// to sleep on its condition variable).
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    spin_until_yielding(&mut done, yield_core)
}

/// [`spin_until`] with `pause` called in place of [`yield_core`] (for tests).
fn spin_until_yielding(mut done: impl FnMut() -> bool, mut pause: impl FnMut()) -> bool {
    for spin in 1..=SPINS_BEFORE_SLEEP {
        if done() {
            return true;
        }
        std::hint::spin_loop();
        if spin % SPINS_PER_YIELD == 0 {
            pause();
        }
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

/// How long a board's helpers watch for the next job after finishing one, before they sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Never: a helper sleeps as soon as it is done.
    Never,
    /// As long as jobs have lately been coming, up to this long: see [`watch_after`].
    UpTo(Duration),
}

/// The shortest watch a helper keeps once jobs come within the limit of each other (enough to
/// cover the caller's own work between two jobs of a tight loop); docs/PERFORMANCE.md,
/// section "Spin-waits".
pub(crate) const MIN_WATCH: Duration = Duration::from_micros(50);

/// How long to watch for the next job, given the gap between the last job and the one
/// before it (from the helper finishing the earlier one to the later one being posted; zero
/// if it was posted before that) and the board's `limit`: twice that gap, at least
/// [`MIN_WATCH`], at most `limit`, if the gap was at most `limit`; otherwise (or with no gap
/// known yet) no watch at all.
///
/// Why: watching costs a core for as long as it lasts, and saves a wake-up only if the job
/// comes meanwhile. Jobs that came within the limit of each other are likely to keep doing
/// so (a loop appending batches with some work between them); twice the last gap absorbs
/// its jitter without spinning long after the loop has stopped. A helper that slept through
/// a long gap does not watch until the jobs come close together again.
#[must_use]
pub(crate) fn watch_after(last_gap: Option<Duration>, watch: Watch) -> Duration {
    match (watch, last_gap) {
        (Watch::UpTo(limit), Some(gap)) if gap <= limit => (2 * gap).clamp(MIN_WATCH, limit),
        _ => Duration::ZERO,
    }
}

#[derive(Debug)]
struct State<J> {
    job: Option<Arc<J>>,
    /// When `job` was posted.
    posted_at: Instant,
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
    watch: Watch,
}

/// A job board and its helpers; see the module docs.
#[derive(Debug)]
pub(crate) struct JobBoard<J: BoardJob> {
    shared: Arc<Shared<J>>,
    name: &'static str,
    started: usize,
    /// The helpers started, joined when the board is dropped.
    helpers: Vec<JoinHandle<()>>,
}

impl<J: BoardJob> JobBoard<J> {
    /// A board whose helper threads are named `name`; none is started yet. After a job, a
    /// helper watches for the next one as `watch` says (spinning) before it sleeps: worth it
    /// where jobs come back to back, a waste of a core where they do not.
    #[must_use]
    pub(crate) fn new(name: &'static str, watch: Watch) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    job: None,
                    posted_at: Instant::now(),
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
            helpers: Vec::new(),
        }
    }

    #[cfg(test)]
    /// Helper threads started so far.
    #[must_use]
    pub(crate) fn started(&self) -> usize {
        self.started
    }

    /// Starts helpers until `wanted` have been started. One that fails to start is not
    /// retried now: its share is done by whoever runs the job (the caller at worst).
    pub(crate) fn start_helpers(&mut self, wanted: usize) {
        while self.started < wanted {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(self.name.into())
                .spawn(move || helper(&shared));
            self.started += 1;
            match spawned {
                Ok(handle) => self.helpers.push(handle),
                Err(_) => return,
            }
        }
    }

    /// Posts `job` and wakes the helpers; the caller then works on it too.
    pub(crate) fn post(&self, job: &Arc<J>) {
        let mut state = lock(&self.shared.state);
        state.job = Some(Arc::clone(job));
        state.posted_at = Instant::now();
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
    pub(crate) fn wake_ahead(&self) {
        lock(&self.shared.state).wake_calls += 1;
        self.shared.wake.notify_all();
    }

    /// Takes `job` down if it is still the one posted (once its caller has what it needs
    /// from it), so the board does not keep it alive; a job posted since by another caller
    /// of a shared board stays up.
    pub(crate) fn clear(&self, job: &Arc<J>) {
        let mut state = lock(&self.shared.state);
        if state
            .job
            .as_ref()
            .is_some_and(|posted| Arc::ptr_eq(posted, job))
        {
            state.job = None;
        }
    }
}

impl<J: BoardJob> Drop for JobBoard<J> {
    /// Tells the helpers to exit and joins them. A helper watching for the next job sees the
    /// bumped `posted` and stops watching; one running a job finishes it first.
    fn drop(&mut self) {
        lock(&self.shared.state).shutdown = true;
        self.shared.posted.fetch_add(1, Ordering::Release);
        self.shared.wake.notify_all();
        for helper in self.helpers.drain(..) {
            // A helper that panicked has exited too; its job's caller saw the job unfinished.
            let _ = helper.join();
        }
    }
}

/// How long a helper woken by [`JobBoard::wake_ahead`] watches for the job (a read still
/// reading its frames); docs/PERFORMANCE.md, section "Spin-waits".
pub(crate) const WATCH_AFTER_WAKE_AHEAD: Duration = Duration::from_micros(200);

/// Spins between two looks at the clock while a helper watches for the next job (the clock is
/// not free); docs/PERFORMANCE.md, section "Spin-waits".
const SPINS_PER_CLOCK_READ: usize = 64;

/// Spins until a job after generation `seen` is posted or `watch` has passed, offering the
/// core to other threads between two looks at the clock.
fn watch_for_next_job(posted: &AtomicU64, seen: u64, watch: Duration) {
    watch_yielding(posted, seen, watch, yield_core);
}

/// [`watch_for_next_job`] with `pause` called in place of [`yield_core`] (for tests).
fn watch_yielding(posted: &AtomicU64, seen: u64, watch: Duration, mut pause: impl FnMut()) {
    let watching = Instant::now();
    while watching.elapsed() < watch {
        for _ in 0..SPINS_PER_CLOCK_READ {
            if posted.load(Ordering::Acquire) != seen {
                return;
            }
            std::hint::spin_loop();
        }
        pause();
    }
}

/// A helper: runs each newly posted job, until the board is dropped.
fn helper<J: BoardJob>(shared: &Shared<J>) {
    let mut seen = 0;
    let mut seen_wake_calls = 0;
    // When this helper last finished a job, and the gap before the job after it.
    let mut finished_at: Option<Instant> = None;
    let mut last_gap = None;
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
                        last_gap = finished_at
                            .map(|finished| state.posted_at.saturating_duration_since(finished));
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
                finished_at = Some(Instant::now());
                watch_after(last_gap, shared.watch)
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
        let mut board = JobBoard::new("test-helper", Watch::UpTo(Duration::from_micros(50)));
        board.start_helpers(2);
        board.start_helpers(1); // Never fewer than already started.
        assert_eq!(board.started(), 2);
        let job = Arc::new(Counting::default());
        board.post(&job);
        assert!(wait_for(|| job.0.load(Ordering::SeqCst) == 2));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(job.0.load(Ordering::SeqCst), 2, "no helper ran it twice");
        board.clear(&job);
        assert!(wait_for(|| Arc::strong_count(&job) == 1));
    }

    /// No helper outlives its board: dropping it joins them, even while they watch for the
    /// next job, and they hold nothing of it afterwards.
    #[test]
    fn dropping_a_board_joins_its_helpers() {
        let mut board = JobBoard::new("test-helper", Watch::UpTo(Duration::from_secs(5)));
        board.start_helpers(2);
        let job = Arc::new(Counting::default());
        board.post(&job);
        assert!(wait_for(|| job.0.load(Ordering::SeqCst) == 2));
        let shared = Arc::downgrade(&board.shared);
        let started = Instant::now();
        drop(board);
        assert_eq!(shared.strong_count(), 0, "every helper has exited");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "a watching helper stops watching"
        );
    }

    #[test]
    fn clearing_takes_down_only_the_job_still_posted() {
        let board = JobBoard::new("test-helper", Watch::Never);
        let first = Arc::new(Counting::default());
        let second = Arc::new(Counting::default());
        board.post(&first);
        board.post(&second);
        board.clear(&first);
        assert_eq!(
            Arc::strong_count(&second),
            2,
            "another caller's job stays up"
        );
        board.clear(&second);
        assert_eq!(Arc::strong_count(&second), 1);
        assert_eq!(Arc::strong_count(&first), 1);
    }

    #[test]
    fn helpers_watch_only_while_jobs_come_close_together() {
        let limit = Duration::from_micros(500);
        let watch =
            |gap: Option<u64>| watch_after(gap.map(Duration::from_micros), Watch::UpTo(limit));
        assert_eq!(watch(None), Duration::ZERO, "no gap known yet");
        assert_eq!(
            watch(Some(0)),
            MIN_WATCH,
            "posted while the helper still ran"
        );
        assert_eq!(watch(Some(10)), MIN_WATCH);
        assert_eq!(
            watch(Some(170)),
            Duration::from_micros(340),
            "twice the gap"
        );
        assert_eq!(watch(Some(300)), limit, "at most the limit");
        assert_eq!(watch(Some(500)), limit);
        assert_eq!(
            watch(Some(501)),
            Duration::ZERO,
            "a long gap: sleep at once"
        );
        assert_eq!(
            watch_after(Some(Duration::ZERO), Watch::Never),
            Duration::ZERO,
            "never means never"
        );
    }

    /// A helper that has just run a job, the jobs having come 200 ms apart, watches for the
    /// next for 400 ms: a job posted 20 ms later is run without the board's condition
    /// variable being notified (posted through the atomic only). A helper that slept at once
    /// would never run it.
    #[test]
    fn a_watching_helper_sees_a_job_posted_soon_after() {
        let mut board = JobBoard::new("test-helper", Watch::UpTo(Duration::from_secs(5)));
        board.start_helpers(1);
        for _ in 0..3 {
            std::thread::sleep(Duration::from_millis(200));
            let job = Arc::new(Counting::default());
            board.post(&job);
            while job.0.load(Ordering::SeqCst) == 0 {
                std::hint::spin_loop();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
        let quiet = Arc::new(Counting::default());
        {
            let mut state = lock(&board.shared.state);
            state.job = Some(Arc::clone(&quiet));
            state.posted_at = Instant::now();
            state.generation += 1;
            board
                .shared
                .posted
                .store(state.generation, Ordering::Release);
        }
        assert!(
            wait_for(|| quiet.0.load(Ordering::SeqCst) == 1),
            "the watching helper did not see the job"
        );
    }

    #[test]
    fn a_helper_woken_ahead_runs_the_job_posted_next() {
        let mut board = JobBoard::new("test-helper", Watch::Never);
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

    /// A spinning thread offers its core to others as it spins (on two cores, the tree
    /// worker runs meanwhile instead of waiting for the spin to end).
    #[test]
    fn spinning_threads_offer_their_core_as_they_spin() {
        let posted = AtomicU64::new(3);
        let mut pauses = 0;
        watch_yielding(&posted, 3, Duration::from_millis(5), || pauses += 1);
        assert!(pauses > 0, "watched 5 ms without offering the core");
        let mut pauses = 0;
        assert!(!spin_until_yielding(|| false, || pauses += 1));
        assert_eq!(pauses, SPINS_BEFORE_SLEEP / SPINS_PER_YIELD);
        let mut pauses = 0;
        let mut looks = 0;
        assert!(spin_until_yielding(
            || {
                looks += 1;
                looks > 10
            },
            || pauses += 1
        ));
        assert_eq!(pauses, 0, "done before the first offer");
    }

    #[test]
    fn a_dropped_board_stops_its_helpers() {
        let mut board: JobBoard<Counting> =
            JobBoard::new("test-helper", Watch::UpTo(Duration::from_micros(50)));
        board.start_helpers(2);
        let shared = Arc::clone(&board.shared);
        drop(board);
        assert!(
            wait_for(|| Arc::strong_count(&shared) == 1),
            "the helpers did not exit"
        );
    }
}
