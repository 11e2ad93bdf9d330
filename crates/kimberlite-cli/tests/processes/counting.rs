//! The counting clients of the real-process tests: each appends one event at a time, each
//! event its own request id, and records which were acknowledged, so the test can count what
//! the cluster kept. Two kinds: the test's own (every 307 followed by hand, the same id
//! retried on the next node after a refused connection, a timeout or a 503, until the write
//! is answered), which checks the server's side of request ids; and `kimberlite-client`
//! (its own redirects, request ids and retries over the nodes it is given).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kimberlite_client::{Client, RetryPolicy};
use serde_json::json;

use super::http::Http;

/// How long one write is retried before the client gives up on it (its outcome unknown).
pub const WRITE_RETRY_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed for one attempt.
const REDIRECTS_MAX: u32 = 4;

/// What the client saw.
#[derive(Debug, Default)]
pub struct Tally {
    /// Acknowledged events: their text and the offset the cluster gave.
    pub acknowledged: BTreeMap<String, u64>,
    /// Events the client gave up on: maybe written, maybe not.
    pub unknown: BTreeSet<String>,
    /// Attempts that were retried (connection refused, timeout, 503, too many redirects).
    pub retries: u64,
}

/// How one attempt ended.
enum Attempt {
    Acknowledged(u64),
    Retry(String),
}

/// How a counting client writes.
enum Writer {
    /// The test's own HTTP calls to these nodes.
    Raw { http: Http, urls: Vec<String> },
    /// `kimberlite-client`, given every node.
    Client(Box<Client>),
}

/// A counting client: its id (32 hex digits, which its events carry), how it writes, the
/// stream it appends to.
pub struct Counting {
    pub client_id: String,
    writer: Writer,
    pub stream: String,
    /// Events acknowledged so far, for a test to wait on.
    pub progress: AtomicU64,
}

impl Counting {
    /// The test's own client of the nodes at `urls`.
    pub fn raw(urls: Vec<String>, stream: &str, token: &str, attempt_timeout: Duration) -> Self {
        let http = Http::new(token, attempt_timeout);
        Self::with_writer(Writer::Raw { http, urls }, stream)
    }

    /// `kimberlite-client` over the nodes at `urls`, retrying for about
    /// [`WRITE_RETRY_TIMEOUT`].
    pub fn client(urls: &[String], stream: &str, token: &str, attempt_timeout: Duration) -> Self {
        let (first, others) = urls.split_first().expect("a node");
        let mut builder = Client::builder(first)
            .token(token)
            .request_timeout(attempt_timeout)
            .retry(RetryPolicy {
                attempts: 60,
                first_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(500),
            });
        for url in others {
            builder = builder.other_node(url);
        }
        let client = builder.build().expect("a kimberlite-client");
        Self::with_writer(Writer::Client(Box::new(client)), stream)
    }

    fn with_writer(writer: Writer, stream: &str) -> Self {
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let client_id = format!(
            "{:016x}{:016x}",
            rand_bits(),
            CLIENTS.fetch_add(1, Ordering::SeqCst)
        );
        Self {
            client_id,
            writer,
            stream: stream.to_owned(),
            progress: AtomicU64::new(0),
        }
    }

