//! Appends in two steps, for a caller that gathers many requests itself (the server's
//! writer thread): [`Kimberlite::write_all`] writes them as a group commit leader would (one
//! hold of the write lock, small appends to one stream merged into one backend call) and
//! returns each one's result with a [`Written`] ticket; [`Kimberlite::make_durable`] returns
//! once a sync covers the ticket. In between the caller may write more (an access record
//! made from the results), and the one sync covers both: one sync and no thread parked per
//! request, where `append` from each request's own thread would park each thread, and
//! records made after their appends would wait for a second sync.
//!
//! Kept: nothing written is durable, nor visible to readers, until a sync covers it, so the
//! caller must not acknowledge a result before `make_durable` returned `Ok`. A failed sync
//! latches the store failed, as group commit's does.

use bytes::Bytes;
use kimberlite_types::StreamId;

use crate::config::Durability;
use crate::error::{Error, Result};
use crate::head::{AppendResult, ExpectedOffset};
use crate::store::Kimberlite;
use crate::writers::Request;

/// Writes made by [`Kimberlite::write_all`], not yet known durable. A ticket covers every
/// write made before it too, so the last of several is the one to make durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[must_use = "nothing written is durable before `Kimberlite::make_durable`"]
pub struct Written {
    /// The write sequence number a sync must cover (0: nothing to wait for).
    seq: u64,
}

/// Poisons the store if a write unwinds while the write lock is held (the state may be half
/// updated), as a group commit leader's unwinding does.
struct PoisonOnUnwind<'a> {
    store: &'a Kimberlite,
    finished: bool,
}

impl Drop for PoisonOnUnwind<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.store.inner.commit.poison();
        }
    }
}

