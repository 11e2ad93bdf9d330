//! kill -9 of the server during a load of synced appends, a few rounds (the in-CI version of
//! `examples/kill_loop.sh`): after every kill the store reopens, verifies intact, holds every
//! acknowledged batch whole at its acknowledged offsets and no batch in part, and the access
//! log holds a record of every acknowledged append.
//!
//! The server runs in a child process: this test binary itself, run again with
//! [`TARGET_ENV`] set, where [`kill_target`] serves instead of returning.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::io::BufRead as _;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{test_keys, ADMIN, WRITER};
use kimberlite::{Config, Durability, Kimberlite, Offset};
use kimberlite_server::{AppState, Limits, Server, ServerConfig, ACCESS_STREAM};
use serde_json::{json, Value};

/// Set to a store directory, the `kill_target` test serves it instead of returning.
const TARGET_ENV: &str = "KIMBERLITE_KILL_TARGET_DIR";
const ROUNDS: u64 = 4;
const WRITERS: u64 = 8;
/// Events per batch of an even writer, and of an odd one: the server writes appends of 256
/// events or more on the request's own thread, smaller ones through the access log's writer.
const SMALL_BATCH: u64 = 4;
const LARGE_BATCH: u64 = 300;
const STREAM: &str = "app-crash";

/// Not a test on its own (returns at once): the server process of the kill test.
#[test]
fn kill_target() {
    let Some(dir) = std::env::var_os(TARGET_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store =
            Kimberlite::open_with(&dir, Config::default().durability(Durability::GroupCommit))
                .expect("open store");
        let state = AppState::new(store, test_keys(), Limits::default());
        let config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        let server = Server::bind(&config, state).await.expect("bind");
        println!("listening {}", server.local_addr().expect("addr"));
        server.run(std::future::pending()).await.expect("serve");
    });
}

/// The server's process, killed (SIGKILL) and reaped when dropped, so that a failing test
/// leaves no server behind.
struct ServerProcess(Child);

impl ServerProcess {
    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts the server over `dir` in a child process; returns it and its address.
fn start_server(dir: &std::path::Path) -> (ServerProcess, SocketAddr) {
    let child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["--exact", "kill_target", "--nocapture", "--test-threads=1"])
        .env(TARGET_ENV, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn the server");
    let mut child = ServerProcess(child);
    let stdout = child.0.stdout.take().expect("stdout");
    // The test harness prints its own words before ours on the line: look anywhere in it.
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let addr = std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| line.split_once("listening ")?.1.trim().parse().ok());
        let _ = sender.send(addr);
    });
    let addr = receiver
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .expect("the server's address within 30 s");
    (child, addr)
}

/// A batch acknowledged durable: where it went and what it holds.
#[derive(Debug, Clone)]
struct Ack {
    first_offset: u64,
    events: Vec<String>,
}

/// How many events each batch of `writer` holds.
fn events_per_batch(writer: u64) -> u64 {
    if writer % 2 == 1 {
        LARGE_BATCH
    } else {
        SMALL_BATCH
    }
}

/// Appends batches from `WRITERS` tasks until the server goes away; returns the acks.
async fn load(addr: SocketAddr, round: u64, acks: Arc<Mutex<Vec<Ack>>>) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let (client, acks) = (client.clone(), Arc::clone(&acks));
            tokio::spawn(async move {
                for batch in 0.. {
                    let events: Vec<String> = (0..events_per_batch(writer))
                        .map(|event| format!("{round}-{writer}-{batch}-{event}"))
                        .collect();
                    let answer = client
                        .post(format!("http://{addr}/v1/streams/{STREAM}/events"))
                        .bearer_auth(WRITER)
                        .json(&events)
                        .send()
                        .await;
                    let Ok(answer) = answer else { return };
                    if answer.status() != 200 {
                        return;
                    }
                    let Ok(body) = answer.json::<Value>().await else {
                        return;
                    };
                    let first_offset = body["first_offset"].as_u64().expect("first_offset");
                    acks.lock().expect("acks").push(Ack {
                        first_offset,
                        events,
                    });
                }
            })
        })
        .collect();
    for writer in writers {
        let _ = writer.await;
    }
}

