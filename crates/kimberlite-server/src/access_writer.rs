//! The access log's writer: one thread that appends the records of many requests to the
//! `_access` stream as one batch, and the appends of those requests with them, through the
//! store's two-step appends (`Kimberlite::write_all`, then one `make_durable`).
//!
//! Requests reserve a slot in a bounded channel before their handler runs, so when the log
//! falls behind, new requests wait for room instead of running unrecorded. Each job comes
//! with a one-shot answer: the request is answered only once its record is durable. An append
//! handler sends its events through the slot ([`RecordClaim`]), with what its record will
//! say once its offsets are known: the writer writes the group's appends, then their records
//! (and the records of other requests), then syncs once, so an append costs no thread of its
//! own and its record no second sync (`docs/PERFORMANCE.md`, "Design decisions"). A failed
//! append of records latches the writer failed: from then on every job is refused and
//! requests are answered 503 before their handler runs (fail-closed; `docs/SERVER.md`,
//! section "Access log").

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use bytes::Bytes;
use kimberlite::{AppendResult, ExpectedOffset, Kimberlite, StreamId, Written};
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;

/// The system stream holding the access log.
pub const ACCESS_STREAM: &str = "_access";

/// Requests whose jobs may wait at once (in the channel or being written); more wait for
/// room before their handler runs.
const QUEUE_RECORDS_MAX: usize = 4_096;

/// Most jobs written as one group.
const BATCH_RECORDS_MAX: usize = 1_024;

/// The answer a request gets for its record: durable, or why not.
pub(crate) type Ack = oneshot::Receiver<Result<(), String>>;

/// Makes an append's access record once its offsets are known (prepared by the access log's
/// middleware before the handler runs).
pub(crate) type RecordOfAppend = Box<dyn FnOnce(&AppendResult) -> Result<Vec<u8>, String> + Send>;

/// What an append through the writer answers: its result and whether its record was written
/// with it, or why it is not acknowledged.
type AppendAnswer = Result<(AppendResult, bool), AppendFailure>;

/// A job waiting to be written, and where to say it was.
pub(crate) enum Pending {
    /// A request's access record.
    Record {
        record: Vec<u8>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// An append, and its record when it succeeds (`None`: recorded by the middleware).
    Append {
        stream: String,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
        record: Option<RecordOfAppend>,
        done: oneshot::Sender<AppendAnswer>,
    },
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Record { record, .. } => write!(f, "Record({} bytes)", record.len()),
            Self::Append { stream, events, .. } => {
                write!(f, "Append({stream:?}, {} events)", events.len())
            }
        }
    }
}

/// A reserved place in the writer's queue: taken before a handler runs, used once.
pub(crate) struct Slot(mpsc::OwnedPermit<Pending>);

impl Slot {
    /// Queues `record`; the answer says when it is durable.
    pub(crate) fn send(self, record: Vec<u8>) -> Ack {
        let (done, ack) = oneshot::channel();
        self.0.send(Pending::Record { record, done });
        ack
    }
}

/// The access log's claim on a request, put in its extensions by the middleware: the slot
/// reserved for its record, and how to record a successful append. The append handler takes
/// it to have its record written with its events; otherwise the middleware uses the slot.
#[derive(Clone)]
pub(crate) struct RecordClaim(Arc<Mutex<Option<(Slot, RecordOfAppend)>>>);

impl RecordClaim {
    pub(crate) fn new(slot: Slot, record: RecordOfAppend) -> Self {
        Self(Arc::new(Mutex::new(Some((slot, record)))))
    }

