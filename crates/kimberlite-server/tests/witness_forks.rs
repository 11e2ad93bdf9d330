//! What witnesses are for, end to end over loopback TCP with three in-process witnesses and
//! a 2-of-3 policy: a forked log (two stores signed with the same key, different events) is
//! cosigned on at most one branch by each witness; a store rolled back from a copy and grown
//! again differently is refused by every witness, and by the log's own guard when its kept
//! checkpoints survived the restore.

mod common;

use std::path::Path;

use common::witnesses::{config, configure, policy, three_witnesses, TestWitness};
use common::{test_keys, TestServer};
use kimberlite::proof::{WitnessKey, WitnessPolicy};
use kimberlite_server::{ServerConfig, WitnessingConfig};
use kimberlite_witness::WitnessState;
use reqwest::StatusCode;

const STREAM: &str = "ledger";

fn two_of_three(witnesses: &[TestWitness]) -> WitnessPolicy {
    let keys: Vec<(WitnessKey, String)> = witnesses.iter().map(|w| (w.key(), w.url())).collect();
    policy(&keys, 2)
}

async fn server_in(dir: tempfile::TempDir, config: WitnessingConfig) -> TestServer {
    let listen = ServerConfig::new("127.0.0.1:0".parse().unwrap());
    TestServer::start_full_in(dir, listen, test_keys(), reqwest::Client::new(), |state| {
        configure(state, config)
    })
    .await
}

