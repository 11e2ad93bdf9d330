//! Witnesses on loopback (`kimberlite-witness`, in process) and servers that have their
//! checkpoints witnessed, for the witness client's end-to-end tests. Every wait is a bounded
//! poll that fails the test when its bound passes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kimberlite::proof::{WitnessKey, WitnessPolicy, WitnessSigner};
use kimberlite_server::{WitnessPolicies, WitnessingConfig};
use kimberlite_witness::{Witness, WitnessState};
use reqwest::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::{checkpoint_key, TestServer, ADMIN, AUDITOR, LOG_NAME};

/// Polls of a bounded wait, 50 ms apart: 20 s in all.
const POLLS_MAX: u32 = 400;

/// A witness serving `POST /add-checkpoint` on 127.0.0.1.
pub struct TestWitness {
    pub addr: SocketAddr,
    pub signer: WitnessSigner,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    /// Held to know when the server's connection tasks have let go of it (and of its
    /// store's lock): they may still be dropping their clones when `serve` returns.
    witness: Arc<Witness>,
}

/// The origin of the test servers' stream `stream`.
pub fn origin(stream: &str) -> String {
    format!("{LOG_NAME}/{stream}")
}

/// Witness key number `seed` named `w<n>`.
pub fn witness_signer(n: u8, seed: u8) -> WitnessSigner {
    WitnessSigner::from_seed(&format!("witness.test/w{n}"), [seed; 32]).expect("a key")
}

/// Witnesses 1, 2 and 3 (each key from its own seed), each keeping `stream`.
pub async fn three_witnesses(stream: &str) -> Vec<TestWitness> {
    let mut witnesses = Vec::new();
    for n in 1..=3 {
        witnesses.push(TestWitness::start(witness_signer(n, n), &[stream]).await);
    }
    witnesses
}

impl TestWitness {
    /// A witness signing with `signer` that accepts the test servers' `streams`.
    pub async fn start(signer: WitnessSigner, streams: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, signer, streams).await
    }

    async fn start_in(dir: tempfile::TempDir, signer: WitnessSigner, streams: &[&str]) -> Self {
        let mut state = WitnessState::open(dir.path()).expect("witness store");
        let log = checkpoint_key().verifier().to_text();
        for stream in streams {
            state.add_log(&origin(stream), &log).expect("add-log");
        }
        let witness = Arc::new(Witness::new(signer.clone(), state));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(kimberlite_witness::serve(
            listener,
            Arc::clone(&witness),
            async {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            signer,
            dir,
            stop: Some(stop),
            task: Some(task),
            witness,
        }
    }

    /// Its submission prefix.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn key(&self) -> WitnessKey {
        self.signer.verifier()
    }

    /// Stops it, keeping its store.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("witness task").expect("witness serve");
        }
        // Bounded: 10 s for the last connection task to drop its clone, then the store
        // (and its lock) goes with ours.
        for _ in 0..1_000 {
            if Arc::strong_count(&self.witness) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(
            Arc::strong_count(&self.witness),
            1,
            "the witness is still served"
        );
        self.dir
    }
}

/// A `quorum`-of-n policy over `witnesses` (key, URL), in its text form and parsed back.
pub fn policy(witnesses: &[(WitnessKey, String)], quorum: usize) -> WitnessPolicy {
    let mut text = String::from("# the test's witnesses\n");
    for (key, url) in witnesses {
        text.push_str(&format!("witness {} {url}\n", key.to_text()));
    }
    text.push_str(&format!("quorum {quorum}\n"));
    WitnessPolicy::parse(&text).expect("a policy")
}

/// `policy` for every stream, with bounds short enough for tests.
pub fn config(policy: WitnessPolicy) -> WitnessingConfig {
    let mut policies = WitnessPolicies::new();
    policies.add("*", policy).expect("URLs");
    let mut config = WitnessingConfig::new(policies);
    config.request_timeout = Duration::from_secs(2);
    config.retry_backoff = Duration::from_millis(20);
    config
}

