//! A real server on loopback over a fresh store, on its own runtime thread, for the blocking
//! client to talk to (a blocking client must not run inside an async runtime).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::thread::JoinHandle;

use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_client::Client;
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};
use tokio::sync::oneshot;

/// Token of a key with every permission on every stream.
pub const ADMIN: &str = "client-test-admin";
/// Token of a key that may only read.
pub const AUDITOR: &str = "client-test-auditor";
/// Token of a key that may append to `app-*` streams only.
pub const WRITER: &str = "client-test-writer";

pub struct TestServer {
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub fn keys() -> KeyRing {
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
    pub fn start() -> Self {
        Self::start_with(Limits::default())
    }

    pub fn start_with(limits: Limits) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Kimberlite::open_with(
            dir.path(),
            Config::default().durability(Durability::GroupCommit),
        )
        .expect("open store");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let state = AppState::new(store, keys(), limits.clone());
        let mut config = ServerConfig::new("127.0.0.1:0".parse().expect("addr"));
        config.limits = limits;
        let server = runtime
            .block_on(Server::bind(&config, state))
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = runtime.handle().clone();
        let thread = std::thread::spawn(move || {
            handle
                .block_on(server.run(async {
                    let _ = stopped.await;
                }))
                .expect("serve");
        });
        Self {
            addr,
            dir,
            runtime: Some(runtime),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn client(&self, token: &str) -> Client {
        Client::builder(&self.url())
            .token(token)
            .build()
            .expect("client")
    }

    /// A runtime handle for test-side servers (a TLS proxy in front of this one).
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.runtime.as_ref().expect("running").handle().clone()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
