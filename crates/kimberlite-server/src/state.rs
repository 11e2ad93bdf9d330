//! What every handler shares: the store, the keys, the limits.

use std::sync::Arc;

use kimberlite::sealed::{KeyWrapper, SubjectKeys};
use kimberlite::Kimberlite;

use crate::access_writer::AccessWriter;
use crate::cluster::{Cluster, ClusterError};
use crate::config::Limits;
use crate::error::ApiError;
use crate::follow::Followers;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::signing::Signing;
use crate::witnessing::{Host, Witnessing, WitnessingConfig, WitnessingError};
use kimberlite::proof::{InvalidStoreName, SignerKey};

/// The state handlers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
    /// Origins, and the key checkpoints are signed with (`api/checkpoint.rs`).
    signing: Arc<Signing>,
    /// The witness client, when checkpoints are witnessed (`witnessing`).
    witnessing: Option<Arc<Witnessing>>,
    /// The data subjects' keys, with the server's master key (`serve --master-key`): sealed
    /// appends, opened reads, erasures (`api/erase.rs`).
    subjects: Option<Arc<SubjectKeys>>,
    /// Cluster mode: this server's replica (`serve --node-id`); the store above is then the
    /// node's own access store (`DIR/access/`), and every other stream is the replica's.
    cluster: Option<Arc<Cluster>>,
}

/// Which store holds a stream: the replica's, or (in cluster mode, for `_access`) the
/// node's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    node_local: bool,
}

impl Place {
    /// Whether the stream is the node's own (its access log in cluster mode).
    pub(crate) fn is_node_local(self) -> bool {
        self.node_local
    }
}

#[derive(Debug)]
struct Shared {
    store: Kimberlite,
    keys: KeyRing,
    limits: Limits,
    followers: Arc<Followers>,
    metrics: Metrics,
    /// Declared after `store`'s users: dropping it waits for the log's last records.
    access_log: AccessWriter,
    /// Set once shutdown begins: `/readyz` answers 503 from then on.
    stopping: std::sync::atomic::AtomicBool,
    /// One clone per request the access log runs (`access_log.rs`): shutdown waits for them,
    /// since a request cut from its connection goes on, holding the store, until it ends.
    request_tasks: Arc<()>,
}

impl AppState {
    /// State over an open `store`, with `keys` and `limits`. Opens the access log (creating
    /// its stream `_access` if missing) and starts its writer.
    #[must_use]
    pub fn new(store: Kimberlite, keys: KeyRing, limits: Limits) -> Self {
        let followers = Followers::of_store(&store);
        let signing = Arc::new(Signing::of_store(&store));
        let access_log = AccessWriter::start(&store);
        Self {
            inner: Arc::new(Shared {
                store,
                keys,
                limits,
                followers,
                metrics: Metrics::new(),
                access_log,
                stopping: std::sync::atomic::AtomicBool::new(false),
                request_tasks: Arc::new(()),
            }),
            signing,
            witnessing: None,
            subjects: None,
            cluster: None,
        }
    }

    /// This state serving `cluster`'s replica: the state's own store keeps only the node's
    /// access log (docs/SERVER.md, "Cluster mode"). Refused with witnessing or a master key,
    /// which would write to the replica's store outside the Raft log (a signing key is
    /// welcome: checkpoints are published through the log).
    pub fn with_cluster(mut self, cluster: Arc<Cluster>) -> Result<Self, ClusterError> {
        let refused = if self.witnessing.is_some() {
            Some("--witness-policy")
        } else if self.subjects.is_some() {
            Some("--master-key")
        } else {
            None
        };
        if let Some(flag) = refused {
            return Err(ClusterError::Config(format!(
                "{flag} is not available in cluster mode yet: it would write to one replica's \
                 store outside the Raft log, and the replicas would diverge"
            )));
        }
        self.cluster = Some(cluster);
        Ok(self)
    }

    /// The cluster this server is a node of, in cluster mode.
    #[must_use]
    pub fn cluster(&self) -> Option<Arc<Cluster>> {
        self.cluster.clone()
    }

