//! Receipts on the command line: `prove --receipt` writes one (a C2SP tlog proof, from a store
//! directory or a server), `verify-proof FILE` checks one offline and says what it checked:
//! the log's signature, the event's inclusion, and with `--witness-policy` the witnesses'
//! cosignatures (docs/PROOFS.md, "For auditors").

use std::ffi::OsStr;
use std::path::Path;
use std::process::ExitCode;

use kimberlite::proof::{
    other_signers, verify_receipt, Receipt, SignerKey, VerifiedReceipt, VerifierKey, WitnessPolicy,
};
use kimberlite::Config;
use kimberlite_client::Client;

use crate::error::CliError;
use crate::open::{find_stream, open_existing, open_looking};
use crate::text_file::read_text;

/// `prove --receipt --server`: the server's receipt, as it answered it.
pub fn remote(client: &Client, stream: &str, offset: u64) -> Result<ExitCode, CliError> {
    let served = client.receipt(stream, offset)?;
    print!("{}", served.text);
    let size = served
        .tree_size
        .map_or_else(String::new, |size| format!(" of size {size}"));
    if served.witnessed {
        eprintln!("witnessed: the checkpoint{size} carries the witnesses' cosignatures");
    } else {
        eprintln!(
            "unwitnessed: the server signed the checkpoint{size} for this receipt; no witness \
             has cosigned it yet"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `prove --receipt DIR STREAM OFFSET [--key FILE]`: against the largest cosigned checkpoint
/// covering the event, else a checkpoint of `origin` signed now with `key`.
pub fn local(
    dir: &Path,
    stream: &str,
    offset: u64,
    origin: &str,
    key: Option<&SignerKey>,
) -> Result<ExitCode, CliError> {
    // Signing keeps the checkpoint in the store: only then is a writable open needed.
    let store = match key {
        Some(_) => open_existing(dir, Config::default())?,
        None => open_looking(dir)?,
    };
    let id = find_stream(&store, dir, stream)?;
    let Some(built) = store.event_receipt(id, offset, origin, key, None)? else {
        let hint = if key.is_some() {
            "the offset is past the stream's durable end"
        } else {
            "pass --key FILE to sign a checkpoint that covers it (unwitnessed until witnesses \
             cosign one)"
        };
        return Err(CliError::usage_hint(
            format!("no checkpoint of {stream:?} covers offset {offset}"),
            hint,
        ));
    };
    print!("{}", built.receipt.to_text());
    if built.witnessed {
        eprintln!(
            "witnessed: the checkpoint of size {} carries the witnesses' cosignatures",
            built.tree_size
        );
    } else {
        eprintln!(
            "unwitnessed: checkpoint of size {} signed now; no witness has cosigned it yet",
            built.tree_size
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The log's verifier key: the file at `arg` (`<name>+<key id>+<key>`, as `keygen` writes),
/// or that text itself.
pub fn read_log_key(arg: &OsStr) -> Result<VerifierKey, CliError> {
    let path = Path::new(arg);
    let hint = "a log key is one line <name>+<key id>+<key> (the `.pub` file `kimberlite \
                keygen` writes), given as the file or the text";
    if path.is_file() {
        return VerifierKey::parse(&read_text(path, "log key")?)
            .map_err(|error| CliError::usage_hint(format!("{}: {error}", path.display()), hint));
    }
    let text = arg.to_string_lossy();
    VerifierKey::parse(&text).map_err(|error| {
        CliError::usage_hint(
            format!("--log-key {text:?}: not a readable file, nor a key ({error})"),
            hint,
        )
    })
}

/// A witness policy file (`witness <key> [<url>]` lines, one `quorum <k>` line).
pub fn read_policy(path: &Path) -> Result<WitnessPolicy, CliError> {
    WitnessPolicy::parse(&read_text(path, "witness policy")?).map_err(|error| {
        CliError::usage_hint(
            format!("{}: {error}", path.display()),
            "a policy is `witness <name>+<key id>+<key> [<url>]` lines and one `quorum <k>` line",
        )
    })
}

/// True when `text` is a receipt rather than a JSON proof bundle.
pub fn is_receipt(text: &str) -> bool {
    text.starts_with("c2sp.org/tlog-proof@")
}

/// `verify-proof FILE --log-key K [--witness-policy P] [--event FILE]` on a receipt.
pub fn verify(
    text: &str,
    log: &VerifierKey,
    policy: Option<&Path>,
    event: Option<&Path>,
) -> Result<ExitCode, CliError> {
    let policy = policy.map(read_policy).transpose()?;
    let event = event
        .map(|path| {
            std::fs::read(path).map_err(|error| {
                CliError::usage(format!("cannot read the event {}: {error}", path.display()))
            })
        })
        .transpose()?;
    match verify_receipt(text, log, policy.as_ref(), event.as_deref()) {
        Ok(verified) => {
            report(text, log, policy.as_ref(), &verified);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            outln!("INVALID: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

/// Prints what a valid receipt showed, one line per check.
fn report(
    text: &str,
    log: &VerifierKey,
    policy: Option<&WitnessPolicy>,
    verified: &VerifiedReceipt,
) {
    let checkpoint = &verified.checkpoint;
    outln!(
        "valid: the event at offset {} is in {} as of its checkpoint of {} events",
        verified.index,
        checkpoint.origin,
        checkpoint.tree_size
    );
    outln!(
        "  log signature: ok, by {} ({:08x}); root {}",
        log.name(),
        log.key_id(),
        checkpoint.root
    );
    let leaf = if verified.event_checked {
        "recomputed from the event given"
    } else {
        "as the receipt states it; pass --event FILE to check the event's bytes"
    };
    outln!(
        "  inclusion: ok, leaf {} at index {} ({leaf})",
        verified.leaf_hash,
        verified.index
    );
    let note = Receipt::parse(text)
        .map(|r| r.checkpoint)
        .unwrap_or_default();
    match policy {
        Some(policy) => {
            let names: Vec<String> = verified
                .cosigned
                .iter()
                .map(|c| format!("{} at {}", c.witness, c.timestamp))
                .collect();
            outln!(
                "  witnesses: ok, {} of {} valid cosignatures (quorum {}): {}",
                verified.cosigned.len(),
                policy.witnesses().len(),
                policy.threshold(),
                names.join(", ")
            );
        }
        None => {
            let others = other_signers(&note, log);
            outln!(
                "  witnesses: not checked (no --witness-policy); {} other signature line(s){}{}",
                others.len(),
                if others.is_empty() { "" } else { ": " },
                others.join(", ")
            );
        }
    }
}