impl Kimberlite {
    /// Writes `requests` (stream, events, expected offset) in order, each with its own checks
    /// and result as a lone [`Kimberlite::append`] would give, and returns without waiting for
    /// a sync: the results are not acknowledgeable before [`Kimberlite::make_durable`] of
    /// the ticket returns `Ok`. Under a durability policy other than
    /// [`Durability::GroupCommit`] each request is a plain `append` and the ticket is durable
    /// already.
    ///
    /// # Examples
    ///
    /// ```
    /// use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};
    /// let dir = tempfile::tempdir()?;
    /// let store = Kimberlite::open_with(dir.path(), Config::default().durability(Durability::GroupCommit))?;
    /// let id = store.create_stream("audit")?;
    /// let (results, written) = store.write_all(vec![(id, vec!["a".into()], ExpectedOffset::Any)]);
    /// store.make_durable(written)?;
    /// assert_eq!(results[0].as_ref().map(|r| r.next_offset.as_u64()).ok(), Some(1));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_all(
        &self,
        requests: Vec<(StreamId, Vec<Bytes>, ExpectedOffset)>,
    ) -> (Vec<Result<AppendResult>>, Written) {
        if self.inner.config.read_only {
            let refused = requests.iter().map(|_| Err(Error::ReadOnly)).collect();
            return (refused, Written { seq: 0 });
        }
        if self.inner.config.durability != Durability::GroupCommit {
            let results = requests
                .into_iter()
                .map(|(id, events, expected)| self.append(id, events, expected))
                .collect();
            return (results, Written { seq: 0 });
        }
        // Refused before the group: a request with an event that looks sealed.
        let mut refused: Vec<Option<Error>> = Vec::with_capacity(requests.len());
        let mut accepted = Vec::with_capacity(requests.len());
        for (id, events, expected) in requests {
            match self.refuse_sealed_looking(id, &events) {
                Err(error) => refused.push(Some(error)),
                Ok(()) => {
                    refused.push(None);
                    accepted.push(Request {
                        id,
                        events,
                        expected,
                    });
                }
            }
        }
        let mut guard = PoisonOnUnwind {
            store: self,
            finished: false,
        };
        let (written, last_seq) = self.write_group(accepted);
        guard.finished = true;
        let mut written = written.into_iter();
        let results = refused
            .into_iter()
            .map(|refusal| match refusal {
                Some(error) => Err(error),
                None => written.next().unwrap_or(Err(Error::Poisoned)),
            })
            .collect();
        (
            results,
            Written {
                seq: last_seq.unwrap_or(0),
            },
        )
    }

    /// Returns once a sync covers `written` (and every write before it), running one if
    /// none is running. Errors: the sync's own error, or [`Error::Poisoned`] once a sync has
    /// failed: then nothing written since the last good sync is known durable.
    pub fn make_durable(&self, written: Written) -> Result<()> {
        if written.seq == 0 {
            return Ok(());
        }
        self.inner
            .commit
            .wait_durable(written.seq, || self.sync_written())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn grouped(dir: &std::path::Path) -> Kimberlite {
        let config = Config::default().durability(Durability::GroupCommit);
        Kimberlite::open_with(dir, config).expect("open")
    }

    #[test]
    fn each_request_gets_its_own_result_and_readers_see_them_once_durable() {
        let dir = tempfile::tempdir().expect("dir");
        let store = grouped(dir.path());
        let a = store.create_stream("a").expect("a");
        let b = store.create_stream("b").expect("b");
        let (results, written) = store.write_all(vec![
            (a, vec!["1".into()], ExpectedOffset::Any),
            (a, vec!["2".into(), "3".into()], ExpectedOffset::Any),
            (a, vec!["x".into()], ExpectedOffset::Exact(0.into())),
            (b, vec!["4".into()], ExpectedOffset::NoStream),
            (a, Vec::new(), ExpectedOffset::Any),
        ]);
        let offsets: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|r| r.next_offset.as_u64()))
            .collect();
        assert_eq!(offsets, [Some(1), Some(3), None, Some(1), None]);
        assert!(matches!(results[2], Err(Error::OffsetConflict { .. })));
        assert!(matches!(results[4], Err(Error::EmptyBatch { .. })));
        // Written, not yet durable: readers see the durable head only.
        assert_eq!(store.head(a).expect("head").next_offset.as_u64(), 0);
        // More written after the ticket is covered by the same sync when the later ticket
        // is made durable.
        let (more, later) = store.write_all(vec![(b, vec!["5".into()], ExpectedOffset::Any)]);
        assert!(more[0].is_ok());
        assert!(later > written);
        store.make_durable(later).expect("durable");
        assert_eq!(store.head(a).expect("head").next_offset.as_u64(), 3);
        assert_eq!(store.head(b).expect("head").next_offset.as_u64(), 2);
        // The chain heads are those a lone append of each would give.
        let head = results[1].as_ref().expect("ok").head;
        assert_eq!(store.head(a).expect("head").hash, Some(head));
        drop(store);
        let store = grouped(dir.path());
        assert_eq!(store.head(a).expect("head").next_offset.as_u64(), 3);
    }

    #[test]
    fn read_only_stores_refuse_and_other_policies_are_durable_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let config = Config::default().durability(Durability::SyncEachAppend);
        let store = Kimberlite::open_with(dir.path(), config).expect("open");
        let id = store.create_stream("s").expect("s");
        let (results, written) = store.write_all(vec![(id, vec!["e".into()], ExpectedOffset::Any)]);
        assert!(results[0].is_ok());
        assert_eq!(store.head(id).expect("head").next_offset.as_u64(), 1);
        store.make_durable(written).expect("nothing to wait for");
        drop(store);
        let store = Kimberlite::open_read_only(dir.path(), Config::default()).expect("open");
        let (results, written) = store.write_all(vec![(id, vec!["e".into()], ExpectedOffset::Any)]);
        assert!(matches!(results[0], Err(Error::ReadOnly)));
        store.make_durable(written).expect("nothing written");
    }

    #[test]
    fn an_event_that_looks_sealed_is_refused_alone_and_the_others_are_written() {
        let dir = tempfile::tempdir().expect("dir");
        let store = grouped(dir.path());
        let a = store.create_stream("a").expect("a");
        let forged = Bytes::from_static(b"\0KBSEAL\x01forged");
        let (results, written) = store.write_all(vec![
            (a, vec!["1".into()], ExpectedOffset::Any),
            (a, vec!["2".into(), forged], ExpectedOffset::Any),
            (a, vec!["3".into()], ExpectedOffset::Any),
        ]);
        store.make_durable(written).expect("durable");
        assert!(matches!(
            results[1],
            Err(Error::Sealed(crate::sealed::SealError::LooksSealed {
                index: 1,
                ..
            }))
        ));
        let offsets: Vec<_> = results
            .iter()
            .map(|r| r.as_ref().ok().map(|r| r.first_offset.as_u64()))
            .collect();
        assert_eq!(offsets, [Some(0), None, Some(1)]);
        assert_eq!(store.head(a).expect("head").next_offset.as_u64(), 2);
    }
}