    /// Refuses a request that cannot be served in cluster mode, saying `why`.
    pub(crate) fn refuse_in_cluster(&self, why: &str) -> Result<(), ApiError> {
        match self.cluster {
            Some(_) => Err(ApiError::NotInCluster(why.to_owned())),
            None => Ok(()),
        }
    }

    /// Which store holds stream `name`.
    pub(crate) fn place(&self, name: &str) -> Place {
        Place {
            node_local: self.cluster.is_some() && name == crate::access_writer::ACCESS_STREAM,
        }
    }

    /// Every stream: the replica's, and in cluster mode the node's access log.
    pub(crate) async fn list_streams(&self) -> Result<Vec<kimberlite::StreamInfo>, ApiError> {
        let mut streams = self.with_store(|store| Ok(store.list_streams())).await?;
        if self.cluster.is_some() {
            let local = Place { node_local: true };
            let access = self
                .with_store_at(local, |store| Ok(store.list_streams()))
                .await?;
            streams.retain(|info| info.name != crate::access_writer::ACCESS_STREAM);
            streams.extend(access);
        }
        Ok(streams)
    }

    /// This state, with the store's key store opened with `master` (the server's master key):
    /// appends may name a data subject, reads open sealed events, erasures are served.
    pub fn with_master_key(
        mut self,
        master: Arc<dyn KeyWrapper>,
    ) -> Result<Self, kimberlite::Error> {
        self.subjects = Some(Arc::new(SubjectKeys::open(self.store(), master)?));
        Ok(self)
    }

    /// The key store, or why the request cannot be served without one.
    pub(crate) fn subjects(&self) -> Result<Arc<SubjectKeys>, ApiError> {
        self.subjects.clone().ok_or_else(|| {
            ApiError::BadRequest(
                "this server has no master key (kimberlite serve --master-key FILE): it cannot \
                 seal events for a data subject or erase one"
                    .to_owned(),
            )
        })
    }

    /// The key store, when the server has its master key.
    pub(crate) fn subject_keys(&self) -> Option<Arc<SubjectKeys>> {
        self.subjects.clone()
    }

    pub(crate) fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub(crate) fn access_log(&self) -> &AccessWriter {
        &self.inner.access_log
    }

