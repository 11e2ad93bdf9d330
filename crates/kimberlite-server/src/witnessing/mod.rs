//! The witness client: after each new signed checkpoint of a stream with a witness policy
//! (`policies`), the server asks each of the policy's witnesses to cosign it (C2SP
//! tlog-witness `add-checkpoint`), keeps the checkpoint with the valid cosignatures it got
//! (`Kimberlite::keep_cosigned_checkpoint`), and calls it witnessed when they meet the
//! policy's quorum. `docs/SERVER.md`, section "Witnesses".
//!
//! All of it runs in tasks of its own, after the checkpoint is kept and answered: witnessing
//! never delays an append nor a checkpoint. One worker per stream takes the latest checkpoint
//! handed to it (a newer one replaces one not started yet) and asks the witnesses at once;
//! each answer is kept as it arrives. A background checkpointer (`checkpointer`) signs
//! streams that grew, so checkpoints are witnessed without a client asking for them.
//!
//! Each witness's answer (`answer`), and what the client does next (`exchange`):
//!
//! | answer                               | outcome           | next                                  |
//! |--------------------------------------|-------------------|---------------------------------------|
//! | 200, a line by the policy's key verifies | `cosigned`    | keep the line; remember the size      |
//! | 200, no such line verifies           | `bad_cosignature` | stop: the witness signs with another key |
//! | 409 `text/x.tlog.size`, size <= ours | `conflict`        | remember the size; retry once from it |
//! | 409 again, after that retry          | `conflict`        | stop: the witness holds another tree  |
//! | 409 with a size above ours           | `conflict`        | stop: the store was rolled back       |
//! | 403                                  | `forbidden`       | stop: the witness refuses the log key |
//! | 404                                  | `unknown_log`     | stop: the witness does not know the origin |
//! | 400, 422                             | `bad_request`, `bad_proof` | retry, bounded               |
//! | 408, 429, 5xx                        | `unavailable`     | retry, bounded                        |
//! | anything else, an unreadable body    | `garbage`         | retry, bounded                        |
//! | no answer in time / no connection    | `timeout` / `unreachable` | retry, bounded                |
//!
//! Retries wait `retry_backoff`, doubling; at most `attempts_max` failed requests per witness
//! and checkpoint. What each witness last cosigned is kept in memory only: after a restart the
//! first request starts from 0, and the witness's 409 says where to start.

mod answer;
pub(crate) mod checkpointer;
mod exchange;
mod policies;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use kimberlite::proof::{WitnessKey, WitnessPolicy};
use kimberlite::{SignedCheckpoint, StreamId};
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use policies::{PolicyError, WitnessPolicies};

use crate::state::AppState;

/// How the server has its checkpoints witnessed.
#[derive(Debug, Clone)]
pub struct WitnessingConfig {
    /// Which policy applies to which stream.
    pub policies: WitnessPolicies,
    /// How often the background checkpointer signs the streams with a policy that grew;
    /// `None`: only checkpoints clients ask for are witnessed. Default `None`.
    pub checkpoint_interval: Option<Duration>,
    /// Time one request to a witness may take, answer included. Default 10 s.
    pub request_timeout: Duration,
    /// Most failed requests per witness and checkpoint (a 409 followed is not a failure).
    /// Default 3.
    pub attempts_max: u32,
    /// The pause before the first retry, doubling after each. Default 500 ms.
    pub retry_backoff: Duration,
}

impl WitnessingConfig {
    /// `policies` with the default bounds, no background checkpointer.
    #[must_use]
    pub fn new(policies: WitnessPolicies) -> Self {
        Self {
            policies,
            checkpoint_interval: None,
            request_timeout: Duration::from_secs(10),
            attempts_max: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// Why witnessing could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessingError {
    /// The HTTP client could not be built (its TLS roots).
    #[error("cannot build the witness client: {0}")]
    Client(String),
    /// A bound that would stop witnessing.
    #[error("witnessing: {0} must be above zero")]
    ZeroBound(&'static str),
}

/// A signed checkpoint to have witnessed.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) stream: String,
    pub(crate) id: StreamId,
    pub(crate) size: u64,
    pub(crate) note: String,
}

/// The witness client's state (see the module docs).
#[derive(Debug)]
pub(crate) struct Witnessing {
    config: WitnessingConfig,
    client: reqwest::Client,
    /// What each witness last cosigned, by stream and witness key.
    sizes: Mutex<HashMap<(String, String), u64>>,
    tasks: Mutex<Tasks>,
    /// Set to `true` once the server stops: every task ends.
    stop: watch::Sender<bool>,
}

#[derive(Debug, Default)]
struct Tasks {
    running: JoinSet<()>,
    /// Each stream's worker, by stream name: where its next checkpoint goes.
    workers: HashMap<String, watch::Sender<Option<Arc<Pending>>>>,
    stopped: bool,
}

impl Witnessing {
    pub(crate) fn new(config: WitnessingConfig) -> Result<Self, WitnessingError> {
        for (name, zero) in [
            ("request_timeout", config.request_timeout.is_zero()),
            ("attempts_max", config.attempts_max == 0),
            (
                "checkpoint_interval",
                config.checkpoint_interval.is_some_and(|i| i.is_zero()),
            ),
        ] {
            if zero {
                return Err(WitnessingError::ZeroBound(name));
            }
        }
        let client = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| WitnessingError::Client(error.to_string()))?;
        Ok(Self {
            config,
            client,
            sizes: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Tasks::default()),
            stop: watch::channel(false).0,
        })
    }