/// A server signing checkpoints as the other tests' and witnessing them per `config`.
pub async fn witnessed_server(config: WitnessingConfig) -> TestServer {
    TestServer::start_configured(kimberlite_server::Limits::default(), |state| {
        configure(state, config)
    })
    .await
}

/// `state` with the test store name, signing key and `config`.
pub fn configure(
    state: kimberlite_server::AppState,
    config: WitnessingConfig,
) -> kimberlite_server::AppState {
    state
        .with_store_name(LOG_NAME)
        .expect("a valid store name")
        .with_signing_key(checkpoint_key())
        .with_witnessing(config)
        .expect("witnessing")
}

impl TestServer {
    /// Appends `events` to `stream` (created if `create`).
    pub async fn append_events(&self, stream: &str, events: &[&str], create: bool) {
        if create {
            assert_eq!(
                self.create_stream(stream).await.status(),
                StatusCode::CREATED
            );
        }
        let response = self
            .client
            .post(self.url(&format!("/v1/streams/{stream}/events")))
            .bearer_auth(ADMIN)
            .json(&events)
            .send()
            .await
            .expect("append");
        assert_eq!(response.status(), StatusCode::OK);
    }

    /// `GET path` with the auditor's key: status and body.
    pub async fn read_as_auditor(&self, path: &str) -> (StatusCode, String) {
        let response = self
            .client
            .get(self.url(path))
            .bearer_auth(AUDITOR)
            .send()
            .await
            .expect("request");
        let status = response.status();
        (status, response.text().await.expect("body"))
    }

    /// The stream's checkpoint as `GET .../checkpoint` signs it now.
    pub async fn checkpoint(&self, stream: &str) -> String {
        let (status, note) = self
            .read_as_auditor(&format!("/v1/streams/{stream}/checkpoint"))
            .await;
        assert_eq!(status, StatusCode::OK, "{note}");
        note
    }

    /// `GET .../checkpoints/witnessed`: the JSON, or `None` on 404.
    pub async fn witnessed(&self, stream: &str) -> Option<serde_json::Value> {
        let (status, body) = self
            .read_as_auditor(&format!("/v1/streams/{stream}/checkpoints/witnessed"))
            .await;
        match status {
            StatusCode::OK => Some(serde_json::from_str(&body).expect("JSON")),
            StatusCode::NOT_FOUND => None,
            other => panic!("witnessed: {other} {body}"),
        }
    }

    /// Waits (bounded) until a checkpoint of `stream` of at least `size` is witnessed.
    pub async fn wait_witnessed(&self, stream: &str, size: u64) -> serde_json::Value {
        for _ in 0..POLLS_MAX {
            if let Some(view) = self.witnessed(stream).await {
                if view["tree_size"].as_u64() >= Some(size) {
                    return view;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no checkpoint of {stream} of size {size} was witnessed in time");
    }

    /// The witness requests counted with `outcome`.
    pub async fn witness_requests(&self, outcome: &str) -> u64 {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("body");
        let name = format!("kimberlite_witness_requests_total{{outcome=\"{outcome}\"}} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&name)?.parse().ok())
            .unwrap_or(0)
    }

    /// Waits (bounded) until `done` holds of the witness request counts by outcome.
    pub async fn wait_requests(&self, what: &str, done: impl Fn(&dyn Fn(&str) -> u64) -> bool) {
        let mut last = std::collections::HashMap::new();
        for _ in 0..POLLS_MAX {
            let mut counts = std::collections::HashMap::new();
            for outcome in OUTCOMES {
                counts.insert(*outcome, self.witness_requests(outcome).await);
            }
            if done(&|outcome| counts.get(outcome).copied().unwrap_or(0)) {
                return;
            }
            last = counts;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("witness requests never reached: {what} (counts: {last:?})");
    }
}

/// Every outcome the metrics count.
pub const OUTCOMES: &[&str] = &[
    "cosigned",
    "bad_cosignature",
    "conflict",
    "forbidden",
    "unknown_log",
    "bad_request",
    "bad_proof",
    "unavailable",
    "garbage",
    "timeout",
    "unreachable",
];
