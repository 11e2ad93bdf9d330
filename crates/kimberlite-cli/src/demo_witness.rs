//! The demo's witness steps: three witnesses (`kimberlite-witness`, in process on
//! 127.0.0.1) and the server's witness client (`kimberlite-server`) have a checkpoint of a
//! copy of the demo store cosigned to a 2-of-3 quorum; then a backup of that copy, restored
//! and grown with other events, is refused by every witness, and by the store itself when the
//! checkpoints it kept since survived the restore. docs/SERVER.md, section "Witnesses".

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kimberlite::proof::{
    parse_size_body, stream_origin, AddCheckpoint, SignerKey, WitnessPolicy, WitnessSigner,
};
use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite, StreamId};
use kimberlite_server::{AppState, KeyRing, Limits, WitnessPolicies, WitnessingConfig};
use kimberlite_witness::{Witness, WitnessState};
use tokio::sync::oneshot;

use crate::audit_data::ACCESS_STREAM;
use crate::copy_store::copy_dir;
use crate::display::thousands;
use crate::error::CliError;

/// The store name in the demo's origins.
const STORE_NAME: &str = "hospital";
/// Cosignatures a checkpoint needs, of the three witnesses.
const QUORUM: usize = 2;
/// Polls of the wait for a witnessed checkpoint, 20 ms apart: 10 s in all.
const POLLS_MAX: u32 = 500;

/// A witness serving on loopback; `add_checkpoint` is also called directly to show answers.
struct DemoWitness {
    witness: Arc<Witness>,
    addr: SocketAddr,
    stop: oneshot::Sender<()>,
}

fn failed(what: &str, error: impl std::fmt::Display) -> CliError {
    CliError::usage(format!("demo, {what}: {error}"))
}

/// Steps 7 and 8 over copies of the demo store `original`, in `scratch`.
pub(crate) fn run(original: &Path, scratch: &Path, config: &Config) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| failed("runtime", error))?;
    runtime.block_on(steps(original, scratch, config))
}

async fn steps(original: &Path, scratch: &Path, config: &Config) -> Result<(), CliError> {
    let log = SignerKey::from_seed(STORE_NAME, [7; 32]).map_err(|e| failed("log key", e))?;
    let origin = stream_origin(STORE_NAME, ACCESS_STREAM).map_err(|e| failed("origin", e))?;
    let mut witnesses = Vec::new();
    for n in 1..=3u8 {
        let dir = scratch.join(format!("witness-{n}"));
        witnesses.push(start_witness(&dir, n, &origin, &log).await?);
    }
    let policy = WitnessPolicy::with_urls(
        witnesses
            .iter()
            .map(|w| {
                (
                    w.witness.signer().verifier(),
                    Some(format!("http://{}", w.addr)),
                )
            })
            .collect(),
        QUORUM,
    )
    .map_err(|e| failed("policy", e))?;
    let names: Vec<&str> = witnesses
        .iter()
        .map(|w| w.witness.signer().name())
        .collect();
    outln!(
        "7. Witnesses cosign a checkpoint only if it extends every one of that log they \
         cosigned before. Three run here (in process, on 127.0.0.1): {}; {QUORUM} must cosign.",
        names.join(", ")
    );
    let live = scratch.join("witnessed-copy");
    copy_dir(original, &live)?;
    let first = witness_store(&live, config, &log, &policy, true).await?;
    let backup = scratch.join("backup");
    copy_dir(&live, &backup)?;
    append_three(&live, config, "later")?;
    let second = witness_store(&live, config, &log, &policy, false).await?;
    outln!(
        "   The stream grew by 3 events: the witnesses were asked from {} with a consistency \
         proof, and cosigned {} too.",
        thousands(first),
        thousands(second)
    );

    outln!(
        "8. Rolled back: a backup taken at {} events is restored and grown by 3 other events.",
        thousands(first)
    );
    let guarded = scratch.join("restored-with-checkpoints");
    copy_dir(&backup, &guarded)?;
    show_refused_rollback(&backup, config, &log, &witnesses, &origin).await?;
    let kept = guarded.join(kimberlite::CHECKPOINT_DIR);
    std::fs::remove_dir_all(&kept).map_err(|e| failed("restore", e))?;
    copy_dir(&live.join(kimberlite::CHECKPOINT_DIR), &kept)?;
    let store = Kimberlite::open_with(&guarded, config.clone())?;
    let id = stream_id(&store)?;
    match store.sign_checkpoint(id, &origin, &log) {
        Err(error) => outln!(
            "   Had the checkpoints kept since survived the restore, the store itself would \
             refuse to sign:\n     {error}"
        ),
        Ok(signed) => outln!(
            "   (unexpected: the restored store signed size {})",
            signed.tree_size
        ),
    }
    for witness in witnesses {
        let _ = witness.stop.send(());
    }
    Ok(())
}

