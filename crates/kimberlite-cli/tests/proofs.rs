//! Merkle proofs end to end through the real `kimberlite` binary: keygen, checkpoint, prove,
//! verify-proof, prove-consistency, audit; and the attacks `audit` must catch on real files:
//! a tail cut after a checkpoint and a rewritten old event, each with every chain hash, CRC,
//! manifest and Merkle side file made consistent again, as a capable attacker would.

use std::path::{Path, PathBuf};
use std::process::Command;

use kimberlite::{ExpectedOffset, Kimberlite, Offset};

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .output()
        .expect("run kimberlite");
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    run
}

fn expect(args: &[&str], code: i32, needle: &str) -> String {
    let run = run(args);
    assert_eq!(
        run.code, code,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    let all = format!("{}{}", run.stdout, run.stderr);
    assert!(all.contains(needle), "{args:?}: {needle:?} not in\n{all}");
    run.stdout
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// A store `<tmp>/store` with streams `other` (3 events) and `audit` (`count` events), a key
/// pair and a signed checkpoint of `audit`.
struct Setup {
    tmp: tempfile::TempDir,
    store: PathBuf,
    checkpoint: PathBuf,
    pubkey: PathBuf,
}

fn payload(i: u64) -> String {
    format!("{{\"event\":\"record_viewed\",\"n\":{i}}}")
}

fn setup(count: u64) -> Setup {
    let tmp = tempfile::tempdir().expect("tempdir");
    let store = tmp.path().join("store");
    {
        let db = Kimberlite::open(&store).expect("open");
        let other = db.create_stream("other").expect("create");
        db.append(other, ["x", "y", "z"], ExpectedOffset::NoStream)
            .expect("append");
        let audit = db.create_stream("audit").expect("create");
        // One event per batch: a cut at any frame is then a cut between batches, which
        // recovery leaves where it is (a batch cut in its middle is cut whole: row 10).
        for i in 0..count {
            db.append(audit, [payload(i)], ExpectedOffset::Exact(Offset::new(i)))
                .expect("append");
        }
    }
    let key = tmp.path().join("auditor.key");
    expect(
        &["keygen", "--name", "auditor", "--out", s(&key)],
        0,
        "auditor+",
    );
    let note = expect(
        &["checkpoint", s(&store), "audit", "--key", s(&key)],
        0,
        "store/audit\n",
    );
    // C2SP: the log signs under its origin, not under the key file's name; verify-proof and
    // audit still take the keygen public key (the same key, renamed to the origin).
    assert!(note.contains("\n\u{2014} store/audit "), "{note}");
    let checkpoint = tmp.path().join("audit.checkpoint");
    std::fs::write(&checkpoint, note).expect("write checkpoint");
    let pubkey = tmp.path().join("auditor.key.pub");
    Setup {
        tmp,
        store,
        checkpoint,
        pubkey,
    }
}

/// `verify-proof` of the proof in `proof` against the setup's key and checkpoint.
fn verify_proof(setup: &Setup, proof: &Path, code: i32, needle: &str) -> String {
    verify_proof_against(setup, &setup.checkpoint, proof, code, needle)
}

/// `verify-proof` of the proof in `proof` against the setup's key and `checkpoint`.
fn verify_proof_against(
    setup: &Setup,
    checkpoint: &Path,
    proof: &Path,
    code: i32,
    needle: &str,
) -> String {
    expect(
        &[
            "verify-proof",
            "--pubkey",
            s(&setup.pubkey),
            "--checkpoint",
            s(checkpoint),
            "--proof",
            s(proof),
        ],
        code,
        needle,
    )
}

fn audit(setup: &Setup, code: i32, needle: &str) -> String {
    audit_with(setup, &setup.checkpoint, &setup.pubkey, code, needle)
}

/// `kimberlite audit` of the setup's store against `checkpoint` under `pubkey`.
fn audit_with(setup: &Setup, checkpoint: &Path, pubkey: &Path, code: i32, needle: &str) -> String {
    expect(
        &[
            "audit",
            s(&setup.store),
            "--checkpoint",
            s(checkpoint),
            "--pubkey",
            s(pubkey),
        ],
        code,
        needle,
    )
}

/// The attacker's tool: rebuilds the whole store with the engine itself from `streams`
/// (name, events), in the original creation order, so every record, chain hash, CRC,
/// manifest, index and Merkle side file is exactly what an honest store would hold.
fn rewrite_store(store: &Path, edit: impl Fn(&str, &mut Vec<Vec<u8>>)) {
    let mut streams = Vec::new();
    {
        let db = Kimberlite::open(store).expect("open");
        let mut infos = db.list_streams();
        infos.sort_by_key(|info| info.id.as_u64());
        for info in infos {
            let events: Vec<Vec<u8>> = db
                .read(info.id, Offset::ZERO, u64::MAX)
                .expect("read")
                .into_iter()
                .map(|event| event.payload.to_vec())
                .collect();
            streams.push((info.name, events));
        }
    }
    std::fs::remove_dir_all(store).expect("remove store");
    let db = Kimberlite::open(store).expect("recreate");
    for (name, mut events) in streams {
        edit(&name, &mut events);
        let id = db.create_stream(&name).expect("create");
        if !events.is_empty() {
            db.append(id, events, ExpectedOffset::NoStream)
                .expect("append");
        }
    }
}

#[test]
fn prove_and_verify_offline() {
    let setup = setup(100);
    let proof_path = setup.tmp.path().join("proof.json");
    let proof = expect(
        &["prove", s(&setup.store), "audit", "37"],
        0,
        "\"offset\": 37",
    );
    std::fs::write(&proof_path, &proof).expect("write");
    verify_proof(&setup, &proof_path, 0, "valid: the event at offset 37");
    // The verifier needs no store.
    std::fs::remove_dir_all(&setup.store).expect("remove");
    verify_proof(&setup, &proof_path, 0, "valid");
    // Any change to the proof is rejected with the reason.
    let cases = [
        ("\"offset\": 37", "\"offset\": 38", "leaf hash"),
        ("\"tree_size\": 100", "\"tree_size\": 99", "tree size 99"),
        (
            "\"proof\": [\n    \"",
            "\"proof\": [\n    \"00",
            "malformed proof",
        ),
        ("{", "[", "malformed proof"),
    ];
    for (from, to, reason) in cases {
        std::fs::write(&proof_path, proof.replacen(from, to, 1)).expect("write");
        verify_proof(&setup, &proof_path, 1, reason);
    }
    let bundle: serde_json::Value = serde_json::from_str(&proof).expect("json");
    let first = bundle["proof"][0].as_str().expect("hash").to_owned();
    let flipped = format!(
        "{}{}",
        if first.starts_with('0') { "1" } else { "0" },
        &first[1..]
    );
    std::fs::write(&proof_path, proof.replace(&first, &flipped)).expect("write");
    verify_proof(&setup, &proof_path, 1, "does not verify");
    // A changed checkpoint fails its signature; garbage keys and files are clear errors.
    std::fs::write(&proof_path, &proof).expect("write");
    let note = std::fs::read_to_string(&setup.checkpoint).expect("read");
    std::fs::write(&setup.checkpoint, note.replacen("\n100\n", "\n101\n", 1)).expect("write");
    verify_proof(&setup, &proof_path, 1, "does not verify");
    std::fs::write(&setup.checkpoint, "garbage").expect("write");
    verify_proof(&setup, &proof_path, 1, "malformed");
    std::fs::write(&setup.pubkey, "garbage").expect("write");
    verify_proof(&setup, &proof_path, 2, "malformed verifier key");
}

#[test]
fn consistency_proofs_and_an_honest_audit() {
    let setup = setup(10);
    let db = Kimberlite::open(&setup.store).expect("open");
    let id = db.stream("audit").expect("stream");
    db.append(id, ["later"], ExpectedOffset::Any)
        .expect("append");
    drop(db);
    let out = audit(
        &setup,
        0,
        "consistent: the stream's 11 events extend the 10 events",
    );
    assert!(out.contains("consistency proof 10 -> 11"), "{out}");
    let proof_path = setup.tmp.path().join("consistency.json");
    let proof = expect(
        &["prove-consistency", s(&setup.store), "audit", "10", "11"],
        0,
        "kimberlite-consistency-proof/v1",
    );
    std::fs::write(&proof_path, proof).expect("write");
    verify_proof(&setup, &proof_path, 0, "extends the tree of 10 events");
    expect(
        &["prove-consistency", s(&setup.store), "audit", "11", "10"],
        2,
        "no consistency proof",
    );
    expect(
        &["prove", s(&setup.store), "audit", "11"],
        2,
        "not in a tree",
    );
}

#[test]
fn audit_reports_a_cut_tail_with_every_hash_fixed_up() {
    let setup = setup(50);
    audit(&setup, 0, "consistent");
    rewrite_store(&setup.store, |name, events| {
        if name == "audit" {
            events.truncate(46);
        }
    });
    // The store itself is flawless: verify finds nothing.
    expect(&["verify", s(&setup.store)], 0, "intact");
    audit(&setup, 1, "TAIL CUT");
    let out = audit(&setup, 1, "offsets 46..=49 were removed");
    assert!(out.contains("ends at offset 45"), "{out}");
    // Appending new events to hide the cut makes it a rewritten history instead.
    let db = Kimberlite::open(&setup.store).expect("open");
    let id = db.stream("audit").expect("stream");
    db.append(
        id,
        (0..10).map(|i| format!("forged {i}")),
        ExpectedOffset::Any,
    )
    .expect("append");
    drop(db);
    audit(
        &setup,
        1,
        "HISTORY REWRITTEN: the stream's events at offsets 0..=49",
    );
}

#[test]
fn audit_reports_a_rewritten_event_with_the_whole_chain_recomputed() {
    let setup = setup(50);
    rewrite_store(&setup.store, |name, events| {
        if name == "audit" {
            events[7] = b"{\"event\":\"nothing_to_see\"}".to_vec();
        }
    });
    expect(&["verify", s(&setup.store)], 0, "intact");
    audit(&setup, 1, "HISTORY REWRITTEN");
}

#[test]
fn audit_reports_stale_tree_files() {
    let setup = setup(20);
    // Only the log is rewritten; the old Merkle side files are put back.
    let merkle = setup.store.join("merkle");
    let saved = setup.tmp.path().join("merkle-saved");
    std::fs::rename(&merkle, &saved).expect("save");
    rewrite_store(&setup.store, |name, events| {
        if name == "audit" {
            events[3] = b"changed".to_vec();
        }
    });
    std::fs::remove_dir_all(&merkle).expect("remove");
    std::fs::rename(&saved, &merkle).expect("restore");
    let out = audit(&setup, 1, "disagrees with the log from offset 3");
    assert!(out.contains("HISTORY REWRITTEN"), "{out}");
}

#[test]
fn audit_usage_errors() {
    let setup = setup(5);
    let missing = setup.tmp.path().join("missing");
    audit_with(
        &setup,
        &missing,
        &setup.pubkey,
        2,
        "cannot read the checkpoint",
    );
    let other_key = setup.tmp.path().join("other.key");
    expect(&["keygen", "--out", s(&other_key)], 0, "kimberlite+");
    expect(&["keygen", "--out", s(&other_key)], 2, "never overwrites");
    let other_pub = setup.tmp.path().join("other.key.pub");
    audit_with(
        &setup,
        &setup.checkpoint,
        &other_pub,
        1,
        "no signature by key kimberlite",
    );
    std::fs::write(&other_pub, "garbage").expect("write");
    audit_with(
        &setup,
        &setup.checkpoint,
        &other_pub,
        2,
        "malformed verifier key",
    );
}

/// The same cut done on the files themselves: the active segment is truncated at a record
/// boundary (each frame carries its own CRC, and no later record's chain link is left to
/// break), its index and the Merkle side files are deleted so that open rebuilds them.
/// `verify` sees a clean store; only the signed checkpoint shows what is gone.
#[test]
fn audit_reports_a_tail_cut_in_the_segment_file() {
    let setup = setup(20);
    let stream_dir = setup.store.join("streams").join(format!("{:020}", 2));
    let segment = stream_dir.join("00000000.seg");
    let bytes = std::fs::read(&segment).expect("read segment");
    let mut frames = Vec::new();
    let mut position = 40; // the segment header (docs/FORMAT.md)
    while position < bytes.len() {
        frames.push(position);
        let len: [u8; 4] = bytes[position..position + 4].try_into().expect("4 bytes");
        position += u32::from_le_bytes(len) as usize;
    }
    assert_eq!(frames.len(), 20);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .expect("open segment")
        .set_len(frames[17] as u64)
        .expect("truncate");
    for entry in std::fs::read_dir(&stream_dir).expect("list") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|ext| ext == "idx") {
            std::fs::remove_file(path).expect("remove index");
        }
    }
    std::fs::remove_dir_all(setup.store.join("merkle")).expect("remove tree");
    // The checkpoint kept in the store says the stream held 20: verify says so (issue 22).
    expect(&["verify", s(&setup.store)], 1, "events 17..20 are missing");
    audit(&setup, 1, "offsets 17..=19 were removed");
}

