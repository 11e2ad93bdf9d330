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
//!
//! A large append ([`INLINE_EVENTS_MIN`] events or more, on a multi-threaded runtime) is
//! written the same way, its record with it and one sync, on its request's own thread
//! (`block_in_place`) instead: waking the writer, and then the request's thread back, costs
//! two wake-ups on its critical path that a batch written alone gains nothing from
//! (`docs/PERFORMANCE.md`, "Design decisions").

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

/// The fewest events of an append written on its request's own thread (see the module docs):
/// enough that the batch's own write dwarfs handing the runtime's worker to another thread.
pub(crate) const INLINE_EVENTS_MIN: usize = 256;

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
    /// The store and its access stream, for appends written on their request's thread.
    store: Kimberlite,
    stream: Option<StreamId>,
    /// Groups the writer thread wrote (tests tell which thread wrote an append by it).
    #[cfg(test)]
    groups: Arc<std::sync::atomic::AtomicU64>,
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
        #[cfg(test)]
        let groups = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let thread = std::thread::Builder::new()
            .name("kimberlite-access-log".into())
            .spawn({
                let (store, failed) = (store.clone(), Arc::clone(&failed));
                #[cfg(test)]
                let groups = Arc::clone(&groups);
                move || {
                    write_loop(&store, stream, &failed, receiver, || {
                        #[cfg(test)]
                        groups.fetch_add(1, Ordering::SeqCst);
                    });
                }
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
            store: store.clone(),
            stream,
            #[cfg(test)]
            groups,
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
        let inline = events.len() >= INLINE_EVENTS_MIN && multi_threaded_runtime();
        let job = Pending::Append {
            stream,
            events,
            expected,
            record,
            done,
        };
        match self.stream {
            // The slot is held until the append is written: room in the queue still bounds
            // the requests running at once.
            Some(access) if inline && !self.has_failed() => {
                tokio::task::block_in_place(|| {
                    write_group(&self.store, access, &self.failed, vec![job]);
                });
                drop(slot);
            }
            _ => {
                slot.0.send(job);
            }
        }
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

/// Whether this thread is a worker of a multi-threaded tokio runtime, where a task may block
/// its thread (`block_in_place`) without stopping the runtime's other tasks.
fn multi_threaded_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Writes what the queue holds, a group at a time, until every sender is gone; `taken` is
/// called as each group is taken, before its jobs are answered.
fn write_loop(
    store: &Kimberlite,
    stream: Option<StreamId>,
    failed: &AtomicBool,
    mut receiver: mpsc::Receiver<Pending>,
    taken: impl Fn(),
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
        taken();
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use kimberlite::{Config, Durability, ExpectedOffset, Kimberlite};

    use super::{AccessWriter, RecordClaim, ACCESS_STREAM, INLINE_EVENTS_MIN};

    /// Appends `count` events to stream `s` through `writer` with a record; returns whether
    /// the record was written with them and how many groups the writer thread wrote for it.
    async fn append(writer: &AccessWriter, count: usize) -> (bool, u64) {
        let before = writer.groups.load(Ordering::SeqCst);
        let slot = writer.reserve().await.expect("room");
        let claim = RecordClaim::new(slot, Box::new(|_| Ok(b"record".to_vec())));
        let events = vec![bytes::Bytes::from_static(b"event"); count];
        let (_, recorded) = writer
            .append(Some(claim), "s".into(), events, ExpectedOffset::Any)
            .await
            .expect("appended");
        (recorded, writer.groups.load(Ordering::SeqCst) - before)
    }

    /// A large append on a multi-threaded runtime is written on its request's thread (the
    /// writer thread writes no group for it), small ones and any on a current-thread runtime
    /// by the writer; each way the events and their record are durable when answered.
    #[test]
    fn large_appends_are_written_on_their_own_thread_with_their_record() {
        let dir = tempfile::tempdir().expect("dir");
        let config = Config::default().durability(Durability::GroupCommit);
        let store = Kimberlite::open_with(dir.path(), config).expect("open");
        let id = store.create_stream("s").expect("s");
        let writer = Arc::new(AccessWriter::start(&store));
        let access = store.stream(ACCESS_STREAM).expect("the access stream");
        let threads = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let on_worker = |count: usize| {
            let writer = Arc::clone(&writer);
            threads
                .block_on(threads.spawn(async move { append(&writer, count).await }))
                .expect("the task")
        };
        assert_eq!(
            on_worker(INLINE_EVENTS_MIN),
            (true, 0),
            "large, on a worker"
        );
        assert_eq!(on_worker(1), (true, 1), "small, on a worker");
        assert_eq!(
            threads.block_on(append(&writer, INLINE_EVENTS_MIN)),
            (true, 0),
            "large, in the runtime's block_on"
        );
        let one_thread = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        assert_eq!(
            one_thread.block_on(append(&writer, INLINE_EVENTS_MIN)),
            (true, 1),
            "large, on a current-thread runtime"
        );
        let written = 3 * INLINE_EVENTS_MIN as u64 + 1;
        assert_eq!(store.head(id).expect("head").next_offset.as_u64(), written);
        assert_eq!(store.head(access).expect("head").next_offset.as_u64(), 4);
        drop(writer);
        drop(store);
        let store = Kimberlite::open(dir.path()).expect("reopen");
        assert_eq!(store.head(id).expect("head").next_offset.as_u64(), written);
        assert_eq!(store.head(access).expect("head").next_offset.as_u64(), 4);
    }
}
