//! `kimberlite serve --node-id` and `kimberlite cluster`: three real server processes on
//! loopback elect a leader, take appends through any node, and a fourth is added as a
//! learner, promoted and removed with the CLI.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{fails, free_addr, ok, run, s, serving, Serving};

fn serve(dir: &Path, addr: SocketAddr, extra: &[&str]) -> Serving {
    let listen = addr.to_string();
    let args = [&["serve", s(dir), "--listen", &listen][..], extra].concat();
    serving(&args, addr, Stdio::null(), Duration::from_secs(20))
}

/// Runs `kimberlite cluster status` on `url` until it names a leader (bounded).
fn wait_for_leader(url: &str, token: &Path) -> String {
    let started = Instant::now();
    loop {
        let status = run(
            &[
                "cluster",
                "status",
                "--server",
                url,
                "--token-file",
                s(token),
            ],
            "",
        );
        if status.code == 0
            && status.stdout.contains("leader: ")
            && !status.stdout.contains("none known")
        {
            return status.stdout;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no leader: {}",
            status.stderr
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_processes_form_a_cluster_managed_with_the_cli() {
    let temp = tempfile::tempdir().expect("temp");
    let secret = temp.path().join("cluster.token");
    std::fs::write(&secret, "a-shared-cluster-secret\n").expect("secret");
    let addrs: Vec<SocketAddr> = (0..4).map(|_| free_addr()).collect();
    let url = |index: usize| format!("http://{}", addrs[index]);
    let peers = format!("1={},2={},3={}", url(0), url(1), url(2));
    let dirs: Vec<std::path::PathBuf> = (1..=4)
        .map(|id| temp.path().join(format!("n{id}")))
        .collect();
    let token_file = common::shared_admin_key(temp.path(), &dirs, &["admin:*", "append:*"]);

    // Without the cluster secret, cluster mode is refused.
    fails(
        &["serve", s(&dirs[3]), "--node-id", "4"],
        "",
        2,
        "--cluster-token-file",
    );

    // A signing key in cluster mode needs the store name every node signs under.
    let signing = temp.path().join("cluster.key");
    ok(&["keygen", "--name", "cluster", "--out", s(&signing)], "");
    fails(
        &[
            "serve",
            s(&dirs[3]),
            "--node-id",
            "4",
            "--cluster-token-file",
            s(&secret),
            "--signing-key",
            s(&signing),
        ],
        "",
        2,
        "--store-name",
    );

    let garbage = temp.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").expect("garbage");
    fails(
        &[
            "serve",
            s(&dirs[3]),
            "--listen",
            &addrs[3].to_string(),
            "--node-id",
            "4",
            "--cluster-token-file",
            s(&secret),
            "--cluster-ca",
            s(&garbage),
        ],
        "",
        2,
        "no PEM certificate",
    );

    let mut servers = Vec::new();
    for index in 0..3 {
        let id = (index + 1).to_string();
        let mut extra = vec![
            "--node-id",
            &id,
            "--peers",
            &peers,
            "--cluster-token-file",
            s(&secret),
        ];
        if index == 0 {
            extra.push("--bootstrap");
        }
        servers.push(serve(&dirs[index], addrs[index], &extra));
    }
    wait_for_leader(&url(1), &token_file);

    // Appends and reads through any node.
    ok(
        &[
            "append",
            "--create",
            "--server",
            &url(1),
            "--token-file",
            s(&token_file),
            "ehr",
        ],
        "first\n",
    );
    ok(
        &[
            "append",
            "--server",
            &url(2),
            "--token-file",
            s(&token_file),
            "ehr",
        ],
        "second\n",
    );
    let read = ok(
        &[
            "read",
            "--server",
            &url(2),
            "--token-file",
            s(&token_file),
            "ehr",
        ],
        "",
    );
    assert!(read.contains("first") && read.contains("second"), "{read}");

    // A fourth node joins as a learner, is promoted, then removed.
    servers.push(serve(
        &dirs[3],
        addrs[3],
        &[
            "--node-id",
            "4",
            "--peers",
            &peers,
            "--cluster-token-file",
            s(&secret),
        ],
    ));
    let added = ok(
        &[
            "cluster",
            "add-learner",
            "4",
            &url(3),
            "--server",
            &url(1),
            "--token-file",
            s(&token_file),
        ],
        "",
    );
    assert!(
        added.contains(&format!("learner 4 at {}", url(3))),
        "{added}"
    );
    let promoted = ok(
        &[
            "cluster",
            "promote",
            "4",
            "--server",
            &url(2),
            "--token-file",
            s(&token_file),
        ],
        "",
    );
    assert!(
        promoted.contains(&format!("voter 4 at {}", url(3))),
        "{promoted}"
    );
    let removed = ok(
        &[
            "cluster",
            "remove",
            "4",
            "--server",
            &url(0),
            "--token-file",
            s(&token_file),
            "--json",
        ],
        "",
    );
    let status: serde_json::Value = serde_json::from_str(&removed).expect("json");
    assert_eq!(status["voters"].as_array().expect("voters").len(), 3);
    assert!(status["learners"].as_array().expect("learners").is_empty());
    drop(servers);
}
