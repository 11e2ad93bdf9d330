//! Cluster mode (`kimberlite serve --node-id N`): this server runs one replica of a Raft group
//! (crate `kimberlite-raft`, docs/REPLICATION.md) and serves its store. Writes go through the
//! leader's `Node`; a follower redirects them; reads answer the log position they reflect
//! (docs/SERVER.md, section "Cluster mode").

mod checkpoint;
mod gate;
pub(crate) mod membership;
mod node;
mod raft_routes;
mod start;
mod transport;
mod wire;
mod writes;

pub(crate) use checkpoint::signed_note;
pub(crate) use gate::{gate, locate};
pub(crate) use membership::routes as membership_routes;
pub use node::{
    log_position, Cluster, ClusterConfig, ClusterError, LOG_POSITION_HEADER, REQUEST_ID_HEADER,
};
pub(crate) use raft_routes::{is_raft_path, routes as raft_routes};
pub use start::{node_state, ACCESS_DIR};
pub use transport::HttpTransport;
pub(crate) use writes::{append, create_stream, request_id};
