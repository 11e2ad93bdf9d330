//! `erase` and `master-keygen`: erasure by crypto-shredding (`docs/COMPLIANCE.md`,
//! "Erasure"). `master-keygen` writes a master key file; `append --subject S --master-key F`
//! seals events for subject S; `erase DIR SUBJECT --master-key F` destroys S's key, records
//! the erasure in `_erasure` and prints a receipt (and, with `--key`, a signed checkpoint of
//! `_erasure` covering it).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;
use kimberlite::proof::SignerKey;
use kimberlite::sealed::{MasterKey, SealError, SubjectKeys, ERASURE_STREAM};
use kimberlite::{Config, Error, Kimberlite};

use crate::error::CliError;
use crate::open::open_existing;
use crate::proofs::{origin, read_text};

#[derive(Debug, Args)]
pub struct EraseArgs {
    /// The store's directory.
    dir: PathBuf,
    /// The data subject to erase, as given to `append --subject`.
    subject: String,
    /// The master key file (from `kimberlite master-keygen`).
    #[arg(long, value_name = "FILE")]
    master_key: PathBuf,
    /// Who asks for the erasure, recorded in the erasure event (default: $USER).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
    /// Also sign a checkpoint of `_erasure` covering the erasure event with this private key
    /// (from `kimberlite keygen`), and print it.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The store name in the checkpoint's origin (default: the directory's name).
    #[arg(long, value_name = "NAME", requires = "key")]
    store_name: Option<String>,
}

#[derive(Debug, Args)]
pub struct MasterKeygenArgs {
    /// Where to write the master key (mode 0600); an existing file is never overwritten.
    #[arg(long, default_value = "kimberlite-master.key", value_name = "FILE")]
    out: PathBuf,
}

/// Reads the master key file at `path`.
pub fn load_master(path: &Path) -> Result<Arc<MasterKey>, CliError> {
    MasterKey::from_file(path).map(Arc::new).map_err(|error| {
        CliError::usage_hint(
            error.0,
            "a master key file is one line `kimberlite-master-key-1 <64 hex digits>`, as \
             `kimberlite master-keygen` writes",
        )
    })
}

/// The key store of `store`, opened with the master key at `path`.
pub fn open_keys(store: &Kimberlite, path: &Path) -> Result<SubjectKeys, CliError> {
    let master = load_master(path)?;
    SubjectKeys::open(store, master).map_err(|error| match error {
        Error::Sealed(SealError::WrongMasterKey { .. }) => CliError::Store {
            error,
            hint: Some("pass the master key this store's keys were made with".to_owned()),
        },
        error => CliError::from(error),
    })
}

pub fn master_keygen(args: &MasterKeygenArgs) -> Result<ExitCode, CliError> {
    let (_, text) = MasterKey::generate();
    crate::proofs::write_private(&args.out, text.trim_end())?;
    eprintln!(
        "master key: {} (keep it secret and backed up apart from the store: without it no \
         sealed event can be read, and whoever holds it and a copy of the store can read them)",
        args.out.display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn erase(args: &EraseArgs) -> Result<ExitCode, CliError> {
    let signer = match &args.key {
        Some(path) => Some(
            SignerKey::parse(&read_text(path, "private key")?)
                .map_err(|error| CliError::usage(format!("{}: {error}", path.display())))?,
        ),
        None => None,
    };
    let store = open_existing(&args.dir, Config::default())?;
    let keys = open_keys(&store, &args.master_key)?;
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "operator".to_owned());
    let receipt = keys
        .erase(&args.subject, &by)
        .map_err(|error| match error {
            Error::Sealed(SealError::UnknownSubject { .. }) => CliError::Store {
                error,
                hint: Some(
                    "subjects are matched exactly, as given to `append --subject`, under the same \
                 master key"
                        .to_owned(),
                ),
            },
            error => CliError::from(error),
        })?;
    outln!(
        "erased data subject {:?}: data key {} destroyed; the {} events sealed under it can no \
         longer be read by anyone",
        args.subject,
        receipt.key_id,
        receipt.events
    );
    outln!(
        "erasure event: {ERASURE_STREAM} offset {}, chain hash {}, leaf hash {}, at {} by {by}",
        receipt.offset,
        receipt.chain_hash,
        receipt.leaf_hash,
        kimberlite_server::rfc3339(receipt.erased_at_unix_s)
    );
    if let Some(signer) = signer {
        let origin = origin(&args.dir, args.store_name.as_deref(), ERASURE_STREAM)?;
        let signed = store.sign_checkpoint(receipt.stream, &origin, &signer)?;
        outln!("signed checkpoint of {ERASURE_STREAM} covering it:");
        print!("{}", signed.note);
    }
    Ok(ExitCode::SUCCESS)
}
