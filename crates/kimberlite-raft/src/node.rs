//! [`Node`]: one replica: its Raft, log and state machine, and the leader's side of a write
//! (docs/REPLICATION.md, sections "Commands" and "Acknowledgements and reads").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kimberlite::sealed::envelope::looks_sealed;
use kimberlite::{Event, ExpectedOffset, Kimberlite, StreamId, MAX_EVENT_BYTES};
use openraft::error::{CheckIsLeaderError, RaftError};
use openraft::{LogId, SnapshotPolicy};

use crate::command::{Command, Rejection, RequestId, Response};
use crate::halt::Halt;
use crate::log_file::LogFileError;
use crate::log_store::LogStore;
use crate::network::{Network, Transport};
use crate::node_fs::NodeFs;
use crate::open_error::OpenError;
use crate::proposer::{check_leading, propose, Proposer};
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Raft};
use crate::write::{Appended, WriteError};

/// How to start a node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The node's id in the cluster.
    pub id: NodeId,
    /// Its directory: the Raft log, the store, the saved state machine.
    pub dir: PathBuf,
    /// The store's configuration.
    pub store: kimberlite::Config,
    /// Whether the Raft log and the saved state are synced before a write returns. Default =
    /// true; off only for tests that never crash the machine.
    pub sync: bool,
    /// openraft's configuration (timeouts in milliseconds, snapshot policy).
    pub raft: openraft::Config,
    /// The file system every file of the node goes through. Default = the real one.
    pub fs: NodeFs,
    /// How long a write waits for its entry to be committed and applied before it answers
    /// that its outcome is unknown ([`WriteError::Raft`]). Default = [`PROPOSAL_TIMEOUT`].
    pub proposal_timeout: Duration,
    /// A snapshot is also built (and the log purged behind it) once the log's entries hold
    /// this many bytes of events, whatever openraft's count of entries says. Default =
    /// [`SNAPSHOT_BYTES`].
    pub snapshot_bytes: u64,
}

/// The default [`NodeConfig::snapshot_bytes`]: 256 MiB. The log's entries stay in memory
/// until purged, and openraft's policy counts entries: 10,000 entries of 1,000-event batches
/// held ~2.6 GB per node. A replica that falls further behind than this gets a snapshot.
pub const SNAPSHOT_BYTES: u64 = 256 << 20;

/// The default [`NodeConfig::proposal_timeout`]: far above a commit on a loaded machine (one
/// sync on a majority), below the server's request timeout, so a client hears 503
/// `outcome_unknown` and retries rather than a 408.
pub const PROPOSAL_TIMEOUT: Duration = Duration::from_secs(10);

