//! What every handler shares: the store, the keys, the limits.

use std::sync::Arc;

use kimberlite::sealed::{KeyWrapper, SubjectKeys};
use kimberlite::Kimberlite;

use crate::access_writer::AccessWriter;
use crate::config::Limits;
use crate::error::ApiError;
use crate::follow::Followers;
use crate::keys::KeyRing;
use crate::metrics::Metrics;
use crate::signing::Signing;
use kimberlite::proof::{InvalidStoreName, SignerKey};

/// The state handlers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
    /// Origins, and the key checkpoints are signed with (`api/checkpoint.rs`).
    signing: Arc<Signing>,
    /// The data subjects' keys, with the server's master key (`serve --master-key`): sealed
    /// appends, opened reads, erasures (`api/erase.rs`).
    subjects: Option<Arc<SubjectKeys>>,
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
            }),
            signing,
            subjects: None,
        }
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

    /// This state, signing checkpoints with `key` (a `kimberlite keygen` key).
    #[must_use]
    pub fn with_signing_key(mut self, key: SignerKey) -> Self {
        self.signing = Arc::new(Signing {
            store_name: self.signing.store_name.clone(),
            key: Some(key),
        });
        self
    }

    /// Runs `work` with the store on tokio's blocking pool: the store's calls block on disk
    /// and on group commit.
    pub(crate) async fn with_store<T, F>(&self, work: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&Kimberlite) -> Result<T, ApiError> + Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || work(state.store()))
            .await
            .map_err(|join| ApiError::Internal(format!("a store task failed: {join}")))?
    }
}
