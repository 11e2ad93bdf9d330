//! Cluster mode over TLS, as docs/OPERATIONS.md ("On three machines") runs it: three
//! `kimberlite serve --node-id` processes on loopback, each with a certificate of the
//! cluster's own CA, checking each other's with `--cluster-ca`; the CLI reaches them with
//! `--ca-cert`. A node whose certificate another CA signed is sent nothing.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{free_addr, run, s, serving, Serving};
use rcgen::{BasicConstraints, Certificate, CertificateParams, IsCa, KeyPair};

/// How long a cluster gets to elect a leader or replicate an append.
const PATIENCE: Duration = Duration::from_secs(30);

/// A CA of the test: its certificate and key, and the file of its certificate.
struct Ca {
    cert: Certificate,
    key: KeyPair,
    pem_file: PathBuf,
}

impl Ca {
    fn new(dir: &Path, name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem_file = dir.join(format!("{name}-ca.pem"));
        std::fs::write(&pem_file, cert.pem()).expect("write CA");
        Self {
            cert,
            key,
            pem_file,
        }
    }

    /// A certificate for 127.0.0.1 signed by this CA, written as `name.pem` and
    /// `name-key.pem` in `dir`: (certificate file, key file).
    fn node_certificate(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().expect("node key");
        let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("node params")
            .signed_by(&key, &self.cert, &self.key)
            .expect("node certificate");
        let cert_file = dir.join(format!("{name}.pem"));
        let key_file = dir.join(format!("{name}-key.pem"));
        std::fs::write(&cert_file, cert.pem()).expect("write certificate");
        std::fs::write(&key_file, key.serialize_pem()).expect("write key");
        (cert_file, key_file)
    }
}

/// A cluster of three TLS nodes being set up in a temporary directory.
struct Setup {
    temp: tempfile::TempDir,
    addrs: Vec<SocketAddr>,
    dirs: Vec<PathBuf>,
    secret: PathBuf,
    token_file: PathBuf,
}

impl Setup {
    /// Three node directories sharing one key file (an admin key that may append).
    fn new() -> Self {
        let temp = tempfile::tempdir().expect("temp");
        let secret = temp.path().join("cluster.secret");
        std::fs::write(&secret, "a-shared-cluster-secret\n").expect("secret");
        let addrs: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
        let dirs: Vec<PathBuf> = (1..=3)
            .map(|id| temp.path().join(format!("n{id}")))
            .collect();
        let token_file =
            common::shared_admin_key(temp.path(), &dirs, &["admin:*", "append:*", "read:*"]);
        Self {
            temp,
            addrs,
            dirs,
            secret,
            token_file,
        }
    }

    fn url(&self, index: usize) -> String {
        format!("https://{}", self.addrs[index])
    }

    fn peers(&self) -> String {
        format!("1={},2={},3={}", self.url(0), self.url(1), self.url(2))
    }

    /// Starts node `index + 1` with its certificate from `ca`, trusting `trusted`'s.
    fn serve(&self, index: usize, ca: &Ca, trusted: &Ca) -> Serving {
        let (cert, key) = ca.node_certificate(self.temp.path(), &format!("node{}", index + 1));
        let id = (index + 1).to_string();
        let peers = self.peers();
        let listen = self.addrs[index].to_string();
        let mut args = vec![
            "serve",
            s(&self.dirs[index]),
            "--listen",
            &listen,
            "--node-id",
            &id,
            "--peers",
            &peers,
            "--cluster-token-file",
            s(&self.secret),
            "--tls-cert",
            s(&cert),
            "--tls-key",
            s(&key),
            "--cluster-ca",
            s(&trusted.pem_file),
        ];
        if index == 0 {
            args.push("--bootstrap");
        }
        serving(&args, self.addrs[index], Stdio::null(), PATIENCE)
    }

    /// `kimberlite ARGS --server URL --token-file T --ca-cert CA`.
    fn client(&self, args: &[&str], url: &str, ca: &Ca, stdin: &str) -> common::Run {
        let mut all = args.to_vec();
        all.extend([
            "--server",
            url,
            "--token-file",
            s(&self.token_file),
            "--ca-cert",
            s(&ca.pem_file),
        ]);
        run(&all, stdin)
    }

