//! [`CommitWatch`]: how the proposer learns that its entry is committed before the leader has
//! applied it (docs/REPLICATION.md, section "Acknowledgements and reads"). The proposer
//! registers the entry it is about to propose (by its first request id and the leader id it
//! is proposed under); the leader's log store notes the log id of the matching entry when it
//! writes it, and publishes every committed log id openraft saves before applying.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId};
use tokio::sync::watch;

use crate::command::{Command, RequestId};
use crate::types::{NodeId, TypeConfig};

/// Shared by a node's log store and its proposer. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct CommitWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Whether an entry is registered: the log store's hooks cost one load when none is (a
    /// follower, or a leader between entries).
    armed: AtomicBool,
    registered: Mutex<Option<Registered>>,
    committed: watch::Sender<Option<LogId<NodeId>>>,
}

#[derive(Debug)]
struct Registered {
    request: RequestId,
    leader: CommittedLeaderId<NodeId>,
    /// The index of the last entry applied to the state the proposer read.
    follows: u64,
    /// The log id of the entry, once the log store has written it.
    log_id: Option<LogId<NodeId>>,
}

impl Default for CommitWatch {
    fn default() -> Self {
        Self {
            inner: Arc::new(Inner {
                armed: AtomicBool::new(false),
                registered: Mutex::new(None),
                committed: watch::channel(None).0,
            }),
        }
    }
}

impl CommitWatch {
    fn registered(&self) -> MutexGuard<'_, Option<Registered>> {
        self.inner
            .registered
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers the next entry: a [`Command::Batch`] whose first command answers `request`,
    /// proposed by `leader` on the state applied up to index `follows`. One entry at a time
    /// (the proposer proposes one at a time); the registration ends when the returned value is
    /// dropped.
    pub(crate) fn register(
        &self,
        request: RequestId,
        leader: CommittedLeaderId<NodeId>,
        follows: u64,
    ) -> Registration {
        let committed = self.inner.committed.subscribe();
        *self.registered() = Some(Registered {
            request,
            leader,
            follows,
            log_id: None,
        });
        self.inner.armed.store(true, Ordering::Release);
        Registration {
            watch: self.clone(),
            committed,
        }
    }

    /// The log store wrote `entries`: notes the registered one's log id.
    pub(crate) fn appended<'a>(&self, entries: impl IntoIterator<Item = &'a Entry<TypeConfig>>) {
        if !self.inner.armed.load(Ordering::Acquire) {
            return;
        }
        let mut registered = self.registered();
        let Some(registered) = registered.as_mut() else {
            return;
        };
        for entry in entries {
            let EntryPayload::Normal(Command::Batch(commands)) = &entry.payload else {
                continue;
            };
            let first = commands.first().and_then(Command::request);
            // An entry of another leader (this node as a follower) is not ours, whatever it
            // carries. Nor is one with an entry between it and the state the proposer read
            // (a stream created, a checkpoint, a new term's blank entry): that entry's request
            // id, unknown to the proposer, could answer one of ours from the request table.
            let ours = entry.log_id.leader_id == registered.leader
                && first == Some(registered.request)
                && entry.log_id.index == registered.follows + 1;
            if ours {
                registered.log_id = Some(entry.log_id);
            }
        }
    }

    /// openraft saved `committed` as the committed log id, before applying up to it.
    pub(crate) fn committed(&self, committed: Option<LogId<NodeId>>) {
        if self.inner.armed.load(Ordering::Acquire) {
            self.inner.committed.send_replace(committed);
        }
    }
}

/// A registered entry; dropping it ends the registration.
pub(crate) struct Registration {
    watch: CommitWatch,
    committed: watch::Receiver<Option<LogId<NodeId>>>,
}

impl Registration {
    /// Completes with the entry's log id once a committed log id of the same leader at or
    /// past it is published: a majority's durable logs then hold it (a leader's log holds
    /// each index once, and a majority matches it up to its commit). A commit by a later
    /// leader says nothing of this entry: this never completes then.
    pub(crate) async fn committed(&mut self) -> LogId<NodeId> {
        loop {
            let committed = *self.committed.borrow_and_update();
            let entry = self.watch.registered().as_ref().and_then(|r| r.log_id);
            if let (Some(entry), Some(committed)) = (entry, committed) {
                if committed.leader_id == entry.leader_id && committed.index >= entry.index {
                    return entry;
                }
            }
            if self.committed.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.watch.inner.armed.store(false, Ordering::Release);
        *self.watch.registered() = None;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use openraft::EntryPayload;

    use super::*;

    fn batch(request: RequestId, term: u64, node: NodeId, index: u64) -> Entry<TypeConfig> {
        let command = Command::CreateStream {
            request,
            name: "s".into(),
        };
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, node), index),
            payload: EntryPayload::Normal(Command::Batch(vec![command])),
        }
    }

    fn id(term: u64, node: NodeId, index: u64) -> Option<LogId<NodeId>> {
        Some(LogId::new(CommittedLeaderId::new(term, node), index))
    }

    async fn completes(registration: &mut Registration) -> Option<LogId<NodeId>> {
        tokio::time::timeout(Duration::from_millis(50), registration.committed())
            .await
            .ok()
    }

    const R: RequestId = RequestId { client: 7, seq: 1 };

    #[tokio::test]
    async fn a_commit_of_the_same_leader_at_or_past_the_entry_completes_it() {
        let watch = CommitWatch::default();
        let mut registration = watch.register(R, CommittedLeaderId::new(2, 1), 4);
        watch.committed(id(2, 1, 4));
        watch.appended(&[batch(R, 2, 1, 5)]);
        assert_eq!(
            completes(&mut registration).await,
            None,
            "not yet committed"
        );
        watch.committed(id(2, 1, 6));
        assert_eq!(completes(&mut registration).await, id(2, 1, 5));
    }

    #[tokio::test]
    async fn a_later_leaders_commit_or_another_leaders_entry_completes_nothing() {
        let watch = CommitWatch::default();
        let mut registration = watch.register(R, CommittedLeaderId::new(2, 1), 4);
        // This node, deposed, writes the next leader's entry for the same request (a retry).
        watch.appended(&[batch(R, 3, 2, 5)]);
        watch.committed(id(3, 2, 9));
        assert_eq!(completes(&mut registration).await, None);
        // Our entry, then a commit of another term past it: still nothing.
        watch.appended(&[batch(R, 2, 1, 5)]);
        watch.committed(id(3, 2, 10));
        assert_eq!(completes(&mut registration).await, None);
    }

    #[tokio::test]
    async fn another_requests_entry_is_not_ours_and_nothing_is_kept_unregistered() {
        let watch = CommitWatch::default();
        let other = RequestId { client: 7, seq: 2 };
        let mut registration = watch.register(R, CommittedLeaderId::new(2, 1), 4);
        watch.appended(&[batch(other, 2, 1, 5)]);
        watch.committed(id(2, 1, 5));
        assert_eq!(completes(&mut registration).await, None);
        drop(registration);
        watch.appended(&[batch(R, 2, 1, 5)]);
        assert!(watch.registered().is_none());
        assert!(!watch.inner.armed.load(Ordering::Acquire));
    }

    #[tokio::test]
    async fn an_entry_that_does_not_follow_the_state_read_completes_nothing() {
        let watch = CommitWatch::default();
        let mut registration = watch.register(R, CommittedLeaderId::new(2, 1), 4);
        // Entry 5 came between (a stream created under a request id the proposer never saw).
        watch.appended(&[batch(R, 2, 1, 6)]);
        watch.committed(id(2, 1, 6));
        assert_eq!(completes(&mut registration).await, None);
    }
}
