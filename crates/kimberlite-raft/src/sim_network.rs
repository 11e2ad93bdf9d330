//! [`SimNetwork`]: an in-process [`Transport`] with faults: lost messages and answers, random
//! delays (messages overtake each other), duplicated messages, partitions and nodes taken
//! down. Faults are drawn from one generator seeded by the
//! test, so a run's faults repeat given its seed as far as tokio's timing lets the order of
//! messages repeat (docs/TESTING.md, section "Replication").

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use openraft::error::{Fatal, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{Snapshot, Vote};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::network::{Transport, TransportError, TransportResult};
use crate::types::{Node, NodeId, Raft, TypeConfig};

/// The faults a [`SimNetwork`] injects into every message and answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    /// Chance, in thousandths, that a message is lost; the same again for its answer.
    /// Default = 0.
    pub drop_per_mille: u32,
    /// Largest delay added to a message, in milliseconds, drawn uniformly from 0 to it (so
    /// messages overtake each other). Default = 0.
    pub delay_ms_max: u64,
    /// Chance, in thousandths, that a log or vote message is delivered a second time, later,
    /// its second answer lost. Default = 0.
    pub duplicate_per_mille: u32,
}

/// The simulated network of one in-process cluster. Cheap to clone: clones share it.
#[derive(Debug, Clone)]
pub struct SimNetwork {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    nodes: BTreeMap<NodeId, Raft>,
    /// Links cut in both directions, as (smaller id, larger id).
    cut: BTreeSet<(NodeId, NodeId)>,
    faults: Faults,
    rng: ChaCha8Rng,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork")
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .field("cut", &self.cut)
            .field("faults", &self.faults)
            .finish_non_exhaustive()
    }
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl SimNetwork {
    /// A network without faults whose later faults draw from `seed`.
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                nodes: BTreeMap::new(),
                cut: BTreeSet::new(),
                faults: Faults::default(),
                rng: ChaCha8Rng::seed_from_u64(seed),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Node `id` receives messages through `raft` from now on.
    pub fn attach(&self, id: NodeId, raft: Raft) {
        self.lock().nodes.insert(id, raft);
    }

    /// Node `id` receives nothing from now on (it was stopped).
    pub fn detach(&self, id: NodeId) {
        self.lock().nodes.remove(&id);
    }

    /// Sets the faults of every later message.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults = faults;
    }

    /// Cuts every link between `side` and the nodes not in it (attached now or later).
    pub fn partition(&self, side: &[NodeId], all: &[NodeId]) {
        let mut inner = self.lock();
        for &a in side {
            for &b in all.iter().filter(|b| !side.contains(b)) {
                inner.cut.insert(link(a, b));
            }
        }
    }

    /// Restores every cut link.
    pub fn heal(&self) {
        self.lock().cut.clear();
    }

    /// The transport node `from` sends through.
    #[must_use]
    pub fn transport(&self, from: NodeId) -> SimTransport {
        SimTransport {
            network: self.clone(),
            from,
        }
    }

    /// Decides a message's fate now: the target's Raft and the delay, or why it is lost.
    fn route(&self, from: NodeId, target: NodeId) -> Result<(Raft, Duration), String> {
        let mut inner = self.lock();
        if inner.cut.contains(&link(from, target)) {
            return Err("partitioned".into());
        }
        if !inner.nodes.contains_key(&from) {
            return Err("sender is down".into());
        }
        let raft = inner.nodes.get(&target).cloned().ok_or("target is down")?;
        let Faults {
            drop_per_mille,
            delay_ms_max,
            ..
        } = inner.faults;
        if drop_per_mille > 0 && inner.rng.random_range(0..1000) < drop_per_mille {
            return Err("message lost".into());
        }
        let delay_ms = if delay_ms_max > 0 {
            inner.rng.random_range(0..=delay_ms_max)
        } else {
            0
        };
        Ok((raft, Duration::from_millis(delay_ms)))
    }

    /// Whether to deliver a message a second time, and after how long.
    fn duplicate(&self) -> Option<Duration> {
        let mut inner = self.lock();
        let Faults {
            duplicate_per_mille,
            delay_ms_max,
            ..
        } = inner.faults;
        if duplicate_per_mille == 0 || inner.rng.random_range(0..1000) >= duplicate_per_mille {
            return None;
        }
        Some(Duration::from_millis(
            inner.rng.random_range(0..=delay_ms_max),
        ))
    }

    /// Decides an answer's fate: whether it comes back to `from`.
    fn answer_arrives(&self, from: NodeId, target: NodeId) -> Result<(), String> {
        let mut inner = self.lock();
        if inner.cut.contains(&link(from, target)) || !inner.nodes.contains_key(&target) {
            return Err("answer lost to a partition or a stop".into());
        }
        let drop_per_mille = inner.faults.drop_per_mille;
        if drop_per_mille > 0 && inner.rng.random_range(0..1000) < drop_per_mille {
            return Err("answer lost".into());
        }
        Ok(())
    }
}

/// One node's side of a [`SimNetwork`].
#[derive(Debug, Clone)]
pub struct SimTransport {
    network: SimNetwork,
    from: NodeId,
}

impl SimTransport {
    /// Maybe delivers `call` once more, later, to a still attached `target`; its answer is lost.
    fn maybe_duplicate<F>(&self, target: NodeId, call: impl FnOnce(Raft) -> F + Send + 'static)
    where
        F: std::future::Future + Send + 'static,
    {
        let Some(delay) = self.network.duplicate() else {
            return;
        };
        let network = self.network.clone();
        let from = self.from;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            if let Ok((raft, _)) = network.route(from, target) {
                let _ = call(raft).await;
            }
        });
    }

    async fn deliver<T, E, F>(
        &self,
        target: NodeId,
        call: impl FnOnce(Raft) -> F,
    ) -> TransportResult<T, E>
    where
        E: std::error::Error,
        F: std::future::Future<Output = Result<T, E>>,
    {
        let unreachable = |reason| TransportError::Unreachable { target, reason };
        let (raft, delay) = self.network.route(self.from, target).map_err(unreachable)?;
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let answer = call(raft).await;
        self.network
            .answer_arrives(self.from, target)
            .map_err(unreachable)?;
        answer.map_err(|source| TransportError::Remote { target, source })
    }
}

impl Transport for SimTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        _node: &Node,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> TransportResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.deliver(
            target,
            |raft| async move { raft.append_entries(request).await },
        )
        .await
    }

    async fn vote(
        &self,
        target: NodeId,
        _node: &Node,
        request: VoteRequest<NodeId>,
    ) -> TransportResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        let again = request.clone();
        self.maybe_duplicate(target, |raft| async move { raft.vote(again).await });
        self.deliver(target, |raft| async move { raft.vote(request).await })
            .await
    }

    async fn snapshot(
        &self,
        target: NodeId,
        _node: &Node,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
    ) -> TransportResult<SnapshotResponse<NodeId>, Fatal<NodeId>> {
        self.deliver(target, |raft| async move {
            raft.install_full_snapshot(vote, snapshot).await
        })
        .await
    }
}
