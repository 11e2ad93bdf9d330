//! A live `kimberlite serve` server in the test process, on 127.0.0.1:0, over a store
//! directory, signing checkpoints; stopped (and its store closed) on demand. Receipts and the
//! monitor use it.

#![allow(dead_code)] // each test crate uses its own share of the helpers

use std::path::{Path, PathBuf};

use kimberlite::proof::SignerKey;
use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};

/// The auditor key's token (read on every stream).
pub const AUDITOR: &str = "auditor-token";

/// A running server.
pub struct Served {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    /// A file holding the auditor's token, for `--token-file`.
    pub token_file: PathBuf,
    /// The store, as the server has it (to cosign and append from the test).
    pub state: AppState,
    runtime: tokio::runtime::Runtime,
    stop: tokio::sync::oneshot::Sender<()>,
    serving: tokio::task::JoinHandle<Result<(), kimberlite_server::ServeError>>,
}

impl Served {
    /// Serves the store at `dir` (created if new) as store `store_name`, signing with `key`;
    /// the token file goes to `token_dir`.
    pub fn start(dir: &Path, store_name: &str, key: &SignerKey, token_dir: &Path) -> Self {
        let config = Config::default().durability(Durability::GroupCommit);
        let store = Kimberlite::open_with(dir, config).expect("open the store");
        let auditor = Principal::new("auditor", &[(Permission::Read, "*")]);
        let keys = KeyRing::from_tokens(vec![(AUDITOR.into(), auditor)]);
        let state = AppState::new(store, keys, Limits::default())
            .with_store_name(store_name)
            .expect("a store name")
            .with_signing_key(key.clone());
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime
            .block_on(Server::bind(
                &ServerConfig::new("127.0.0.1:0".parse().expect("addr")),
                state.clone(),
            ))
            .expect("bind");
        let addr = server.local_addr().expect("addr");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let followers = state.clone();
        let serving = runtime.spawn(server.run(async move {
            let _ = stopped.await;
            followers.close_followers();
        }));
        let token_file = token_dir.join("auditor.token");
        std::fs::write(&token_file, format!("{AUDITOR}\n")).expect("token file");
        Self {
            url: format!("http://{addr}"),
            token_file,
            state,
            runtime,
            stop,
            serving,
        }
    }

    /// Stops the server and closes its store.
    pub fn stop(self) {
        let _ = self.stop.send(());
        self.runtime
            .block_on(self.serving)
            .expect("join")
            .expect("serve");
        drop(self.state);
        drop(self.runtime);
    }
}
