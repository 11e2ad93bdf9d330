//! The background checkpointer: every `checkpoint_interval`, signs a checkpoint of each
//! stream with a witness policy that grew since it last signed one, and hands it to the
//! witnesses, so that a log nobody asks for checkpoints is witnessed too. It signs as
//! `GET .../checkpoint` does (`Kimberlite::sign_checkpoint`, under the stream's origin), so
//! the log's own guard (never two inconsistent checkpoints) holds for it too.

use std::collections::HashMap;
use std::time::Duration;

use kimberlite::StreamId;
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;

use kimberlite::SignedCheckpoint;

use crate::witnessing::host::{stopped, Host};

/// Runs until `stop` turns `true`, handing each checkpoint it signs to `submit`.
pub(crate) async fn run(
    host: Host,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    submit: impl Fn(&Host, &str, &SignedCheckpoint) + Send + 'static,
) {
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
        let Some(key) = host.signing.key.clone() else {
            return;
        };
        for (name, id, size) in grown(&host, &signed) {
            let (origin, key) = (host.signing.origin(&name), key.clone());
            match host
                .blocking(move |store| store.sign_checkpoint(id, &origin, &key))
                .await
            {
                Ok(checkpoint) => {
                    signed.insert(id, checkpoint.tree_size);
                    submit(&host, &name, &checkpoint);
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
fn grown(host: &Host, signed: &HashMap<StreamId, u64>) -> Vec<(String, StreamId, u64)> {
    host.store
        .list_streams()
        .into_iter()
        .filter(|info| !info.damaged && host.client.policy(&info.name).is_some())
        .map(|info| (info.name, info.id, info.head.next_offset.as_u64()))
        .filter(|(_, id, size)| *size > signed.get(id).copied().unwrap_or(0))
        .collect()
}