/// Reopens the store after a kill and checks it against every acknowledgement so far.
fn check_after_kill(dir: &std::path::Path, acks: &[Ack]) -> u64 {
    let store = Kimberlite::open(dir).expect("reopen after kill -9");
    let report = store.verify_all().expect("verify");
    assert!(report.is_intact(), "{:?}", report.first_problem());
    let id = store.stream(STREAM).expect("stream");
    let stored: Vec<String> = store
        .read(id, Offset::ZERO, u64::MAX)
        .expect("read")
        .iter()
        .map(|event| String::from_utf8(event.payload.to_vec()).expect("utf-8"))
        .collect();
    for ack in acks {
        let start = usize::try_from(ack.first_offset).expect("offset");
        assert_eq!(
            stored.get(start..start + ack.events.len()),
            Some(&ack.events[..]),
            "acknowledged batch at {} lost or changed",
            ack.first_offset
        );
    }
    // Batch atomicity: every batch stored is stored whole.
    let mut per_batch: BTreeMap<&str, u64> = BTreeMap::new();
    for event in &stored {
        let batch = event
            .rsplit_once('-')
            .map_or(event.as_str(), |(batch, _)| batch);
        *per_batch.entry(batch).or_default() += 1;
    }
    let partial: Vec<_> = per_batch
        .iter()
        .filter(|(batch, count)| {
            let writer = batch.split('-').nth(1).and_then(|w| w.parse().ok());
            writer.map(events_per_batch) != Some(**count)
        })
        .collect();
    assert!(partial.is_empty(), "partial batches: {partial:?}");
    // The access log answered for every acknowledged append before it was acknowledged.
    let access = store.stream(ACCESS_STREAM).expect("access stream");
    let recorded: HashSet<u64> = store
        .read(access, Offset::ZERO, u64::MAX)
        .expect("read access")
        .iter()
        .filter_map(|event| serde_json::from_slice::<Value>(&event.payload).ok())
        .filter(|record| record["stream"] == STREAM && record["status"] == 200)
        .filter_map(|record| record["from"].as_u64())
        .collect();
    for ack in acks {
        assert!(
            recorded.contains(&ack.first_offset),
            "no access record for the acknowledged append at {}",
            ack.first_offset
        );
    }
    stored.len() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_synced_appends_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().expect("dir");
    let acks = Arc::new(Mutex::new(Vec::new()));
    for round in 0..ROUNDS {
        let (mut child, addr) = start_server(dir.path());
        if round == 0 {
            let created = reqwest::Client::new()
                .post(format!("http://{addr}/v1/streams"))
                .bearer_auth(ADMIN)
                .json(&json!({ "name": STREAM }))
                .send()
                .await
                .expect("create");
            assert_eq!(created.status(), 201);
        }
        let loader = tokio::spawn(load(addr, round, Arc::clone(&acks)));
        tokio::time::sleep(Duration::from_millis(150 + (round * 137) % 300)).await;
        child.kill();
        tokio::time::timeout(Duration::from_secs(30), loader)
            .await
            .expect("the load ends once the server is gone")
            .expect("load");
        let acks = acks.lock().expect("acks").clone();
        let stored = check_after_kill(dir.path(), &acks);
        let acknowledged: usize = acks.iter().map(|ack| ack.events.len()).sum();
        assert!(stored >= acknowledged as u64);
    }
    let acks = acks.lock().expect("acks");
    for size in [SMALL_BATCH, LARGE_BATCH] {
        assert!(
            acks.iter().any(|ack| ack.events.len() as u64 == size),
            "no batch of {size} events was acknowledged"
        );
    }
}
