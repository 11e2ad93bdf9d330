//! The server half of `kill_loop.sh`: serves `DIR` on `ADDR` exactly as `kimberlite serve`
//! does (group commit, the access log, default limits), with one key whose token is read
//! from the environment variable `KIMBERLITE_TOKEN` (admin and append on every stream), and
//! prints `listening <addr>` once bound. Runs until killed.
//!
//! `cargo run --release -p kimberlite-server --example serve_token -- DIR ADDR`

use kimberlite::{Config, Durability, Kimberlite};
use kimberlite_server::{AppState, KeyRing, Limits, Permission, Principal, Server, ServerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(addr)) = (args.next(), args.next()) else {
        return Err("usage: serve_token DIR ADDR (token in KIMBERLITE_TOKEN)".into());
    };
    let token = std::env::var("KIMBERLITE_TOKEN")?;
    let grants = [(Permission::Admin, "*"), (Permission::Append, "*")];
    let keys = KeyRing::from_tokens(vec![(token, Principal::new("loader", &grants))]);
    let store = Kimberlite::open_with(&dir, Config::default().durability(Durability::GroupCommit))?;
    let state = AppState::new(store, keys, Limits::default());
    let server = Server::bind(&ServerConfig::new(addr.parse()?), state).await?;
    println!("listening {}", server.local_addr()?);
    server.run(std::future::pending()).await?;
    Ok(())
}