    /// Marks the server as stopping: `/readyz` answers 503 from then on.
    pub fn begin_shutdown(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the server can take requests that write: the store is open for writing and
    /// has not failed, the access log records, and shutdown has not begun. What `/readyz`
    /// answers.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        let store = self.store();
        !self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
            && !store.is_read_only()
            && !store.has_failed()
            && !self.access_log().has_failed()
            && self
                .cluster
                .as_ref()
                .is_none_or(|cluster| cluster.node().halted().is_none())
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Kimberlite {
        &self.inner.store
    }

    /// The keys requests are checked against.
    #[must_use]
    pub fn keys(&self) -> &KeyRing {
        &self.inner.keys
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Tails and long polls, and what wakes them.
    pub(crate) fn followers(&self) -> &Arc<Followers> {
        &self.inner.followers
    }

    /// Tails open now.
    #[must_use]
    pub fn open_tails(&self) -> usize {
        self.inner.followers.open_tails()
    }

    /// Ends every tail and long poll: call when shutdown begins, or graceful shutdown waits
    /// for tails that never end on their own.
    pub fn close_followers(&self) {
        self.inner.followers.close();
    }

    /// Origins and the checkpoint key.
    pub(crate) fn signing(&self) -> &Signing {
        &self.signing
    }

    /// This state, naming the store `store_name` in origins (default: the store
    /// directory's name, as the CLI's), so that proofs and checkpoints match the CLI's.
    pub fn with_store_name(mut self, store_name: &str) -> Result<Self, InvalidStoreName> {
        let signing = Signing::new(store_name, self.signing.key.clone())?;
        self.signing = Arc::new(signing);
        Ok(self)
    }

    /// A token a request task holds while it runs ([`AppState::wait_for_request_tasks`]).
    pub(crate) fn request_task(&self) -> Arc<()> {
        Arc::clone(&self.inner.request_tasks)
    }

    /// Waits, at most `bound`, until no request task holds a token; true when none does.
    pub(crate) async fn wait_for_request_tasks(&self, bound: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + bound;
        while Arc::strong_count(&self.inner.request_tasks) > 1 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        true
    }

    /// This state, signing checkpoints with `key` (a `kimberlite keygen` key).
    #[must_use]
    pub fn with_signing_key(mut self, key: SignerKey) -> Self {
        self.signing = Arc::new(Signing {
            store_name: self.signing.store_name.clone(),
            key: Some(key),
        });
        self
    }

    /// This state, having each new checkpoint of the streams `config`'s policies cover
    /// witnessed (`docs/SERVER.md`, "Witnesses"); the background checkpointer, if configured,
    /// starts with the server.
    pub fn with_witnessing(mut self, config: WitnessingConfig) -> Result<Self, WitnessingError> {
        self.witnessing = Some(Arc::new(Witnessing::new(config)?));
        Ok(self)
    }

    /// The witness client, if checkpoints are witnessed.
    pub(crate) fn witnessing(&self) -> Option<&Arc<Witnessing>> {
        self.witnessing.as_ref()
    }

    /// What the witness client works with, when checkpoints are witnessed.
    pub(crate) fn witness_host(&self) -> Option<Host> {
        Some(Host {
            store: self.store().clone(),
            signing: Arc::clone(&self.signing),
            counters: self.metrics().witness_counters(),
            client: Arc::clone(self.witnessing.as_ref()?.client()),
        })
    }

    /// Hands `signed`, a new checkpoint of `stream`, to the witness client (if the stream
    /// has a policy); returns at once.
    pub(crate) fn have_witnessed(&self, stream: &str, signed: &kimberlite::SignedCheckpoint) {
        if let (Some(witnessing), Some(host)) = (&self.witnessing, self.witness_host()) {
            witnessing.submit(&host, stream, signed);
        }
    }

    /// Starts the background tasks (the checkpointer; in cluster mode, waking tails and long
    /// polls when the replica applies entries); the server calls it when it starts.
    pub fn start_background(&self) {
        if let Some(cluster) = &self.cluster {
            let mut metrics = cluster.node().raft().metrics();
            let followers = Arc::clone(self.followers());
            // Ends when the node's Raft stops (its metrics' sender is dropped).
            tokio::spawn(async move {
                let mut applied = None;
                while metrics.changed().await.is_ok() {
                    let now = metrics.borrow().last_applied;
                    if now != applied {
                        applied = now;
                        followers.wake_all();
                    }
                }
            });
        }
        if let (Some(witnessing), Some(host)) = (&self.witnessing, self.witness_host()) {
            Witnessing::start(witnessing, &host);
        }
    }

    /// Stops the background tasks (the checkpointer, the witness requests in flight) and
    /// waits for them to end; the server calls it when it stops.
    pub async fn stop_background(&self) {
        if let Some(witnessing) = &self.witnessing {
            witnessing.stop().await;
        }
        if let Some(cluster) = &self.cluster {
            cluster.shutdown().await;
        }
    }

    /// Runs `work` with the store of the served streams (in cluster mode, the replica's) on
    /// tokio's blocking pool: the store's calls block on disk and on group commit.
    pub(crate) async fn with_store<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Kimberlite) -> Result<T, ApiError> + Send + 'static,
    {
        self.with_store_at(Place { node_local: false }, work).await
    }

    /// Runs `work` with the store at `place` ([`AppState::place`]) on tokio's blocking pool.
    pub(crate) async fn with_store_at<T, F>(&self, place: Place, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Kimberlite) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || match (&state.cluster, place.node_local) {
            (Some(cluster), false) => cluster.node().with_store(work).0,
            _ => work(state.store()),
        })
        .await
        .map_err(|join| ApiError::Internal(format!("a store task failed: {join}")))?
    }
}
