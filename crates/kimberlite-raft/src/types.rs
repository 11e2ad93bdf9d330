//! The openraft type configuration of a Kimberlite cluster.

use openraft::BasicNode;

use crate::command::{Command, Response};
use crate::snapshot::SnapshotImage;

/// A node's id in the cluster.
pub type NodeId = u64;

/// A node's address, as the transport reaches it (an HTTP base URL for the server).
pub type Node = BasicNode;

openraft::declare_raft_types!(
    /// The cluster's types: log entries carry [`Command`]s, applying one answers a
    /// [`Response`], snapshots are [`SnapshotImage`]s.
    pub TypeConfig:
        D = Command,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = SnapshotImage,
);

/// A Raft node of this cluster.
pub type Raft = openraft::Raft<TypeConfig>;
