//! The access log's writer: one thread that appends the records of many requests to the
//! `_access` stream as one batch, through the store's group commit.
//!
//! Requests reserve a slot in a bounded channel before their handler runs, so when the log
//! falls behind, new requests wait for room instead of running unrecorded. Each record comes
//! with a one-shot answer: the request is answered only once its record is durable. A failed
//! append latches the writer failed: from then on every record is refused and requests are
//! answered 503 before their handler runs (fail-closed; `docs/SERVER.md`, section "Access
//! log").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// The system stream holding the access log.
pub const ACCESS_STREAM: &str = "_access";

/// Requests whose records may wait at once (in the channel or being appended); more wait for
/// room before their handler runs.
const QUEUE_RECORDS_MAX: usize = 4_096;

/// Most records appended as one batch.
const BATCH_RECORDS_MAX: usize = 1_024;

/// The answer a request gets for its record: durable, or why not.
pub(crate) type Ack = oneshot::Receiver<Result<(), String>>;

/// A record waiting to be appended, and where to say it was.
#[derive(Debug)]
pub(crate) struct Pending {
    record: Vec<u8>,
    done: oneshot::Sender<Result<(), String>>,
}

/// A reserved place in the writer's queue: taken before a handler runs, used once.
pub(crate) struct Slot(mpsc::OwnedPermit<Pending>);

impl Slot {
    /// Queues `record`; the answer says when it is durable.
    pub(crate) fn send(self, record: Vec<u8>) -> Ack {
        let (done, ack) = oneshot::channel();
        self.0.send(Pending { record, done });
        ack
    }
}

/// The access log's writer thread and its queue.
#[derive(Debug)]
pub(crate) struct AccessWriter {
    sender: Option<mpsc::Sender<Pending>>,
    failed: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AccessWriter {
    /// Opens (creating it if missing) the `_access` stream of `store` and starts the writer.
    /// When the stream cannot be opened, the writer starts failed.
    pub(crate) fn start(store: &Kimberlite) -> Self {
        let failed = Arc::new(AtomicBool::new(false));
        let stream = match store.stream(ACCESS_STREAM) {
            Some(id) => Some(id),
            None => store
                .create_stream(ACCESS_STREAM)
                .map_err(|error| {
                    tracing::error!(%error, "cannot create the access log stream");
                })
                .ok(),
        };
        if stream.is_none() {
            failed.store(true, Ordering::SeqCst);
        }
        let (sender, receiver) = mpsc::channel(QUEUE_RECORDS_MAX);
        let thread = std::thread::Builder::new()
            .name("kimberlite-access-log".into())
            .spawn({
                let (store, failed) = (store.clone(), Arc::clone(&failed));
                move || write_loop(&store, stream, &failed, receiver)
            })
            .map_err(|error| {
                tracing::error!(%error, "cannot start the access log writer");
                failed.store(true, Ordering::SeqCst);
            })
            .ok();
        Self {
            sender: Some(sender),
            failed,
            thread,
        }
    }

    /// Whether a record failed to be appended (or the log could not start): requests are
    /// refused from then on, until the server restarts.
    pub(crate) fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// A place in the queue, waiting for one while the queue is full; 503 once the writer has
    /// failed.
    pub(crate) async fn reserve(&self) -> Result<Slot, ApiError> {
        let refused = || {
            ApiError::Unavailable(
                "the access log cannot record requests, so none is served (fail-closed)".into(),
            )
        };
        if self.has_failed() {
            return Err(refused());
        }
        let sender = self.sender.clone().ok_or_else(refused)?;
        sender
            .reserve_owned()
            .await
            .map(Slot)
            .map_err(|_| refused())
    }
}

impl Drop for AccessWriter {
    /// Closes the queue and waits for the writer to append what is in it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Appends what the queue holds, a batch at a time, until every sender is gone.
fn write_loop(
    store: &Kimberlite,
    stream: Option<StreamId>,
    failed: &AtomicBool,
    mut receiver: mpsc::Receiver<Pending>,
) {
    while let Some(first) = receiver.blocking_recv() {
        // Records queued while the last batch was being synced go together as the next one.
        let mut batch = vec![first];
        while batch.len() < BATCH_RECORDS_MAX {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        let (records, answers): (Vec<Vec<u8>>, Vec<_>) = batch
            .into_iter()
            .map(|pending| (pending.record, pending.done))
            .unzip();
        let outcome = match stream {
            _ if failed.load(Ordering::SeqCst) => Err("the access log has failed".to_owned()),
            None => Err("the access log stream could not be opened".to_owned()),
            Some(id) => store
                .append(id, records, ExpectedOffset::Any)
                .map(|_| ())
                .map_err(|error| error.to_string()),
        };
        if let Err(error) = &outcome {
            if !failed.swap(true, Ordering::SeqCst) {
                tracing::error!(%error, "the access log cannot append: refusing requests");
            }
        }
        for answer in answers {
            let _ = answer.send(outcome.clone());
        }
    }
}
