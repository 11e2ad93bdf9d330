//! A checkpoint's whole origin (`<store>/<stream>`) is compared: evidence of another store or
//! another stream is reported as such, never compared with this store's stream of the same
//! name (a longer one looked like a cut tail).

mod common;

use std::path::{Path, PathBuf};

use common::{fails, ok, s};

/// A store in `<parent>/<name>` with stream `stream` holding `events` events.
fn store_in(parent: &Path, name: &str, stream: &str, events: usize) -> PathBuf {
    let dir = parent.join(name);
    let input: String = (0..events).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    ok(&["append", s(&dir), stream, "--create"], &input);
    dir
}

fn sign(dir: &Path, stream: &str, key: &Path, out: &Path) {
    let note = ok(&["checkpoint", s(dir), stream, "--key", s(key)], "");
    std::fs::write(out, note).expect("write checkpoint");
}

#[test]
fn a_checkpoint_of_another_store_or_stream_is_reported_as_such() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let alpha = store_in(tmp.path(), "alpha", "audit", 40);
    let beta = store_in(tmp.path(), "beta", "audit", 60);
    let elsewhere = store_in(&tmp.path().join("elsewhere"), "alpha", "gone", 5);
    let key = tmp.path().join("auditor.key");
    ok(&["keygen", "--name", "auditor", "--out", s(&key)], "");
    let pubkey = tmp.path().join("auditor.key.pub");
    let (of_alpha, of_beta, of_gone) = (
        tmp.path().join("alpha.cp"),
        tmp.path().join("beta.cp"),
        tmp.path().join("gone.cp"),
    );
    sign(&alpha, "audit", &key, &of_alpha);
    sign(&beta, "audit", &key, &of_beta);
    sign(&elsewhere, "gone", &key, &of_gone);
    let audit = |dir: &Path, checkpoints: &[&Path], extra: &[&str], code, needle| {
        let mut args = vec!["audit", s(dir), "--pubkey", s(&pubkey)];
        for checkpoint in checkpoints {
            args.extend(["--checkpoint", s(checkpoint)]);
        }
        args.extend(extra);
        fails(&args, "", code, needle)
    };

    // Beta's stream is longer than alpha's: compared, it looked like alpha's tail was cut.
    let run = audit(
        &alpha,
        &[&of_beta],
        &[],
        1,
        "WRONG STORE: the checkpoint is of store \"beta\" (origin \"beta/audit\"), this store \
         is \"alpha\"",
    );
    assert!(!run.stdout.contains("TAIL CUT"), "{}", run.stdout);
    assert!(!run.stdout.contains("consistent"), "{}", run.stdout);
    // Under its signed name the store is audited as usual.
    audit(&beta, &[&of_beta], &[], 0, "consistent");
    audit(
        &alpha,
        &[&of_beta],
        &["--store-name", "beta"],
        1,
        "TAIL CUT",
    );
    // This store's name, a stream it does not hold.
    audit(
        &alpha,
        &[&of_gone],
        &[],
        1,
        "MISSING STREAM: the checkpoint is of this store's stream \"gone\" (5 events signed)",
    );
    // Checkpoints of two logs at once.
    audit(
        &alpha,
        &[&of_alpha, &of_beta],
        &[],
        2,
        "the checkpoints differ in their store",
    );
    audit(
        &alpha,
        &[&of_alpha, &of_gone],
        &[],
        2,
        "the checkpoints differ in their stream",
    );

    // verify-proof: a proof of alpha's stream against beta's checkpoint.
    let proof = tmp.path().join("proof.json");
    let json = ok(&["prove", s(&alpha), "audit", "3"], "");
    std::fs::write(&proof, json).expect("write proof");
    let verify = |checkpoint: &Path, code, needle| {
        fails(
            &[
                "verify-proof",
                "--pubkey",
                s(&pubkey),
                "--checkpoint",
                s(checkpoint),
                "--proof",
                s(&proof),
            ],
            "",
            code,
            needle,
        )
    };
    verify(&of_alpha, 0, "valid");
    verify(
        &of_beta,
        1,
        "INVALID: the proof is for \"alpha/audit\", the checkpoint for \"beta/audit\": a proof \
         of another store",
    );
    verify(&of_gone, 1, "a proof of another stream");
}
