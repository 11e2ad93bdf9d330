//! `/metrics`: the server's counters and histograms in the Prometheus text format.
//!
//! Built on `prometheus-client` (the Prometheus project's own Rust client): typed metrics
//! with label sets checked at compile time, and an encoder that writes the exposition format
//! itself. A middleware (`metrics_layer.rs`) times every request and counts its bytes; the
//! store reports its syncs, read when scraped. `docs/SERVER.md`, section "Metrics", lists
//! them.

use std::borrow::Cow;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The route a response answered, as the router matched it (`/v1/streams/{stream}/events`),
/// put in the response's extensions for the metrics layer outside the router.
#[derive(Debug, Clone)]
pub(crate) struct RouteLabel(pub(crate) Arc<str>);

impl RouteLabel {
    /// The label of `route`, allocated once per route: routes are few, requests many.
    pub(crate) fn of(route: &str) -> Self {
        static ROUTES: std::sync::LazyLock<std::sync::RwLock<std::collections::HashSet<Arc<str>>>> =
            std::sync::LazyLock::new(Default::default);
        let known = ROUTES
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(route)
            .cloned();
        Self(known.unwrap_or_else(|| {
            let mut routes = ROUTES
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let label = routes
                .get(route)
                .cloned()
                .unwrap_or_else(|| Arc::from(route));
            routes.insert(Arc::clone(&label));
            label
        }))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RequestLabels {
    method: Cow<'static, str>,
    route: Arc<str>,
    status: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

/// Seconds from 100 µs to about 100 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_1, 2.0, 21))
}

/// The witness client's counters.
#[derive(Debug, Clone, Default)]
pub(crate) struct WitnessCounters {
    requests: Family<OutcomeLabels, Counter>,
    witnessed: Counter,
}

impl WitnessCounters {
    /// An add-checkpoint request to a witness came to `outcome`.
    pub(crate) fn count_request(&self, outcome: &'static str) {
        self.requests
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// A checkpoint met its witness policy's quorum.
    pub(crate) fn count_witnessed(&self) {
        self.witnessed.inc();
    }
}

/// Every metric the server keeps.
#[derive(Debug)]
pub(crate) struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram, fn() -> Histogram>,
    appends: Histogram,
    bytes_in: Counter,
    bytes_out: Counter,
    events_appended: Counter,
    errors: Family<KindLabels, Counter>,
    unauthenticated: Counter,
    syncs: Counter,
    witness: WitnessCounters,
    /// The store's sync count when last scraped, so the counter rises by the difference.
    syncs_seen: Mutex<u64>,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("kimberlite");
        let requests = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let appends = latency_histogram();
        let (bytes_in, bytes_out, events_appended) =
            (Counter::default(), Counter::default(), Counter::default());
        let errors = Family::<KindLabels, Counter>::default();
        let (unauthenticated, syncs) = (Counter::default(), Counter::default());
        registry.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response's headers, by route and status",
            requests.clone(),
        );
        registry.register(
            "append_duration_seconds",
            "Time the store took to make an appended batch durable (group commit)",
            appends.clone(),
        );
        registry.register(
            "http_request_body_bytes",
            "Bytes of request bodies received",
            bytes_in.clone(),
        );
        registry.register(
            "http_response_body_bytes",
            "Bytes of response bodies sent",
            bytes_out.clone(),
        );
        registry.register(
            "events_appended",
            "Events appended through the API (acknowledged durable)",
            events_appended.clone(),
        );
        registry.register(
            "errors",
            "Error answers, by the error body's kind",
            errors.clone(),
        );
        registry.register(
            "unauthenticated_requests",
            "Requests refused (401) for coming with no key, or an unknown or revoked one",
            unauthenticated.clone(),
        );
        registry.register(
            "store_syncs",
            "Durability syncs the store finished (one group commit sync covers many appends)",
            syncs.clone(),
        );
        let witness = WitnessCounters::default();
        registry.register(
            "witness_requests",
            "add-checkpoint requests to witnesses, by outcome (cosigned, conflict, timeout, ...)",
            witness.requests.clone(),
        );
        registry.register(
            "checkpoints_witnessed",
            "Checkpoints whose valid cosignatures met their witness policy's quorum",
            witness.witnessed.clone(),
        );
        Self {
            registry,
            requests,
            appends,
            bytes_in,
            bytes_out,
            events_appended,
            errors,
            unauthenticated,
            syncs,
            witness,
            syncs_seen: Mutex::new(0),
        }
    }

    /// An append of `events` events that took `took` to become durable.
    pub(crate) fn observe_append(&self, took: Duration, events: u64) {
        self.appends.observe(took.as_secs_f64());
        self.events_appended.inc_by(events);
    }

    /// The witness client's counters (handles: clones count into the same metrics).
    pub(crate) fn witness_counters(&self) -> WitnessCounters {
        self.witness.clone()
    }

    /// A request was refused for coming without a valid key.
    pub(crate) fn count_unauthenticated(&self) {
        self.unauthenticated.inc();
    }

    /// A request answered `status` on `route` after `seconds`.
    pub(crate) fn observe_request(
        &self,
        method: Cow<'static, str>,
        route: Arc<str>,
        status: u16,
        seconds: f64,
    ) {
        let labels = RequestLabels {
            method,
            route,
            status,
        };
        self.requests.get_or_create(&labels).observe(seconds);
    }

    /// An error answered with `kind`.
    pub(crate) fn count_error(&self, kind: &'static str) {
        self.errors.get_or_create(&KindLabels { kind }).inc();
    }

    /// The counter of request body bytes (a handle: clones count into the same metric).
    pub(crate) fn bytes_in(&self) -> Counter {
        self.bytes_in.clone()
    }

    /// The counter of response body bytes (a handle).
    pub(crate) fn bytes_out(&self) -> Counter {
        self.bytes_out.clone()
    }

    /// The text exposition, with the store's sync count brought up to `syncs_now`.
    pub(crate) fn encode(&self, syncs_now: u64) -> Result<String, std::fmt::Error> {
        {
            let mut seen = self
                .syncs_seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            self.syncs.inc_by(syncs_now.saturating_sub(*seen));
            *seen = (*seen).max(syncs_now);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
