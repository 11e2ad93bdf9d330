//! Recording what clients did and saw, for the linearizability checker
//! (`kimberlite_raft::linearizability`): one logical clock shared by every client, so an
//! answer recorded before an invocation has a smaller time.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kimberlite_raft::linearizability::{self, AppendOutcome, Operation, Recorded, Time};
use kimberlite_raft::{Appended, Cluster, ClusterError, Faults, RequestId};

use crate::common::{
    assert_each_once_everywhere, assert_replicas_equal, event, request, stream_texts, WAIT,
};

/// How long [`Recorder::read`] keeps trying. A linearizable read is refused at once when the
/// leader's confirming heartbeat is lost (the faulty network) or a voter answers with a later
/// term: a node that stood for election while cut off or just restarted (a restarted leader
/// comes back a follower, docs/REPLICATION.md, section "The Raft log"). That leader steps
/// down and the next one takes an election (150-300 ms of silence in `common::options`); a
/// client would try again on it, and so does the recorder, through a few elections.
const READ_PATIENCE: Duration = Duration::from_millis(1_500);
/// One attempt's bound on finding a leader, then on its read.
const READ_ATTEMPT: Duration = Duration::from_millis(500);

/// The history of one run's operations on one stream.
#[derive(Debug, Default)]
pub struct Recorder {
    clock: AtomicU64,
    history: Mutex<Vec<Recorded>>,
}

impl Recorder {
    /// The time now: call it before invoking an operation and after its answer.
    pub fn now(&self) -> Time {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    /// Records an operation invoked at `invoked` and answered at `returned`.
    pub fn record(&self, operation: Operation, invoked: Time, returned: Option<Time>) {
        self.history.lock().unwrap().push(Recorded {
            operation,
            invoked,
            returned,
        });
    }

    /// Records an append of one event, `text`, invoked at `invoked`, that ended in `result`
    /// (answered now).
    pub fn record_append(
        &self,
        text: &str,
        invoked: Time,
        result: &Result<Appended, ClusterError>,
    ) {
        let (outcome, returned) = match result {
            Ok(appended) => (
                AppendOutcome::Acknowledged {
                    first_offset: appended.first_offset,
                },
                Some(self.now()),
            ),
            Err(ClusterError::Rejected(_)) => (AppendOutcome::Refused, Some(self.now())),
            Err(_) => (AppendOutcome::Unknown, None),
        };
        let events = vec![text.to_owned()];
        self.record(Operation::Append { events, outcome }, invoked, returned);
    }

    /// Appends one event through the cluster's client (retrying on the leader) and records it.
    pub async fn append(
        &self,
        cluster: &Cluster,
        request: RequestId,
        stream: u64,
        text: &str,
    ) -> Result<Appended, ClusterError> {
        let invoked = self.now();
        let result = cluster
            .append(request, stream, vec![event(text.to_owned())])
            .await;
        self.record_append(text, invoked, &result);
        result
    }

    /// A linearizable read of the whole stream on whichever node leads, tried again until
    /// one answers or [`READ_PATIENCE`] has passed; recorded if it answered (a failed read
    /// constrains nothing).
    pub async fn read(&self, cluster: &Cluster, stream: u64) {
        let deadline = Instant::now() + READ_PATIENCE;
        while !self.read_once(cluster, stream).await && Instant::now() < deadline {
            // A refusal comes at once, before the refused leader's metrics say it stepped
            // down: not a spin on it.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// One attempt of [`Recorder::read`]: whether it answered.
    async fn read_once(&self, cluster: &Cluster, stream: u64) -> bool {
        let Ok(leader) = cluster.leader(READ_ATTEMPT).await else {
            return false;
        };
        let Some(node) = cluster.node(leader) else {
            return false;
        };
        let invoked = self.now();
        let read = node.read_linearizable(stream, 0, u64::MAX);
        let Ok(Ok((events, _))) = tokio::time::timeout(READ_ATTEMPT, read).await else {
            return false;
        };
        let seen = events
            .iter()
            .map(|event| String::from_utf8(event.payload.to_vec()).expect("text"))
            .collect();
        self.record(Operation::Read { seen }, invoked, Some(self.now()));
        true
    }

    /// How many reads answered.
    pub fn reads(&self) -> usize {
        let history = self.history.lock().unwrap();
        history
            .iter()
            .filter(|recorded| matches!(recorded.operation, Operation::Read { .. }))
            .count()
    }

    /// The last write of a scenario under faults: heals the network of them and appends "end"
    /// (request 0/1) to `stream`; returns its log index.
    pub async fn append_end(&self, cluster: &Cluster, stream: u64) -> u64 {
        cluster.network().set_faults(Faults::default());
        let last = self
            .append(cluster, request(0, 1), stream, "end")
            .await
            .unwrap();
        last.log_id.index
    }

    /// Once every running node applied `index`, checks that they agree, that the history is
    /// linearizable against the leader's copy of `stream`, and that each of `acked` is there
    /// once on every node.
    pub async fn assert_settled(
        &self,
        cluster: &Cluster,
        stream: u64,
        index: u64,
        acked: &BTreeSet<String>,
        seed: u64,
    ) {
        assert_replicas_equal(cluster, index).await;
        let leader = cluster.leader(WAIT).await.unwrap();
        self.assert_linearizable(cluster, leader, stream, &format!("seed {seed}"));
        assert_each_once_everywhere(cluster, stream, acked, seed);
    }

    /// Checks the history against `stream` as node `id` holds it (replicas checked equal
    /// first); panics naming the violation.
    pub fn assert_linearizable(&self, cluster: &Cluster, id: u64, stream: u64, what: &str) {
        let texts = stream_texts(cluster, id, stream);
        let history = self.history.lock().unwrap();
        if let Err(violation) = linearizability::check(&history, &texts) {
            panic!(
                "{what}: not linearizable: {violation}\nstream: {texts:?}\nhistory: {history:#?}"
            );
        }
    }
}
