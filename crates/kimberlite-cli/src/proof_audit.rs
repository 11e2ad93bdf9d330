//! `kimberlite audit DIR --checkpoint C [--checkpoint C2 ...] --pubkey K`: is the store's
//! stream still the one that earlier signed checkpoints saw, only longer?
//!
//! The side files of the Merkle tree are not trusted: the tree is recomputed from the log
//! (every event re-read and re-hashed), and the store's own tree must agree with it. Then,
//! for each checkpoint of size `m`, against the stream's `n` events:
//!
//! | stream now | root of its first `m` events | verdict |
//! |---|---|---|
//! | `n < m` events | (cannot be computed) | tail cut: offsets `n..m-1` were removed |
//! | `n >= m` | equals the checkpoint's | consistent; a consistency proof `m -> n` is produced from the store's tree and verified |
//! | `n >= m` | differs | history rewritten within offsets `0..m-1` |
//!
//! With several checkpoints a rewrite is narrowed down: the first changed event lies between
//! the largest checkpoint that still matches and the smallest that does not. Exit codes: 0
//! consistent; 1 tampering found (any row but the second, a stored tree that disagrees with
//! the log, or a checkpoint that is malformed or whose signature fails); 2 usage or I/O
//! errors (unreadable files, a malformed public key, a store that cannot be opened).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::proof::{verify_consistency, Checkpoint, Hash};
use kimberlite::{Kimberlite, StreamId, TreeCheck};

use crate::error::CliError;
use crate::open::open_looking;
use crate::proofs::{read_evidence, read_verifier};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The store's directory.
    dir: PathBuf,
    /// A signed checkpoint to audit against (from `kimberlite checkpoint`); repeat it to give
    /// several checkpoints of the same stream, which narrows down where a rewrite happened.
    #[arg(long, value_name = "FILE", required = true)]
    checkpoint: Vec<PathBuf>,
    /// The public key that signed them.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// This store's name in origin lines, as `checkpoint --store-name` gave it (default: the
    /// directory's name); a checkpoint of another store is reported as such.
    #[arg(long, value_name = "NAME")]
    store_name: Option<String>,
}

/// The checkpoints, signatures checked, by size; `Ok(None)` when one is invalid (printed).
fn open_checkpoints(args: &AuditArgs) -> Result<Option<Vec<Checkpoint>>, CliError> {
    let verifier = read_verifier(&args.pubkey)?;
    let mut checkpoints = Vec::new();
    for path in &args.checkpoint {
        let note = read_evidence(path, "checkpoint")?;
        let checkpoint = match Checkpoint::open_by_log(&note, &verifier) {
            Ok(checkpoint) => checkpoint,
            Err(error) => {
                outln!("INVALID checkpoint {}: {error}", path.display());
                return Ok(None);
            }
        };
        outln!(
            "checkpoint: {}: {}, tree size {}, root {}, signed by {}",
            path.display(),
            checkpoint.origin,
            checkpoint.tree_size,
            checkpoint.root,
            verifier.name()
        );
        checkpoints.push(checkpoint);
    }
    let origin = checkpoints
        .first()
        .map(|c| c.origin.clone())
        .unwrap_or_default();
    if let Some(other) = checkpoints.iter().find(|c| c.origin != origin) {
        return Err(CliError::usage(format!(
            "the checkpoints differ in their {}: {origin:?} and {:?}; audit one stream at a \
             time",
            kimberlite::proof::origin_difference(&origin, &other.origin),
            other.origin
        )));
    }
    checkpoints.sort_by_key(|c| c.tree_size);
    Ok(Some(checkpoints))
}

