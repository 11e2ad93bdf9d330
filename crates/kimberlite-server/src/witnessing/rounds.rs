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
        asks.spawn(async move {
            let lines = exchange::ask(&host, &witness, &url, &pending).await;
            (witness, lines)
        });
    }
    // Cosignatures kept by an earlier round of this size stay: a witness down now does not
    // take back what it cosigned then.
    let mut note = kept_note(host, pending)
        .await
        .unwrap_or_else(|| pending.note.clone());
    let cosigned = |note: &str| {
        policy
            .witnesses()
            .iter()
            .filter(|key| key.verify(note).is_ok())
            .count()
    };
    loop {
        let answer = tokio::select! {
            answer = asks.join_next() => answer,
            () = stopped(stop) => {
                asks.shutdown().await;
                return None;
            }
        };
        let Some(answer) = answer else { break };
        let Ok((witness, Some(lines))) = answer else {
            continue;
        };
        if witness.verify(&note).is_err() {
            note.push_str(&lines);
            keep(host, pending, &note).await;
        }
    }
    let cosigners = cosigned(&note);
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

/// The cosigned note kept for `pending`'s size, if an earlier round kept one.
async fn kept_note(host: &Host, pending: &Pending) -> Option<String> {
    let (id, size) = (pending.id, pending.size);
    let kept = host
        .blocking(move |store| {
            store.latest_cosigned_checkpoint_where(id, |kept| kept.tree_size <= size)
        })
        .await;
    match kept {
        // The same checkpoint (signatures are deterministic), not another tree of its size.
        Ok(Some(kept)) if kept.tree_size == size && kept.note.starts_with(&pending.note) => {
            Some(kept.note)
        }
        Ok(_) => None,
        Err(error) => {
            tracing::warn!(stream = %pending.stream, size, %error,
                "cannot read the cosigned checkpoint kept");
            None
        }
    }
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
