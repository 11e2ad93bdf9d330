//! The background checkpointer: every `checkpoint_interval`, signs a checkpoint of each
//! stream with a witness policy that grew since it last signed one, and hands it to the
//! witnesses, so that a log nobody asks for checkpoints is witnessed too. It signs through
//! the same path as `GET .../checkpoint` (`api::checkpoint::sign`), so the log's own guard
//! (never two inconsistent checkpoints) holds for it too.

use std::collections::HashMap;
use std::time::Duration;

use kimberlite::StreamId;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use crate::api::checkpoint::sign;
use crate::state::AppState;
use crate::witnessing::stopped;

/// Runs until `stop` turns `true`.
pub(crate) async fn run(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    // Per stream: the size last signed, and the size last refused (logged once).
    let mut signed: HashMap<StreamId, u64> = HashMap::new();
    let mut refused: HashMap<StreamId, u64> = HashMap::new();
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = stopped(&mut stop) => return,
        }
        if state.signing().key.is_none() {
            return;
        }
        for (name, id, size) in grown(&state, &signed) {
            match sign(&state, name.clone()).await {
                Ok(checkpoint) => {
                    signed.insert(id, checkpoint.tree_size);
                }
                Err(error) => {
                    if refused.insert(id, size) != Some(size) {
                        tracing::error!(stream = %name, size, %error,
                            "the checkpointer cannot sign a checkpoint of the stream");
                    }
                }
            }
        }
    }
}

/// The streams with a witness policy whose durable size passed the size last signed.
fn grown(state: &AppState, signed: &HashMap<StreamId, u64>) -> Vec<(String, StreamId, u64)> {
    let Some(witnessing) = state.witnessing() else {
        return Vec::new();
    };
    state
        .store()
        .list_streams()
        .into_iter()
        .filter(|info| !info.damaged && witnessing.policy(&info.name).is_some())
        .map(|info| (info.name, info.id, info.head.next_offset.as_u64()))
        .filter(|(_, id, size)| *size > signed.get(id).copied().unwrap_or(0))
        .collect()
}
