//! Replication of a Kimberlite store on openraft (docs/REPLICATION.md).
//!
//! One Raft group carries every stream. Its log entries are deterministic [`Command`]s; each
//! replica applies them to its own Kimberlite store ([`Replica`]), checks the head the leader
//! expected, and answers each request once ([`RequestTable`], in its [`Ledger`]).
//!
//! - [`Node`]: one replica (its [`LogStore`], [`StateMachine`] and Raft); the leader's side of
//!   a write ([`Node::append`], [`Node::create_stream`], [`Node::publish_checkpoint`]) and
//!   reads.
//! - [`Transport`]: how messages reach other nodes; [`SimNetwork`] in process, with faults.
//! - [`NodeFs`]: the file system every file of a node goes through (the real one, or a
//!   simulated one that loses power).
//! - [`linearizability::check`]: whether a recorded history of appends and reads fits one
//!   order in real time (the tests' checker).
//! - [`Cluster`]: nodes in one process over a [`SimNetwork`], and a client that retries on the
//!   leader (the tests' harness).

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

mod applied_file;
mod applied_saver;
mod certain;
mod cluster;
mod command;
mod commit_watch;
mod generation;
mod halt;
mod journal_file;
pub mod linearizability;
mod log_file;
mod log_flush;
mod log_store;
mod network;
mod node;
mod node_fs;
mod open_error;
mod proposer;
mod publish;
mod reachability;
mod replica;
mod replica_checkpoint;
mod replica_run;
mod request_table;
mod saved_json;
mod shared_events;
mod sim_network;
mod snapshot;
mod snapshot_error;
mod snapshot_files;
mod state_machine;
mod types;
mod write;

#[cfg(test)]
mod early_answer_tests;
#[cfg(test)]
mod linearizability_tests;
#[cfg(test)]
mod log_file_faults_tests;
#[cfg(test)]
mod log_file_tests;
#[cfg(test)]
mod log_flush_tests;
#[cfg(test)]
mod replica_batch_tests;
#[cfg(test)]
mod replica_checkpoint_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod snapshot_tests;
#[cfg(test)]
mod state_machine_faults_tests;

pub use applied_file::APPLIED_FILE;
pub use applied_saver::SAVE_PACE;
pub use cluster::{Cluster, ClusterError, ClusterOptions};
pub use command::{Command, Head, Rejection, RequestId, Response};
pub use halt::Halt;
pub use log_file::{LogFileError, LOG_FILE};
pub use log_store::LogStore;
pub use network::{Network, Transport, TransportError, TransportResult};
pub use node::{Node, NodeConfig, StartError, PROPOSAL_TIMEOUT, SNAPSHOT_BYTES};
pub use node_fs::{NodeFile, NodeFs, NodeLock};
pub use open_error::OpenError;
pub use openraft;
pub use publish::{PublishError, PublishedCheckpoint};
pub use replica::{ApplyError, Divergence, DivergencePoint, Ledger, LedgerChange, Replica};
pub use request_table::{Answer, RequestTable, REQUEST_ANSWERS_MAX};
pub use shared_events::decode_sharing;
pub use sim_network::{Faults, SimNetwork, SimTransport};
pub use snapshot::{SnapshotImage, StoreFile, StreamImage};
pub use snapshot_error::SnapshotError;
pub use state_machine::{StateMachine, STORE_DIR};
pub use types::{Node as NodeAddress, NodeId, Raft, TypeConfig};
pub use write::{Appended, WriteError};
