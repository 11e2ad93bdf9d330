//! The client against a cluster of three real nodes on loopback: redirects to the leader
//! followed, a leader stopped and the next write retried on the new one, a write sent again
//! with its request id answered once, membership changes.

mod common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{keys, ADMIN};
use kimberlite_client::{Client, REQUEST_ID_HEADER};
use kimberlite_server::{node_state, AppState, ClusterConfig, Limits, Server, ServerConfig};
use tokio::sync::oneshot;

const SECRET: &str = "client-test-cluster-secret";

struct Node {
    state: AppState,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// Nodes on loopback, served on a runtime of their own (the client blocks).
struct Nodes {
    runtime: tokio::runtime::Runtime,
    dir: tempfile::TempDir,
    peers: BTreeMap<u64, String>,
    urls: BTreeMap<u64, String>,
    running: BTreeMap<u64, Node>,
}

fn listener() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

impl Nodes {
    fn start(voters: &[u64]) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
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
            runtime,
            dir: tempfile::tempdir().unwrap(),
            urls: peers.clone(),
            peers,
            running: BTreeMap::new(),
        };
        for (index, (id, listener, _)) in listeners.into_iter().enumerate() {
            nodes.start_node(id, listener, index == 0);
        }
        nodes
    }

    fn start_node(&mut self, id: u64, listener: TcpListener, bootstrap: bool) {
        let url = format!("http://{}", listener.local_addr().unwrap());
        self.urls.insert(id, url);
        let mut config = ClusterConfig::new(
            id,
            &self.dir.path().join(format!("node-{id}")),
            self.peers.clone(),
            SECRET,
        );
        config.bootstrap = bootstrap;
        config.node.sync = false;
        let state = self
            .runtime
            .block_on(node_state(config, keys(), Limits::default()))
            .unwrap();
        let _guard = self.runtime.enter();
        let server = Server::with_listener(
            &ServerConfig::new("127.0.0.1:0".parse().unwrap()),
            state.clone(),
            listener,
        )
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = self.runtime.spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.running.insert(id, Node { state, stop, task });
    }

    fn stop(&mut self, id: u64) {
        if let Some(node) = self.running.remove(&id) {
            let _ = node.stop.send(());
            self.runtime.block_on(node.task).unwrap();
        }
    }

    fn leader(&self) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let leaders: Vec<u64> = self
                .running
                .iter()
                .filter(|(_, node)| node.state.cluster().unwrap().is_leader())
                .map(|(&id, _)| id)
                .collect();
            if let [leader] = leaders[..] {
                return leader;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no leader");
    }

    /// A client of node `first`, knowing the other running nodes.
    fn client(&self, first: u64) -> Client {
        let mut builder = Client::builder(&self.urls[&first]).token(ADMIN);
        for (&id, url) in &self.urls {
            if id != first && self.running.contains_key(&id) {
                builder = builder.other_node(url);
            }
        }
        builder.build().unwrap()
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.running.keys().copied().collect();
        for id in ids {
            self.stop(id);
        }
    }
}

/// Appends `event` to `stream` on `url` with request id `id`; its first offset.
fn append_with_id(url: &str, stream: &str, id: &str, event: &str) -> u64 {
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http
        .post(format!("{url}/v1/streams/{stream}/events"))
        .bearer_auth(ADMIN)
        .header(REQUEST_ID_HEADER, id)
        .json(&[event])
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text());
    let body: serde_json::Value = response.json().unwrap();
    body["first_offset"].as_u64().unwrap()
}

#[test]
fn writes_follow_the_leader_through_a_failover_and_are_answered_once() {
    let mut nodes = Nodes::start(&[1, 2, 3]);
    let leader = nodes.leader();
    let follower = *nodes.running.keys().find(|&&id| id != leader).unwrap();
    // Sent to a follower: redirected to the leader, the token kept.
    let client = nodes.client(follower);
    client.create_stream("ehr").unwrap();
    let appended = client.append("ehr", &["a", "b"], Some(0)).unwrap();
    assert_eq!(appended.first_offset, 0);

    // A write whose answer was lost is sent again with its request id: answered once.
    let id = "0123456789abcdef0123456789abcdef-1";
    let first = append_with_id(&nodes.urls[&leader], "ehr", id, "c");
    assert_eq!(first, 2);

    nodes.stop(leader);
    let new_leader = nodes.leader();
    assert_ne!(new_leader, leader);
    assert_eq!(
        append_with_id(&nodes.urls[&new_leader], "ehr", id, "c"),
        first
    );

    // The client's next write finds the new leader (its first node may be the one stopped).
    let client = nodes.client(leader);
    let appended = client.append("ehr", &["d"], None).unwrap();
    assert_eq!(appended.first_offset, 3);
    let page = client.read("ehr", 0, None).unwrap();
    let texts: Vec<String> = page
        .events
        .iter()
        .map(|event| event.text().unwrap().to_owned())
        .collect();
    assert_eq!(texts, ["a", "b", "c", "d"]);
}

#[test]
fn a_learner_is_added_and_promoted_through_the_client() {
    let mut nodes = Nodes::start(&[1, 2, 3]);
    let leader = nodes.leader();
    let client = nodes.client(leader);
    client.create_stream("m").unwrap();
    client.append("m", &["1"], None).unwrap();
    let (listener, url) = listener();
    nodes.start_node(4, listener, false);

    let (status, _) = client.add_learner(4, &url).unwrap();
    assert_eq!(
        status.learners.iter().map(|m| m.id).collect::<Vec<_>>(),
        [4]
    );
    let status = client.promote(4).unwrap();
    let voters: Vec<u64> = status.voters.iter().map(|m| m.id).collect();
    assert_eq!(voters, [1, 2, 3, 4]);
    let status = client.remove_node(4).unwrap();
    assert_eq!(status.voters.len(), 3);
    let status = nodes.client(4).cluster_status().unwrap();
    assert_eq!(status.node_id, 4);
}