    /// Waits until `more` events beyond `since` are acknowledged; false after `timeout`.
    pub fn wait_progress(&self, since: u64, more: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.progress.load(Ordering::SeqCst) >= since + more {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// The text of event `sequence`: unique to this client.
    pub fn event_text(&self, sequence: u64) -> String {
        format!("{}{sequence}", self.prefix())
    }

    /// What the text of every event of this client starts with.
    pub fn prefix(&self) -> String {
        format!("event {}-", self.client_id)
    }

    /// Appends events `0..events_max` one at a time until `stop` is set; returns the tally.
    pub fn run(&self, stop: &AtomicBool, events_max: u64) -> Tally {
        let mut tally = Tally::default();
        let mut node = 0;
        for sequence in 0..events_max {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let text = self.event_text(sequence);
            let outcome = match &self.writer {
                Writer::Raw { http, urls } => {
                    self.write_raw(http, urls, &mut node, &text, sequence, &mut tally)
                }
                Writer::Client(client) => client
                    .append(&self.stream, &[text.as_bytes()], None)
                    .map(|appended| appended.first_offset)
                    .map_err(|error| error.to_string()),
            };
            match outcome {
                Ok(offset) => {
                    tally.acknowledged.insert(text, offset);
                    self.progress.fetch_add(1, Ordering::SeqCst);
                }
                Err(why) => {
                    eprintln!("gave up on {text}: {why}");
                    tally.unknown.insert(text);
                }
            }
        }
        tally
    }

    /// Writes event `sequence` through the test's own calls, retrying its request id on the
    /// next node until answered or [`WRITE_RETRY_TIMEOUT`] passed.
    fn write_raw(
        &self,
        http: &Http,
        urls: &[String],
        node: &mut usize,
        text: &str,
        sequence: u64,
        tally: &mut Tally,
    ) -> Result<u64, String> {
        let request_id = format!("{}-{sequence}", self.client_id);
        let deadline = Instant::now() + WRITE_RETRY_TIMEOUT;
        loop {
            match self.attempt(http, &urls[*node % urls.len()], text, &request_id) {
                Attempt::Acknowledged(offset) => return Ok(offset),
                Attempt::Retry(_why) if Instant::now() < deadline => {
                    tally.retries += 1;
                    *node += 1;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Attempt::Retry(why) => return Err(why),
            }
        }
    }

    /// Sends one append of `text` to `url`, following redirects.
    fn attempt(&self, http: &Http, url: &str, text: &str, request_id: &str) -> Attempt {
        let mut target = format!("{url}/v1/streams/{}/events", self.stream);
        for _hop in 0..=REDIRECTS_MAX {
            let answer = match http.post(&target, &json!([text]), Some(request_id)) {
                Ok(answer) => answer,
                Err(error) => return Attempt::Retry(error),
            };
            match answer.status {
                200 | 201 => {
                    let offset = answer.json()["first_offset"]
                        .as_u64()
                        .expect("an acknowledgement names its first offset");
                    return Attempt::Acknowledged(offset);
                }
                307 | 308 => {
                    target = answer.location.expect("a redirect names where");
                }
                408 | 500..=599 => {
                    return Attempt::Retry(format!("{}: {}", answer.status, answer.body))
                }
                status => panic!("append to {target}: {status} {}", answer.body),
            }
        }
        Attempt::Retry(format!("more than {REDIRECTS_MAX} redirects from {url}"))
    }
}

/// A few bits that differ between runs, without a random-number crate.
fn rand_bits() -> u64 {
    let time = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    time.rotate_left(17) ^ u64::from(std::process::id())
}

/// Runs `counting` on a thread of its own until `stop` is set.
pub fn spawn(
    counting: Arc<Counting>,
    stop: Arc<AtomicBool>,
    events_max: u64,
) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || counting.run(&stop, events_max))
}

/// What the cluster kept of a client's events, counted on one node's copy of the stream.
#[derive(Debug, PartialEq, Eq)]
pub struct Count {
    pub acknowledged: usize,
    pub found: usize,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    /// Acknowledged events found at another offset than the one acknowledged.
    pub misplaced: Vec<String>,
    /// Found events the client never saw acknowledged (given up on): allowed, counted.
    pub found_unacknowledged: usize,
}

/// Counts `tally` against `events`, the `(offset, text)` pairs of the stream on one node.
pub fn count(tally: &Tally, prefix: &str, events: &[(u64, String)]) -> Count {
    let mut seen: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for (offset, text) in events.iter().filter(|(_, text)| text.starts_with(prefix)) {
        seen.entry(text.as_str()).or_default().push(*offset);
    }
    let lost = tally
        .acknowledged
        .keys()
        .filter(|text| !seen.contains_key(text.as_str()))
        .cloned()
        .collect();
    let duplicated = seen
        .iter()
        .filter(|(_, offsets)| offsets.len() > 1)
        .map(|(text, offsets)| format!("{text} at {offsets:?}"))
        .collect();
    let misplaced = tally
        .acknowledged
        .iter()
        .filter_map(|(text, offset)| {
            let offsets = seen.get(text.as_str())?;
            (offsets.first() != Some(offset)).then(|| format!("{text}: {offset} -> {offsets:?}"))
        })
        .collect();
    let found_unacknowledged = seen
        .keys()
        .filter(|text| !tally.acknowledged.contains_key(**text))
        .count();
    Count {
        acknowledged: tally.acknowledged.len(),
        found: seen.len(),
        lost,
        duplicated,
        misplaced,
        found_unacknowledged,
    }
}
