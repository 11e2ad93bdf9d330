//! The counting client of the real-process tests: appends one event at a time, each with its
//! own request id, retrying the same id on another node after a refused connection, a timeout
//! or a 503 until the write is answered; follows each 307 itself. It records which events
//! were acknowledged, so the test can count what the cluster kept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// The client: its id (32 hex digits), the nodes it may talk to, the stream it appends to.
pub struct Counting {
    pub client_id: String,
    pub urls: Vec<String>,
    pub stream: String,
    pub http: Http,
    /// Events acknowledged so far, for a test to wait on.
    pub progress: AtomicU64,
}

impl Counting {
    pub fn new(urls: Vec<String>, stream: &str, token: &str, attempt_timeout: Duration) -> Self {
        static CLIENTS: AtomicU64 = AtomicU64::new(0);
        let client_id = format!(
            "{:016x}{:016x}",
            rand_bits(),
            CLIENTS.fetch_add(1, Ordering::SeqCst)
        );
        Self {
            client_id,
            urls,
            stream: stream.to_owned(),
            http: Http::new(token, attempt_timeout),
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
            let request_id = format!("{}-{sequence}", self.client_id);
            let deadline = Instant::now() + WRITE_RETRY_TIMEOUT;
            loop {
                match self.attempt(&self.urls[node % self.urls.len()], &text, &request_id) {
                    Attempt::Acknowledged(offset) => {
                        tally.acknowledged.insert(text, offset);
                        self.progress.fetch_add(1, Ordering::SeqCst);
                        break;
                    }
                    Attempt::Retry(_why) if Instant::now() < deadline => {
                        tally.retries += 1;
                        node += 1;
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    Attempt::Retry(why) => {
                        eprintln!("gave up on {text}: {why}");
                        tally.unknown.insert(text);
                        break;
                    }
                }
            }
        }
        tally
    }

    /// Sends one append of `text` to `url`, following redirects.
    fn attempt(&self, url: &str, text: &str, request_id: &str) -> Attempt {
        let mut base = url.to_owned();
        let mut target = format!("{base}/v1/streams/{}/events", self.stream);
        for _hop in 0..=REDIRECTS_MAX {
            let answer = match self.http.post(&target, &json!([text]), Some(request_id)) {
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
                    base.clone_from(&target);
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
