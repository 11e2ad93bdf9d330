//! What every handler shares: the store, the keys, the limits.

use std::sync::Arc;

use kimberlite::proof::SignerKey;
use kimberlite::Kimberlite;

use crate::config::Limits;
use crate::error::ApiError;
use crate::keys::KeyRing;

/// The state handlers share (cheap to clone).
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<Shared>,
    /// What signs the streams' checkpoints (`None`: the server serves none).
    checkpoints: Option<Arc<CheckpointKey>>,
}

/// The key that signs every stream's checkpoint, named for each by the checkpoint's origin,
/// `<log name>/<stream name>` (C2SP tlog-tiles: the key name is the origin).
#[derive(Debug)]
pub struct CheckpointKey {
    key: SignerKey,
    log_name: String,
}

impl CheckpointKey {
    /// `key` signing as `<log_name>/<stream>` for each stream.
    #[must_use]
    pub fn new(key: SignerKey, log_name: impl Into<String>) -> Self {
        Self {
            key,
            log_name: log_name.into(),
        }
    }

    /// The origin of `stream`'s checkpoints.
    #[must_use]
    pub fn origin(&self, stream: &str) -> String {
        format!("{}/{stream}", self.log_name)
    }

    /// The key as it signs `stream`'s checkpoints: named by the origin.
    pub fn signer(&self, stream: &str) -> Result<SignerKey, kimberlite::proof::NoteError> {
        self.key.renamed(&self.origin(stream))
    }
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
            checkpoints: None,
        }
    }

    /// This state, signing checkpoints with `key`.
    #[must_use]
    pub fn with_checkpoint_key(mut self, key: CheckpointKey) -> Self {
        self.checkpoints = Some(Arc::new(key));
        self
    }

    /// The checkpoint key, if the server signs checkpoints.
    #[must_use]
    pub fn checkpoint_key(&self) -> Option<&CheckpointKey> {
        self.checkpoints.as_deref()
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