impl NodeConfig {
    /// Node `id` in `dir`, with the defaults.
    #[must_use]
    pub fn new(id: NodeId, dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            dir: dir.into(),
            store: kimberlite::Config::default(),
            sync: true,
            raft: Self::raft_defaults(),
            fs: NodeFs::os(),
            proposal_timeout: PROPOSAL_TIMEOUT,
            snapshot_bytes: SNAPSHOT_BYTES,
        }
    }

    /// openraft's configuration for a cluster on a local network: heartbeats every 100 ms,
    /// elections after 300 to 600 ms of silence, a snapshot every 10,000 entries, after which
    /// the log is purged (a lagging replica gets the snapshot).
    #[must_use]
    pub fn raft_defaults() -> openraft::Config {
        openraft::Config {
            cluster_name: "kimberlite".into(),
            heartbeat_interval: 100,
            election_timeout_min: 300,
            election_timeout_max: 600,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(10_000),
            max_in_snapshot_log_to_keep: 0,
            ..openraft::Config::default()
        }
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The Raft log did not open.
    #[error(transparent)]
    Log(#[from] LogFileError),
    /// The state machine did not open.
    #[error(transparent)]
    StateMachine(#[from] OpenError),
    /// openraft refused the configuration or failed to start.
    #[error("raft: {0}")]
    Raft(String),
}

/// One running replica.
pub struct Node {
    id: NodeId,
    raft: Raft,
    log: LogStore,
    state_machine: StateMachine,
    /// The leader's appends: those that arrive while an entry is in flight go together in
    /// the next one.
    proposer: Proposer,
    /// [`NodeConfig::proposal_timeout`].
    proposal_timeout: Duration,
    /// Asks openraft for a snapshot whenever the log wants one ([`LogStore::snapshot_wanted`]).
    snapshot_trigger: tokio::task::JoinHandle<()>,
}

impl Drop for Node {
    fn drop(&mut self) {
        self.snapshot_trigger.abort();
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Node {
    /// Starts the node of `config`, sending through `transport`. A new node waits to be
    /// initialised ([`Raft::initialize`]) or added by the leader.
    pub async fn start(
        config: NodeConfig,
        transport: impl Transport,
    ) -> Result<Arc<Self>, StartError> {
        let raft_config = config
            .raft
            .clone()
            .validate()
            .map_err(|error| StartError::Raft(error.to_string()))?;
        let log = LogStore::open_with(config.fs.clone(), &config.dir, config.sync)?
            .of_node(config.id)
            .with_snapshot_bytes(config.snapshot_bytes);
        let state_machine =
            StateMachine::open_with(config.fs, &config.dir, config.store.clone(), config.sync)?;
        state_machine.apply_once_durable(log.flushed().clone());
        let retry = Duration::from_millis(raft_config.heartbeat_interval);
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(transport, &log, retry),
            log.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|error| StartError::Raft(error.to_string()))?;
        let proposer = Proposer::start(
            config.id,
            raft.clone(),
            state_machine.clone(),
            log.commits().clone(),
            config.proposal_timeout,
        );
        let snapshot_trigger = {
            let (wanted, raft) = (log.snapshot_wanted(), raft.clone());
            tokio::spawn(async move {
                loop {
                    wanted.notified().await;
                    // Ignored by openraft while a snapshot is being built; an error means
                    // the Raft stopped.
                    if raft.trigger().snapshot().await.is_err() {
                        return;
                    }
                }
            })
        };
        Ok(Arc::new(Self {
            id: config.id,
            raft,
            log,
            state_machine,
            proposer,
            proposal_timeout: config.proposal_timeout,
            snapshot_trigger,
        }))
    }

    /// The node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// How long it waits for a proposal to commit ([`NodeConfig::proposal_timeout`]).
    pub(crate) fn proposal_timeout(&self) -> Duration {
        self.proposal_timeout
    }

    /// Its Raft: membership changes, metrics, and the receiving side of a transport.
    #[must_use]
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// Its Raft log.
    #[must_use]
    pub fn log(&self) -> &LogStore {
        &self.log
    }

    /// Its state machine.
    #[must_use]
    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
    }

    /// Why this replica stopped applying, if it did: a divergence, or a failed save of what
    /// it applied (docs/REPLICATION.md, section "State beside the store").
    #[must_use]
    pub fn halted(&self) -> Option<Halt> {
        self.state_machine.halted()
    }

    /// Stops the node's Raft and closes its state machine: once this returns, nothing more
    /// is written to the node's directory.
    pub async fn shutdown(&self) {
        self.snapshot_trigger.abort();
        // A join error means the Raft task already ended: stopped either way.
        let _ = self.raft.shutdown().await;
        self.state_machine.close();
    }

    /// Creates the stream `name` if there is none (on the leader); answers its id.
    pub async fn create_stream(&self, request: RequestId, name: &str) -> Result<u64, WriteError> {
        check_leading(&self.raft, self.id)?;
        let command = Command::CreateStream {
            request,
            name: name.to_owned(),
        };
        match propose(&self.raft, self.id, command, self.proposal_timeout).await? {
            (Response::Stream { stream }, _) => Ok(stream),
            (Response::Rejected(rejection), _) => Err(rejection.into()),
            (other, _) => Err(WriteError::Raft(format!("unexpected answer {other:?}"))),
        }
    }

    /// Appends `events` to `stream` as one batch if its next offset meets `expected` (on the
    /// leader). Returns once a majority has the entry durably: at once when applying it is
    /// certain to append (`crate::certain`), else once this node has applied it.
    /// Appends that arrive while an entry is in flight go together in the next entry; an
    /// expected offset is checked against the head the appends before it leave, and a
    /// conflict is answered only against the applied head.
    pub async fn append(
        &self,
        request: RequestId,
        stream: u64,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<Appended, WriteError> {
        check_batch(&events)?;
        check_leading(&self.raft, self.id)?;
        self.proposer
            .append(request, stream, events, expected)
            .await
    }

    /// Reads `stream` from `from` on, from this replica as it is (a follower read), and the
    /// log position the answer reflects.
    pub fn read(
        &self,
        stream: u64,
        from: u64,
        max_bytes: u64,
    ) -> (Result<Vec<Event>, kimberlite::Error>, Option<LogId<NodeId>>) {
        self.state_machine
            .read(|store| store.read(StreamId::new(stream), from.into(), max_bytes))
    }

    /// A linearizable read on the leader: confirms leadership with a majority, waits until
    /// everything committed before is applied, then reads.
    pub async fn read_linearizable(
        &self,
        stream: u64,
        from: u64,
        max_bytes: u64,
    ) -> Result<(Vec<Event>, Option<LogId<NodeId>>), WriteError> {
        match self.raft.ensure_linearizable().await {
            Ok(_) => {}
            Err(RaftError::APIError(CheckIsLeaderError::ForwardToLeader(forward))) => {
                return Err(WriteError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => return Err(WriteError::Raft(error.to_string())),
        }
        let (events, log_id) = self.read(stream, from, max_bytes);
        Ok((
            events.map_err(|error| WriteError::Raft(error.to_string()))?,
            log_id,
        ))
    }

    /// Runs `read` on this replica's store, with the log position it reflects.
    pub fn with_store<T>(&self, read: impl FnOnce(&Kimberlite) -> T) -> (T, Option<LogId<NodeId>>) {
        self.state_machine.read(read)
    }
}

/// Refuses before proposing what every replica would refuse.
fn check_batch(events: &[Bytes]) -> Result<(), Rejection> {
    if events.is_empty() {
        return Err(Rejection::Invalid {
            reason: "an empty batch".into(),
        });
    }
    if let Some(event) = events.iter().find(|event| event.len() > MAX_EVENT_BYTES) {
        return Err(Rejection::Invalid {
            reason: format!(
                "an event of {} bytes (at most {MAX_EVENT_BYTES})",
                event.len()
            ),
        });
    }
    // The store refuses such an event (it would read back as sealed): refused here, before
    // it costs an entry.
    if let Some(index) = events.iter().position(|event| looks_sealed(event)) {
        return Err(Rejection::Invalid {
            reason: format!(
                "event {index} of the batch starts with the sealed-event marker (\\0KBSEAL), \
                 which plain events may not; nothing was written"
            ),
        });
    }
    Ok(())
}