    pub(crate) fn config(&self) -> &WitnessingConfig {
        &self.config
    }

    pub(crate) fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// The policy of stream `name`, if it is witnessed.
    pub(crate) fn policy(&self, name: &str) -> Option<&Arc<WitnessPolicy>> {
        self.config.policies.for_stream(name)
    }

    fn last_size(&self, stream: &str, witness: &WitnessKey) -> u64 {
        let sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes
            .get(&(stream.to_owned(), witness.to_text()))
            .copied()
            .unwrap_or(0)
    }

    fn set_last_size(&self, stream: &str, witness: &WitnessKey, size: u64) {
        let mut sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes.insert((stream.to_owned(), witness.to_text()), size);
    }

    /// Hands `signed`, a new checkpoint of stream `stream`, to its worker (started if
    /// needed). Returns at once; nothing happens for a stream without a policy or once the
    /// server stops.
    pub(crate) fn submit(&self, state: &AppState, stream: &str, signed: &SignedCheckpoint) {
        let Some(policy) = self.policy(stream) else {
            return;
        };
        let Some(id) = state.store().stream(stream) else {
            return;
        };
        let pending = Arc::new(Pending {
            stream: stream.to_owned(),
            id,
            size: signed.tree_size,
            note: signed.note.clone(),
        });
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if tasks.stopped {
            return;
        }
        if let Some(worker) = tasks.workers.get(stream) {
            worker.send_replace(Some(pending));
            return;
        }
        let (worker, mut latest) = watch::channel(Some(pending));
        latest.mark_changed();
        let work = worker_loop(
            state.clone(),
            Arc::clone(policy),
            latest,
            self.stop.subscribe(),
        );
        tasks.running.spawn(work);
        tasks.workers.insert(stream.to_owned(), worker);
    }

    /// Starts the background checkpointer, if an interval is configured.
    pub(crate) fn start(&self, state: &AppState) {
        let Some(interval) = self.config.checkpoint_interval else {
            return;
        };
        let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !tasks.stopped {
            let work = checkpointer::run(state.clone(), interval, self.stop.subscribe());
            tasks.running.spawn(work);
        }
    }

    /// Stops every task and waits for them to end (they hold the store).
    pub(crate) async fn stop(&self) {
        let mut running = {
            let mut tasks = self.tasks.lock().unwrap_or_else(PoisonError::into_inner);
            tasks.stopped = true;
            tasks.workers.clear();
            std::mem::take(&mut tasks.running)
        };
        self.stop.send_replace(true);
        while running.join_next().await.is_some() {}
    }
}

/// A stream's worker: witnesses the latest checkpoint handed to it, one round at a time,
/// skipping checkpoints older than one already witnessed.
async fn worker_loop(
    state: AppState,
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
        match round(&state, &policy, &pending, &mut stop).await {
            Some(witnessed) => done = Some((pending.size, witnessed)),
            None => return,
        }
    }
}

/// Asks every witness of `policy` at once; keeps the checkpoint with each valid cosignature
/// as it arrives. Returns whether the quorum was met, or `None` when the server stops.
async fn round(
    state: &AppState,
    policy: &WitnessPolicy,
    pending: &Arc<Pending>,
    stop: &mut watch::Receiver<bool>,
) -> Option<bool> {
    let mut asks = JoinSet::new();
    for witness in policy.witnesses() {
        let Some(url) = policy.url(witness) else {
            continue;
        };
        let (state, witness, url) = (state.clone(), witness.clone(), url.to_owned());
        let pending = Arc::clone(pending);
        asks.spawn(async move { exchange::ask(&state, &witness, &url, &pending).await });
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
        keep(state, pending, &note).await;
    }
    let witnessed = cosigners >= policy.threshold();
    if witnessed {
        state.metrics().count_witnessed();
    } else {
        tracing::warn!(
            stream = %pending.stream, size = pending.size, cosigners,
            quorum = policy.threshold(), "the checkpoint is not witnessed: too few cosignatures"
        );
    }
    Some(witnessed)
}

/// Keeps `note` (the checkpoint with the cosignatures so far) beside the signed checkpoint.
async fn keep(state: &AppState, pending: &Pending, note: &str) {
    let (id, note) = (pending.id, note.to_owned());
    let kept = state
        .with_store(move |store| Ok(store.keep_cosigned_checkpoint(id, &note)?))
        .await;
    if let Err(error) = kept {
        tracing::warn!(stream = %pending.stream, size = pending.size, %error,
            "cannot keep the cosigned checkpoint");
    }
}

/// Completes once `stop` turns `true` (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
