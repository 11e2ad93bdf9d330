//! `kimberlite audit DIR --checkpoint C --pubkey K`: is the store's stream still the one an
//! earlier signed checkpoint saw, only longer?
//!
//! The side files of the Merkle tree are not trusted: the tree is recomputed from the log
//! (every event re-read and re-hashed), and the store's own tree must agree with it. Then:
//!
//! | stream now | root of its first `m` events | verdict |
//! |---|---|---|
//! | `n < m` events | (cannot be computed) | tail cut: offsets `n..m-1` were removed |
//! | `n >= m` | equals the checkpoint's | consistent; a consistency proof `m -> n` is produced from the store's tree and verified |
//! | `n >= m` | differs | history rewritten within offsets `0..m-1` |
//!
//! Exit codes: 0 consistent; 1 tampering found (any row but the second, or a stored tree that
//! disagrees with the log); 2 usage or I/O errors, a checkpoint whose signature fails.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use kimberlite::proof::{verify_consistency, Checkpoint};
use kimberlite::Config;

use crate::common::{find_stream, open_existing, CliError};
use crate::proofs::{read_text, read_verifier};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The store's directory.
    dir: PathBuf,
    /// The signed checkpoint to audit against (from `kimberlite checkpoint`).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The public key that signed it.
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
}

pub fn audit(args: &AuditArgs) -> Result<ExitCode, CliError> {
    let verifier = read_verifier(&args.pubkey)?;
    let note = read_text(&args.checkpoint, "checkpoint")?;
    let checkpoint = Checkpoint::open(&note, &verifier)
        .map_err(|error| CliError::usage(format!("{}: {error}", args.checkpoint.display())))?;
    let Some((store_name, stream)) = checkpoint.origin.split_once('/') else {
        return Err(CliError::usage(format!(
            "the checkpoint's origin {:?} is not <store>/<stream>",
            checkpoint.origin
        )));
    };
    let store = open_existing(&args.dir, Config::default())?;
    let id = find_stream(&store, &args.dir, stream)?;
    let m = checkpoint.tree_size;
    outln!(
        "checkpoint: {} (store {store_name:?}, stream {stream:?}), tree size {m}, root {}, \
         signed by {}",
        checkpoint.origin,
        checkpoint.root,
        verifier.name()
    );
    let check = store.check_tree(id, Some(m))?;
    let n = check.log_size;
    outln!(
        "store:      {n} events, root {} (recomputed from the log)",
        check.log_root
    );
    let mut tampered = false;
    if !check.tree_matches_log() {
        tampered = true;
        match check.first_stale_leaf {
            Some(offset) => outln!(
                "TAMPERED: the stored Merkle tree disagrees with the log from offset {offset} \
                 on: the log or the tree files under merkle/ were changed"
            ),
            None => outln!(
                "TAMPERED: the stored Merkle tree (size {}, root {}) is not the log's tree",
                check.stored.tree_size,
                check.stored.root
            ),
        }
    }
    if n < m {
        outln!(
            "TAIL CUT: the checkpoint covers offsets 0..={} ({m} events) but the stream now \
             ends at {}: offsets {n}..={} were removed after they were checkpointed",
            m - 1,
            if n == 0 {
                "nothing (it is empty)".to_owned()
            } else {
                format!("offset {}", n - 1)
            },
            m - 1
        );
        return Ok(ExitCode::from(1));
    }
    let Some((_, root_at_m)) = check.root_at else {
        return Err(CliError::usage(
            "the log changed while it was audited; run audit again",
        ));
    };
    if root_at_m != checkpoint.root {
        outln!(
            "HISTORY REWRITTEN: the stream's events at offsets 0..={} do not hash to the \
             checkpoint's root (they give {root_at_m}): at least one of them was changed, \
             removed, reordered or inserted after the checkpoint was signed",
            m.saturating_sub(1)
        );
        return Ok(ExitCode::from(1));
    }
    if m > 0 && !tampered {
        let proof = store.consistency_proof(id, m, n)?;
        if let Err(error) =
            verify_consistency(m, n, &checkpoint.root, &check.log_root, &proof.hashes)
        {
            outln!("TAMPERED: the store's consistency proof {m} -> {n} fails: {error}");
            return Ok(ExitCode::from(1));
        }
        outln!(
            "consistency proof {m} -> {n}: {} hashes, verified",
            proof.hashes.len()
        );
    }
    if tampered {
        return Ok(ExitCode::from(1));
    }
    outln!(
        "consistent: the stream's {n} events extend the {m} events of the checkpoint \
         ({} appended since)",
        n - m
    );
    Ok(ExitCode::SUCCESS)
}
