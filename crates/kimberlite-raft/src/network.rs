//! [`Transport`]: how one node's Raft messages reach another, the one piece a deployment
//! provides (the in-process [`crate::SimNetwork`] here, HTTP in the server), and the adapter
//! that makes any transport openraft's network.

use std::future::Future;
use std::time::{Duration, Instant};

use openraft::error::{
    Fatal, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{Backoff, RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{OptionalSend, Snapshot, Vote};

use crate::log_flush::Flushed;
use crate::log_store::LogStore;
use crate::reachability::{Change, Reachability};
use crate::types::{Node, NodeId, TypeConfig};

/// Why a message did not get an answer from its target.
#[derive(Debug, thiserror::Error)]
pub enum TransportError<E: std::error::Error> {
    /// The message or its answer was lost (down, partitioned, dropped): the sender retries.
    #[error("node {target} unreachable: {reason}")]
    Unreachable {
        /// The target.
        target: NodeId,
        /// Why.
        reason: String,
    },
    /// The target's Raft answered with an error.
    #[error("node {target}: {source}")]
    Remote {
        /// The target.
        target: NodeId,
        /// Its error.
        source: E,
    },
}

/// The answer of a target's Raft, or why there was none.
pub type TransportResult<T, E> = Result<T, TransportError<E>>;

/// Carries one node's Raft messages to the others. The receiving side hands each message to
/// its [`crate::Raft`] (`append_entries`, `vote`, `install_full_snapshot`) and sends back the
/// result. Implementations must not reorder a sender's messages to one target into answers
/// for the wrong request; losing them is fine.
pub trait Transport: Send + Sync + 'static {
    /// Sends log entries (or a heartbeat) to `target`.
    fn append_entries(
        &self,
        target: NodeId,
        node: &Node,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> impl Future<Output = TransportResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>>> + Send;

    /// Asks `target` for its vote.
    fn vote(
        &self,
        target: NodeId,
        node: &Node,
        request: VoteRequest<NodeId>,
    ) -> impl Future<Output = TransportResult<VoteResponse<NodeId>, RaftError<NodeId>>> + Send;

    /// Sends a whole snapshot to `target`, which verifies and installs it.
    fn snapshot(
        &self,
        target: NodeId,
        node: &Node,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
    ) -> impl Future<Output = TransportResult<SnapshotResponse<NodeId>, Fatal<NodeId>>> + Send;
}

/// openraft's network factory over a [`Transport`].
#[derive(Debug)]
pub struct Network<T> {
    transport: std::sync::Arc<T>,
    /// How far the node's log is durable: the commit it sends is clamped to it.
    flushed: Flushed,
    /// How long replication to an unreachable target waits before it tries again.
    retry: Duration,
}

impl<T> Network<T> {
    /// The network of the node whose log is `log`, sending through `transport`; replication
    /// to a target it could not reach tries again every `retry` (the heartbeat interval) for
    /// a while, then less often (`Connection::backoff`).
    pub fn new(transport: T, log: &LogStore, retry: Duration) -> Self {
        Self {
            transport: std::sync::Arc::new(transport),
            flushed: log.flushed().clone(),
            retry,
        }
    }
}

/// One node's connection to one target.
#[derive(Debug)]
pub struct Connection<T> {
    transport: std::sync::Arc<T>,
    target: NodeId,
    node: Node,
    flushed: Flushed,
    retry: Duration,
    /// Whether replication to the target gets answers: logged when that changes.
    reachability: Reachability,
}

impl<T: Transport> RaftNetworkFactory<TypeConfig> for Network<T> {
    type Network = Connection<T>;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Self::Network {
        Connection {
            transport: self.transport.clone(),
            target,
            node: node.clone(),
            flushed: self.flushed.clone(),
            retry: self.retry,
            reachability: Reachability::default(),
        }
    }
}

impl<T> Connection<T> {
    /// Logs what replication's try says of the target: lost, back, or an error it answered
    /// (openraft's own lines for each failed try are off by default, `kimberlite serve`).
    fn note<R, E: std::error::Error>(&mut self, result: &TransportResult<R, E>) {
        let now = Instant::now();
        let target = self.target;
        let change = match result {
            Ok(_) => self.reachability.answered(now),
            Err(TransportError::Remote { source, .. }) => {
                tracing::warn!("node {target} refused replication: {source}");
                self.reachability.answered(now)
            }
            Err(TransportError::Unreachable { reason, .. }) => {
                if self.reachability.unreachable(now).is_some() {
                    tracing::warn!(
                        "node {target} unreachable ({reason}): replication tries again every \
                         {:?} for {FAST_RETRY_WINDOW:?}, then less often, up to every \
                         {SLOW_RETRY_MAX:?}",
                        self.retry
                    );
                }
                None
            }
        };
        if let Some(Change::Back {
            failed_tries,
            after,
        }) = change
        {
            tracing::info!(
                "node {target} answers replication again, after {failed_tries} failed tries \
                 over {:.1} s",
                after.as_secs_f64()
            );
        }
    }
}

fn rpc_error<E: std::error::Error + 'static>(
    error: TransportError<E>,
) -> RPCError<NodeId, Node, E> {
    match error {
        TransportError::Remote { target, source } => {
            RPCError::RemoteError(RemoteError::new(target, source))
        }
        unreachable @ TransportError::Unreachable { .. } => {
            RPCError::Unreachable(Unreachable::new(&unreachable))
        }
    }
}

impl<T: Transport> RaftNetwork<TypeConfig> for Connection<T> {
    /// A target back from a stop of up to [`FAST_RETRY_WINDOW`] hears from the leader within
    /// a heartbeat interval, as one that never left does, so before its election timeout:
    /// openraft's default (500 ms) often let it stand for election first, and its later term
    /// then deposed the working leader. A restarted leader always waits to hear from one (its
    /// own vote is read back uncommitted, `LogStore::read_vote`). A target down for longer is
    /// tried less and less often ([`retry_schedule`]): openraft logs each try (five lines).
    fn backoff(&self) -> Backoff {
        Backoff::new(retry_schedule(self.retry))
    }

    async fn append_entries(
        &mut self,
        mut request: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        // openraft's commit may count the leader's own log before its background sync: a
        // follower must never apply an entry that only it holds durably (crate::log_flush).
        request.leader_commit = self.flushed.clamp(request.leader_commit);
        let result = self
            .transport
            .append_entries(self.target, &self.node, request)
            .await;
        self.note(&result);
        result.map_err(rpc_error)
    }

    #[allow(deprecated)]
    async fn install_snapshot(
        &mut self,
        _request: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, Node, RaftError<NodeId, InstallSnapshotError>>,
    > {
        // Snapshots go whole through `full_snapshot` (generic snapshot data): never chunked.
        let error = std::io::Error::other("chunked snapshots are not used; see full_snapshot");
        Err(RPCError::Network(NetworkError::new(&error)))
    }

    async fn vote(
        &mut self,
        request: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.transport
            .vote(self.target, &self.node, request)
            .await
            .map_err(rpc_error)
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl Future<Output = ReplicationClosed> + OptionalSend + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        self.transport
            .snapshot(self.target, &self.node, vote, snapshot)
            .await
            .map_err(|error| match error {
                TransportError::Remote { target, source } => {
                    StreamingError::RemoteError(RemoteError::new(target, source))
                }
                unreachable @ TransportError::Unreachable { .. } => {
                    StreamingError::Unreachable(Unreachable::new(&unreachable))
                }
            })
    }
}

/// How long replication to an unreachable target keeps trying again every heartbeat before it
/// slows down: a node restarted or moved within it rejoins before its election timeout.
const FAST_RETRY_WINDOW: Duration = Duration::from_secs(10);
/// The slowest replication tries again to a target that stays unreachable: each try is a few
/// lines of openraft's log (a warning and an error), so a node down for hours costs a line or
/// so a second, not the 30 a second of a try every 100 ms heartbeat.
const SLOW_RETRY_MAX: Duration = Duration::from_secs(5);

/// The waits between tries to an unreachable target: `heartbeat` for [`FAST_RETRY_WINDOW`],
/// then doubling up to [`SLOW_RETRY_MAX`], then that for good. Endless, as openraft expects.
fn retry_schedule(heartbeat: Duration) -> impl Iterator<Item = Duration> + Send + 'static {
    let heartbeat = heartbeat.max(Duration::from_millis(1));
    let fast = FAST_RETRY_WINDOW.as_millis() / heartbeat.as_millis();
    let fast = usize::try_from(fast).unwrap_or(usize::MAX);
    let slowing = std::iter::successors(Some(heartbeat.saturating_mul(2)), |wait| {
        Some(wait.saturating_mul(2))
    })
    .take_while(|wait| *wait < SLOW_RETRY_MAX);
    std::iter::repeat_n(heartbeat, fast)
        .chain(slowing)
        .chain(std::iter::repeat(SLOW_RETRY_MAX))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use openraft::network::RaftNetwork;

    use super::Connection;
    use crate::log_flush::Flushed;
    use crate::sim_network::SimNetwork;
    use crate::types::Node;

    #[test]
    fn replication_to_an_unreachable_target_tries_again_every_heartbeat_not_openrafts_500_ms() {
        let retry = Duration::from_millis(50);
        let connection = Connection {
            transport: Arc::new(SimNetwork::new(1).transport(1)),
            target: 2,
            node: Node::default(),
            flushed: Flushed::new(None),
            retry,
            reachability: super::Reachability::default(),
        };
        let waits: Vec<Duration> = connection.backoff().take(3).collect();
        assert_eq!(waits, vec![retry; 3]);
    }

    #[test]
    fn retries_slow_down_after_the_fast_window_up_to_the_slowest() {
        let heartbeat = Duration::from_millis(100);
        let waits: Vec<Duration> = super::retry_schedule(heartbeat).take(120).collect();
        // Every heartbeat for the first 10 s.
        assert!(waits.iter().take(100).all(|wait| *wait == heartbeat));
        assert_eq!(
            waits.iter().take(100).sum::<Duration>(),
            super::FAST_RETRY_WINDOW
        );
        // Then 0.2, 0.4, 0.8, 1.6, 3.2 s, then 5 s for good.
        let ms = |millis| Duration::from_millis(millis);
        assert_eq!(
            waits.get(100..107).unwrap(),
            [
                ms(200),
                ms(400),
                ms(800),
                ms(1_600),
                ms(3_200),
                ms(5_000),
                ms(5_000)
            ]
        );
        assert!(waits
            .iter()
            .skip(105)
            .all(|wait| *wait == super::SLOW_RETRY_MAX));
    }

    #[test]
    fn a_heartbeat_longer_than_the_window_still_tries_then_slows() {
        let waits: Vec<Duration> = super::retry_schedule(Duration::from_secs(20))
            .take(3)
            .collect();
        assert_eq!(waits, vec![super::SLOW_RETRY_MAX; 3]);
    }
}
