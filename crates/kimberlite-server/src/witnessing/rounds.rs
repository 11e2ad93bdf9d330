//! Rounds: a stream's worker asks every witness of its policy at once about the latest
//! checkpoint handed to it, keeps the checkpoint with each valid cosignature as it arrives,
//! and counts the checkpoints that meet the quorum.

use std::sync::Arc;

use kimberlite::proof::WitnessPolicy;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::witnessing::exchange;
use crate::witnessing::host::{stopped, Host, Pending};

/// A stream's worker: witnesses the latest checkpoint handed to it, one round at a time,
/// skipping checkpoints older than one already witnessed.
pub(crate) async fn worker_loop(
    host: Host,
    policy: Arc<WitnessPolicy>,
    mut latest: watch::Receiver<Option<Arc<Pending>>>,
    mut stop: watch::Receiver<bool>,
) {
    // The size last asked for, and whether it met the quorum.
    let mut done: Option<(u64, bool)> = None;
    loop {
        tokio::select! {
            changed = latest.changed() => if changed.is_err() { return },
            () = stopped(&mut stop) => return,
        }
        let Some(pending) = latest.borrow_and_update().clone() else {
            continue;
        };
        let stale = done.is_some_and(|(size, witnessed)| {
            pending.size < size || (pending.size == size && witnessed)
        });
        if stale {
            continue;
        }
        match round(&host, &policy, &pending, &mut stop).await {
            Some(witnessed) => done = Some((pending.size, witnessed)),
            None => return,
        }
    }
}

/// Asks every witness of `policy` at once; keeps the checkpoint with each valid cosignature
/// as it arrives. Returns whether the quorum was met, or `None` when the server stops.
async fn round(
    host: &Host,
    policy: &WitnessPolicy,
    pending: &Arc<Pending>,
    stop: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let mut asks = JoinSet::new();
    for witness in policy.witnesses() {
        let Some(url) = policy.url(witness) else {
            continue;
        };
        let (host, witness, url) = (host.clone(), witness.clone(), url.to_owned());
        let pending = Arc::clone(pending);
        asks.spawn(async move { exchange::ask(&host, &witness, &url, &pending).await });
    }
    let mut note = pending.note.clone();
    let mut cosigners = 0usize;
    loop {
        let answer = tokio::select! {
            answer = asks.join_next() => answer,
            () = stopped(stop) => {
                asks.shutdown().await;
                return None;
            }
        };
        let Some(answer) = answer else { break };
        let Ok(Some(lines)) = answer else { continue };
        note.push_str(&lines);
        cosigners += 1;
        keep(host, pending, &note).await;
    }
    let witnessed = cosigners >= policy.threshold();
    if witnessed {
        host.counters.count_witnessed();
    } else {
        tracing::warn!(
            stream = %pending.stream, size = pending.size, cosigners,
            quorum = policy.threshold(), "the checkpoint is not witnessed: too few cosignatures"
        );
    }
    Some(witnessed)
}

/// Keeps `note` (the checkpoint with the cosignatures so far) beside the signed checkpoint.
async fn keep(host: &Host, pending: &Pending, note: &str) {
    let (id, note) = (pending.id, note.to_owned());
    let kept = host
        .blocking(move |store| store.keep_cosigned_checkpoint(id, &note))
        .await;
    if let Err(error) = kept {
        tracing::warn!(stream = %pending.stream, size = pending.size, %error,
            "cannot keep the cosigned checkpoint");
    }
}
