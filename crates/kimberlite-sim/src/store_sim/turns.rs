//! Jobs on threads of their own, either all at once or taking turns in a given order (each
//! job runs alone, then passes the turn): what lets a seed fix the order of appends made
//! from several threads.

use std::sync::{Condvar, Mutex, PoisonError};
use std::thread;

/// The turn being played, shared by the threads.
struct Turns {
    playing: Mutex<usize>,
    changed: Condvar,
}

impl Turns {
    fn wait_for(&self, turn: usize) {
        let mut playing = self.playing.lock().unwrap_or_else(PoisonError::into_inner);
        while *playing != turn {
            playing = self
                .changed
                .wait(playing)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn pass(&self) {
        *self.playing.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        self.changed.notify_all();
    }
}

/// Passes the turn when dropped, so a job that panics does not leave the others waiting.
struct PassOnDrop<'a>(&'a Turns);

impl Drop for PassOnDrop<'_> {
    fn drop(&mut self) {
        self.0.pass();
    }
}

/// Runs each job on its own thread and returns their results in the jobs' order (`Err` for a
/// job that panicked). With `order`, job `order[k]` runs `k`-th and alone; without, all run
/// at once and the operating system interleaves them.
pub(super) fn run_jobs<T, F>(jobs: Vec<F>, order: Option<&[usize]>) -> Vec<thread::Result<T>>
where
    T: Send,
    F: FnOnce() -> T + Send,
{
    let turns = Turns {
        playing: Mutex::new(0),
        changed: Condvar::new(),
    };
    let turn_of = |job: usize| order.and_then(|order| order.iter().position(|&j| j == job));
    thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .into_iter()
            .enumerate()
            .map(|(index, job)| {
                let turn = turn_of(index);
                let turns = &turns;
                scope.spawn(move || match turn {
                    Some(turn) => {
                        turns.wait_for(turn);
                        let _pass = PassOnDrop(turns);
                        job()
                    }
                    None => job(),
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join()).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_taking_turns_run_in_the_given_order_and_answer_in_theirs() {
        let log = Mutex::new(Vec::new());
        let jobs: Vec<_> = (0..4)
            .map(|job| {
                let log = &log;
                move || {
                    log.lock().unwrap().push(job);
                    job * 10
                }
            })
            .collect();
        let results = run_jobs(jobs, Some(&[2, 0, 3, 1]));
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, vec![0, 10, 20, 30]);
        assert_eq!(*log.lock().unwrap(), vec![2, 0, 3, 1]);
    }
}
