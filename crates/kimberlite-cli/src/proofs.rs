//! `keygen`, `checkpoint`, `prove`, `prove-consistency` and `verify-proof`: Merkle proofs a
//! third party checks with only a public key, a signed checkpoint and a proof file.
//!
//! The origin line of a checkpoint is `<store name>/<stream name>`; the store name is the
//! store directory's last component unless `--store-name` says otherwise. `verify-proof`
//! opens no store. Exit codes: 0 valid; 1 the proof, checkpoint or signature is invalid
//! (malformed ones included: a verifier must reject them); 2 usage or I/O errors (unreadable
//! files, a malformed public key, a store that cannot be opened).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kimberlite::proof::Verified;
use kimberlite::proof::{
    verify_bundle, Checkpoint, ConsistencyBundle, InclusionBundle, SignerKey, VerifierKey,
    CONSISTENCY_FORMAT,
};
use kimberlite::{Config, Error, Kimberlite, Offset, TreeEvidence};

use crate::error::CliError;
use crate::open::{find_stream, open_existing, open_looking};

/// Directory under the store where `checkpoint` keeps the checkpoints it signs: the store
/// reads them at open as evidence of how long each stream was.
pub use kimberlite::CHECKPOINT_DIR;

#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// The key's name (shown on every signature line; no spaces or '+').
    #[arg(long, default_value = "kimberlite")]
    name: String,
    /// Where to write the private key; the public key goes to the same path with `.pub`
    /// appended. Existing files are never overwritten.
    #[arg(long, default_value = "kimberlite.key", value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckpointArgs {
    /// The store's directory.
    dir: PathBuf,
    /// The stream to checkpoint.
    stream: String,
    /// The private key file (from `kimberlite keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// The store name in the origin line (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    store_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProveArgs {
    /// The store's directory.
    dir: PathBuf,
    /// The stream.
    stream: String,
    /// The event's offset.
    offset: u64,
    /// The tree size to prove against (default: the stream's current size); use the size
    /// of the checkpoint the verifier holds.
    #[arg(long, value_name = "N")]
    size: Option<u64>,
    /// The store name in the origin (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    store_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProveConsistencyArgs {
    /// The store's directory.
    dir: PathBuf,
    /// The stream.
    stream: String,
    /// The old tree size (e.g. an earlier checkpoint's).
    old: u64,
    /// The new tree size (at most the stream's current size).
    new: u64,
    /// The store name in the origin (default: the directory's name).
    #[arg(long, value_name = "NAME")]
    store_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct VerifyProofArgs {
    /// The public key file (`<name>+<key id>+<key>`, from `kimberlite keygen`).
    #[arg(long, value_name = "FILE")]
    pubkey: PathBuf,
    /// The signed checkpoint file.
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// The proof file (JSON from `prove` or `prove-consistency`).
    #[arg(long, value_name = "FILE")]
    proof: PathBuf,
}

pub fn read_text(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|error| {
        CliError::usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })
}

