//! Cluster mode end to end: three nodes in this process, real servers on loopback, Raft
//! messages over HTTP (docs/SERVER.md, section "Cluster mode").

mod common;

use std::time::Duration;

use common::cluster::{get, listener, post, raw, Nodes, SECRET};
use common::{header, ADMIN, AUDITOR};
use reqwest::StatusCode;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_elect_a_leader_and_replicate_appends_sent_to_any_node() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);

    let created = nodes.create(leader, "ehr").await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(
        nodes.create(leader, "ehr").await.status(),
        StatusCode::CONFLICT
    );

    // A follower sends a write to the leader: same path and query.
    let path = "/v1/streams/ehr/events?expected_offset=0";
    let redirected = post(nodes.url(follower, path), ADMIN, &json!(["a", "b"])).await;
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = header(&redirected, "location");
    assert_eq!(location, nodes.url(leader, path));
    let appended = post(&location, ADMIN, &json!(["a", "b"])).await;
    assert_eq!(appended.status(), StatusCode::OK);
    let position = header(&appended, "kimberlite-log-position");
    let body: Value = appended.json().await.unwrap();
    assert_eq!(body["first_offset"], 0);
    assert_eq!(body["next_offset"], 2);
    // The expected offset is checked by the leader.
    let conflict = post(&location, ADMIN, &json!(["c"])).await;
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
    let conflict: Value = conflict.json().await.unwrap();
    assert_eq!(conflict["error"]["next_offset"], 2);

    // Every replica holds the events; a follower read names its log position, at or past
    // the append's.
    for &node in nodes.running.keys() {
        let read = nodes.follower_read(node, "ehr", 2).await;
        let at = header(&read, "kimberlite-log-position");
        let index = |position: &str| position.rsplit('-').next().unwrap().parse::<u64>().unwrap();
        assert!(index(&at) >= index(&position), "{at} < {position}");
        let page: Value = read.json().await.unwrap();
        assert_eq!(page["events"][1]["payload"], "b");
    }

    // A linearizable read (the default) on a follower goes to the leader; on the leader it
    // is answered with its position.
    let read = get(nodes.url(follower, "/v1/streams/ehr/events?from=1"), ADMIN).await;
    assert_eq!(read.status(), StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(
        read.headers()["location"].to_str().unwrap(),
        nodes.url(leader, "/v1/streams/ehr/events?from=1")
    );
    let linearizable = "/v1/streams/ehr/events?from=1&consistency=linearizable";
    let read = get(nodes.url(leader, linearizable), ADMIN).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert!(read.headers().contains_key("kimberlite-log-position"));
    let page: Value = read.json().await.unwrap();
    assert_eq!(page["events"].as_array().unwrap().len(), 1);

    // Each node keeps its own access log, served under the usual name.
    let access = get(
        nodes.url(leader, "/v1/streams/_access/events?from=0"),
        ADMIN,
    )
    .await;
    assert_eq!(access.status(), StatusCode::OK);
    let page: Value = access.json().await.unwrap();
    assert!(!page["events"].as_array().unwrap().is_empty());
    let streams: Value = get(nodes.url(leader, "/v1/streams"), ADMIN)
        .await
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

/// The status a Raft route at `url` answers to `body`, sent with `token` as the bearer (none
/// when `None`).
async fn raft_post(url: &str, token: Option<&str>, body: Vec<u8>) -> StatusCode {
    let request = raw().post(url).body(body);
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    request.send().await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_raft_routes_need_the_cluster_secret_and_refuse_garbage() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    for route in ["append-entries", "vote", "snapshot"] {
        let url = nodes.url(leader, &format!("/v1/raft/{route}"));
        let none = raft_post(&url, None, vec![1, 2, 3]).await;
        assert_eq!(none, StatusCode::UNAUTHORIZED, "{route}");
        // An API key is not the cluster secret.
        let key = raft_post(&url, Some(ADMIN), vec![1]).await;
        assert_eq!(key, StatusCode::UNAUTHORIZED, "{route}");
        let wrong = raft_post(&url, Some(&format!("{SECRET}x")), vec![1]).await;
        assert_eq!(wrong, StatusCode::UNAUTHORIZED, "{route}");
        for garbage in [Vec::new(), vec![0xff; 64], b"{\"vote\":1}".to_vec()] {
            let refused = raft_post(&url, Some(SECRET), garbage).await;
            assert_eq!(refused, StatusCode::BAD_REQUEST, "{route}");
        }
    }
    // The node still leads and serves.
    assert_eq!(nodes.leader().await, leader);
    assert_eq!(
        nodes.create(leader, "after").await.status(),
        StatusCode::CREATED
    );
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn features_that_would_write_around_raft_are_refused() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    assert_eq!(
        nodes.create(leader, "s").await.status(),
        StatusCode::CREATED
    );
    let retain_path = "/v1/streams/s/retain";
    let retain = post(
        nodes.url(leader, retain_path),
        ADMIN,
        &json!({ "before": 0 }),
    )
    .await;
    assert_eq!(retain.status(), StatusCode::NOT_IMPLEMENTED);
    let body: Value = retain.json().await.unwrap();
    assert_eq!(body["error"]["kind"], "not_in_cluster");
    let erasure = json!({ "subject": "P-1" });
    let erase = post(nodes.url(leader, "/v1/erasures"), ADMIN, &erasure).await;
    assert_eq!(erase.status(), StatusCode::NOT_IMPLEMENTED);
    let sealed_path = "/v1/streams/s/events?subject=P-1";
    let sealed = post(nodes.url(leader, sealed_path), ADMIN, &json!(["x"])).await;
    assert_eq!(sealed.status(), StatusCode::NOT_IMPLEMENTED);
    // Checkpoints go through the log; a cluster started without a signing key signs none.
    let checkpoint = get(nodes.url(leader, "/v1/streams/s/checkpoint"), ADMIN).await;
    assert_eq!(checkpoint.status(), StatusCode::NOT_FOUND);
    let body: Value = checkpoint.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--signing-key"),
        "{body}"
    );
    let eventual = "/v1/streams/s/events?consistency=eventual";
    let bad = get(nodes.url(leader, eventual), ADMIN).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_are_published_through_the_log_and_verify_from_any_node() {
    use kimberlite::proof::{verify_bundle, Checkpoint, Verified};

    let nodes = Nodes::start_signing(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);
    assert_eq!(
        nodes.create(leader, "ehr").await.status(),
        StatusCode::CREATED
    );
    let appended = nodes.append(leader, "ehr", json!(["a", "b", "c"])).await;
    assert_eq!(appended.status(), StatusCode::OK);
    let verifier = common::checkpoint_key().verifier();

    // On the leader: signed over what it applied, answered once every replica will keep it.
    let path = "/v1/streams/ehr/checkpoint";
    let response = get(nodes.url(leader, path), AUDITOR).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("kimberlite-log-position"));
    let note = response.text().await.unwrap();
    let origin = format!("{}/ehr", common::LOG_NAME);
    assert!(note.starts_with(&format!("{origin}\n3\n")), "{note}");
    let signed = Checkpoint::open_by_log(&note, &verifier).unwrap();
    assert_eq!(signed.tree_size, 3);

    // A follower sends the (linearizable) request to the leader, which answers the same note.
    let redirected = get(nodes.url(follower, path), AUDITOR).await;
    assert_eq!(redirected.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = header(&redirected, "location");
    assert_eq!(location, nodes.url(leader, path));
    let followed = get(&location, AUDITOR).await;
    assert_eq!(followed.text().await.unwrap(), note);

    // The tiles view's checkpoint from two nodes: the leader's, and the one a follower keeps
    // (a follower read): the same note under the same key.
    let tiles = "/v1/streams/ehr/tlog/checkpoint";
    let from_leader = nodes.note_of_size(leader, tiles, 3).await;
    let from_follower = nodes
        .note_of_size(follower, &format!("{tiles}?consistency=follower"), 3)
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
    let inclusion = "/v1/streams/ehr/proofs/inclusion?offset=1&tree_size=3&consistency=follower";
    let proof = get(nodes.url(follower, inclusion), AUDITOR).await;
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
    let appended = nodes.append(leader, "ehr", json!(["d"])).await;
    assert_eq!(appended.status(), StatusCode::OK);
    let grown = nodes.note_of_size(leader, path, 4).await;
    assert_ne!(grown, note);
    let from_follower = nodes
        .note_of_size(follower, &format!("{tiles}?consistency=follower"), 4)
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
        nodes.create(leader, "m").await.status(),
        StatusCode::CREATED
    );
    for event in ["1", "2", "3"] {
        let appended = nodes.append(leader, "m", json!([event])).await;
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
    let learners = "/v1/cluster/learners";
    let learner = json!({ "id": 4, "url": url });
    let added = post(nodes.url(follower, learners), ADMIN, &learner).await;
    assert_eq!(added.status(), StatusCode::TEMPORARY_REDIRECT);
    let added = post(nodes.url(leader, learners), ADMIN, &learner).await;
    assert!(
        matches!(added.status(), StatusCode::OK | StatusCode::ACCEPTED),
        "{}",
        added.status()
    );
    let view: Value = added.json().await.unwrap();
    assert_eq!(view["learners"][0]["id"], 4);
    nodes.follower_read(4, "m", 3).await;
    let learner = nodes.running[&4].state.cluster().unwrap();
    assert!(
        learner.node().raft().metrics().borrow().snapshot.is_some(),
        "the learner caught up from a snapshot"
    );

    let voters = json!({ "voters": [1, 2, 3, 4] });
    let promoted = post(nodes.url(leader, "/v1/cluster/voters"), ADMIN, &voters).await;
    assert_eq!(promoted.status(), StatusCode::OK);
    let status: Value = get(nodes.url(4, "/v1/cluster"), ADMIN)
        .await
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
    let refused = get(nodes.url(leader, "/v1/cluster"), AUDITOR).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    nodes.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_poll_on_a_follower_wakes_when_its_replica_applies() {
    let nodes = Nodes::start(&[1, 2, 3]).await;
    let leader = nodes.leader().await;
    let follower = nodes.other_than(leader);
    assert_eq!(
        nodes.create(leader, "w").await.status(),
        StatusCode::CREATED
    );
    let long_poll = "/v1/streams/w/events?from=0&wait_ms=15000&consistency=follower";
    let poll = get(nodes.url(follower, long_poll), ADMIN);
    let started = std::time::Instant::now();
    let poll = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        nodes.append(leader, "w", json!(["woken"])).await.status(),
        StatusCode::OK
    );
    let answer = poll.await.unwrap();
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
