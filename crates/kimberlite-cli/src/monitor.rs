//! `kimberlite monitor URL`: follows a stream's tiles view (C2SP tlog-tiles) and checks that
//! every checkpoint the log serves extends the last one this monitor saw, so a log that shows
//! two histories, or goes back to an older one, is caught (docs/PROOFS.md, "For auditors").
//!
//! Each poll: fetch `URL/checkpoint`, check the log's signature, compare with the last
//! checkpoint seen (kept in `--state FILE` across runs, written only once verified) by
//! `kimberlite_proof::check_succession`, with the consistency proof computed from the tiles
//! it needs (`TileNodes`), and with `--witness-policy`, report the cosignatures. Exit codes:
//! 0 every checkpoint seen succeeds the last; 1 a split view, rollback, inconsistent extension,
//! a checkpoint not signed by the log key or (`--require-witnessed`) not witnessed (printed, the state left as it was); 2 usage
//! errors, and with `--once` a log that could not be asked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use kimberlite::proof::{
    check_succession, consistency_proof, Checkpoint, Succession, SuccessionError, TileNodes,
    VerifierKey, WitnessPolicy,
};
use kimberlite_client::Client;

use crate::error::CliError;
use crate::receipt::{read_log_key, read_policy};

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The stream's tiles prefix as the server serves it:
    /// `http(s)://HOST:PORT/v1/streams/<stream>/tlog/`.
    #[arg(value_name = "URL")]
    url: String,
    /// The log's public key (`<name>+<key id>+<key>`, from `kimberlite keygen`): its file, or
    /// the key's text.
    #[arg(long = "log-key", value_name = "KEY")]
    log_key: OsString,
    /// Where the last checkpoint seen is kept across runs (created on the first run).
    #[arg(long, value_name = "FILE")]
    state: PathBuf,
    /// Also report, for each checkpoint, whether this policy's quorum of witnesses cosigned it.
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<PathBuf>,
    /// With --witness-policy: a checkpoint its quorum did not cosign is not taken (exit 1,
    /// the state left as it was), so the monitor trusts only witnessed history.
    #[arg(long, requires = "witness_policy")]
    require_witnessed: bool,
    /// Check once and exit.
    #[arg(long)]
    once: bool,
    /// Time between polls.
    #[arg(long, value_name = "MS", default_value_t = 60_000)]
    interval_ms: u64,
    /// Stop after this many polls (default: run until stopped).
    #[arg(long, value_name = "N", conflicts_with = "once")]
    polls: Option<u64>,
    /// Read the API key's bearer token from FILE (tiles need `read` on the stream unless the
    /// server serves them publicly).
    #[arg(long, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Trust the CA certificate(s) in FILE (PEM) for the server's TLS certificate.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// How one poll ended, when it did not succeed.
enum Failure {
    /// Evidence against the log: stop, exit 1.
    Evidence(String),
    /// The log could not be asked: retry at the next poll.
    Unreachable(String),
}

pub fn run(args: &MonitorArgs) -> Result<ExitCode, CliError> {
    let log = read_log_key(&args.log_key)?;
    let policy = args
        .witness_policy
        .as_deref()
        .map(read_policy)
        .transpose()?;
    let mut builder = Client::builder(&args.url);
    if let Some(path) = &args.token_file {
        builder = builder.token_file(path)?;
    }
    if let Some(path) = &args.ca_cert {
        builder = builder.ca_cert_file(path)?;
    }
    let client = builder.build()?;
    let mut last = load_state(&args.state, &log)?;
    let polls = if args.once { Some(1) } else { args.polls };
    let mut poll = 0u64;
    loop {
        poll += 1;
        match check(
            &client,
            &log,
            policy.as_ref(),
            args.require_witnessed,
            last.as_ref(),
        ) {
            Ok((checkpoint, note, report)) => {
                if last.as_ref() != Some(&checkpoint) {
                    save_state(&args.state, &note)?;
                }
                outln!("{report}");
                last = Some(checkpoint);
            }
            Err(Failure::Evidence(message)) => {
                outln!("{message}");
                return Ok(ExitCode::from(1));
            }
            Err(Failure::Unreachable(message)) if args.once => {
                return Err(CliError::usage(message));
            }
            Err(Failure::Unreachable(message)) => eprintln!("kimberlite monitor: {message}"),
        }
        if polls.is_some_and(|polls| poll >= polls) {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(args.interval_ms));
    }
}

