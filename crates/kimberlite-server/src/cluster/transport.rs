//! [`HttpTransport`]: the Raft messages of this node to the others, as POSTs to their Raft
//! routes (`raft_routes.rs`) with the cluster secret, bodies and answers in `wire.rs`'s form.

use std::sync::Arc;
use std::time::Duration;

use kimberlite_raft::openraft::error::{Fatal, RaftError};
use kimberlite_raft::openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use kimberlite_raft::openraft::{Snapshot, Vote};
use kimberlite_raft::{
    NodeAddress, NodeId, Transport, TransportError, TransportResult, TypeConfig,
};
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::wire;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a log or vote message may take, answer included: past it, the target counts as
/// unreachable and openraft sends again.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole snapshot may take to be sent and installed.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends this node's Raft messages over HTTP(S).
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    secret: Arc<str>,
}

impl HttpTransport {
    /// A transport presenting `secret` to the other nodes, trusting the system's roots and
    /// the PEM certificates in `ca_pems` for their TLS certificates.
    pub fn new(secret: Arc<str>, ca_pems: &[Vec<u8>]) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder();
        for pem in ca_pems {
            for cert in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        let client = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            // A node's answer is never a redirect; following one would hand the secret on.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self { client, secret })
    }

    async fn call<Q: Serialize, A: DeserializeOwned, E: std::error::Error + DeserializeOwned>(
        &self,
        target: NodeId,
        node: &NodeAddress,
        route: &str,
        message: &Q,
        timeout: Duration,
    ) -> TransportResult<A, E> {
        let unreachable = |reason: String| TransportError::Unreachable { target, reason };
        let body = wire::encode(message).map_err(|error| unreachable(error.to_string()))?;
        let url = format!("{}/v1/raft/{route}", node.addr.trim_end_matches('/'));
        let response = self
            .client
            .post(&url)
            .bearer_auth(&*self.secret)
            .header(reqwest::header::CONTENT_TYPE, wire::CONTENT_TYPE)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|error| unreachable(format!("{url}: {error}")))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| unreachable(format!("{url}: {error}")))?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&bytes);
            let text: String = text.chars().take(200).collect();
            return Err(unreachable(format!("{url}: {status}: {text}")));
        }
        let answer: Result<A, E> =
            wire::decode(&bytes).map_err(|error| unreachable(format!("{url}: {error}")))?;
        answer.map_err(|source| TransportError::Remote { target, source })
    }
}

/// What the snapshot route carries: the sender's vote, then the snapshot's meta and image.
pub(crate) type SnapshotMessage = (
    Vote<NodeId>,
    kimberlite_raft::openraft::SnapshotMeta<NodeId, NodeAddress>,
    kimberlite_raft::SnapshotImage,
);

impl Transport for HttpTransport {
    async fn append_entries(
        &self,
        target: NodeId,
        node: &NodeAddress,
        request: AppendEntriesRequest<TypeConfig>,
    ) -> TransportResult<AppendEntriesResponse<NodeId>, RaftError<NodeId>> {
        self.call(target, node, "append-entries", &request, MESSAGE_TIMEOUT)
            .await
    }

    async fn vote(
        &self,
        target: NodeId,
        node: &NodeAddress,
        request: VoteRequest<NodeId>,
    ) -> TransportResult<VoteResponse<NodeId>, RaftError<NodeId>> {
        self.call(target, node, "vote", &request, MESSAGE_TIMEOUT)
            .await
    }

    async fn snapshot(
        &self,
        target: NodeId,
        node: &NodeAddress,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
    ) -> TransportResult<SnapshotResponse<NodeId>, Fatal<NodeId>> {
        let message: SnapshotMessage = (vote, snapshot.meta, *snapshot.snapshot);
        self.call(target, node, "snapshot", &message, SNAPSHOT_TIMEOUT)
            .await
    }
}