/// A witness named `witness-<n>.example`, keeping its state in `dir`, accepting `origin`
/// signed by `log`, serving on a port of 127.0.0.1.
async fn start_witness(
    dir: &Path,
    n: u8,
    origin: &str,
    log: &SignerKey,
) -> Result<DemoWitness, CliError> {
    let signer = WitnessSigner::from_seed(&format!("witness-{n}.example"), [n; 32])
        .map_err(|e| failed("witness key", e))?;
    let mut state = WitnessState::open(dir).map_err(|e| failed("witness store", e))?;
    state
        .add_log(origin, &log.verifier().to_text())
        .map_err(|e| failed("add-log", e))?;
    let witness = Arc::new(Witness::new(signer, state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| failed("witness listener", e))?;
    let addr = listener.local_addr().map_err(|e| failed("witness", e))?;
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(kimberlite_witness::serve(
        listener,
        Arc::clone(&witness),
        async {
            let _ = stopped.await;
        },
    ));
    Ok(DemoWitness {
        witness,
        addr,
        stop,
    })
}

/// Serves the store in `dir` as `kimberlite serve --witness-policy` would (its background
/// checkpointer, no listener) until a checkpoint of the demo stream at its current size is
/// witnessed; returns its size. Prints it, and the note if `show`.
async fn witness_store(
    dir: &Path,
    config: &Config,
    log: &SignerKey,
    policy: &WitnessPolicy,
    show: bool,
) -> Result<u64, CliError> {
    let store = Kimberlite::open_with(dir, config.clone().durability(Durability::GroupCommit))?;
    let id = stream_id(&store)?;
    let size = store.head(id)?.next_offset.as_u64();
    let mut policies = WitnessPolicies::new();
    policies
        .add(ACCESS_STREAM, policy.clone())
        .map_err(|e| failed("policy", e))?;
    let mut witnessing = WitnessingConfig::new(policies);
    witnessing.checkpoint_interval = Some(Duration::from_millis(20));
    witnessing.request_timeout = Duration::from_secs(2);
    let state = AppState::new(store, KeyRing::from_tokens(Vec::new()), Limits::default())
        .with_store_name(STORE_NAME)
        .map_err(|e| failed("store name", e))?
        .with_signing_key(log.clone())
        .with_witnessing(witnessing)
        .map_err(|e| failed("witnessing", e))?;
    let started = Instant::now();
    state.start_background();
    let mut witnessed = None;
    for _ in 0..POLLS_MAX {
        witnessed = state.store().latest_cosigned_checkpoint_where(id, |kept| {
            kept.tree_size == size && policy.check(&kept.note).is_ok()
        })?;
        if witnessed.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    state.stop_background().await;
    let Some(witnessed) = witnessed else {
        return Err(failed("witnesses", "no checkpoint was witnessed in 10 s"));
    };
    if !show {
        return Ok(witnessed.tree_size);
    }
    let cosigners = policy
        .check(&witnessed.note)
        .map_err(|e| failed("check", e))?;
    let names: Vec<String> = cosigners.into_iter().map(|c| c.witness).collect();
    outln!(
        "   The server's background checkpointer signed \"{ACCESS_STREAM}\" at {} events; \
         cosigned by {} within {:.2} s: WITNESSED. The note, as the tiles view serves it:",
        thousands(size),
        names.join(", "),
        started.elapsed().as_secs_f64(),
    );
    for line in witnessed.note.lines().filter(|line| !line.is_empty()) {
        let short: String = line.chars().take(60).collect();
        let more = if short.len() < line.len() { "…" } else { "" };
        outln!("     {short}{more}");
    }
    Ok(size)
}

/// The restored `backup` grown by 3 other events and signed: every witness refuses it.
async fn show_refused_rollback(
    backup: &Path,
    config: &Config,
    log: &SignerKey,
    witnesses: &[DemoWitness],
    origin: &str,
) -> Result<(), CliError> {
    append_three(backup, config, "rewritten")?;
    let store = Kimberlite::open_with(backup, config.clone())?;
    let id = stream_id(&store)?;
    let signed = store.sign_checkpoint(id, origin, log)?;
    outln!(
        "   The log signs size {} (nothing in the backup says it was longer); the witnesses:",
        thousands(signed.tree_size)
    );
    for demo in witnesses {
        let mut old_size = 0;
        for _ in 0..2 {
            let proof = if old_size == 0 || old_size > signed.tree_size {
                Vec::new()
            } else {
                store
                    .consistency_proof(id, old_size, signed.tree_size)?
                    .hashes
            };
            let body = AddCheckpoint {
                old_size,
                proof,
                checkpoint: signed.note.clone(),
            }
            .to_body();
            let answer = demo.witness.add_checkpoint(body.as_bytes());
            let size = parse_size_body(&answer.body).ok();
            let said = match (answer.status, size) {
                (409, Some(size)) if old_size == 0 => {
                    format!("409: it last cosigned size {}", thousands(size))
                }
                (409, Some(_)) => "409 again: it cosigned another tree of that size".to_owned(),
                (status, _) => format!("{status}: {}", answer.body.trim()),
            };
            outln!(
                "     {} asked from size {}: {said}",
                demo.witness.signer().name(),
                thousands(old_size)
            );
            match size {
                Some(size) if answer.status == 409 && size != old_size => old_size = size,
                _ => break,
            }
        }
    }
    Ok(())
}

/// Appends three events (`<word> 1..3`) to the demo stream of the store in `dir`.
fn append_three(dir: &Path, config: &Config, word: &str) -> Result<(), CliError> {
    let store = Kimberlite::open_with(dir, config.clone())?;
    let id = stream_id(&store)?;
    let events: Vec<String> = (1..=3)
        .map(|n| format!("{{\"action\":\"{word}\",\"n\":{n}}}"))
        .collect();
    store.append(id, events, ExpectedOffset::Any)?;
    Ok(())
}

fn stream_id(store: &Kimberlite) -> Result<StreamId, CliError> {
    store
        .stream(ACCESS_STREAM)
        .ok_or_else(|| failed("stream", format!("no stream {ACCESS_STREAM:?}")))
}
