//! `kimberlite serve` in the bench's own process: the server benches' side of every ratio.
//!
//! The server runs on 127.0.0.1, port 0, in a tokio runtime the bench owns; the HTTP clients
//! ([`crate::http_client`]) run as tasks on the same runtime, so client and server share the
//! machine's cores as a client and server on one host would. Its store is opened exactly as
//! the embedded baselines open theirs ([`store_config`]), so a ratio measures the HTTP layer.

use std::net::SocketAddr;
use std::path::Path;

use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The bearer token every bench client sends.
pub const TOKEN: &str = "kimberlite-bench-token";

/// The store configuration of the server benches, on both sides of a ratio: what
/// `kimberlite serve` opens (group commit, everything else default).
#[must_use]
pub fn store_config() -> Config {
    Config::default().durability(Durability::GroupCommit)
}

/// Opens (creating) a store in `dir` with [`store_config`] and the streams `names`.
///
/// # Panics
///
/// Panics if the store cannot be opened or a stream created.
#[must_use]
pub fn open_store(dir: &Path, names: &[String]) -> Kimberlite {
    let store = Kimberlite::open_with(dir, store_config()).expect("open the bench store");
    for name in names {
        store.create_stream(name).expect("create a bench stream");
    }
    store
}

/// The keys the bench server accepts: [`TOKEN`], allowed everything. The one place that
/// knows how the server's keys are made.
#[must_use]
pub fn bench_keys() -> KeyRing {
    let grants = [
        (Permission::Admin, "*"),
        (Permission::Append, "*"),
        (Permission::Read, "*"),
    ];
    KeyRing::from_tokens(vec![(TOKEN.into(), Principal::new("bench", &grants))])
}

/// A server running over a store, stopped (in-flight requests finished) on drop.
pub struct BenchServer {
    addr: SocketAddr,
    runtime: Runtime,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl BenchServer {
    /// Starts a server over `store` on a runtime of its own (one worker per core).
    ///
    /// # Panics
    ///
    /// Panics if the runtime cannot start or the address cannot be bound.
    #[must_use]
    pub fn start(store: Kimberlite) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("start the bench runtime");
        let limits = Limits::default();
        let state = AppState::new(store, bench_keys(), limits.clone());
        let mut config = ServerConfig::new(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.limits = limits;
        let server = runtime
            .block_on(Server::bind(&config, state))
            .expect("bind the bench server");
        let addr = server.local_addr().expect("the bench server's address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            addr,
            runtime,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The runtime the server (and the bench's clients) run on.
    #[must_use]
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl Drop for BenchServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = self.runtime.block_on(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::concurrent::single_appends;
    use crate::http_client::{connect_all, length_prefixed};

    #[test]
    fn what_the_server_acknowledged_is_in_the_store_after_it_stops() {
        let dir = tempfile::tempdir().expect("temp dir");
        {
            let server = BenchServer::start(open_store(dir.path(), &["s".to_string()]));
            let mut clients = connect_all(server.runtime(), server.addr(), "s", 4);
            let batch = length_prefixed(&crate::events(0, 10));
            server.runtime().block_on(clients[0].append_batch(batch));
            let round = single_appends(server.runtime(), &mut clients, 3);
            assert_eq!(round.latencies.len(), 12);
            assert!(round.elapsed >= *round.latencies.iter().max().expect("latencies"));
            drop(clients);
        }
        let store = Kimberlite::open_with(dir.path(), store_config()).expect("reopen");
        let id = store.stream("s").expect("the stream");
        assert_eq!(store.head(id).expect("head").next_offset.as_u64(), 22);
    }
}
