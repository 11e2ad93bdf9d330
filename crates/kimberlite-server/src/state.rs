//! What every handler shares: the store, the keys, the limits.

use std::sync::Arc;

use kimberlite::Kimberlite;

use crate::config::Limits;
use crate::error::ApiError;
use crate::keys::KeyRing;

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
}

impl AppState {
    /// State over an open `store`, with `keys` and `limits`.
    #[must_use]
    pub fn new(store: Kimberlite, keys: KeyRing, limits: Limits) -> Self {
        Self {
            inner: Arc::new(Shared {
                store,
                keys,
                limits,
            }),
        }
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