/// One poll: the log's checkpoint, checked against `last`; returns it, its note and the line
/// to print.
fn check(
    client: &Client,
    log: &VerifierKey,
    policy: Option<&WitnessPolicy>,
    require_witnessed: bool,
    last: Option<&Checkpoint>,
) -> Result<(Checkpoint, String, String), Failure> {
    let note = client
        .tlog_checkpoint()
        .map_err(|error| Failure::Unreachable(format!("fetching the checkpoint: {error}")))?;
    let checkpoint = Checkpoint::open_by_log(&note, log).map_err(|error| {
        Failure::Evidence(format!(
            "BAD CHECKPOINT: the log serves a checkpoint not signed by its key {}: {error}",
            log.name()
        ))
    })?;
    let prove = |old: u64, new: u64| {
        let nodes = TileNodes::new(new, |tile| client.tlog_tile(tile));
        consistency_proof(&nodes, old, new).map_err(|error| error.to_string())
    };
    let succession = check_succession(last, &checkpoint, prove).map_err(|error| match error {
        SuccessionError::NoProof { .. } => Failure::Unreachable(error.to_string()),
        SuccessionError::OriginChanged { .. } => Failure::Unreachable(format!(
            "{error}: the state file belongs to another log; give another --state"
        )),
        evidence => Failure::Evidence(evidence.to_string()),
    })?;
    let (size, root) = (checkpoint.tree_size, checkpoint.root);
    let mut report = match succession {
        Succession::First => format!(
            "first checkpoint of {}: size {size}, root {root} (trusted from now on)",
            checkpoint.origin
        ),
        Succession::Unchanged => format!("unchanged: size {size}, root {root}"),
        Succession::Extended { old_size } => {
            format!("consistent: size {old_size} -> {size}, root {root}")
        }
    };
    if let Some(policy) = policy {
        match policy.check(&note) {
            Ok(cosigned) => {
                let names: Vec<&str> = cosigned.iter().map(|c| c.witness.as_str()).collect();
                report.push_str(&format!(
                    "; witnessed by {} of {} (quorum {}): {}",
                    cosigned.len(),
                    policy.witnesses().len(),
                    policy.threshold(),
                    names.join(", ")
                ));
            }
            Err(error) if require_witnessed => {
                return Err(Failure::Evidence(format!(
                    "NOT WITNESSED: the log serves size {size}, root {root}, which its witnesses \
                     did not cosign: {error}"
                )))
            }
            Err(error) => report.push_str(&format!("; NOT witnessed: {error}")),
        }
    }
    Ok((checkpoint, note, report))
}

/// The last checkpoint seen, from the state file; `None` before the first run.
fn load_state(path: &Path, log: &VerifierKey) -> Result<Option<Checkpoint>, CliError> {
    let note = match std::fs::read_to_string(path) {
        Ok(note) => note,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(CliError::usage(format!(
                "cannot read the state file {}: {error}",
                path.display()
            )))
        }
    };
    Checkpoint::open_by_log(&note, log)
        .map(Some)
        .map_err(|error| {
            CliError::usage_hint(
                format!(
                    "the state file {} is not a checkpoint signed by the log key: {error}",
                    path.display()
                ),
                "give the log key this state was kept for, or another --state",
            )
        })
}

/// Replaces the state file with `note`: written beside it, synced, renamed over it, so a
/// crash leaves the old state or the new one.
fn save_state(path: &Path, note: &str) -> Result<(), CliError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let write = || -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(note.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    };
    write().map_err(|error| {
        CliError::usage(format!(
            "cannot write the state file {}: {error}",
            path.display()
        ))
    })
}