/// Reads a checkpoint or proof: evidence handed in to be checked, so bytes that are not text
/// are not a usage error but evidence that does not hold (they fail to parse and are reported
/// INVALID, exit 1, as malformed text is); only a file that cannot be read is a usage error.
pub fn read_evidence(path: &Path, what: &str) -> Result<String, CliError> {
    let bytes = std::fs::read(path).map_err(|error| {
        CliError::usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

pub fn read_verifier(path: &Path) -> Result<VerifierKey, CliError> {
    VerifierKey::parse(&read_text(path, "public key")?).map_err(|error| {
        CliError::usage_hint(
            format!("{}: {error}", path.display()),
            "a public key is one line <name>+<key id>+<key>, as `kimberlite keygen` writes",
        )
    })
}

/// The origin line for `stream` in the store at `dir`.
pub fn origin(dir: &Path, store_name: Option<&str>, stream: &str) -> Result<String, CliError> {
    let name = match store_name {
        Some(name) => name.to_owned(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "kimberlite".to_owned()),
    };
    if name.is_empty() || name.contains('/') || name.chars().any(char::is_control) {
        return Err(CliError::usage_hint(
            format!("invalid store name {name:?}"),
            "pass --store-name with a name without '/' or control characters",
        ));
    }
    Ok(format!("{name}/{stream}"))
}

pub fn keygen(args: &KeygenArgs) -> Result<ExitCode, CliError> {
    let key = SignerKey::generate(&args.name).map_err(|e| CliError::usage(e.to_string()))?;
    let mut public_path = args.out.clone().into_os_string();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for path in [&args.out, &public_path] {
        if path.exists() {
            return Err(CliError::usage_hint(
                format!("{} exists; keygen never overwrites a key", path.display()),
                "choose another --out",
            ));
        }
    }
    write_private(&args.out, &key.to_text())?;
    let public = key.verifier().to_text();
    std::fs::write(&public_path, format!("{public}\n"))
        .map_err(|error| CliError::usage(format!("writing {}: {error}", public_path.display())))?;
    outln!("{public}");
    eprintln!(
        "private key: {} (keep it secret); public key: {}",
        args.out.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn write_private(path: &Path, text: &str) -> Result<(), CliError> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|error| CliError::usage(format!("creating {}: {error}", path.display())))?;
    file.write_all(format!("{text}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| CliError::usage(format!("writing {}: {error}", path.display())))
}

pub fn checkpoint(args: &CheckpointArgs) -> Result<ExitCode, CliError> {
    let key = SignerKey::parse(&read_text(&args.key, "private key")?)
        .map_err(|error| CliError::usage(format!("{}: {error}", args.key.display())))?;
    let store = open_existing(&args.dir, Config::default())?;
    let id = find_stream(&store, &args.dir, &args.stream)?;
    let head = store.tree_head(id)?;
    let checkpoint = Checkpoint {
        origin: origin(&args.dir, args.store_name.as_deref(), &args.stream)?,
        tree_size: head.tree_size,
        root: head.root,
        extensions: Vec::new(),
    };
    let note = key
        .sign(&checkpoint.to_text())
        .map_err(|error| CliError::usage(error.to_string()))?;
    let path = store_checkpoint(&args.dir, id, head.tree_size, &note)?;
    print!("{note}");
    eprintln!("stored in {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Stores a signed checkpoint in the store's `checkpoints/<id>/`, following no link inside
/// the store (SPEC.md section 7: a linked `checkpoints/` must not receive it); returns its path.
fn store_checkpoint(
    dir: &Path,
    id: kimberlite::StreamId,
    size: u64,
    note: &str,
) -> Result<PathBuf, CliError> {
    use kimberlite_storage::{FileHandle, FileSystem, OsFileSystem};
    let fs = OsFileSystem;
    let failed = |path: &Path, error: std::io::Error| {
        CliError::usage(format!("storing {}: {error}", path.display()))
    };
    let root = fs.resolve(dir).map_err(|error| failed(dir, error))?;
    let dir = root
        .join(CHECKPOINT_DIR)
        .join(format!("{:020}", id.as_u64()));
    let path = dir.join(format!("{size:020}.checkpoint"));
    fs.create_dir_all(&dir)
        .and_then(|()| fs.create(&path))
        .and_then(|mut file| {
            file.write_all_at(note.as_bytes(), 0)?;
            file.sync_data()
        })
        .map_err(|error| failed(&path, error))?;
    Ok(path)
}

fn open_stream(dir: &Path, stream: &str) -> Result<(Kimberlite, kimberlite::StreamId), CliError> {
    let store = open_looking(dir)?;
    let id = find_stream(&store, dir, stream)?;
    Ok((store, id))
}

pub fn prove(args: &ProveArgs) -> Result<ExitCode, CliError> {
    let (store, id) = open_stream(&args.dir, &args.stream)?;
    let size = match args.size {
        Some(size) => size,
        // A damaged head still tells the size: the proof's own refusal then names the offset.
        None => match store.tree_head(id) {
            Ok(head) => head.tree_size,
            Err(Error::TreeDamaged {
                evidence: TreeEvidence::Head { tree_size },
                ..
            }) => tree_size,
            Err(error) => return Err(error.into()),
        },
    };
    let proof = store.inclusion_proof(id, Offset::new(args.offset), size)?;
    let event = store
        .read(id, Offset::new(args.offset), 1)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::usage(format!("no event at offset {}", args.offset)))?;
    let bundle = InclusionBundle::new(
        &origin(&args.dir, args.store_name.as_deref(), &args.stream)?,
        args.offset,
        &event.payload,
        proof.tree_size,
        proof.root,
        proof.hashes,
    );
    if bundle.leaf_hash != proof.leaf_hash {
        eprintln!(
            "kimberlite: the stored Merkle tree disagrees with the log at offset {}: \
             run `kimberlite audit`",
            args.offset
        );
        return Ok(ExitCode::from(1));
    }
    print_json(&bundle)
}

pub fn prove_consistency(args: &ProveConsistencyArgs) -> Result<ExitCode, CliError> {
    let (store, id) = open_stream(&args.dir, &args.stream)?;
    let proof = store.consistency_proof(id, args.old, args.new)?;
    let bundle = ConsistencyBundle {
        format: CONSISTENCY_FORMAT.to_owned(),
        origin: origin(&args.dir, args.store_name.as_deref(), &args.stream)?,
        old_size: proof.old_size,
        old_root: proof.old_root,
        new_size: proof.new_size,
        new_root: proof.new_root,
        proof: proof.hashes,
    };
    print_json(&bundle)
}

fn print_json(value: &impl serde::Serialize) -> Result<ExitCode, CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::usage(format!("encoding JSON: {error}")))?;
    outln!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub fn verify_proof(args: &VerifyProofArgs) -> Result<ExitCode, CliError> {
    let verifier = read_verifier(&args.pubkey)?;
    let note = read_evidence(&args.checkpoint, "checkpoint")?;
    let proof = read_evidence(&args.proof, "proof")?;
    match verify_bundle(&verifier, &note, &proof) {
        Ok(Verified::Inclusion {
            offset,
            payload,
            tree_size,
        }) => {
            outln!(
                "valid: the event at offset {offset} ({} bytes: {}) is in the signed tree of \
                 {tree_size} events",
                payload.len(),
                preview(&payload)
            );
            Ok(ExitCode::SUCCESS)
        }
        Ok(Verified::Consistency {
            old_size,
            new_size,
            signed_side,
        }) => {
            outln!(
                "valid: the tree of {new_size} events extends the tree of {old_size} events \
                 (the checkpoint signs the {signed_side} one)"
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            outln!("INVALID: {error}");
            Ok(ExitCode::from(1))
        }
    }
}

fn preview(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(text) if text.chars().count() <= 80 => format!("{text:?}"),
        Ok(text) => format!("{:?}...", text.chars().take(80).collect::<String>()),
        Err(_) => "binary".to_owned(),
    }
}
