//! Nodes of one cluster in this process, each a real server on loopback (`serve --node-id`),
//! and the requests the cluster tests send them (redirects shown, not followed: a follower's
//! answer to a write or a linearizable read is one).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use kimberlite_server::{node_state, AppState, ClusterConfig, Limits, Server, ServerConfig};
use reqwest::{IntoUrl, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The cluster secret of the test nodes.
pub const SECRET: &str = "test-cluster-secret";

/// A running node.
pub struct RunningNode {
    pub state: AppState,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// Nodes of one cluster, each in `dir/node-<id>`.
pub struct Nodes {
    pub dir: tempfile::TempDir,
    /// Every node's base URL (the voters' and any added).
    pub urls: BTreeMap<u64, String>,
    /// The voters the cluster was bootstrapped with.
    pub peers: BTreeMap<u64, String>,
    pub running: BTreeMap<u64, RunningNode>,
    /// Finishes every node's configuration (a snapshot policy, say).
    configure: fn(&mut ClusterConfig),
    /// Finishes every node's state (a signing key and store name, say).
    finish: fn(AppState) -> AppState,
}

/// A listener on a free loopback port and its base URL.
pub fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    (listener, url)
}

/// A client that shows redirects instead of following them.
pub fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// `GET url` with `token`'s key.
pub async fn get(url: impl IntoUrl, token: &str) -> Response {
    raw()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

/// `POST url` with `token`'s key and `body` as JSON.
pub async fn post(url: impl IntoUrl, token: &str, body: &Value) -> Response {
    raw()
        .post(url)
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .expect("request")
}

impl Nodes {
    /// Starts `voters` (the first bootstraps the cluster).
    pub async fn start(voters: &[u64]) -> Self {
        Self::start_configured(voters, |_| {}).await
    }

    /// Starts `voters`, each node's configuration finished by `configure`.
    pub async fn start_configured(voters: &[u64], configure: fn(&mut ClusterConfig)) -> Self {
        Self::start_with(voters, configure, |state| state).await
    }

    /// Starts `voters` signing checkpoints with [`super::checkpoint_key`] as store
    /// [`super::LOG_NAME`] (every node the same key and name).
    pub async fn start_signing(voters: &[u64]) -> Self {
        Self::start_with(
            voters,
            |_| {},
            |state| {
                state
                    .with_store_name(super::LOG_NAME)
                    .expect("a store name")
                    .with_signing_key(super::checkpoint_key())
            },
        )
        .await
    }

    /// Starts `voters`, each node's configuration finished by `configure` and its state by
    /// `finish`.
    pub async fn start_with(
        voters: &[u64],
        configure: fn(&mut ClusterConfig),
        finish: fn(AppState) -> AppState,
    ) -> Self {
        let listeners: Vec<(u64, TcpListener, String)> = voters
            .iter()
            .map(|&id| {
                let (listener, url) = listener();
                (id, listener, url)
            })
            .collect();
        let peers: BTreeMap<u64, String> = listeners
            .iter()
            .map(|(id, _, url)| (*id, url.clone()))
            .collect();
        let mut nodes = Self {
            dir: tempfile::tempdir().expect("temp dir"),
            urls: peers.clone(),
            peers,
            running: BTreeMap::new(),
            configure,
            finish,
        };
        for (index, (id, listener, _)) in listeners.into_iter().enumerate() {
            nodes.start_node(id, listener, index == 0).await;
        }
        nodes
    }

    /// Starts node `id` on `listener` (a learner-to-be when it is not among the voters).
    pub async fn start_node(&mut self, id: u64, listener: TcpListener, bootstrap: bool) {
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        self.urls.insert(id, url);
        let dir = self.dir.path().join(format!("node-{id}"));
        let mut config = ClusterConfig::new(id, &dir, self.peers.clone(), SECRET);
        config.bootstrap = bootstrap;
        // The tests never crash the machine: the Raft log need not be synced.
        config.node.sync = false;
        (self.configure)(&mut config);
        let state = node_state(config, super::test_keys(), Limits::default())
            .await
            .expect("node starts");
        let state = (self.finish)(state);
        let server_config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        let server =
            Server::with_listener(&server_config, state.clone(), listener).expect("server");
        let (stop, task) = super::spawn(server);
        self.running.insert(id, RunningNode { state, stop, task });
    }

    /// Stops node `id`'s server (its Raft with it), as a shutdown does.
    pub async fn stop(&mut self, id: u64) {
        if let Some(node) = self.running.remove(&id) {
            let _ = node.stop.send(());
            node.task.await.expect("server task");
        }
    }

    /// The URL of `path` on node `id`.
    pub fn url(&self, id: u64, path: &str) -> String {
        format!("{}{path}", self.urls[&id])
    }

    /// Waits (at most 10 s) until one running node leads; its id.
    pub async fn leader(&self) -> u64 {
        for _ in 0..500 {
            let leaders: Vec<u64> = self
                .running
                .iter()
                .filter(|(_, node)| node.state.cluster().expect("cluster").is_leader())
                .map(|(&id, _)| id)
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!(
            "no leader among {:?}",
            self.running.keys().collect::<Vec<_>>()
        );
    }

    /// A running node other than `not`.
    pub fn other_than(&self, not: u64) -> u64 {
        *self
            .running
            .keys()
            .find(|&&id| id != not)
            .expect("another node")
    }

    /// Stops every node.
    pub async fn shutdown(mut self) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    /// Creates stream `name` through node `node`.
    pub async fn create(&self, node: u64, name: &str) -> Response {
        let body = json!({ "name": name });
        post(self.url(node, "/v1/streams"), super::ADMIN, &body).await
    }

    /// Appends `events` (a JSON array) to `stream` through node `node`.
    pub async fn append(&self, node: u64, stream: &str, events: Value) -> Response {
        let path = format!("/v1/streams/{stream}/events");
        post(self.url(node, &path), super::ADMIN, &events).await
    }

    /// Reads `stream` on `node` as a follower read until it holds `count` events (bounded);
    /// the answer of a read made once it does.
    pub async fn follower_read(&self, node: u64, stream: &str, count: usize) -> Response {
        let url = self.url(
            node,
            &format!("/v1/streams/{stream}/events?from=0&consistency=follower"),
        );
        for _ in 0..250 {
            let response = get(&url, super::ADMIN).await;
            if response.status() == StatusCode::OK {
                let position = response.headers().get("kimberlite-log-position").cloned();
                let body: Value = response.json().await.expect("a JSON page");
                if body["events"].as_array().expect("events").len() >= count {
                    // Ask again to hand back the whole response.
                    let again = get(&url, super::ADMIN).await;
                    assert!(position.is_some());
                    return again;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node {node} never held {count} events of {stream}");
    }

    /// The note `path` answers on `node` to an auditor, once it is 200 and of `size` events
    /// (bounded).
    pub async fn note_of_size(&self, node: u64, path: &str, size: u64) -> String {
        for _ in 0..250 {
            let response = get(self.url(node, path), super::AUDITOR).await;
            if response.status() == StatusCode::OK {
                let note = response.text().await.expect("a note");
                if note.lines().nth(1) == Some(size.to_string().as_str()) {
                    return note;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("node {node} never answered a checkpoint of {size} at {path}");
    }
}
