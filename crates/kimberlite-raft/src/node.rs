//! [`Node`]: one replica: its Raft, log and state machine, and the leader's side of a write
//! (docs/REPLICATION.md, sections "Commands" and "Acknowledgements and reads").

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kimberlite::{Event, ExpectedOffset, Kimberlite, StreamId, MAX_EVENT_BYTES};
use openraft::error::{CheckIsLeaderError, ClientWriteError, RaftError};
use openraft::{LogId, SnapshotPolicy};

use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::log_file::LogFileError;
use crate::log_store::LogStore;
use crate::network::{Network, Transport};
use crate::node_fs::NodeFs;
use crate::replica::Divergence;
use crate::state_machine::{OpenError, StateMachine};
use crate::types::{NodeId, Raft};

/// How many times the leader proposes one append again after its view of the stream was
/// stale (entries of an earlier leader applied in between).
const STALE_PROPOSALS_MAX: u32 = 8;
/// How long the leader waits to have applied its whole log before it reads a head.
const CATCH_UP_TIMEOUT_MS: u64 = 5_000;

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
}

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

/// Why a write was not acknowledged. Only [`WriteError::Rejected`] says the write did not
/// happen; after the others it may have (retry with the same request id to find out).
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// This node is not the leader; `leader` is the one it knows of.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader this node knows of.
        leader: Option<NodeId>,
    },
    /// Every replica refused the command; nothing was written.
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// Raft failed (stopped, storage failed, the leader could not catch up).
    #[error("raft: {0}")]
    Raft(String),
}

/// An acknowledged append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The offset of the batch's first event.
    pub first_offset: u64,
    /// The stream's head after it.
    pub head: Head,
    /// The log entry that carried it.
    pub log_id: LogId<NodeId>,
}

/// One running replica.
pub struct Node {
    id: NodeId,
    raft: Raft,
    log: LogStore,
    state_machine: StateMachine,
    /// The leader proposes one write at a time, so each proposal's head is the applied one.
    proposer: tokio::sync::Mutex<()>,
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
        let log = LogStore::open_with(config.fs.clone(), &config.dir, config.sync)?;
        let state_machine =
            StateMachine::open_with(config.fs, &config.dir, config.store.clone(), config.sync)?;
        let raft = Raft::new(
            config.id,
            Arc::new(raft_config),
            Network::new(transport),
            log.clone(),
            state_machine.clone(),
        )
        .await
        .map_err(|error| StartError::Raft(error.to_string()))?;
        Ok(Arc::new(Self {
            id: config.id,
            raft,
            log,
            state_machine,
            proposer: tokio::sync::Mutex::new(()),
        }))
    }

    /// The node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.id
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

    /// The divergence that stopped this replica applying, if one did.
    #[must_use]
    pub fn halted(&self) -> Option<Divergence> {
        self.state_machine.halted()
    }

    /// Stops the node's Raft and closes its state machine: once this returns, nothing more
    /// is written to the node's directory.
    pub async fn shutdown(&self) {
        // A join error means the Raft task already ended: stopped either way.
        let _ = self.raft.shutdown().await;
        self.state_machine.close();
    }

    /// Creates the stream `name` if there is none (on the leader); answers its id.
    pub async fn create_stream(&self, request: RequestId, name: &str) -> Result<u64, WriteError> {
        self.check_leading()?;
        let command = Command::CreateStream {
            request,
            name: name.to_owned(),
        };
        match self.propose(command).await? {
            (Response::Stream { stream }, _) => Ok(stream),
            (Response::Rejected(rejection), _) => Err(rejection.into()),
            (other, _) => Err(WriteError::Raft(format!("unexpected answer {other:?}"))),
        }
    }

    /// Appends `events` to `stream` as one batch if its next offset meets `expected` (on the
    /// leader). Returns once a majority has the entry durably and this node has applied it.
    pub async fn append(
        &self,
        request: RequestId,
        stream: u64,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<Appended, WriteError> {
        check_batch(&events)?;
        self.check_leading()?;
        let _proposing = self.proposer.lock().await;
        for _ in 0..STALE_PROPOSALS_MAX {
            self.catch_up().await?;
            let (head, applied) = self
                .state_machine
                .read(|store| store.head(StreamId::new(stream)));
            let prev = match head {
                Ok(head) => Head::of(head),
                Err(kimberlite::Error::UnknownStream { .. }) => {
                    return Err(Rejection::UnknownStream { stream }.into())
                }
                Err(error) => return Err(WriteError::Raft(error.to_string())),
            };
            if !allows(expected, prev.next_offset) {
                return Err(Rejection::OffsetConflict {
                    stream,
                    next_offset: prev.next_offset,
                }
                .into());
            }
            let command = Command::Append {
                request,
                stream,
                prev,
                read_at: applied.map_or(0, |log_id| log_id.index),
                expected: prev.after(&events),
                events: events.clone(),
            };
            match self.propose(command).await? {
                (Response::Appended { first_offset, head }, log_id) => {
                    return Ok(Appended {
                        first_offset,
                        head,
                        log_id,
                    })
                }
                (Response::Rejected(Rejection::StaleHead { .. }), _) => continue,
                (Response::Rejected(rejection), _) => return Err(rejection.into()),
                (other, _) => return Err(WriteError::Raft(format!("unexpected answer {other:?}"))),
            }
        }
        Err(WriteError::Raft(format!(
            "stream {stream}: head stale after {STALE_PROPOSALS_MAX} proposals"
        )))
    }

    /// Refuses at once on a node that knows it does not lead, instead of waiting to catch up.
    fn check_leading(&self) -> Result<(), WriteError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.id) {
            return Ok(());
        }
        Err(WriteError::NotLeader { leader })
    }

    /// Waits until this node has applied every entry in its log, so the heads it reads are
    /// those the next entry will meet.
    async fn catch_up(&self) -> Result<(), WriteError> {
        let last_log_index = self.raft.metrics().borrow().last_log_index.unwrap_or(0);
        self.raft
            .wait(Some(Duration::from_millis(CATCH_UP_TIMEOUT_MS)))
            .applied_index_at_least(Some(last_log_index), "leader catches up")
            .await
            .map(|_| ())
            .map_err(|error| WriteError::Raft(error.to_string()))
    }

    async fn propose(&self, command: Command) -> Result<(Response, LogId<NodeId>), WriteError> {
        match self.raft.client_write(command).await {
            Ok(written) => Ok((written.data, written.log_id)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(WriteError::NotLeader {
                    leader: forward.leader_id,
                })
            }
            Err(error) => Err(WriteError::Raft(error.to_string())),
        }
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

fn allows(expected: ExpectedOffset, next_offset: u64) -> bool {
    match expected {
        ExpectedOffset::Any => true,
        ExpectedOffset::NoStream => next_offset == 0,
        ExpectedOffset::Exact(offset) => offset.as_u64() == next_offset,
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
    Ok(())
}
