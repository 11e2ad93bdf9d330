//! The membership routes of a cluster (`/v1/cluster`, admin on `*`): its status, adding a
//! learner, promoting it, removing a node. Changes are redirected to the leader.

use std::collections::BTreeMap;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

use crate::client::{json, Client};
use crate::error::ClientError;

/// A node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// Its id.
    pub id: u64,
    /// Its base URL.
    pub url: String,
}

/// One node's view of the cluster (`GET /v1/cluster`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// The node that answered.
    pub node_id: u64,
    /// Its Raft role (`Leader`, `Follower`, `Candidate`, `Learner`).
    pub state: String,
    /// Its term.
    pub term: u64,
    /// The leader it knows of.
    pub leader_id: Option<u64>,
    /// The leader's URL.
    pub leader_url: Option<String>,
    /// The voters.
    pub voters: Vec<Member>,
    /// The learners.
    pub learners: Vec<Member>,
    /// The last log position it applied (`<term>-<node>-<index>`).
    pub last_applied: String,
    /// The last index of its Raft log.
    pub last_log_index: Option<u64>,
    /// The log position its last snapshot covers, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The log position its Raft log is purged up to, if purged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purged: Option<String>,
    /// On the leader: each node's log position known replicated.
    #[serde(default)]
    pub replication: Option<BTreeMap<u64, String>>,
    /// Why this replica stopped applying, if it did.
    #[serde(default)]
    pub halted: Option<String>,
}

impl Client {
    /// `GET /v1/cluster`: the answering node's view of the cluster.
    pub fn cluster_status(&self) -> Result<ClusterStatus, ClientError> {
        json(self.send(self.request(Method::GET, &["v1", "cluster"])?)?)
    }

    /// `POST /v1/cluster/learners`: adds node `id` at `url` as a learner. True once it has
    /// caught up with the leader's log; false when it is still catching up (202).
    pub fn add_learner(&self, id: u64, url: &str) -> Result<(ClusterStatus, bool), ClientError> {
        let request = self
            .request(Method::POST, &["v1", "cluster", "learners"])?
            .json(&serde_json::json!({ "id": id, "url": url }));
        let response = self.send(request)?;
        let caught_up = response.status() != StatusCode::ACCEPTED;
        Ok((json(response)?, caught_up))
    }

    /// `POST /v1/cluster/voters`: makes `voters` the voter set (learners among them are
    /// promoted; voters left out stay learners).
    pub fn set_voters(&self, voters: &[u64]) -> Result<ClusterStatus, ClientError> {
        let request = self
            .request(Method::POST, &["v1", "cluster", "voters"])?
            .json(&serde_json::json!({ "voters": voters }));
        json(self.send(request)?)
    }

    /// Promotes learner `id` to voter: the leader's voters and `id`.
    pub fn promote(&self, id: u64) -> Result<ClusterStatus, ClientError> {
        let status = self.cluster_status()?;
        let mut voters: Vec<u64> = status.voters.iter().map(|member| member.id).collect();
        if !voters.contains(&id) {
            voters.push(id);
        }
        self.set_voters(&voters)
    }

    /// `DELETE /v1/cluster/nodes/{id}`: removes a voter or learner from the cluster.
    pub fn remove_node(&self, id: u64) -> Result<ClusterStatus, ClientError> {
        let id = id.to_string();
        json(self.send(self.request(Method::DELETE, &["v1", "cluster", "nodes", &id])?)?)
    }
}
