//! The membership routes (admin on `*`): `GET /v1/cluster` (this node's view),
//! `POST /v1/cluster/learners`, `POST /v1/cluster/voters`, `DELETE /v1/cluster/nodes/{id}`.
//! Changes run on the leader; the cluster gate redirects them there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use kimberlite_raft::openraft::error::{ClientWriteError, RaftError};
use kimberlite_raft::openraft::{BasicNode, ChangeMembers};
use kimberlite_raft::NodeId;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::node::{log_position, Cluster};
use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

/// How long adding a learner waits for it to catch up before answering 202.
const CATCH_UP_WAIT: Duration = Duration::from_secs(10);

/// The membership routes.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/cluster", get(status))
        .route("/v1/cluster/learners", post(add_learner))
        .route("/v1/cluster/voters", post(change_voters))
        .route("/v1/cluster/nodes/{id}", delete(remove))
}

/// A member of the cluster.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Member {
    /// Its id.
    pub id: NodeId,
    /// Its base URL.
    pub url: String,
}

/// One node's view of the cluster.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ClusterView {
    /// This node's id.
    pub node_id: NodeId,
    /// Its Raft role: `Leader`, `Follower`, `Candidate` or `Learner`.
    pub state: String,
    /// Its current term.
    pub term: u64,
    /// The leader it knows of.
    pub leader_id: Option<NodeId>,
    /// That leader's base URL.
    pub leader_url: Option<String>,
    /// The voters.
    pub voters: Vec<Member>,
    /// The learners.
    pub learners: Vec<Member>,
    /// The last log position this node applied (`<term>-<node>-<index>`).
    pub last_applied: String,
    /// The last index in its Raft log.
    pub last_log_index: Option<u64>,
    /// The log position its last snapshot covers (`<term>-<node>-<index>`), if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The log position its Raft log is purged up to: a node that lacks entries up to it
    /// can only catch up from a snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purged: Option<String>,
    /// When this node leads: each node's last log position known replicated to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replication: Option<BTreeMap<NodeId, String>>,
    /// Why this replica stopped applying, if it did (a divergence).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub halted: Option<String>,
}

fn cluster_of(state: &AppState) -> Result<Arc<Cluster>, ApiError> {
    state.cluster().ok_or_else(|| {
        ApiError::NotFound(
            "this server is not in cluster mode (kimberlite serve --node-id N --peers ...)".into(),
        )
    })
}

fn view(cluster: &Cluster) -> ClusterView {
    let metrics = cluster.node().raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let member = |id: NodeId| Member {
        id,
        url: membership
            .get_node(&id)
            .map(|node| node.addr.clone())
            .unwrap_or_default(),
    };
    ClusterView {
        node_id: cluster.node().id(),
        state: format!("{:?}", metrics.state),
        term: metrics.current_term,
        leader_id: metrics.current_leader,
        leader_url: metrics
            .current_leader
            .and_then(|leader| cluster.url_of(leader)),
        voters: membership.voter_ids().map(member).collect(),
        learners: membership.learner_ids().map(member).collect(),
        last_applied: log_position(metrics.last_applied),
        last_log_index: metrics.last_log_index,
        snapshot: metrics.snapshot.map(|log_id| log_position(Some(log_id))),
        purged: metrics.purged.map(|log_id| log_position(Some(log_id))),
        replication: metrics.replication.as_ref().map(|progress| {
            progress
                .iter()
                .map(|(&id, log_id)| (id, log_position(*log_id)))
                .collect()
        }),
        halted: cluster
            .node()
            .halted()
            .map(|divergence| divergence.to_string()),
    }
}

/// A membership change's failure as an answer.
fn change_error(
    cluster: &Cluster,
    error: RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>,
) -> ApiError {
    match error {
        RaftError::APIError(ClientWriteError::ForwardToLeader(forward)) => ApiError::NotLeader {
            url: forward
                .leader_id
                .filter(|&leader| leader != cluster.node().id())
                .and_then(|leader| cluster.url_of(leader)),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(refused)) => {
            ApiError::Conflict(format!("membership change refused: {refused}"))
        }
        RaftError::Fatal(fatal) => ApiError::OutcomeUnknown(fatal.to_string()),
    }
}

/// This node's view of the cluster (admin on `*`).
#[utoipa::path(get, path = "/v1/cluster", responses((status = 200, body = ClusterView),
    (status = 404, description = "not in cluster mode")))]
