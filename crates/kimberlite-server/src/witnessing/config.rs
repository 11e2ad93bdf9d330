//! How the server has its checkpoints witnessed: the policies and the bounds
//! (`docs/SERVER.md`, section "Witnesses").

use std::time::Duration;

use crate::witnessing::policies::WitnessPolicies;

/// How the server has its checkpoints witnessed.
#[derive(Debug, Clone)]
pub struct WitnessingConfig {
    /// Which policy applies to which stream.
    pub policies: WitnessPolicies,
    /// How often the background checkpointer signs the streams with a policy that grew;
    /// `None`: only checkpoints clients ask for are witnessed. Default `None`.
    pub checkpoint_interval: Option<Duration>,
    /// Time one request to a witness may take, answer included. Default 10 s.
    pub request_timeout: Duration,
    /// Most failed requests per witness and checkpoint (a 409 followed is not a failure).
    /// Default 3.
    pub attempts_max: u32,
    /// The pause before the first retry, doubling after each. Default 500 ms.
    pub retry_backoff: Duration,
}

impl WitnessingConfig {
    /// `policies` with the default bounds, no background checkpointer.
    #[must_use]
    pub fn new(policies: WitnessPolicies) -> Self {
        Self {
            policies,
            checkpoint_interval: None,
            request_timeout: Duration::from_secs(10),
            attempts_max: 3,
            retry_backoff: Duration::from_millis(500),
        }
    }
}

/// Why witnessing could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WitnessingError {
    /// The HTTP client could not be built (its TLS roots).
    #[error("cannot build the witness client: {0}")]
    Client(String),
    /// A bound that would stop witnessing.
    #[error("witnessing: {0} must be above zero")]
    ZeroBound(&'static str),
}
