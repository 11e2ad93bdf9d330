//! A server on loopback over a fresh store, for end-to-end tests.

#![allow(dead_code)]

pub mod cluster;
pub mod pki;
pub mod witnesses;

use std::net::SocketAddr;

use kimberlite::proof::SignerKey;
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Token of a key with every permission on every stream.
pub const ADMIN: &str = "test-admin-token";
/// Token of a key that may only read (an auditor).
pub const AUDITOR: &str = "test-auditor-token";
/// The store name in the test servers' checkpoint origins (`<LOG_NAME>/<stream>`).
pub const LOG_NAME: &str = "test.example";

/// The key that signs the test servers' checkpoints, named per stream by the origin.
pub fn checkpoint_key() -> SignerKey {
    SignerKey::from_seed("checkpoints", [11; 32]).expect("a key")
}

/// Token of a key that may append to `app-*` streams only.
pub const WRITER: &str = "test-writer-token";

pub struct TestServer {
    pub addr: SocketAddr,
    /// `http` or `https`.
    pub scheme: &'static str,
    pub state: AppState,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

pub fn test_keys() -> KeyRing {
    KeyRing::from_tokens(vec![
        (
            ADMIN.into(),
            Principal::new(
                "admin",
                &[(Permission::Admin, "*"), (Permission::Append, "*")],
            ),
        ),
        (
            AUDITOR.into(),
            Principal::new("auditor", &[(Permission::Read, "*")]),
        ),
        (
            WRITER.into(),
            Principal::new("writer", &[(Permission::Append, "app-*")]),
        ),
    ])
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    /// A server signing checkpoints with [`checkpoint_key`] as store [`LOG_NAME`].
    pub async fn start_signing() -> Self {
        Self::start_configured(Limits::default(), |state| {
            state
                .with_store_name(LOG_NAME)
                .expect("a valid store name")
                .with_signing_key(checkpoint_key())
        })
        .await
    }

    pub async fn start_with(limits: Limits) -> Self {
        Self::start_configured(limits, |state| state).await
    }

    /// A server whose state `configure` finishes (a signing key, a store name).
    pub async fn start_configured(
        limits: Limits,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.limits = limits;
        Self::start_full(config, test_keys(), reqwest::Client::new(), configure).await
    }

    /// Stops the server and starts a new one over the same store.
    pub async fn restart(mut self) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        // The state holds the store open: let it go before reopening.
        let Self { dir, state, .. } = self;
        drop(state);
        Self::start_in(dir, Limits::default()).await
    }

    /// A server over the store in `dir` (created if empty).
    pub async fn start_in(dir: tempfile::TempDir, limits: Limits) -> Self {
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.limits = limits;
        Self::start_full_in(dir, config, test_keys(), reqwest::Client::new(), |state| {
            state
        })
        .await
    }

    /// A server with `config` (listening on `config.listen`, port 0 for any) and `keys`,
    /// asked through `client`.
    pub async fn start_custom(
        config: ServerConfig,
        keys: KeyRing,
        client: reqwest::Client,
    ) -> Self {
        Self::start_full(config, keys, client, |state| state).await
    }

    /// A server with `config` and `keys`, its state finished by `configure`, asked through
    /// `client`.
    pub async fn start_full(
        config: ServerConfig,
        keys: KeyRing,
        client: reqwest::Client,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_full_in(dir, config, keys, client, configure).await
    }

    /// [`Self::start_full`] over the store in `dir`.
    pub async fn start_full_in(
        dir: tempfile::TempDir,
        config: ServerConfig,
        keys: KeyRing,
        client: reqwest::Client,
        configure: impl FnOnce(AppState) -> AppState,
    ) -> Self {
        let store = Kimberlite::open_with(
            dir.path(),
            Config::default().durability(Durability::GroupCommit),
        )
        .expect("open store");
        let state = configure(AppState::new(store, keys, config.limits.clone()));
        let server = Server::bind(&config, state.clone()).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, task) = spawn(server);
        Self {
            addr,
            scheme: if config.tls.is_some() {
                "https"
            } else {
                "http"
            },
            state,
            client,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns once the store is closed,
    /// handing back its directory.
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        self.dir
    }

    pub async fn create_stream(&self, name: &str) -> reqwest::Response {
        self.post("/v1/streams", ADMIN, &serde_json::json!({ "name": name }))
            .await
    }

    /// `GET path` with `token`'s key.
    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    /// `POST path` with `token`'s key and `body` as JSON.
    pub async fn post(
        &self,
        path: &str,
        token: &str,
        body: &(impl serde::Serialize + ?Sized),
    ) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request")
    }

    /// Appends `events` (a JSON array) to `stream` with the admin key; they must be taken.
    pub async fn append(&self, stream: &str, events: &(impl serde::Serialize + ?Sized)) {
        let path = format!("/v1/streams/{stream}/events");
        let response = self.post(&path, ADMIN, events).await;
        assert_eq!(response.status(), reqwest::StatusCode::OK);
    }
}

/// Runs `server` on a task until the sender is used or dropped; the sender and the task.
pub fn spawn(server: Server) -> (oneshot::Sender<()>, JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(async move {
        server
            .run(async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
    });
    (stop, task)
}

/// Header `name` of `response`, as text.
pub fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name]
        .to_str()
        .expect("a text header")
        .to_owned()
}
