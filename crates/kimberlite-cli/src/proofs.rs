//! `keygen`, `checkpoint`, `prove`, `prove-consistency` and `verify-proof`: Merkle proofs a
//! third party checks with only a public key, a signed checkpoint and a proof file.
//!
//! The origin line of a checkpoint is `<store name>/<stream name>`; the store name is the
//! store directory's last component unless `--store-name` says otherwise. `verify-proof`
//! opens no store. Exit codes: 0 valid; 1 the proof, checkpoint or signature is invalid
//! (malformed ones included: a verifier must reject them); 2 usage or I/O errors (unreadable
//! files, a malformed public key, a store that cannot be opened).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use kimberlite::proof::Verified;
use kimberlite::proof::{
    verify_bundle, ConsistencyBundle, InclusionBundle, SignerKey, VerifierKey, CONSISTENCY_FORMAT,
};
use kimberlite::{Config, Error, Kimberlite, Offset, TreeEvidence};

use crate::error::CliError;
use crate::open::{find_stream, open_existing, open_looking};
use crate::place::{Located, Place, ServerArgs};
pub use crate::text_file::{read_evidence, read_text};

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
#[command(
    override_usage = "kimberlite checkpoint [OPTIONS] DIR STREAM --key FILE\n       kimberlite checkpoint [OPTIONS] --server URL [--token-file FILE] STREAM"
)]
pub struct CheckpointArgs {
    /// DIR STREAM: the store's directory and the stream to checkpoint; with --server, STREAM
    /// only (the server signs with its own key).
    #[arg(value_names = ["DIR", "STREAM"], num_args = 1..=2, required = true)]
    place: Vec<OsString>,
    /// The private key file (from `kimberlite keygen`); not with --server.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "server",
        conflicts_with = "server"
    )]
    key: Option<PathBuf>,
    /// The store name in the origin line (default: the directory's name); not with --server.
    #[arg(long, value_name = "NAME", conflicts_with = "server")]
    store_name: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite prove [OPTIONS] DIR STREAM OFFSET\n       kimberlite prove [OPTIONS] --server URL [--token-file FILE] STREAM OFFSET\n       kimberlite prove --receipt [--key FILE] DIR STREAM OFFSET > event.tlog-proof"
)]
pub struct ProveArgs {
    /// DIR STREAM OFFSET: the store's directory, the stream and the event's offset; with
    /// --server, STREAM OFFSET only.
    #[arg(value_names = ["DIR", "STREAM", "OFFSET"], num_args = 2..=3, required = true)]
    place: Vec<OsString>,
    /// The tree size to prove against (default: the stream's current size); use the size
    /// of the checkpoint the verifier holds.
    #[arg(long, value_name = "N", conflicts_with = "receipt")]
    size: Option<u64>,
    /// The store name in the origin (default: the directory's name); not with --server.
    #[arg(long, value_name = "NAME", conflicts_with = "server")]
    store_name: Option<String>,
    /// Print a receipt (a C2SP tlog proof: index, inclusion proof, the checkpoint with its
    /// witnesses' cosignatures) instead of JSON: against the largest cosigned checkpoint that
    /// covers the event, else a checkpoint signed now (said on standard error).
    #[arg(long)]
    receipt: bool,
    /// With --receipt, on a store directory: the private key to sign a checkpoint with when
    /// no cosigned one covers the event.
    #[arg(
        long,
        value_name = "FILE",
        requires = "receipt",
        conflicts_with = "server"
    )]
    key: Option<PathBuf>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite prove-consistency [OPTIONS] DIR STREAM OLD NEW\n       kimberlite prove-consistency [OPTIONS] --server URL [--token-file FILE] STREAM OLD NEW"
)]
pub struct ProveConsistencyArgs {
    /// DIR STREAM OLD NEW: the store's directory, the stream, the old tree size (e.g. an
    /// earlier checkpoint's) and the new one (at most the stream's current size); with
    /// --server, STREAM OLD NEW only.
    #[arg(value_names = ["DIR", "STREAM", "OLD", "NEW"], num_args = 3..=4, required = true)]
    place: Vec<OsString>,
    /// The store name in the origin (default: the directory's name); not with --server.
    #[arg(long, value_name = "NAME", conflicts_with = "server")]
    store_name: Option<String>,
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Debug, Args)]
#[command(
    override_usage = "kimberlite verify-proof FILE --log-key KEY [--witness-policy FILE] [--event FILE]\n       kimberlite verify-proof --log-key KEY --checkpoint FILE --proof FILE"
)]
pub struct VerifyProofArgs {
    /// The proof: a receipt (`c2sp.org/tlog-proof@v1`, from `prove --receipt`) or JSON from
    /// `prove` or `prove-consistency`; told apart by content.
    #[arg(value_name = "FILE", conflicts_with = "proof")]
    file: Option<PathBuf>,
    /// The log's public key (`<name>+<key id>+<key>`, from `kimberlite keygen`): its file, or
    /// the key's text.
    #[arg(long = "log-key", visible_alias = "pubkey", value_name = "KEY")]
    log_key: OsString,
    /// The signed checkpoint file (JSON proofs only: a receipt carries its checkpoint).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// The proof file, as FILE.
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
    /// Receipts: also require the witnesses' cosignatures this policy asks for (`witness
    /// <key> [<url>]` lines, `quorum <k>`).
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<PathBuf>,
    /// Receipts: the event's payload; its leaf hash is recomputed and must be the proven one.
    #[arg(long, value_name = "FILE")]
    event: Option<PathBuf>,
}

