//! A cluster of `kimberlite serve` processes on loopback, for the real-process tests of
//! replication (docs/TESTING.md, section "Real processes"): each node a process with its own
//! directory, reached by the others through a proxy the test can cut; every process killed
//! when the cluster is dropped, a failed test included.

#![allow(dead_code)] // each test file uses its own share

pub mod counting;
pub mod http;
pub mod proxy;
pub mod stores;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use http::Http;
use proxy::{Pids, Proxies};

/// How long the cluster has to elect a leader, or a node to come up, before a test fails.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The lines of each node's log a failed test prints (the whole log stays in its directory).
const LOG_TAIL_LINES: usize = 40;

/// One node: its id, directory, real address and the URL the others use (its proxy's).
struct NodeProcess {
    dir: PathBuf,
    listen: SocketAddr,
    url: String,
    log: PathBuf,
    child: Option<Child>,
}

/// A cluster of `kimberlite serve` processes.
pub struct Cluster {
    temp: Option<tempfile::TempDir>,
    root: PathBuf,
    /// The API key (admin, append and read on every stream) of every node.
    pub token: String,
    pub token_file: PathBuf,
    keys_file: PathBuf,
    secret_file: PathBuf,
    nodes: BTreeMap<u64, NodeProcess>,
    /// Arguments every node's `kimberlite serve` gets beyond the cluster's own.
    extra_args: Vec<String>,
    pids: Pids,
    proxies: Proxies,
    pub http: Http,
}

/// The path as text, for command lines.
pub fn text(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 temporary path")
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("its address")
}

