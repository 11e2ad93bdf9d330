//! The HTTP transport plus the store's necessary work: the second bound the server benches
//! print beside their `RESULT` ("transport + store").
//!
//! The bare hyper server of [`crate::http_floor`] (same runtime, same connections), whose
//! handler reads the request's whole body, cuts its length-prefixed events from it, and hands
//! them to a writer thread doing group commit as the server's access-log writer does
//! (`Kimberlite::write_all` of every queued append, then one fixed access record per request
//! to a second stream, then one `make_durable`); it answers a fixed 200 only once the
//! request's events and its record are durable. An append of [`INLINE_EVENTS_MIN`] events or
//! more is written the same way on its request's own thread, as the server writes it. The
//! store is opened as the benches' embedded side opens theirs
//! ([`crate::server::store_config`]). No keys, routing, JSON, metrics, limits or timers: what
//! any server that records every request must do, over HTTP/1.1 with hyper, and nothing it
//! may skip (`docs/PERFORMANCE.md`, section "Why the unmet targets are not met").

use std::path::Path;
use std::thread::JoinHandle;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use kimberlite::{ExpectedOffset, Kimberlite, StreamId};
use tokio::runtime::Runtime;
use tokio::sync::{mpsc, oneshot};

use crate::http_floor::FloorServer;
use crate::server::open_store;

/// The stream the fixed access records go to.
pub const RECORDS_STREAM: &str = "_access";

/// Each request's access record: a fixed line the size of the server's (~150 B).
const RECORD: &[u8] = br#"{"time":"2026-01-01T00:00:00.000Z","key":"kid_0123456789abcdef","op":"POST /v1/streams/{stream}/events","stream":"bench","from":0,"to":1,"status":200}"#;

/// Bodies up to this size are copied out of the connection's read buffer, as the server's
/// append route copies them (a slice would keep the whole buffer alive in the store).
const COPY_BODY_MAX: usize = 64 * 1024;

/// The fewest events of an append written on its request's own thread (the server's
/// `INLINE_EVENTS_MIN`).
pub const INLINE_EVENTS_MIN: usize = 256;

/// Most requests written as one group (the server's writer's bound).
const GROUP_MAX: usize = 1_024;

/// A request's events, and where to say they and its record are durable.
struct Job {
    events: Vec<Bytes>,
    done: oneshot::Sender<bool>,
}

/// The store and its two streams, as the writer and inline appends use them.
#[derive(Clone)]
struct Sink {
    store: Kimberlite,
    events: StreamId,
    records: StreamId,
}

/// Waits for the writer thread when dropped (after the server's runtime, so after every
/// sender of its queue is gone).
struct WriterThread(Option<JoinHandle<()>>);