pub fn audit(args: &AuditArgs) -> Result<ExitCode, CliError> {
    let Some(checkpoints) = open_checkpoints(args)? else {
        return Ok(ExitCode::from(1));
    };
    let Some(origin) = checkpoints.first().map(|c| c.origin.clone()) else {
        return Err(CliError::usage("give at least one --checkpoint"));
    };
    let Some((store_name, stream)) = origin.split_once('/') else {
        return Err(CliError::usage(format!(
            "the checkpoint's origin {origin:?} is not <store>/<stream>"
        )));
    };
    // The whole origin, store included: another store's stream of the same name is another
    // log, and comparing with it would blame this one (a longer one looked like a cut tail).
    let ours = crate::proofs::origin(&args.dir, args.store_name.as_deref(), stream)?;
    if ours != origin {
        let this = ours.split_once('/').map_or(ours.as_str(), |(name, _)| name);
        outln!(
            "WRONG STORE: the checkpoint is of store {store_name:?} (origin {origin:?}), this \
             store is {this:?} ({}): it says nothing about this store's stream {stream:?}",
            if args.store_name.is_some() {
                "--store-name"
            } else {
                "the directory's name; give --store-name if it was signed under another name"
            }
        );
        return Ok(ExitCode::from(1));
    }
    let store = open_looking(&args.dir)?;
    let Some(id) = store.stream(stream) else {
        let signed = checkpoints.last().map_or(0, |c| c.tree_size);
        outln!(
            "MISSING STREAM: the checkpoint is of this store's stream {stream:?} ({signed} \
             events signed), which the store does not hold: it was removed or renamed after it \
             was checkpointed"
        );
        return Ok(ExitCode::from(1));
    };
    let sizes: Vec<u64> = checkpoints.iter().map(|c| c.tree_size).collect();
    let check = store.check_tree(id, &sizes)?;
    let n = check.log_size;
    outln!(
        "store:      {n} events, root {} (recomputed from the log)",
        check.log_root
    );
    let root_at = |m: u64| -> Option<Hash> {
        check
            .roots_at
            .iter()
            .find(|(size, _)| *size == m)
            .map(|(_, root)| *root)
    };
    // The largest checkpoint that matches, and the smallest that does not.
    let mut matching: Option<&Checkpoint> = None;
    let mut differing: Option<&Checkpoint> = None;
    for checkpoint in checkpoints.iter().filter(|c| c.tree_size <= n) {
        if root_at(checkpoint.tree_size) == Some(checkpoint.root) {
            matching = Some(checkpoint);
        } else if differing.is_none() {
            differing = Some(checkpoint);
        }
    }
    // The log still hashes to every signed root it reaches and is no shorter: a stored tree
    // that disagrees with it is the tree files' fault, not the log's.
    let log_signed = matching.is_some()
        && differing.is_none()
        && checkpoints.last().is_some_and(|c| c.tree_size <= n);
    let mut tampered = report_stale_tree(id, &check, log_signed);
    if let Some(bad) = differing {
        tampered = true;
        let from = matching
            .map(|c| c.tree_size)
            .filter(|&size| size < bad.tree_size)
            .unwrap_or(0);
        outln!(
            "HISTORY REWRITTEN: the stream's events at offsets 0..={} do not hash to the \
             root of the checkpoint of size {}: at least one of them was changed, removed, \
             reordered or inserted after it was signed; the first change is at an offset in \
             {from}..={}{}",
            bad.tree_size.saturating_sub(1),
            bad.tree_size,
            bad.tree_size.saturating_sub(1),
            if from > 0 {
                format!(" (the checkpoint of size {from} still matches)")
            } else {
                String::new()
            }
        );
    }
    if let Some(last) = checkpoints.last().filter(|c| c.tree_size > n) {
        tampered = true;
        outln!(
            "TAIL CUT: the checkpoint of size {} covers offsets 0..={} but the stream now ends \
             at {}: offsets {n}..={} were removed after they were checkpointed",
            last.tree_size,
            last.tree_size - 1,
            if n == 0 {
                "nothing (it is empty)".to_owned()
            } else {
                format!("offset {}", n - 1)
            },
            last.tree_size - 1
        );
    }
    if let Some(good) = matching.filter(|c| c.tree_size > 0 && !tampered) {
        if !consistency_holds(&store, id, good, &check)? {
            return Ok(ExitCode::from(1));
        }
    }
    if tampered {
        return Ok(ExitCode::from(1));
    }
    let m = checkpoints.last().map_or(0, |c| c.tree_size);
    outln!(
        "consistent: the stream's {n} events extend the {m} events of the checkpoint \
         ({} appended since)",
        n - m
    );
    Ok(ExitCode::SUCCESS)
}

/// Reports a stored tree that is not the log's; true if so. `log_signed`: the log matches
/// the signed checkpoints, so the tree files are to blame.
fn report_stale_tree(id: StreamId, check: &TreeCheck, log_signed: bool) -> bool {
    if check.tree_matches_log() {
        return false;
    }
    match (check.first_stale_leaf, check.first_stale_node) {
        (Some(offset), _) if log_signed => outln!(
            "TAMPERED: the stored Merkle tree disagrees with the log from offset {offset} on, \
             and the log still hashes to the signed checkpoint: the tree files under merkle/ \
             were changed"
        ),
        (Some(offset), _) => outln!(
            "TAMPERED: the stored Merkle tree disagrees with the log from offset {offset} on: \
             the log or the tree files under merkle/ were changed"
        ),
        (None, Some(node)) => outln!(
            "TAMPERED: the stored Merkle tree's node {} of level {} (merkle/{:020}/level-{:02}\
             .hashes, byte {}) is not the hash of the events at offsets {}..={} (every stored \
             leaf matches the log): the tree files under merkle/ were changed or damaged",
            node.index,
            node.level,
            id.as_u64(),
            node.level,
            node.file_position(),
            node.first_offset(),
            node.last_offset()
        ),
        (None, None) => outln!(
            "TAMPERED: the stored Merkle tree (size {}, root {}) is not the log's tree",
            check.stored.tree_size,
            check.stored.root
        ),
    }
    true
}

/// Produces the store's consistency proof from `checkpoint` to the log's size and verifies
/// it as an auditor would (pure check against the signed root).
fn consistency_holds(
    store: &Kimberlite,
    id: StreamId,
    checkpoint: &Checkpoint,
    check: &TreeCheck,
) -> Result<bool, CliError> {
    let (m, n) = (checkpoint.tree_size, check.log_size);
    let proof = store.consistency_proof(id, m, n)?;
    if let Err(error) = verify_consistency(m, n, &checkpoint.root, &check.log_root, &proof.hashes) {
        outln!("TAMPERED: the store's consistency proof {m} -> {n} fails: {error}");
        return Ok(false);
    }
    outln!(
        "consistency proof {m} -> {n}: {} hashes, verified",
        proof.hashes.len()
    );
    Ok(true)
}