    /// `cluster status --json` of node `index`, polled until `done` holds (bounded).
    fn status_until(
        &self,
        index: usize,
        ca: &Ca,
        what: &str,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.client(&["cluster", "status", "--json"], &self.url(index), ca, "");
            if status.code == 0 {
                let value: serde_json::Value =
                    serde_json::from_str(&status.stdout).expect("status JSON");
                if done(&value) {
                    return value;
                }
            }
            assert!(
                started.elapsed() < PATIENCE,
                "{what}: {} {}",
                status.stdout,
                status.stderr
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The index of the leader, as node `index` knows it (waits for one).
    fn leader(&self, index: usize, ca: &Ca) -> usize {
        let status = self.status_until(index, ca, "no leader", |status| {
            status["leader_id"].as_u64().is_some()
        });
        let id = status["leader_id"].as_u64().expect("leader id");
        usize::try_from(id - 1).expect("an index")
    }
}

/// The log index a leader's status says it replicated to node `id` (0: nothing yet).
fn replicated(status: &serde_json::Value, id: u64) -> u64 {
    status["replication"][id.to_string()]
        .as_str()
        .and_then(|position| position.rsplit('-').next())
        .and_then(|index| index.parse().ok())
        .unwrap_or(0)
}

/// The last index of a node's Raft log, from its status.
fn last_index(status: &serde_json::Value) -> u64 {
    status["last_log_index"].as_u64().unwrap_or(0)
}

#[test]
fn three_nodes_replicate_over_tls_checked_against_the_cluster_ca() {
    let setup = Setup::new();
    let ca = Ca::new(setup.temp.path(), "cluster");
    let _nodes: Vec<Serving> = (0..3).map(|index| setup.serve(index, &ca, &ca)).collect();
    let leader = setup.leader(0, &ca);

    // Appends through any node (a follower forwards to the leader over TLS).
    for (index, event) in [(1, "first\n"), (2, "second\n")] {
        let mut args = vec!["append"];
        if index == 1 {
            args.push("--create");
        }
        args.push("ehr");
        let appended = setup.client(&args, &setup.url(index), &ca, event);
        assert_eq!(appended.code, 0, "append: {}", appended.stderr);
    }
    let read = setup.client(&["read", "ehr"], &setup.url(0), &ca, "");
    assert_eq!(read.code, 0, "read: {}", read.stderr);
    assert!(
        read.stdout.contains("first") && read.stdout.contains("second"),
        "{}",
        read.stdout
    );

    // Every follower holds the leader's log up to its last entry.
    let status = setup.status_until(leader, &ca, "replicated to all", |status| {
        let last = last_index(status);
        last > 0
            && (1..=3u64)
                .filter(|&id| id != leader as u64 + 1)
                .all(|id| replicated(status, id) == last)
    });
    assert!(last_index(&status) >= 2, "{status}");

    // A client without the CA refuses the nodes' certificates.
    let untrusted = run(
        &[
            "cluster",
            "status",
            "--server",
            &setup.url(0),
            "--token-file",
            s(&setup.token_file),
        ],
        "",
    );
    assert_ne!(untrusted.code, 0, "{}", untrusted.stdout);
}

#[test]
fn a_node_whose_certificate_another_ca_signed_is_sent_nothing() {
    let setup = Setup::new();
    let ca = Ca::new(setup.temp.path(), "cluster");
    let stranger = Ca::new(setup.temp.path(), "stranger");
    let _one = setup.serve(0, &ca, &ca);
    let _two = setup.serve(1, &ca, &ca);
    // Node 3 has a certificate of another CA and trusts only that CA.
    let _three = setup.serve(2, &stranger, &stranger);

    let leader = setup.leader(0, &ca);
    assert!(leader < 2, "node 3 cannot be elected: no vote reaches it");
    let appended = setup.client(&["append", "--create", "ehr"], &setup.url(0), &ca, "one\n");
    assert_eq!(appended.code, 0, "append: {}", appended.stderr);

    let follower = 1 - leader;
    setup.status_until(leader, &ca, "the follower catches up", |status| {
        let last = last_index(status);
        last > 0 && replicated(status, follower as u64 + 1) == last
    });
    // Node 3 never acknowledged anything: the leader could not reach it.
    std::thread::sleep(Duration::from_millis(500));
    let status = setup.status_until(leader, &ca, "status", |_| true);
    assert!(last_index(&status) > 0, "{status}");
    assert_eq!(replicated(&status, 3), 0, "{status}");
}