/// The valid cosignatures of each policy witness on the note kept by `server`, if any.
fn cosigned_by(server: &TestServer, policy: &WitnessPolicy) -> Vec<bool> {
    let store = server.state.store();
    let kept = store
        .latest_cosigned_checkpoint(store.stream(STREAM).unwrap())
        .unwrap();
    policy
        .witnesses()
        .iter()
        .map(|key| {
            kept.as_ref()
                .is_some_and(|kept| key.verify(&kept.note).is_ok())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forked_log_is_cosigned_on_at_most_one_branch_by_each_witness() {
    let witnesses = three_witnesses(STREAM).await;
    let policy = two_of_three(&witnesses);
    // Two stores under the same key and store name: one log, two histories of equal size.
    let left = server_in(tempfile::tempdir().unwrap(), config(policy.clone())).await;
    let right = server_in(tempfile::tempdir().unwrap(), config(policy.clone())).await;
    left.append_events(STREAM, &["a", "b", "c"], true).await;
    right.append_events(STREAM, &["a", "B", "c"], true).await;
    // Both ask at once: the witnesses decide which branch each sees first.
    tokio::join!(left.checkpoint(STREAM), right.checkpoint(STREAM));
    // Each witness answers each server once (cosigned) or twice (409, then 409 again from
    // the size it names: same size, another root).
    let settled = |count: &dyn Fn(&str) -> u64| count("cosigned") * 2 + count("conflict") == 6;
    left.wait_requests("left settled", settled).await;
    right.wait_requests("right settled", settled).await;
    let cosigned_total =
        left.witness_requests("cosigned").await + right.witness_requests("cosigned").await;
    assert_eq!(cosigned_total, 3);
    // What the servers kept says the same, witness by witness.
    let mut kept = (Vec::new(), Vec::new());
    for _ in 0..400 {
        kept = (cosigned_by(&left, &policy), cosigned_by(&right, &policy));
        let count = |v: &[bool]| v.iter().filter(|c| **c).count() as u64;
        if count(&kept.0) + count(&kept.1) == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    for (n, (on_left, on_right)) in kept.0.iter().zip(&kept.1).enumerate() {
        assert!(
            on_left ^ on_right,
            "witness {n}: left {on_left}, right {on_right}"
        );
    }
    // At most one branch can be witnessed; later checkpoints of the other never are.
    let witnessed = [
        left.witnessed(STREAM).await.is_some(),
        right.witnessed(STREAM).await.is_some(),
    ];
    assert!(!(witnessed[0] && witnessed[1]));
}

/// Copies the store in `from` to `to`, lock files left out.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Empties `dir`, then copies `backup` into it: a restore from a backup.
fn restore(dir: &Path, backup: &Path, keep: &[&str]) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if keep.iter().any(|kept| entry.file_name() == *kept) {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        } else {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    for entry in std::fs::read_dir(backup).unwrap() {
        let entry = entry.unwrap();
        if keep.iter().any(|kept| entry.file_name() == *kept) {
            continue;
        }
        let target = dir.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_store_is_refused_by_the_witnesses_and_by_the_logs_own_guard() {
    let witnesses = three_witnesses(STREAM).await;
    let policy = two_of_three(&witnesses);
    let server = server_in(tempfile::tempdir().unwrap(), config(policy.clone())).await;
    server.append_events(STREAM, &["a", "b"], true).await;
    server.checkpoint(STREAM).await;
    server.wait_witnessed(STREAM, 2).await;
    let dir = server.stop().await;
    let backup = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), backup.path());

    let server = server_in(dir, config(policy.clone())).await;
    server.append_events(STREAM, &["c", "d"], false).await;
    server.checkpoint(STREAM).await;
    server.wait_witnessed(STREAM, 4).await;
    let dir = server.stop().await;
    let grown = tempfile::tempdir().unwrap();
    copy_dir(dir.path(), grown.path());

    // Restored from the copy, then grown again with other events to the same size: the log
    // signs (nothing in the copy says it was longer), but no witness cosigns the new branch.
    restore(dir.path(), backup.path(), &[]);
    let server = server_in(dir, config(policy.clone())).await;
    // At the copy's size: every witness names a larger size it cosigned (409), and is not
    // asked again.
    server.checkpoint(STREAM).await;
    server
        .wait_requests("a 409 from each witness", |count| count("conflict") == 3)
        .await;
    server.append_events(STREAM, &["x", "y"], false).await;
    server.checkpoint(STREAM).await;
    // From the size each named: 409 again (same size, another root), then nothing more.
    server
        .wait_requests("two more 409s from each witness", |count| {
            count("conflict") == 9
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(server.witness_requests("conflict").await, 9);
    assert_eq!(server.witness_requests("cosigned").await, 0);
    let view = server
        .witnessed(STREAM)
        .await
        .expect("the copy's witnessed checkpoint");
    assert_eq!(view["tree_size"], 2);
    let dir = server.stop().await;

    // Restored again, but the checkpoints kept since survived (kept apart from the data):
    // the log's own guard refuses to sign, and nothing reaches the witnesses.
    restore(dir.path(), backup.path(), &["checkpoints"]);
    restore_dir(dir.path(), grown.path(), "checkpoints");
    let server = server_in(dir, config(policy.clone())).await;
    let (status, body) = server
        .read_as_auditor(&format!("/v1/streams/{STREAM}/checkpoint"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body.contains("size 2") && body.contains("size 4"), "{body}");
    assert_eq!(server.witness_requests("cosigned").await, 0);
    assert_eq!(server.witness_requests("conflict").await, 0);
    server.stop().await;

    // Each witness still holds the branch it cosigned first.
    for witness in witnesses {
        let dir = witness.stop().await;
        let state = WitnessState::open(dir.path()).unwrap();
        assert_eq!(state.list()[0].cosigned.unwrap().size, 4);
    }
}

/// Replaces `dir/name` with `from/name`.
fn restore_dir(dir: &Path, from: &Path, name: &str) {
    let _ = std::fs::remove_dir_all(dir.join(name));
    copy_dir(&from.join(name), &dir.join(name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosignatures_kept_earlier_stay_when_their_witness_is_down_later() {
    let mut witnesses = three_witnesses(STREAM).await;
    let policy = two_of_three(&witnesses);
    witnesses.remove(2).stop().await;
    let server = server_in(tempfile::tempdir().unwrap(), config(policy.clone())).await;
    server.append_events(STREAM, &["a", "b"], true).await;
    server.checkpoint(STREAM).await;
    server.wait_witnessed(STREAM, 2).await;
    server
        .wait_requests("two cosigned, one down", |count| {
            count("cosigned") == 2 && count("unreachable") == 3
        })
        .await;
    let dir = server.stop().await;
    // Witness 1 goes down too; restarted, the server asks again at the same size: witness 2
    // cosigns again, and witness 1's cosignature kept before still counts.
    witnesses.remove(0).stop().await;
    let server = server_in(dir, config(policy.clone())).await;
    server.checkpoint(STREAM).await;
    server
        .wait_requests("one cosigned, two down", |count| {
            count("cosigned") == 1 && count("unreachable") == 6
        })
        .await;
    let view = server.witnessed(STREAM).await.expect("still witnessed");
    assert_eq!(view["tree_size"], 2);
    assert_eq!(view["cosigned_by"].as_array().unwrap().len(), 2, "{view}");
    // Once each: witness 2's second cosignature was not added beside its first.
    let note = view["checkpoint"].as_str().unwrap();
    assert_eq!(note.matches("witness.test/w2").count(), 1, "{note}");
    server.stop().await;
}
