//! `kimberlite witness`: run a C2SP tlog-witness (crate `kimberlite-witness`) and manage the
//! logs it accepts. Its state is a Kimberlite store in DIR (docs/PROOFS.md, "Running a
//! witness").

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use kimberlite::proof::WitnessSigner;
use kimberlite_witness::{StateError, Witness, WitnessState};

use crate::error::CliError;
use crate::proofs::{read_text, write_key_pair};

/// Arguments of `kimberlite witness`.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Create a witness key pair (Ed25519 cosignature keys, type 0x04); print the public key.
    Keygen(KeygenArgs),
    /// Accept checkpoints of a log: its origin line and its verifier key.
    AddLog(AddLogArgs),
    /// List the accepted logs and the last checkpoint cosigned of each (read-only: works
    /// beside a running witness).
    List(ListArgs),
    /// Serve POST /add-checkpoint (C2SP tlog-witness) until Ctrl-C or SIGTERM.
    Serve(ServeArgs),
}

#[derive(Debug, Args)]
struct KeygenArgs {
    /// The witness's name (a schema-less URL, e.g. witness.example.org/w1).
    #[arg(long)]
    name: String,
    /// Where to write the private key; the public key goes to FILE.pub. Never overwritten.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

#[derive(Debug, Args)]
struct AddLogArgs {
    /// The witness's directory (created if missing).
    dir: PathBuf,
    /// The log's origin: the first line of its checkpoints.
    #[arg(long)]
    origin: String,
    /// The log's verifier key (`name+id+key`), or a file holding it.
    #[arg(long, value_name = "VERIFIERKEY")]
    key: String,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// The witness's directory.
    dir: PathBuf,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// The witness's directory.
    dir: PathBuf,
    /// The witness's private key file (from `kimberlite witness keygen`).
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7380")]
    listen: SocketAddr,
}

/// Runs a `kimberlite witness` subcommand.
pub fn run(args: &WitnessArgs) -> Result<ExitCode, CliError> {
    match &args.command {
        WitnessCommand::Keygen(args) => keygen(args),
        WitnessCommand::AddLog(args) => add_log(args),
        WitnessCommand::List(args) => list(args),
        WitnessCommand::Serve(args) => serve(args),
    }
}

fn state_error(dir: &Path, error: StateError) -> CliError {
    match error {
        StateError::Store(error) => CliError::from(error),
        other => CliError::usage(format!("{}: {other}", dir.display())),
    }
}

fn keygen(args: &KeygenArgs) -> Result<ExitCode, CliError> {
    let key = WitnessSigner::generate(&args.name).map_err(|e| CliError::usage(e.to_string()))?;
    let public = key.verifier().to_text();
    write_key_pair(&args.out, &key.to_text(), &public)?;
    outln!("{public}");
    Ok(ExitCode::SUCCESS)
}

fn add_log(args: &AddLogArgs) -> Result<ExitCode, CliError> {
    let path = Path::new(&args.key);
    let key = if path.is_file() {
        read_text(path, "verifier key")?
    } else {
        args.key.clone()
    };
    let mut state = WitnessState::open(&args.dir).map_err(|e| state_error(&args.dir, e))?;
    state
        .add_log(&args.origin, key.trim())
        .map_err(|e| state_error(&args.dir, e))?;
    outln!(
        "accepting checkpoints of {} signed by {}",
        args.origin,
        key.trim()
    );
    Ok(ExitCode::SUCCESS)
}

fn list(args: &ListArgs) -> Result<ExitCode, CliError> {
    if !args.dir.is_dir() {
        return Err(CliError::usage(format!(
            "{} is not a directory",
            args.dir.display()
        )));
    }
    let state = WitnessState::open_read_only(&args.dir).map_err(|e| state_error(&args.dir, e))?;
    for entry in state.list() {
        match entry.cosigned {
            Some(cosigned) => outln!(
                "{}\t{}\tsize {}\troot {}",
                entry.origin,
                entry.key.to_text(),
                cosigned.size,
                cosigned.root
            ),
            None => outln!(
                "{}\t{}\tnothing cosigned yet",
                entry.origin,
                entry.key.to_text()
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn serve(args: &ServeArgs) -> Result<ExitCode, CliError> {
    let key = WitnessSigner::parse(&read_text(&args.key, "witness key")?)
        .map_err(|error| CliError::usage(format!("{}: {error}", args.key.display())))?;
    let state = WitnessState::open(&args.dir).map_err(|e| state_error(&args.dir, e))?;
    if state.logs().is_empty() {
        eprintln!(
            "kimberlite: warning: no log configured; add one with `kimberlite witness add-log`"
        );
    }
    let public = key.verifier().to_text();
    let witness = Arc::new(Witness::new(key, state));
    let runtime = tokio::runtime::Runtime::new()
        .map_err(|error| CliError::usage(format!("cannot start the witness runtime: {error}")))?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .map_err(|error| {
                CliError::usage(format!("cannot listen on {}: {error}", args.listen))
            })?;
        let addr = listener
            .local_addr()
            .map_err(|error| CliError::usage(error.to_string()))?;
        eprintln!("kimberlite: witness {public} on http://{addr}/add-checkpoint");
        kimberlite_witness::serve(listener, witness, crate::serve::shutdown_signal())
            .await
            .map_err(|error| CliError::usage(error.to_string()))
    })?;
    Ok(ExitCode::SUCCESS)
}
