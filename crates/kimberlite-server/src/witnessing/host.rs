//! What the witness client works with (the server's state builds it, the client's tasks
//! share it): the store, origins and the checkpoint key, its counters, the HTTP client and
//! what each witness last cosigned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use kimberlite::proof::{WitnessKey, WitnessPolicy};
use kimberlite::{Kimberlite, StreamId};
use tokio::sync::watch;

use crate::metrics::WitnessCounters;
use crate::signing::Signing;
use crate::witnessing::config::{WitnessingConfig, WitnessingError};

/// A signed checkpoint to have witnessed.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) stream: String,
    pub(crate) id: StreamId,
    pub(crate) size: u64,
    pub(crate) note: String,
}

/// The HTTP client, the configuration, and what each witness last cosigned.
#[derive(Debug)]
pub(crate) struct Client {
    pub(crate) config: WitnessingConfig,
    pub(crate) http: reqwest::Client,
    /// What each witness last cosigned, by stream and witness key.
    sizes: Mutex<HashMap<(String, String), u64>>,
}

impl Client {
    pub(crate) fn new(config: WitnessingConfig) -> Result<Self, WitnessingError> {
        for (name, zero) in [
            ("request_timeout", config.request_timeout.is_zero()),
            ("attempts_max", config.attempts_max == 0),
            (
                "checkpoint_interval",
                config.checkpoint_interval.is_some_and(|i| i.is_zero()),
            ),
        ] {
            if zero {
                return Err(WitnessingError::ZeroBound(name));
            }
        }
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|error| WitnessingError::Client(error.to_string()))?;
        Ok(Self {
            config,
            http,
            sizes: Mutex::new(HashMap::new()),
        })
    }

    /// The policy of stream `name`, if it is witnessed.
    pub(crate) fn policy(&self, name: &str) -> Option<&Arc<WitnessPolicy>> {
        self.config.policies.for_stream(name)
    }

    /// The size `witness` last cosigned of `stream`, as far as this server knows (0).
    pub(crate) fn last_size(&self, stream: &str, witness: &WitnessKey) -> u64 {
        let sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes
            .get(&(stream.to_owned(), witness.to_text()))
            .copied()
            .unwrap_or(0)
    }

    pub(crate) fn set_last_size(&self, stream: &str, witness: &WitnessKey, size: u64) {
        let mut sizes = self.sizes.lock().unwrap_or_else(PoisonError::into_inner);
        sizes.insert((stream.to_owned(), witness.to_text()), size);
    }
}

/// See the module docs (cheap to clone).
#[derive(Debug, Clone)]
pub(crate) struct Host {
    pub(crate) store: Kimberlite,
    pub(crate) signing: Arc<Signing>,
    pub(crate) counters: WitnessCounters,
    pub(crate) client: Arc<Client>,
}

impl Host {
    /// Runs `work` with the store on tokio's blocking pool (the store blocks on disk); an
    /// error as text, for the log.
    pub(crate) async fn blocking<T, F>(&self, work: F) -> Result<T, String>
    where
        T: Send + 'static,
        F: FnOnce(&Kimberlite) -> kimberlite::Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || work(&store)).await {
            Ok(result) => result.map_err(|error| error.to_string()),
            Err(join) => Err(format!("a store task failed: {join}")),
        }
    }
}

/// Completes once `stop` turns `true` (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}
