//! Cluster mode end to end: three nodes in this process, real servers on loopback, Raft
//! messages over HTTP (docs/SERVER.md, section "Cluster mode").

mod common;

use std::time::Duration;

use common::cluster::{listener, Nodes, SECRET};
use common::ADMIN;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// A client that shows redirects instead of following them.
fn raw() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn create(nodes: &Nodes, node: u64, name: &str) -> reqwest::Response {
    raw()
        .post(nodes.url(node, "/v1/streams"))
        .bearer_auth(ADMIN)
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap()
}

async fn append(nodes: &Nodes, node: u64, stream: &str, events: Value) -> reqwest::Response {
    raw()
        .post(nodes.url(node, &format!("/v1/streams/{stream}/events")))
        .bearer_auth(ADMIN)
        .json(&events)
        .send()
        .await
        .unwrap()
}

/// Reads `stream` on `node` as a follower read until it holds `count` events (bounded).
async fn follower_read(nodes: &Nodes, node: u64, stream: &str, count: usize) -> reqwest::Response {
    for _ in 0..250 {
        let response = raw()
            .get(nodes.url(
                node,
                &format!("/v1/streams/{stream}/events?from=0&consistency=follower"),
            ))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            let position = response.headers().get("kimberlite-log-position").cloned();
            let body: Value = response.json().await.unwrap();
            if body["events"].as_array().unwrap().len() >= count {
                // Ask again to hand back the whole response.
                let again = raw()
                    .get(nodes.url(
                        node,
                        &format!("/v1/streams/{stream}/events?from=0&consistency=follower"),
                    ))
                    .bearer_auth(ADMIN)
                    .send()
                    .await
                    .unwrap();
                assert!(position.is_some());
                return again;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("node {node} never held {count} events of {stream}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_a_leader_and_replicate_appends_sent_to_any_node() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);

    let created = create(&nodes, leader, "ehr").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        create(&nodes, leader, "ehr").await.status(),
        StatusCode::CONFLICT
    );

    // A follower sends a write to the leader: same path and query.
    let path = "/v1/streams/ehr/events?expected_offset=0";
    let redirected = raw()
        .post(nodes.url(follower, path))
        .bearer_auth(ADMIN)
        .json(&json!(["a", "b"]))
        .send()
        .await
        .unwrap();
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = redirected.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(location, nodes.url(leader, path));
    let appended = raw()
        .post(&location)
        .bearer_auth(ADMIN)
        .json(&json!(["a", "b"]))
        .send()
        .await
        .unwrap();
    assert_eq!(appended.status(), StatusCode::OK);
    let position = appended.headers()["kimberlite-log-position"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = appended.json().await.unwrap();
    assert_eq!(body["first_offset"], 0);
    assert_eq!(body["next_offset"], 2);
    // The expected offset is checked by the leader.
    let conflict = raw()
        .post(&location)
        .bearer_auth(ADMIN)
        .json(&json!(["c"]))
        .send()
        .await
        .unwrap();
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["error"]["next_offset"], 2);

    // Every replica holds the events; a follower read names its log position, at or past
    // the append's.
    for &node in nodes.running.keys() {
        let read = follower_read(&nodes, node, "ehr", 2).await;
        let at = read.headers()["kimberlite-log-position"]
            .to_str()
            .unwrap()
            .to_owned();
        let index = |position: &str| position.rsplit('-').next().unwrap().parse::<u64>().unwrap();
        assert!(index(&at) >= index(&position), "{at} < {position}");
        let page: Value = read.json().await.unwrap();
        assert_eq!(page["events"][1]["payload"], "b");
    }

    // A linearizable read (the default) on a follower goes to the leader; on the leader it
    // is answered with its position.
    let read = raw()
        .get(nodes.url(follower, "/v1/streams/ehr/events?from=1"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        read.headers()["location"].to_str().unwrap(),
        nodes.url(leader, "/v1/streams/ehr/events?from=1")
    );
    let read = raw()
        .get(nodes.url(
            leader,
            "/v1/streams/ehr/events?from=1&consistency=linearizable",
        ))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().contains_key("kimberlite-log-position"));
    let page: Value = read.json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);

    // Each node keeps its own access log, served under the usual name.
    let access = raw()
        .get(nodes.url(leader, "/v1/streams/_access/events?from=0"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(access.status(), StatusCode::OK);
    let page: Value = access.json().await.unwrap();
    assert!(!page["events"].as_array().unwrap().is_empty());
    let streams: Value = raw()
        .get(nodes.url(leader, "/v1/streams"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = streams
        .as_array()
        .unwrap()
        .iter()
        .map(|stream| stream["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"ehr") && names.contains(&"_access"),
        "{names:?}"
    );
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_raft_routes_need_the_cluster_secret_and_refuse_garbage() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    for route in ["append-entries", "vote", "snapshot"] {
        let url = nodes.url(leader, &format!("/v1/raft/{route}"));
        let none = raw().post(&url).body(vec![1, 2, 3]).send().await.unwrap();
        assert_eq!(none.status(), StatusCode::UNAUTHORIZED, "{route}");
        // An API key is not the cluster secret.
        let key = raw()
            .post(&url)
            .bearer_auth(ADMIN)
            .body(vec![1])
            .send()
            .await
            .unwrap();
        assert_eq!(key.status(), StatusCode::UNAUTHORIZED, "{route}");
        let wrong = raw()
            .post(&url)
            .bearer_auth(format!("{SECRET}x"))
            .body(vec![1])
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED, "{route}");
        for garbage in [Vec::new(), vec![0xff; 64], b"{\"vote\":1}".to_vec()] {
            let refused = raw()
                .post(&url)
                .bearer_auth(SECRET)
                .body(garbage)
                .send()
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{route}");
        }
    }
    // The node still leads and serves.
    assert_eq!(nodes.leader().await, leader);
    assert_eq!(
        create(&nodes, leader, "after").await.status(),
        StatusCode::CREATED
    );
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn features_that_would_write_around_raft_are_refused() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    assert_eq!(
        create(&nodes, leader, "s").await.status(),
        StatusCode::CREATED
    );
    let retain = raw()
        .post(nodes.url(leader, "/v1/streams/s/retain"))
        .bearer_auth(ADMIN)
        .json(&json!({ "before": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(retain.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value = retain.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "not_in_cluster");
    let erase = raw()
        .post(nodes.url(leader, "/v1/erasures"))
        .bearer_auth(ADMIN)
        .json(&json!({ "subject": "P-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(erase.status(), StatusCode::NOT_IMPLEMENTED);
    let sealed = raw()
        .post(nodes.url(leader, "/v1/streams/s/events?subject=P-1"))
        .bearer_auth(ADMIN)
        .json(&json!(["x"]))
        .send()
        .await
        .unwrap();
    assert_eq!(sealed.status(), StatusCode::NOT_IMPLEMENTED);
    // Checkpoints go through the log; a cluster started without a signing key signs none.
    let checkpoint = raw()
        .get(nodes.url(leader, "/v1/streams/s/checkpoint"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(checkpoint.status(), StatusCode::NOT_FOUND);
    let body: Value = checkpoint.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--signing-key"),
        "{body}"
    );
    let bad = raw()
        .get(nodes.url(leader, "/v1/streams/s/events?consistency=eventual"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    nodes.shutdown().await;
}

async fn get(nodes: &Nodes, node: u64, path: &str) -> reqwest::Response {
    raw()
        .get(nodes.url(node, path))
        .bearer_auth(common::AUDITOR)
        .send()
        .await
        .unwrap()
}

/// The note `path` answers on `node`, once it is 200 and of `size` events (bounded).
async fn note_of_size(nodes: &Nodes, node: u64, path: &str, size: u64) -> String {
    for _ in 0..250 {
        let response = get(nodes, node, path).await;
        if response.status() == StatusCode::OK {
            let note = response.text().await.unwrap();
            if note.lines().nth(1) == Some(size.to_string().as_str()) {
                return note;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("node {node} never answered a checkpoint of {size} at {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_are_published_through_the_log_and_verify_from_any_node() {
    use kimberlite::proof::{verify_bundle, Checkpoint, Verified};

    let nodes = Nodes::start_signing(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);
    assert_eq!(
        create(&nodes, leader, "ehr").await.status(),
        StatusCode::CREATED
    );
    let appended = append(&nodes, leader, "ehr", json!(["a", "b", "c"])).await;
    assert_eq!(appended.status(), StatusCode::OK);
    let verifier = common::checkpoint_key().verifier();

    // On the leader: signed over what it applied, answered once every replica will keep it.
    let path = "/v1/streams/ehr/checkpoint";
    let response = get(&nodes, leader, path).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("kimberlite-log-position"));
    let note = response.text().await.unwrap();
    let origin = format!("{}/ehr", common::LOG_NAME);
    assert!(note.starts_with(&format!("{origin}\n3\n")), "{note}");
    let signed = Checkpoint::open_by_log(&note, &verifier).unwrap();
    assert_eq!(signed.tree_size, 3);

    // A follower sends the (linearizable) request to the leader, which answers the same note.
    let redirected = get(&nodes, follower, path).await;
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = redirected.headers()["location"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(location, nodes.url(leader, path));
    let followed = raw()
        .get(&location)
        .bearer_auth(common::AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(followed.text().await.unwrap(), note);

    // The tiles view's checkpoint from two nodes: the leader's, and the one a follower keeps
    // (a follower read): the same note under the same key.
    let tiles = "/v1/streams/ehr/tlog/checkpoint";
    let from_leader = note_of_size(&nodes, leader, tiles, 3).await;
    let from_follower = note_of_size(
        &nodes,
        follower,
        &format!("{tiles}?consistency=follower"),
        3,
    )
    .await;
    for answer in [&from_leader, &from_follower] {
        assert_eq!(answer, &note);
        assert_eq!(Checkpoint::open_by_log(answer, &verifier).unwrap(), signed);
    }
    // Kept in every replica's store, as `kimberlite checkpoint` keeps one.
    for &node in nodes.running.keys() {
        let cluster = nodes.running[&node].state.cluster().unwrap();
        let (kept, _) = cluster.node().with_store(|store| {
            let id = store.stream("ehr").unwrap();
            store
                .latest_signed_checkpoint(id)
                .unwrap()
                .map(|kept| kept.note)
        });
        assert_eq!(kept.as_deref(), Some(note.as_str()), "node {node}");
    }

    // An inclusion proof a follower serves verifies against the leader's checkpoint.
    let proof = get(
        &nodes,
        follower,
        "/v1/streams/ehr/proofs/inclusion?offset=1&tree_size=3&consistency=follower",
    )
    .await;
    assert_eq!(proof.status(), StatusCode::OK);
    let proof = proof.text().await.unwrap();
    assert_eq!(
        verify_bundle(&verifier, &from_leader, &proof).unwrap(),
        Verified::Inclusion {
            offset: 1,
            payload: b"b".to_vec(),
            tree_size: 3
        }
    );

    // The stream grows: the next checkpoint is a new entry, of the new size.
    let appended = append(&nodes, leader, "ehr", json!(["d"])).await;
    assert_eq!(appended.status(), StatusCode::OK);
    let grown = note_of_size(&nodes, leader, path, 4).await;
    assert_ne!(grown, note);
    let from_follower = note_of_size(
        &nodes,
        follower,
        &format!("{tiles}?consistency=follower"),
        4,
    )
    .await;
    assert_eq!(from_follower, grown);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_learner_is_added_then_promoted_and_removed() {
    // A snapshot every few entries, and the log purged up to it: the learner can only catch
    // up from a snapshot, sent over the snapshot route.
    let mut nodes = Nodes::start_configured(&[1, 2, 3], |config| {
        config.node.raft.snapshot_policy =
            kimberlite_server::kimberlite_raft::openraft::SnapshotPolicy::LogsSinceLast(4);
    })
    .await;
    let leader = nodes.leader().await;
    assert_eq!(
        create(&nodes, leader, "m").await.status(),
        StatusCode::CREATED
    );
    for event in ["1", "2", "3"] {
        let appended = append(&nodes, leader, "m", json!([event])).await;
        assert_eq!(appended.status(), StatusCode::OK);
    }
    let raft = nodes.running[&leader]
        .state
        .cluster()
        .unwrap()
        .node()
        .raft()
        .clone();
    raft.wait(Some(Duration::from_secs(10)))
        .metrics(
            |metrics| metrics.purged.is_some(),
            "the leader purges its log",
        )
        .await
        .unwrap();
    let (listener, url) = listener();
    nodes.start_node(4, listener, false).await;

    // Sent to a follower, the change goes to the leader.
    let follower = nodes.other_than(leader);
    let added = raw()
        .post(nodes.url(follower, "/v1/cluster/learners"))
        .bearer_auth(ADMIN)
        .json(&json!({ "id": 4, "url": url }))
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), StatusCode::TEMPORARY_REDIRECT);
    let added = raw()
        .post(nodes.url(leader, "/v1/cluster/learners"))
        .bearer_auth(ADMIN)
        .json(&json!({ "id": 4, "url": url }))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(added.status(), StatusCode::OK | StatusCode::ACCEPTED),
        "{}",
        added.status()
    );
    let view: Value = added.json().await.unwrap();
    assert_eq!(view["learners"][0]["id"], 4);
    follower_read(&nodes, 4, "m", 3).await;
    let learner = nodes.running[&4].state.cluster().unwrap();
    assert!(
        learner.node().raft().metrics().borrow().snapshot.is_some(),
        "the learner caught up from a snapshot"
    );

    let promoted = raw()
        .post(nodes.url(leader, "/v1/cluster/voters"))
        .bearer_auth(ADMIN)
        .json(&json!({ "voters": [1, 2, 3, 4] }))
        .send()
        .await
        .unwrap();
    assert_eq!(promoted.status(), StatusCode::OK);
    let status: Value = raw()
        .get(nodes.url(4, "/v1/cluster"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["node_id"], 4);
    let voters: Vec<u64> = status["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|member| member["id"].as_u64().unwrap())
        .collect();
    assert_eq!(voters, vec![1, 2, 3, 4]);

    let removed = raw()
        .delete(nodes.url(leader, "/v1/cluster/nodes/4"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let view: Value = removed.json().await.unwrap();
    assert_eq!(view["voters"].as_array().unwrap().len(), 3);
    assert!(view["learners"].as_array().unwrap().is_empty());
    // An auditor's key may not see or change the membership.
    let refused = raw()
        .get(nodes.url(leader, "/v1/cluster"))
        .bearer_auth(common::AUDITOR)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_on_a_follower_wakes_when_its_replica_applies() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);
    assert_eq!(
        create(&nodes, leader, "w").await.status(),
        StatusCode::CREATED
    );
    let poll = raw()
        .get(nodes.url(
            follower,
            "/v1/streams/w/events?from=0&wait_ms=15000&consistency=follower",
        ))
        .bearer_auth(ADMIN)
        .send();
    let started = std::time::Instant::now();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        append(&nodes, leader, "w", json!(["woken"])).await.status(),
        StatusCode::OK
    );
    let answer = poll.await.unwrap().unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    let page: Value = answer.json().await.unwrap();
    assert_eq!(page["events"][0]["payload"], "woken");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    nodes.shutdown().await;
}
