//! What a leader says about each target's reachability: one line when replication to it
//! stops getting answers, one when it answers again. openraft's replication logs five lines
//! per failed try (`kimberlite serve` leaves them off by default), so these two are what an
//! operator reads about a node that went down and came back.
//!
//! | the try before   | this try                  | said                                    |
//! |------------------|---------------------------|-----------------------------------------|
//! | answered (or none)| unreachable              | [`Change::Lost`] (warning)              |
//! | unreachable      | unreachable               | nothing (counted)                       |
//! | unreachable      | answered (even an error)  | [`Change::Back`] (info): tries, time    |
//! | answered         | answered                  | nothing                                 |

use std::time::{Duration, Instant};

/// One target's recent tries, as the connection to it sees them.
#[derive(Debug, Default)]
pub(crate) struct Reachability {
    /// Tries in a row that got no answer.
    failed_tries: u64,
    /// When the first of them was made.
    since: Option<Instant>,
}

/// A change worth a line in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    /// The target stopped answering.
    Lost,
    /// The target answers again after `failed_tries` tries without an answer over `after`.
    Back { failed_tries: u64, after: Duration },
}

impl Reachability {
    /// A try at `now` got an answer (an error from the target's Raft counts: it is reachable).
    pub(crate) fn answered(&mut self, now: Instant) -> Option<Change> {
        let failed_tries = std::mem::take(&mut self.failed_tries);
        let since = self.since.take()?;
        Some(Change::Back {
            failed_tries,
            after: now.saturating_duration_since(since),
        })
    }

    /// A try at `now` got no answer.
    pub(crate) fn unreachable(&mut self, now: Instant) -> Option<Change> {
        self.failed_tries += 1;
        if self.since.is_some() {
            return None;
        }
        self.since = Some(now);
        Some(Change::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_lost_and_back_is_said_once_each_with_its_tries_and_time() {
        let start = Instant::now();
        let mut target = Reachability::default();
        assert_eq!(target.answered(start), None, "answering all along: nothing");
        assert_eq!(target.unreachable(start), Some(Change::Lost));
        for second in 1..=4 {
            let at = start + Duration::from_secs(second);
            assert_eq!(
                target.unreachable(at),
                None,
                "a later failed try is only counted"
            );
        }
        let back = target.answered(start + Duration::from_secs(7));
        assert_eq!(
            back,
            Some(Change::Back {
                failed_tries: 5,
                after: Duration::from_secs(7)
            })
        );
        assert_eq!(target.answered(start + Duration::from_secs(8)), None);
        // Lost again: said again, counted afresh.
        let again = start + Duration::from_secs(9);
        assert_eq!(target.unreachable(again), Some(Change::Lost));
        assert_eq!(
            target.answered(again),
            Some(Change::Back {
                failed_tries: 1,
                after: Duration::ZERO
            })
        );
    }
}
