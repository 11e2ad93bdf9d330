//! What every handler shares: the store, the keys, the limits.

use std::sync::Arc;

use kimberlite::Kimberlite;

use crate::access_writer::AccessWriter;
use crate::config::Limits;
use crate::error::ApiError;
use crate::keys::KeyRing;
use crate::metrics::Metrics;

/// The state handlers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: Kimberlite,
    keys: KeyRing,
    limits: Limits,
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
        let access_log = AccessWriter::start(&store);
        Self {
            inner: Arc::new(Shared {
                store,
                keys,
                limits,
                metrics: Metrics::new(),
                access_log,
                stopping: std::sync::atomic::AtomicBool::new(false),
            }),
        }
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
