//! Binding, serving and stopping: the accept loop around the router. Connections are
//! bounded by a semaphore (more wait in the listen queue), each served on its own task
//! ([`crate::connection`]); shutdown stops accepting, lets in-flight requests finish within
//! `Limits::shutdown_timeout`, then syncs the store.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::{ConfigError, ServerConfig};
use crate::connection::{self, Shared};
use crate::state::AppState;
use crate::tls::TlsError;

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The configuration is refused (plain HTTP off loopback, a zero limit).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS material is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The store could not be synced at shutdown.
    #[error("syncing the store at shutdown failed: {0}")]
    Sync(String),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    state: AppState,
    config: ServerConfig,
}

/// Longest pause after a failed `accept` (out of file descriptors, say) before trying again;
/// the pause doubles from 1 ms up to this.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

impl Server {
    /// Checks `config`, prepares TLS, and binds `config.listen` for `state`'s store.
    pub async fn bind(config: &ServerConfig, state: AppState) -> Result<Self, ServeError> {
        config.check()?;
        if let Some(tls) = &config.tls {
            crate::tls::acceptor(tls)?;
        }
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        Ok(Self {
            listener,
            state,
            config: config.clone(),
        })
    }

    /// Checks `config`, prepares TLS, and serves `state` on `listener`, bound already (a
    /// cluster's nodes must know each other's addresses before any starts). `config.listen`
    /// is not used.
    pub fn with_listener(
        config: &ServerConfig,
        state: AppState,
        listener: std::net::TcpListener,
    ) -> Result<Self, ServeError> {
        let addr = listener.local_addr()?;
        let checked = ServerConfig {
            listen: addr,
            ..config.clone()
        };
        checked.check()?;
        if let Some(tls) = &checked.tls {
            crate::tls::acceptor(tls)?;
        }
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        Ok(Self {
            listener,
            state,
            config: checked,
        })
    }

    /// The address bound (with the port the system chose for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServeError> {
        Ok(self.listener.local_addr()?)
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight requests
    /// finish (cutting connections still open after `Limits::shutdown_timeout`), syncs the
    /// store and returns.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let limits = Arc::new(self.config.limits.clone());
        let tls = self
            .config
            .tls
            .as_ref()
            .map(crate::tls::acceptor)
            .transpose()?;
        let (stop, stopped) = watch::channel(false);
        let shared = Shared {
            router: crate::router::served_router(self.state.clone()),
            lean: Arc::new(crate::lean_append::LeanAppend::new(&self.state)),
            state: self.state.clone(),
            tls,
            limits: Arc::clone(&limits),
            shutdown: stopped,
        };
        let permits = Arc::new(Semaphore::new(limits.max_connections));
        let mut connections = JoinSet::new();
        let mut backoff = Duration::from_millis(1);
        self.state.start_background();
        tokio::pin!(shutdown);
        loop {
            while connections.try_join_next().is_some() {}
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => permit,
                () = &mut shutdown => break,
            };
            let Ok(permit) = permit else { break };
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                () = &mut shutdown => break,
            };
            let tcp = match accepted {
                Ok((tcp, _peer)) => tcp,
                Err(error) => {
                    tracing::warn!(%error, "accept failed; pausing before the next");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            };
            backoff = Duration::from_millis(1);
            let _ = tcp.set_nodelay(true);
            let shared = shared.clone();
            connections.spawn(async move {
                connection::serve(tcp, shared).await;
                drop(permit);
            });
        }
        drop(self.listener);
        let _ = stop.send(true);
        // From now on /readyz answers 503.
        self.state.begin_shutdown();
        // Tails and long polls never end on their own: end them, or shutdown waits for them.
        self.state.close_followers();
        // Every connection cuts itself at the shutdown bound; the extra second covers tasks
        // that were between steps when the bound passed.
        let drained =
            tokio::time::timeout(limits.shutdown_timeout + Duration::from_secs(1), async {
                while connections.join_next().await.is_some() {}
            })
            .await;
        if drained.is_err() {
            tracing::warn!("connections still open after the shutdown timeout: cut");
            connections.abort_all();
        }
        // A request task cut from its connection ends once its body fails: wait for it, as it
        // holds the store.
        if !self
            .state
            .wait_for_request_tasks(Duration::from_secs(1))
            .await
        {
            tracing::warn!("request tasks still running after their connections were cut");
        }
        // Witness requests in flight end here: they hold the store.
        self.state.stop_background().await;
        let state = self.state;
        tokio::task::spawn_blocking(move || state.store().sync())
            .await
            .map_err(|join| ServeError::Sync(join.to_string()))?
            .map_err(|error| ServeError::Sync(error.to_string()))
    }
}
