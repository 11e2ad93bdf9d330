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
mod checkpointer;
mod config;
mod exchange;
mod host;
mod policies;
mod rounds;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use kimberlite::proof::WitnessPolicy;
use kimberlite::SignedCheckpoint;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use config::{WitnessingConfig, WitnessingError};
pub(crate) use host::Host;
pub use policies::{PolicyError, WitnessPolicies};

use crate::witnessing::host::{Client, Pending};

/// The witness client: its shared part ([`Host`]'s client) and its tasks.
#[derive(Debug)]
pub(crate) struct Witnessing {
    client: Arc<Client>,
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
        Ok(Self {
            client: Arc::new(Client::new(config)?),
            tasks: Mutex::new(Tasks::default()),
            stop: watch::channel(false).0,
        })
    }

    /// What the client's tasks share; [`Host`] carries it.
    pub(crate) fn client(&self) -> &Arc<Client> {
        &self.client
    }

    /// The policy of stream `name`, if it is witnessed.
    pub(crate) fn policy(&self, name: &str) -> Option<&Arc<WitnessPolicy>> {
        self.client.policy(name)
    }

    /// Hands `signed`, a new checkpoint of stream `stream`, to its worker (started if
    /// needed). Returns at once; nothing happens for a stream without a policy or once the
    /// server stops.
    pub(crate) fn submit(&self, host: &Host, stream: &str, signed: &SignedCheckpoint) {
        let Some(policy) = self.policy(stream) else {
            return;
        };
        let Some(id) = host.store.stream(stream) else {
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
        let work = rounds::worker_loop(
            host.clone(),
            Arc::clone(policy),
            latest,
            self.stop.subscribe(),
        );
        tasks.running.spawn(work);
        tasks.workers.insert(stream.to_owned(), worker);
    }

    /// Starts the background checkpointer, if an interval is configured. It hands what it
    /// signs to `this` (held weakly: the checkpointer never keeps the client alive).
    pub(crate) fn start(this: &Arc<Self>, host: &Host) {
        let Some(interval) = this.client.config.checkpoint_interval else {
            return;
        };
        let weak: Weak<Self> = Arc::downgrade(this);
        let submit = move |host: &Host, stream: &str, signed: &SignedCheckpoint| {
            if let Some(witnessing) = weak.upgrade() {
                witnessing.submit(host, stream, signed);
            }
        };
        let mut tasks = this.tasks.lock().unwrap_or_else(PoisonError::into_inner);
        if !tasks.stopped {
            let work = checkpointer::run(host.clone(), interval, this.stop.subscribe(), submit);
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