/// Several checkpoints narrow a rewrite down to the events between the last one that still
/// matches and the first that does not.
#[test]
fn audit_with_several_checkpoints_narrows_down_a_rewrite() {
    let setup = setup(20);
    let key = setup.tmp.path().join("auditor.key");
    let mut checkpoints = vec![setup.checkpoint.clone()];
    for (round, more) in [(1, 20), (2, 10)] {
        let db = Kimberlite::open(&setup.store).expect("open");
        let id = db.stream("audit").expect("stream");
        let first = db.head(id).expect("head").next_offset.as_u64();
        db.append(id, (first..first + more).map(payload), ExpectedOffset::Any)
            .expect("append");
        drop(db);
        let note = expect(
            &["checkpoint", s(&setup.store), "audit", "--key", s(&key)],
            0,
            "store/audit\n",
        );
        let path = setup.tmp.path().join(format!("cp-{round}"));
        std::fs::write(&path, note).expect("write");
        checkpoints.push(path);
    }
    let mut args = vec!["audit", s(&setup.store), "--pubkey", s(&setup.pubkey)];
    for path in &checkpoints {
        args.extend(["--checkpoint", s(path)]);
    }
    expect(
        &args,
        0,
        "consistent: the stream's 50 events extend the 50 events",
    );
    rewrite_store(&setup.store, |name, events| {
        if name == "audit" {
            events[27] = b"rewritten".to_vec();
        }
    });
    let out = expect(&args, 1, "HISTORY REWRITTEN");
    assert!(
        out.contains("the first change is at an offset in 20..=39"),
        "{out}"
    );
    assert!(out.contains("checkpoint of size 20 still matches"), "{out}");
}