    /// The slot and the record maker, the first time only.
    pub(crate) fn take(&self) -> Option<(Slot, RecordOfAppend)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// In a response's extensions: the request's access record is durable already (written with
/// its append), so the middleware writes none.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recorded;

/// Why an append through the writer is not acknowledged.
#[derive(Debug)]
pub(crate) enum AppendFailure {
    /// The store refused or failed it.
    Store(kimberlite::Error),
    /// It may be written, but its record could not be made durable.
    Unrecorded(String),
}

impl From<AppendFailure> for ApiError {
    fn from(failure: AppendFailure) -> Self {
        match failure {
            AppendFailure::Store(error) => ApiError::Store(error),
            AppendFailure::Unrecorded(error) => ApiError::Unavailable(format!(
                "the access log could not record this request, so it is not acknowledged \
                 (it may have taken effect): {error}"
            )),
        }
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

    /// Appends `events` to `stream` through the writer, with the access record of `claim`
    /// (the request's, when the access log records it) in the same sync. Returns the result
    /// once it is durable, and whether the record was written with it.
    pub(crate) async fn append(
        &self,
        claim: Option<RecordClaim>,
        stream: String,
        events: Vec<Bytes>,
        expected: ExpectedOffset,
    ) -> Result<(AppendResult, bool), ApiError> {
        let (slot, record) = match claim.and_then(|claim| claim.take()) {
            Some((slot, record)) => (slot, Some(record)),
            None => (self.reserve().await?, None),
        };
        let (done, answer) = oneshot::channel();
        slot.0.send(Pending::Append {
            stream,
            events,
            expected,
            record,
            done,
        });
        match answer.await {
            Ok(answer) => answer.map_err(ApiError::from),
            Err(_) => Err(ApiError::Unavailable(
                "the writer stopped before this append was durable".into(),
            )),
        }
    }
}

impl Drop for AccessWriter {
    /// Closes the queue and waits for the writer to write what is in it.
    fn drop(&mut self) {
        self.sender.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes what the queue holds, a group at a time, until every sender is gone.
fn write_loop(
    store: &Kimberlite,
    stream: Option<StreamId>,
    failed: &AtomicBool,
    mut receiver: mpsc::Receiver<Pending>,
) {
    while let Some(first) = receiver.blocking_recv() {
        // Jobs queued while the last group was being synced go together as the next one.
        let mut jobs = vec![first];
        while jobs.len() < BATCH_RECORDS_MAX {
            match receiver.try_recv() {
                Ok(pending) => jobs.push(pending),
                Err(_) => break,
            }
        }
        let access = match stream {
            _ if failed.load(Ordering::SeqCst) => Err("the access log has failed".to_owned()),
            None => Err("the access log stream could not be opened".to_owned()),
            Some(id) => Ok(id),
        };
        match access {
            Ok(access) => write_group(store, access, failed, jobs),
            Err(error) => refuse(jobs, &error),
        }
    }
}

/// Answers every job of `jobs` with `error`, writing nothing.
fn refuse(jobs: Vec<Pending>, error: &str) {
    for job in jobs {
        match job {
            Pending::Record { done, .. } => {
                let _ = done.send(Err(error.to_owned()));
            }
            Pending::Append { done, .. } => {
                let _ = done.send(Err(AppendFailure::Unrecorded(error.to_owned())));
            }
        }
    }
}

/// Writes the appends of `jobs`, then every record (those of the appends that succeeded,
/// after the others'), as one batch of the access stream `access`; syncs once; answers.
fn write_group(store: &Kimberlite, access: StreamId, failed: &AtomicBool, jobs: Vec<Pending>) {
    let mut appends = Vec::new();
    let mut append_answers = Vec::new();
    let mut records = Vec::new();
    let mut record_answers = Vec::new();
    for job in jobs {
        match job {
            Pending::Record { record, done } => {
                records.push(record);
                record_answers.push(done);
            }
            Pending::Append {
                stream,
                events,
                expected,
                record,
                done,
            } => match store.stream(&stream) {
                Some(id) => {
                    appends.push((id, events, expected));
                    append_answers.push((record, done));
                }
                None => {
                    let error = kimberlite::Error::StreamNotFound { name: stream };
                    let _ = done.send(Err(AppendFailure::Store(error)));
                }
            },
        }
    }
    let (results, mut written) = if appends.is_empty() {
        (Vec::new(), None)
    } else {
        let (results, written) = store.write_all(appends);
        (results, Some(written))
    };
    // Which appends have their record in this group (`Err`: it could not be made).
    let mut recorded: Vec<Result<bool, String>> = Vec::with_capacity(results.len());
    for ((record, _), result) in append_answers.iter_mut().zip(&results) {
        recorded.push(match (record.take(), result) {
            (Some(make), Ok(appended)) => make(appended).map(|record| {
                records.push(record);
                true
            }),
            _ => Ok(false),
        });
    }
    let mut record_outcome = Ok(());
    if !records.is_empty() {
        let (mut result, record_written) = store.write_all(vec![(
            access,
            records.into_iter().map(Bytes::from).collect(),
            ExpectedOffset::Any,
        )]);
        written = later(written, record_written);
        if let Some(Err(error)) = result.pop() {
            record_outcome = Err(error.to_string());
        }
    }
    let synced = written.map_or(Ok(()), |written| store.make_durable(written));
    let sync_failed = synced.is_err();
    let mut sync_error = synced.err();
    if let (Ok(()), Some(error)) = (&record_outcome, &sync_error) {
        record_outcome = Err(error.to_string());
    }
    let wrote_records = !record_answers.is_empty() || recorded.iter().any(|r| r != &Ok(false));
    if let Err(error) = &record_outcome {
        if wrote_records && !failed.swap(true, Ordering::SeqCst) {
            tracing::error!(%error, "the access log cannot append: refusing requests");
        }
    }
    for done in record_answers {
        let _ = done.send(record_outcome.clone());
    }
    for (((_, done), result), recorded) in append_answers.into_iter().zip(results).zip(recorded) {
        let answer = match (result, recorded) {
            // Refused: nothing written, so nothing to wait for.
            (Err(error), _) => Err(AppendFailure::Store(error)),
            // Written but not durable: the first gets the sync's error, the rest `Poisoned`
            // (as group commit answers its callers).
            (Ok(_), _) if sync_failed => Err(AppendFailure::Store(
                sync_error.take().unwrap_or(kimberlite::Error::Poisoned),
            )),
            (Ok(_), Err(error)) => Err(AppendFailure::Unrecorded(error)),
            (Ok(_), Ok(true)) if record_outcome.is_err() => Err(AppendFailure::Unrecorded(
                record_outcome.clone().err().unwrap_or_default(),
            )),
            (Ok(appended), Ok(recorded)) => Ok((appended, recorded)),
        };
        let _ = done.send(answer);
    }
}

/// The later of two tickets (each covers every write before it).
fn later(a: Option<Written>, b: Written) -> Option<Written> {
    Some(a.map_or(b, |a| a.max(b)))
}
