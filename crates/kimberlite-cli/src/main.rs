//! `kimberlite`: the command-line tool for Kimberlite stores.
//!
//! Subcommands: `demo`, `append`, `read`, `tail`, `verify`, `inspect`, `bench`, and for
//! Merkle proofs `keygen`, `checkpoint`, `prove`, `prove-consistency`, `verify-proof`, `audit`, and
//! for the HTTP service `serve` and `key`; a transparency-log `witness`, and `monitor` to follow
//! a served stream; for erasure by crypto-shredding `master-keygen` and `erase`. See
//! `kimberlite --help`, `kimberlite help <command>`
//! and this crate's README. `append`, `read`, `tail`, `verify`, `checkpoint`, `prove` and
//! `prove-consistency` also work against a server (`--server URL --token-file F`, no DIR)
//! through `kimberlite-client`.
//!
//! # Exit codes
//!
//! - `0`: success (for `verify`: every stream intact).
//! - `1`: stored data is tampered with or corrupt (verification failed, or a read hit a bad
//!   record). The first problem is printed with stream, offset, segment file and byte.
//! - `2`: usage errors (bad arguments, missing directory, not a store, unknown stream, store in
//!   use) and I/O errors: nothing could be checked.
//!
//! Progress bars draw on standard error and only when it is a terminal; results go to standard
//! output, so pipes and scripts see only results.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::indexing_slicing))]

/// `println!` that ignores a closed standard output (`kimberlite verify DIR | head -1`)
/// instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

mod audit_data;
mod batch;
mod bench;
mod cluster;
mod copy_store;
mod demo;
mod demo_erasure;
mod demo_witness;
mod display;
mod erase;
mod error;
mod events;
mod import;
mod inspect;
mod key;
mod monitor;
mod open;
mod place;
mod print;
mod proof_audit;
mod proofs;
mod receipt;
mod remote;
mod report;
mod retain;
mod sealed_print;
mod serve;
mod serve_cluster;
mod serve_log;
mod text_file;
mod verify;
mod witness;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Kimberlite: an append-only, hash-chained event store you can verify.
///
/// Every event is chained to the one before it by a SHA-256 hash, so changing, dropping,
/// reordering or inserting any stored byte is detected, and `verify` says where.
///
/// Exit codes: 0 success; 1 tampered or corrupt data; 2 usage or I/O error.
#[derive(Debug, Parser)]
#[command(name = "kimberlite", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a store with a realistic audit trail, read it back, verify it, then tamper with a
    /// copy and show verification pointing at the damaged event.
    Demo(demo::DemoArgs),
    /// Append events to a stream: one event per line of standard input or of --file.
    Append(events::AppendArgs),
    /// Print events of a stream, one per line (or JSON lines with --json).
    Read(events::ReadArgs),
    /// Print a stream's events and keep printing new ones as they are appended (Ctrl-C stops).
    Tail(events::TailArgs),
    /// Verify every record of a store (or one stream): checksums, offsets and hash chain.
    ///
    /// Exit code 0 when everything is intact, 1 when anything is tampered with or corrupt
    /// (the first problem is printed with stream, offset, file and byte), 2 on usage or I/O
    /// errors.
    Verify(verify::VerifyArgs),
    /// Show a store's streams: events, segments, sizes, restart records, compression, head hash.
    Inspect(inspect::InspectArgs),
    /// Measure append and read throughput and append latency on a scratch store.
    Bench(bench::BenchArgs),
    /// Create an Ed25519 key pair for signing checkpoints (C2SP signed-note key format).
    Keygen(proofs::KeygenArgs),
    /// Sign a checkpoint (origin, tree size, Merkle root) of a stream; print it and keep it
    /// under DIR/checkpoints/.
    Checkpoint(proofs::CheckpointArgs),
    /// Print an event and its Merkle inclusion proof as JSON, or a receipt (`--receipt`: a
    /// C2SP tlog proof with the witnessed checkpoint).
    Prove(proofs::ProveArgs),
    /// Print a Merkle consistency proof between two tree sizes of a stream as JSON.
    ProveConsistency(proofs::ProveConsistencyArgs),
    /// Check a receipt, or a JSON proof and its signed checkpoint, against the log's public key
    /// (and a witness policy), without any store.
    ///
    /// Exit code 0 when valid, 1 when invalid (the reason is printed), 2 on usage or I/O
    /// errors.
    VerifyProof(proofs::VerifyProofArgs),
    /// Check that a stream still extends earlier signed checkpoints: reports a cut-off tail
    /// or rewritten history with the offsets concerned.
    ///
    /// Exit code 0 when consistent, 1 when tampering is found or a checkpoint is invalid, 2
    /// on usage or I/O errors.
    Audit(proof_audit::AuditArgs),
    /// Drop a stream's oldest whole segments below an offset that a kept signed checkpoint
    /// covers, keeping what proves that the rest continues them (docs/COMPLIANCE.md).
    Retain(retain::RetainArgs),
    /// Serve the store over HTTP: the `/v1` API, for applications and auditors
    /// (docs/SERVER.md). Stops on Ctrl-C or SIGTERM, finishing requests in flight.
    Serve(serve::ServeArgs),
    /// A cluster's membership, through any node: `status`, `add-learner ID URL`,
    /// `promote ID`, `remove ID` (docs/SERVER.md, "Cluster mode").
    Cluster(cluster::ClusterArgs),
    /// Manage the server's API keys: `add` (prints the token once), `list`, `revoke`.
    Key(key::KeyArgs),
    /// Run a C2SP transparency log witness: `keygen`, `add-log`, `list`, `serve`
    /// (docs/PROOFS.md, "Running a witness").
    Witness(witness::WitnessArgs),
    /// Follow a stream's tiles view and check each new checkpoint extends the last one seen:
    /// exits 1 naming both sizes and roots on a split view or rollback (docs/PROOFS.md,
    /// "For auditors").
    Monitor(monitor::MonitorArgs),
    /// Erase a data subject: destroy its data key, so the events appended for it with
    /// `append --subject` can never be read again, record the erasure in the `_erasure`
    /// stream and print a receipt; the chain and every proof stay valid (docs/COMPLIANCE.md).
    Erase(erase::EraseArgs),
    /// Create a master key file: it wraps the data keys of `append --subject`.
    MasterKeygen(erase::MasterKeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Append(args) => events::append(&args),
        Command::Read(args) => events::read(&args),
        Command::Tail(args) => events::tail(&args),
        Command::Verify(args) => verify::verify(&args),
        Command::Inspect(args) => inspect::inspect(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Keygen(args) => proofs::keygen(&args),
        Command::Checkpoint(args) => proofs::checkpoint(&args),
        Command::Prove(args) => proofs::prove(&args),
        Command::ProveConsistency(args) => proofs::prove_consistency(&args),
        Command::VerifyProof(args) => proofs::verify_proof(&args),
        Command::Audit(args) => proof_audit::audit(&args),
        Command::Retain(args) => retain::retain(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Key(args) => key::key(&args),
        Command::Cluster(args) => cluster::run(&args),
        Command::Witness(args) => witness::run(&args),
        Command::Monitor(args) => monitor::run(&args),
        Command::Erase(args) => erase::erase(&args),
        Command::MasterKeygen(args) => erase::master_keygen(&args),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            error.print();
            error.exit_code()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::CliError;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn exit_codes_follow_the_documented_scheme() {
        assert_eq!(CliError::usage("x").exit_code(), ExitCode::from(2));
        assert_eq!(CliError::Tampered.exit_code(), ExitCode::from(1));
    }
}