pub(crate) async fn status(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<ClusterView>, ApiError> {
    principal.require_admin_everywhere()?;
    let cluster = cluster_of(&state)?;
    Ok(Json(view(&cluster)))
}

/// `POST /v1/cluster/learners` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLearner {
    /// The new node's id (started with `serve --node-id ID`, not among the voters).
    id: NodeId,
    /// Its base URL, as the other nodes reach it.
    url: String,
}

/// Add a learner (admin on `*`, on the leader): 200 once it has caught up, 202 if it is
/// still catching up after a few seconds.
#[utoipa::path(post, path = "/v1/cluster/learners", request_body = NewLearner,
    responses((status = 200, body = ClusterView), (status = 202, body = ClusterView),
        (status = 307, description = "to the leader"), (status = 409, description = "refused")))]
pub(crate) async fn add_learner(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<NewLearner>,
) -> Result<(StatusCode, Json<ClusterView>), ApiError> {
    principal.require_admin_everywhere()?;
    let cluster = cluster_of(&state)?;
    if !(request.url.starts_with("http://") || request.url.starts_with("https://")) {
        return Err(ApiError::BadRequest(format!(
            "url {:?}: expected an http:// or https:// base URL",
            request.url
        )));
    }
    let raft = cluster.node().raft();
    let url = request.url.trim_end_matches('/').to_owned();
    raft.add_learner(request.id, BasicNode::new(url), false)
        .await
        .map_err(|error| change_error(&cluster, error))?;
    let target = raft.metrics().borrow().last_log_index;
    let caught_up = raft
        .wait(Some(CATCH_UP_WAIT))
        .metrics(
            |metrics| {
                metrics
                    .replication
                    .as_ref()
                    .and_then(|progress| progress.get(&request.id).copied().flatten())
                    .map(|log_id| log_id.index)
                    >= target
            },
            "learner catches up",
        )
        .await
        .is_ok();
    let status = if caught_up {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(view(&cluster))))
}

/// `POST /v1/cluster/voters` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Voters {
    /// The voters after the change: learners among them are promoted; voters left out stay
    /// learners (remove them with `DELETE /v1/cluster/nodes/{id}`).
    voters: BTreeSet<NodeId>,
}

/// Change the voter set (admin on `*`, on the leader).
#[utoipa::path(post, path = "/v1/cluster/voters", request_body = Voters,
    responses((status = 200, body = ClusterView), (status = 307, description = "to the leader"),
        (status = 409, description = "refused (a node that is not a learner, an empty set)")))]
pub(crate) async fn change_voters(
    State(state): State<AppState>,
    principal: Principal,
    Json(request): Json<Voters>,
) -> Result<Json<ClusterView>, ApiError> {
    principal.require_admin_everywhere()?;
    let cluster = cluster_of(&state)?;
    cluster
        .node()
        .raft()
        .change_membership(ChangeMembers::ReplaceAllVoters(request.voters), true)
        .await
        .map_err(|error| change_error(&cluster, error))?;
    Ok(Json(view(&cluster)))
}

/// Remove a voter or a learner from the cluster (admin on `*`, on the leader).
#[utoipa::path(delete, path = "/v1/cluster/nodes/{id}", params(("id" = u64, Path)),
    responses((status = 200, body = ClusterView), (status = 307, description = "to the leader"),
        (status = 404, description = "no such node")))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<NodeId>,
) -> Result<Json<ClusterView>, ApiError> {
    principal.require_admin_everywhere()?;
    let cluster = cluster_of(&state)?;
    let raft = cluster.node().raft();
    let (is_voter, is_member) = {
        let metrics = raft.metrics();
        let metrics = metrics.borrow();
        let membership = metrics.membership_config.membership();
        (
            membership.voter_ids().any(|voter| voter == id),
            membership.get_node(&id).is_some(),
        )
    };
    if !is_member {
        return Err(ApiError::NotFound(format!(
            "node {id} is not in the cluster"
        )));
    }
    let change = if is_voter {
        ChangeMembers::RemoveVoters([id].into())
    } else {
        ChangeMembers::RemoveNodes([id].into())
    };
    raft.change_membership(change, false)
        .await
        .map_err(|error| change_error(&cluster, error))?;
    Ok(Json(view(&cluster)))
}