/// Flips one bit of node `index` of `level` in the stored Merkle tree of `stream`.
fn flip_tree_node(store: &Path, stream: &str, level: u8, index: u64) -> PathBuf {
    let id = Kimberlite::open(store)
        .expect("open")
        .stream(stream)
        .expect("stream");
    let path = store
        .join("merkle")
        .join(format!("{:020}", id.as_u64()))
        .join(format!("level-{level:02}.hashes"));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[32 * index as usize + 5] ^= 1;
    std::fs::write(&path, bytes).expect("write");
    path
}

/// A flipped bit in an interior node of the stored tree (node 0 of level 3: offsets 0..=7):
/// `verify` exits 1 naming the node, its file and byte (comparing only leaves and the root
/// would miss it); `prove` and `prove-consistency` refuse the proofs that read it with exit 1
/// and print no proof (it would fail against the checkpoint); proofs that do not read it are
/// still given and verify.
#[test]
fn a_damaged_interior_tree_node_fails_verify_and_no_proof_is_printed_from_it() {
    let setup = setup(40);
    let file = flip_tree_node(&setup.store, "audit", 3, 0);
    let out = expect(&["verify", s(&setup.store)], 1, "NOT INTACT");
    let line = format!(
        "\"audit\" (id 2): offset 0, file {}, byte 0: the Merkle tree side files disagree with \
         the log: node 0 of level 3 (over offsets 0..=7) is not the hash of those events; \
         every leaf below it matches the log",
        file.display()
    );
    assert!(out.contains(&line), "{out}");
    let refused = run(&["prove", s(&setup.store), "audit", "10"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.stdout, "", "no proof is printed");
    assert!(
        refused.stderr.contains(
            "the stored Merkle tree of stream \"audit\" (id 2) is damaged at offset 10 (its \
             inclusion proof in the tree of 40 events)"
        ),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("run verify"), "{}", refused.stderr);
    let refused = run(&["prove-consistency", s(&setup.store), "audit", "8", "40"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.stdout, "", "no proof is printed");
    assert!(
        refused.stderr.contains("is damaged at tree sizes 8..40"),
        "{}",
        refused.stderr
    );
    // Offset 30's path and the consistency proof from 24 read no node over offsets 0..=7.
    let proof_path = setup.tmp.path().join("proof.json");
    let proof = expect(
        &["prove", s(&setup.store), "audit", "30"],
        0,
        "\"offset\": 30",
    );
    std::fs::write(&proof_path, proof).expect("write");
    verify_proof(&setup, &proof_path, 0, "valid: the event at offset 30");
    expect(
        &["prove-consistency", s(&setup.store), "audit", "24", "40"],
        0,
        "\"old_size\": 24",
    );
    let out = audit(&setup, 1, "TAMPERED");
    assert!(
        out.contains("node 0 of level 3 (merkle/00000000000000000002/level-03.hashes, byte 0)"),
        "{out}"
    );
}

/// A flipped bit in a node the root is made of (node 0 of level 5: offsets 0..=31 of 40):
/// `checkpoint` refuses to sign the root it gives (no proof could match it), and `prove`
/// refuses even proofs whose path is intact, since their root is not.
#[test]
fn a_damaged_root_node_is_neither_signed_nor_proved_against() {
    let setup = setup(40);
    flip_tree_node(&setup.store, "audit", 5, 0);
    let key = setup.tmp.path().join("auditor.key");
    let refused = run(&["checkpoint", s(&setup.store), "audit", "--key", s(&key)]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert_eq!(refused.stdout, "", "nothing is signed");
    assert!(
        refused.stderr.contains(
            "is damaged at its head (the root of the tree of 40 events): node 0 of level 5 \
             (level-05.hashes) is not the hash of nodes 0 and 1 of level 4"
        ),
        "{}",
        refused.stderr
    );
    let refused = run(&["prove", s(&setup.store), "audit", "35"]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("is damaged at offset 35"),
        "{}",
        refused.stderr
    );
    expect(&["verify", s(&setup.store)], 1, "node 0 of level 5");
}

/// A checkpoint or proof file that is not text is evidence that does not hold, as a malformed
/// one is: INVALID, exit 1, not a usage error (exit 2).
#[test]
fn binary_evidence_is_invalid_not_a_usage_error() {
    let setup = setup(5);
    let proof_path = setup.tmp.path().join("proof.json");
    let proof = expect(
        &["prove", s(&setup.store), "audit", "1"],
        0,
        "\"offset\": 1",
    );
    std::fs::write(&proof_path, &proof).expect("write");
    let binary = setup.tmp.path().join("binary");
    std::fs::write(&binary, [0xff, 0xfe, 0x00, 0x80]).expect("write");
    let out = verify_proof_against(&setup, &binary, &proof_path, 1, "INVALID");
    assert!(!out.contains("valid:"), "{out}");
    verify_proof(&setup, &binary, 1, "INVALID");
    let empty = setup.tmp.path().join("empty");
    std::fs::write(&empty, "").expect("write");
    verify_proof(&setup, &empty, 1, "INVALID");
}
