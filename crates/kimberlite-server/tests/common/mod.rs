//! A server on loopback over a fresh store, for end-to-end tests.

#![allow(dead_code)]

use std::net::SocketAddr;

use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{
    AppState, Grant, KeyRing, Limits, Permission, Principal, Server, ServerConfig,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Token of a key with every permission on every stream.
pub const ADMIN: &str = "test-admin-token";
/// Token of a key that may only read (an auditor).
pub const AUDITOR: &str = "test-auditor-token";
/// Token of a key that may append to `app-*` streams only.
pub const WRITER: &str = "test-writer-token";

pub struct TestServer {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

fn principal(key_id: &str, grants: &[(Permission, &str)]) -> Principal {
    Principal {
        key_id: key_id.into(),
        grants: grants
            .iter()
            .map(|(permission, pattern)| Grant {
                permission: *permission,
                pattern: (*pattern).into(),
            })
            .collect(),
    }
}

pub fn test_keys() -> KeyRing {
    KeyRing::from_tokens(vec![
        (
            ADMIN.into(),
            principal(
                "admin",
                &[(Permission::Admin, "*"), (Permission::Append, "*")],
            ),
        ),
        (
            AUDITOR.into(),
            principal("auditor", &[(Permission::Read, "*")]),
        ),
        (
            WRITER.into(),
            principal("writer", &[(Permission::Append, "app-*")]),
        ),
    ])
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(Limits::default()).await
    }

    pub async fn start_with(limits: Limits) -> Self {
        Self::start_in(tempfile::tempdir().expect("temp dir"), limits).await
    }

    /// Stops the server and starts a new one over the same store.
    pub async fn restart(mut self) -> Self {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
        Self::start_in(self.dir, Limits::default()).await
    }

    /// A server over the store in `dir` (created if empty).
    pub async fn start_in(dir: tempfile::TempDir, limits: Limits) -> Self {
        let store = Kimberlite::open_with(
            dir.path(),
            Config::default().durability(Durability::GroupCommit),
        )
        .expect("open store");
        let state = AppState::new(store, test_keys(), limits.clone());
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.limits = limits;
        let server = Server::bind(&config, state).await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            server
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Self {
            addr,
            client: reqwest::Client::new(),
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops accepting, waits for in-flight requests, and returns once the store is closed.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task");
        }
    }

    pub async fn create_stream(&self, name: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/streams"))
            .bearer_auth(ADMIN)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("request")
    }
}