/// Runs the `kimberlite` binary to its end; panics unless it succeeds; returns its stdout.
pub fn kimberlite(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run kimberlite");
    assert!(
        output.status.success(),
        "kimberlite {args:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Cluster {
    /// Starts nodes `1..=voters`, node 1 bootstrapping them as voters, and waits for a
    /// leader.
    pub fn start(voters: u64) -> Self {
        Self::start_with(voters, &[])
    }

    /// [`Cluster::start`], every node's `kimberlite serve` given `extra_args` too.
    pub fn start_with(voters: u64, extra_args: &[&str]) -> Self {
        let temp = tempfile::tempdir().expect("a temporary directory");
        let root = temp.path().to_path_buf();
        let keys_file = root.join("keys.json");
        let token = kimberlite(&[
            "key",
            "add",
            text(&root),
            "--keys",
            text(&keys_file),
            "--name",
            "operator",
            "--allow",
            "admin:*",
            "--allow",
            "append:*",
        ])
        .trim()
        .to_owned();
        let token_file = root.join("token");
        std::fs::write(&token_file, &token).expect("write the token");
        let secret_file = root.join("cluster.secret");
        std::fs::write(&secret_file, "a-test-cluster-secret-of-some-length\n")
            .expect("write the cluster secret");
        let pids: Pids = Arc::new(Mutex::new(Vec::new()));
        let mut cluster = Self {
            temp: Some(temp),
            root,
            http: Http::new(&token, Duration::from_secs(5)),
            token,
            token_file,
            keys_file,
            secret_file,
            nodes: BTreeMap::new(),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            proxies: Proxies::new(Arc::clone(&pids)),
            pids,
        };
        for id in 1..=voters {
            let dir = cluster.root.join(format!("node{id}"));
            cluster.prepare(id, dir);
        }
        for id in 1..=voters {
            cluster.spawn(id, id == 1);
        }
        cluster.wait_leader(&[]);
        cluster
    }

    /// Directory `dir` (with the key file), an address and a proxy for node `id` (not
    /// started).
    fn prepare(&mut self, id: u64, dir: PathBuf) {
        std::fs::create_dir_all(&dir).expect("the node's directory");
        std::fs::copy(&self.keys_file, dir.join("server-keys.json")).expect("copy the keys");
        let listen = free_port();
        let proxy = self.proxies.start(id, listen);
        let log = self.root.join(format!("node{id}.log"));
        self.nodes.insert(
            id,
            NodeProcess {
                dir,
                listen,
                url: format!("http://{proxy}"),
                log,
                child: None,
            },
        );
    }

    /// `--peers` of the voters `ids`.
    fn peers(&self, ids: &[u64]) -> String {
        ids.iter()
            .map(|id| format!("{id}={}", self.nodes[id].url))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Starts node `id`'s process (its directory as it is); `--bootstrap` when `bootstrap`.
    /// Its `--peers` are the nodes prepared so far, or, for a node added later, the others.
    pub fn spawn(&mut self, id: u64, bootstrap: bool) {
        let voters: Vec<u64> = self.nodes.keys().copied().collect();
        self.spawn_with_peers(id, bootstrap, &voters);
    }

    /// Starts a new node `id` in `dir` that waits to be added (it is not in its own
    /// `--peers`, which are the running nodes).
    pub fn spawn_newcomer(&mut self, id: u64, dir: PathBuf) {
        assert!(!self.nodes.contains_key(&id), "node {id} exists");
        let peers: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|&n| self.is_running(n))
            .collect();
        self.prepare(id, dir);
        self.spawn_with_peers(id, false, &peers);
    }

    fn spawn_with_peers(&mut self, id: u64, bootstrap: bool, peers: &[u64]) {
        let peers = self.peers(peers);
        let node = self.nodes.get_mut(&id).expect("a prepared node");
        assert!(node.child.is_none(), "node {id} runs already");
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("the node's log");
        // Each start marked, so a restarted node's lines are told from the last run's.
        writeln!(log, "=== the test starts node {id} (peers {peers}) ===").expect("the log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kimberlite"));
        command
            .arg("serve")
            .arg(&node.dir)
            .args(["--listen", &node.listen.to_string()])
            .args(["--node-id", &id.to_string(), "--peers", &peers])
            .arg("--cluster-token-file")
            .arg(&self.secret_file)
            .args(&self.extra_args)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log, twice"))
            .stderr(log);
        if bootstrap {
            command.arg("--bootstrap");
        }
        let child = command.spawn().expect("start kimberlite serve");
        self.pids.lock().expect("pids").push((id, child.id()));
        node.child = Some(child);
        self.wait_up(id);
    }

    /// Waits until node `id` answers `GET /v1/cluster`.
    fn wait_up(&mut self, id: u64) {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        while Instant::now() < deadline {
            if self.status(id).is_some() {
                return;
            }
            let node = self.nodes.get_mut(&id).expect("a node");
            if let Some(status) = node
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("node {id} exited: {status}\n{}", self.log_tail(id));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("node {id} did not come up\n{}", self.log_tail(id));
    }

    /// Kills node `id` with SIGKILL and waits for it to be gone.
    pub fn kill(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("a node");
        if let Some(mut child) = node.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            let pid = child.id();
            self.pids.lock().expect("pids").retain(|&(_, p)| p != pid);
        }
    }

    /// Stops node `id` with SIGTERM (its shutdown path), SIGKILL after 20 s.
    pub fn stop(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("a node");
        let Some(mut child) = node.child.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        let pid = child.id();
        self.pids.lock().expect("pids").retain(|&(_, p)| p != pid);
    }

    /// Whether node `id`'s process runs.
    pub fn is_running(&self, id: u64) -> bool {
        self.nodes.get(&id).is_some_and(|node| node.child.is_some())
    }

    /// The node ids, running or not.
    pub fn ids(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    /// Node `id`'s own address (not through its proxy), as a base URL.
    pub fn direct_url(&self, id: u64) -> String {
        format!("http://{}", self.nodes[&id].listen)
    }

    /// The URL the other nodes and redirected clients use for node `id` (its proxy).
    pub fn url(&self, id: u64) -> String {
        self.nodes[&id].url.clone()
    }

    /// Node `id`'s directory.
    pub fn dir(&self, id: u64) -> PathBuf {
        self.nodes[&id].dir.clone()
    }

    pub fn proxies(&self) -> &Proxies {
        &self.proxies
    }

    /// `GET /v1/cluster` on node `id`, None when it does not answer 200.
    pub fn status(&self, id: u64) -> Option<Value> {
        if !self.is_running(id) {
            return None;
        }
        let answer = self
            .http
            .get(&format!("{}/v1/cluster", self.direct_url(id)))
            .ok()?;
        (answer.status == 200).then(|| answer.json())
    }

    /// The leader node `id` names, if any.
    pub fn leader_seen_by(&self, id: u64) -> Option<u64> {
        self.status(id)?.get("leader_id")?.as_u64()
    }

    /// Waits for a running node, not in `except`, that says it leads, and for every running
    /// node not in `except` to name it; returns its id.
    pub fn wait_leader(&self, except: &[u64]) -> u64 {
        let deadline = Instant::now() + SETTLE_TIMEOUT;
        let voters: Vec<u64> = self
            .ids()
            .into_iter()
            .filter(|id| self.is_running(*id) && !except.contains(id))
            .collect();
        while Instant::now() < deadline {
            let seen: Vec<Option<u64>> = voters.iter().map(|&id| self.leader_seen_by(id)).collect();
            if let Some(Some(leader)) = seen.first() {
                let agreed = seen.iter().all(|s| *s == Some(*leader));
                if agreed && voters.contains(leader) {
                    return *leader;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("no leader among {voters:?}\n{}", self.logs());
    }

    /// Creates `stream` through node `id` (following a redirect to the leader).
    pub fn create_stream(&self, id: u64, stream: &str) {
        let mut url = format!("{}/v1/streams", self.direct_url(id));
        for _hop in 0..4 {
            let answer = self
                .http
                .post(&url, &serde_json::json!({ "name": stream }), None)
                .unwrap_or_else(|error| panic!("create {stream}: {error}"));
            match answer.status {
                200 | 201 => return,
                307 => url = answer.location.expect("a redirect names where"),
                status => panic!("create {stream}: {status} {}", answer.body),
            }
        }
        panic!("create {stream}: too many redirects");
    }

    /// The last [`LOG_TAIL_LINES`] lines of node `id`'s log (its standard output and error,
    /// every run of it), and where the whole log is.
    pub fn log_tail(&self, id: u64) -> String {
        let path = &self.nodes[&id].log;
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let from = lines.len().saturating_sub(LOG_TAIL_LINES);
        format!(
            "--- node {id} log ({}, last {} lines) ---\n{}",
            path.display(),
            lines.len() - from,
            lines[from..].join("\n")
        )
    }

    /// The last lines of every node's log.
    pub fn logs(&self) -> String {
        self.ids()
            .into_iter()
            .map(|id| self.log_tail(id))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for node in self.nodes.values_mut() {
            if let Some(mut child) = node.child.take() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
            // Keep the directories and logs of a failed run to look at.
            if let Some(temp) = self.temp.take() {
                eprintln!("the cluster's files are kept in {}", temp.keep().display());
            }
        }
    }
}
