//! Starting a server's state in cluster mode: the node, and the node's own access store.

use super::node::{Cluster, ClusterConfig, ClusterError};
use crate::config::Limits;
use crate::keys::KeyRing;
use crate::state::AppState;

/// The directory, under the node's, of its own store: the access log of the requests this
/// node served (not replicated).
pub const ACCESS_DIR: &str = "access";

/// Starts the node of `config` and the state a server in cluster mode serves: the replica,
/// and the node's access store in `DIR/access/` (group commit, as the single-node server's).
pub async fn node_state(
    config: ClusterConfig,
    keys: KeyRing,
    limits: Limits,
) -> Result<AppState, ClusterError> {
    let access_dir = config.node.dir.join(ACCESS_DIR);
    let access = tokio::task::spawn_blocking(move || {
        kimberlite::Kimberlite::open_with(
            access_dir,
            kimberlite::Config::default().durability(kimberlite::Durability::GroupCommit),
        )
    })
    .await
    .map_err(|join| ClusterError::Config(format!("opening the access store: {join}")))??;
    let cluster = Cluster::start(config).await?;
    AppState::new(access, keys, limits).with_cluster(cluster)
}