impl Drop for WriterThread {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

/// The transport-plus-store server, stopped on drop.
/// (Fields drop in order: the server's runtime, holding every sender, before the writer.)
pub struct StoreFloorServer {
    floor: FloorServer,
    _writer: WriterThread,
}

impl StoreFloorServer {
    /// Opens (creating) a store in `dir` with the stream `stream` and [`RECORDS_STREAM`],
    /// and starts the server on 127.0.0.1, answering every durable append with 200 and
    /// `answer_bytes` bytes of body.
    ///
    /// # Panics
    ///
    /// Panics if the store cannot be opened, the runtime cannot start or the address cannot
    /// be bound.
    #[must_use]
    pub fn start(dir: &Path, stream: &str, answer_bytes: usize) -> Self {
        let store = open_store(dir, &[stream.to_string(), RECORDS_STREAM.to_string()]);
        let sink = Sink {
            events: store.stream(stream).expect("the events stream"),
            records: store.stream(RECORDS_STREAM).expect("the records stream"),
            store,
        };
        let (sender, mut receiver) = mpsc::unbounded_channel::<Job>();
        let writer = std::thread::Builder::new()
            .name("store-floor-writer".into())
            .spawn({
                let sink = sink.clone();
                move || {
                    while let Some(first) = receiver.blocking_recv() {
                        let mut jobs = vec![first];
                        while jobs.len() < GROUP_MAX {
                            match receiver.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        }
                        write_group(&sink, jobs);
                    }
                }
            })
            .expect("start the store floor's writer");
        let answer = Bytes::from(vec![b'0'; answer_bytes]);
        let floor = FloorServer::serve(move |request: Request<Incoming>| {
            let (answer, sender, sink) = (answer.clone(), sender.clone(), sink.clone());
            async move {
                let Ok(body) = request.into_body().collect().await else {
                    return status(StatusCode::BAD_REQUEST);
                };
                let mut body = body.to_bytes();
                if body.len() <= COPY_BODY_MAX {
                    body = Bytes::copy_from_slice(&body);
                }
                let Some(events) = cut(body) else {
                    return status(StatusCode::BAD_REQUEST);
                };
                let (done, durable) = oneshot::channel();
                let job = Job { events, done };
                if job.events.len() >= INLINE_EVENTS_MIN {
                    tokio::task::block_in_place(|| write_group(&sink, vec![job]));
                } else if sender.send(job).is_err() {
                    return status(StatusCode::SERVICE_UNAVAILABLE);
                }
                match durable.await {
                    Ok(true) => Response::new(Full::new(answer)),
                    _ => status(StatusCode::SERVICE_UNAVAILABLE),
                }
            }
        });
        Self {
            floor,
            _writer: WriterThread(Some(writer)),
        }
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> std::net::SocketAddr {
        self.floor.addr()
    }

    /// The runtime the server (and the clients timing it) run on.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        self.floor.runtime()
    }
}

/// An empty answer with `code`.
fn status(code: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = code;
    response
}

/// The events of a length-prefixed body (each a 4-byte big-endian length, then its bytes),
/// as slices of it; `None` if it is cut short.
fn cut(mut body: Bytes) -> Option<Vec<Bytes>> {
    let mut events = Vec::new();
    while body.has_remaining() {
        if body.len() < 4 {
            return None;
        }
        let len = body.get_u32() as usize;
        if body.len() < len {
            return None;
        }
        events.push(body.split_to(len));
    }
    Some(events)
}

/// Writes the appends of `jobs` and one record per job under one hold of the write lock
/// (the records need no offsets), syncs once, answers each job.
fn write_group(sink: &Sink, jobs: Vec<Job>) {
    let mut answers = Vec::with_capacity(jobs.len());
    let mut appends: Vec<_> = jobs
        .into_iter()
        .map(|job| {
            answers.push(job.done);
            (sink.events, job.events, ExpectedOffset::Any)
        })
        .collect();
    let records = vec![Bytes::from_static(RECORD); answers.len()];
    appends.push((sink.records, records, ExpectedOffset::Any));
    let (mut results, written) = sink.store.write_all(appends);
    let recorded = results.pop().is_some_and(|result| result.is_ok());
    let durable = recorded && sink.store.make_durable(written).is_ok();
    for (done, result) in answers.into_iter().zip(results) {
        let _ = done.send(durable && result.is_ok());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrent::single_appends;
    use crate::http_client::{connect_all, length_prefixed};
    use crate::server::store_config;

    #[test]
    fn every_answered_request_has_its_events_and_one_record_durable() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let floor = StoreFloorServer::start(dir.path(), "s", 97);
            let mut clients = connect_all(floor.runtime(), floor.addr(), "s", 3);
            let round = single_appends(floor.runtime(), &mut clients, 4);
            assert_eq!(round.latencies.len(), 12);
            let batch = length_prefixed(&crate::events(0, INLINE_EVENTS_MIN));
            floor.runtime().block_on(clients[0].append_batch(batch));
            assert_eq!(clients[0].answer_body_len(), 97);
            drop(clients);
        }
        let store = Kimberlite::open_with(dir.path(), store_config()).expect("reopen");
        let head = |name: &str| {
            let id = store.stream(name).expect("a stream");
            store.head(id).expect("head").next_offset.as_u64()
        };
        assert_eq!(head("s"), 12 + INLINE_EVENTS_MIN as u64);
        assert_eq!(head(RECORDS_STREAM), 13);
    }

    #[test]
    fn a_body_cut_short_has_no_events() {
        assert_eq!(
            cut(Bytes::from_static(b"\0\0\0\x02ab")).map(|e| e.len()),
            Some(1)
        );
        assert_eq!(cut(Bytes::from_static(b"\0\0\0\x03ab")), None);
        assert_eq!(cut(Bytes::from_static(b"\0\0")), None);
    }
}