pub fn read_verifier(path: &Path) -> Result<VerifierKey, CliError> {
    VerifierKey::parse(&read_text(path, "public key")?).map_err(|error| {
        CliError::usage_hint(
            format!("{}: {error}", path.display()),
            "a public key is one line <name>+<key id>+<key>, as `kimberlite keygen` writes",
        )
    })
}

/// The store name in origins for the store at `dir`: `given`, else the directory's name.
pub fn store_name(dir: &Path, given: Option<&str>) -> Result<String, CliError> {
    let name = match given {
        Some(name) => name.to_owned(),
        None => std::fs::canonicalize(dir)
            .ok()
            .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "kimberlite".to_owned()),
    };
    kimberlite::proof::check_store_name(&name).map_err(|error| {
        CliError::usage_hint(
            error.to_string(),
            "pass --store-name with a name without '/' or control characters",
        )
    })?;
    Ok(name)
}

/// The origin line for `stream` in the store at `dir`.
pub fn origin(dir: &Path, store_name: Option<&str>, stream: &str) -> Result<String, CliError> {
    Ok(format!("{}/{stream}", self::store_name(dir, store_name)?))
}

pub fn keygen(args: &KeygenArgs) -> Result<ExitCode, CliError> {
    let key = SignerKey::generate(&args.name).map_err(|e| CliError::usage(e.to_string()))?;
    let public = key.verifier().to_text();
    let public_path = write_key_pair(&args.out, &key.to_text(), &public)?;
    outln!("{public}");
    eprintln!(
        "private key: {} (keep it secret); public key: {}",
        args.out.display(),
        public_path.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// Writes a new key pair: `private` to `out` (mode 0600), `public` to `out.pub`; refuses to
/// overwrite either. Returns the public key's path.
pub(crate) fn write_key_pair(out: &Path, private: &str, public: &str) -> Result<PathBuf, CliError> {
    let mut public_path = out.to_path_buf().into_os_string();
    public_path.push(".pub");
    let public_path = PathBuf::from(public_path);
    for path in [out, public_path.as_path()] {
        if path.exists() {
            return Err(CliError::usage_hint(
                format!("{} exists; keygen never overwrites a key", path.display()),
                "choose another --out",
            ));
        }
    }
    write_private(out, private)?;
    std::fs::write(&public_path, format!("{public}\n"))
        .map_err(|error| CliError::usage(format!("writing {}: {error}", public_path.display())))?;
    Ok(public_path)
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
    let located = Located::split(
        "checkpoint",
        &args.server,
        args.place.clone(),
        &["STREAM"],
        1,
    )?;
    let stream = located.required(0)?;
    let dir = match &located.place {
        Place::Server(client) => return crate::remote::checkpoint(client, stream),
        Place::Dir(dir) => dir,
    };
    let key_path = args
        .key
        .as_deref()
        .ok_or_else(|| CliError::usage("--key FILE is required without --server"))?;
    let key = SignerKey::parse(&read_text(key_path, "private key")?)
        .map_err(|error| CliError::usage(format!("{}: {error}", key_path.display())))?;
    let origin = origin(dir, args.store_name.as_deref(), stream)?;
    let store = open_existing(dir, Config::default())?;
    let id = find_stream(&store, dir, stream)?;
    let signed = store.sign_checkpoint(id, &origin, &key)?;
    print!("{}", signed.note);
    if let Some(path) = signed.path {
        eprintln!("stored in {}", path.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn open_stream(dir: &Path, stream: &str) -> Result<(Kimberlite, kimberlite::StreamId), CliError> {
    let store = open_looking(dir)?;
    let id = find_stream(&store, dir, stream)?;
    Ok((store, id))
}

pub fn prove(args: &ProveArgs) -> Result<ExitCode, CliError> {
    let located = Located::split(
        "prove",
        &args.server,
        args.place.clone(),
        &["STREAM", "OFFSET"],
        2,
    )?;
    let stream = located.required(0)?;
    let offset = required_number(&located, 1, "OFFSET")?;
    let dir = match &located.place {
        Place::Server(client) if args.receipt => {
            return crate::receipt::remote(client, stream, offset)
        }
        Place::Server(client) => {
            return print_json(&client.inclusion_proof(stream, offset, args.size)?)
        }
        Place::Dir(dir) if args.receipt => {
            let key = args
                .key
                .as_deref()
                .map(|path| {
                    SignerKey::parse(&read_text(path, "private key")?)
                        .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))
                })
                .transpose()?;
            let origin = origin(dir, args.store_name.as_deref(), stream)?;
            return crate::receipt::local(dir, stream, offset, &origin, key.as_ref());
        }
        Place::Dir(dir) => dir,
    };
    let (store, id) = open_stream(dir, stream)?;
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
    let proof = store.inclusion_proof(id, Offset::new(offset), size)?;
    let event = store
        .read(id, Offset::new(offset), 1)?
        .into_iter()
        .next()
        .ok_or_else(|| CliError::usage(format!("no event at offset {offset}")))?;
    let bundle = InclusionBundle::new(
        &origin(dir, args.store_name.as_deref(), stream)?,
        offset,
        &event.payload,
        proof.tree_size,
        proof.root,
        proof.hashes,
    );
    if bundle.leaf_hash != proof.leaf_hash {
        eprintln!(
            "kimberlite: the stored Merkle tree disagrees with the log at offset {}: \
             run `kimberlite audit`",
            offset
        );
        return Ok(ExitCode::from(1));
    }
    print_json(&bundle)
}

pub fn prove_consistency(args: &ProveConsistencyArgs) -> Result<ExitCode, CliError> {
    let located = Located::split(
        "prove-consistency",
        &args.server,
        args.place.clone(),
        &["STREAM", "OLD", "NEW"],
        3,
    )?;
    let stream = located.required(0)?;
    let old = required_number(&located, 1, "OLD")?;
    let new = required_number(&located, 2, "NEW")?;
    let dir = match &located.place {
        Place::Server(client) => return print_json(&client.consistency_proof(stream, old, new)?),
        Place::Dir(dir) => dir,
    };
    let (store, id) = open_stream(dir, stream)?;
    let proof = store.consistency_proof(id, old, new)?;
    let bundle = ConsistencyBundle {
        format: CONSISTENCY_FORMAT.to_owned(),
        origin: origin(dir, args.store_name.as_deref(), stream)?,
        old_size: proof.old_size,
        old_root: proof.old_root,
        new_size: proof.new_size,
        new_root: proof.new_root,
        proof: proof.hashes,
    };
    print_json(&bundle)
}

/// Positional `index` of `located`, a number that must be there.
fn required_number(located: &Located, index: usize, name: &str) -> Result<u64, CliError> {
    located
        .number(index, name)?
        .ok_or_else(|| CliError::usage(format!("{name} is missing")))
}

fn print_json(value: &impl serde::Serialize) -> Result<ExitCode, CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|error| CliError::usage(format!("encoding JSON: {error}")))?;
    outln!("{text}");
    Ok(ExitCode::SUCCESS)
}

pub fn verify_proof(args: &VerifyProofArgs) -> Result<ExitCode, CliError> {
    let verifier = crate::receipt::read_log_key(&args.log_key)?;
    let path = args
        .file
        .as_deref()
        .or(args.proof.as_deref())
        .ok_or_else(|| {
            CliError::usage("give the proof: verify-proof FILE (a receipt or a JSON proof)")
        })?;
    let proof = read_evidence(path, "proof")?;
    if crate::receipt::is_receipt(&proof) {
        if args.checkpoint.is_some() {
            return Err(CliError::usage_hint(
                "--checkpoint is for JSON proofs",
                "a receipt carries its own checkpoint: leave --checkpoint out",
            ));
        }
        let (policy, event) = (args.witness_policy.as_deref(), args.event.as_deref());
        return crate::receipt::verify(&proof, &verifier, policy, event);
    }
    if args.witness_policy.is_some() || args.event.is_some() {
        return Err(CliError::usage(
            "--witness-policy and --event are for receipts (`prove --receipt`); a JSON \
             proof carries its event",
        ));
    }
    let checkpoint = args.checkpoint.as_deref().ok_or_else(|| {
        CliError::usage_hint(
            "a JSON proof needs --checkpoint FILE",
            "give the signed checkpoint the proof is for (or verify a receipt instead)",
        )
    })?;
    let note = read_evidence(checkpoint, "checkpoint")?;
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
