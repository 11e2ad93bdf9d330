//! The load half of `kill_loop.sh`: eight concurrent clients append batches of events
//! `"<round>-<client>-<batch>-<event>"` to the stream `crash` of the server at `ADDR` (even
//! clients four per batch, odd ones 300: the server writes appends of 256 events or more on
//! the request's own thread, smaller ones through the access log's writer thread), and
//! print `ack <first offset> <round>-<client>-<batch>` for each batch the server acknowledged
//! (so made durable), until the server goes away.
//!
//! `cargo run --release -p kimberlite-server --example load_acks -- ADDR ROUND`
//! (token in `KIMBERLITE_TOKEN`)

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENTS: u64 = 8;
/// Events per batch of an even client, and of an odd one (`kill_loop.sh` checks the same).
const SMALL_BATCH: u64 = 4;
const LARGE_BATCH: u64 = 300;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(round)) = (args.next(), args.next()) else {
        return Err("usage: load_acks ADDR ROUND (token in KIMBERLITE_TOKEN)".into());
    };
    let token = std::env::var("KIMBERLITE_TOKEN")?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|number| {
            let (client, out) = (client.clone(), Arc::clone(&out));
            let (url, token, round) = (
                format!("http://{addr}/v1/streams/crash/events"),
                token.clone(),
                round.clone(),
            );
            tokio::spawn(async move {
                let per_batch = if number % 2 == 1 {
                    LARGE_BATCH
                } else {
                    SMALL_BATCH
                };
                for batch in 0u64.. {
                    let events: Vec<String> = (0..per_batch)
                        .map(|event| format!("{round}-{number}-{batch}-{event}"))
                        .collect();
                    let sent = client.post(&url).bearer_auth(&token).json(&events).send();
                    let Ok(answer) = sent.await else { return };
                    if !answer.status().is_success() {
                        return;
                    }
                    let Ok(body) = answer.json::<serde_json::Value>().await else {
                        return;
                    };
                    let Some(first) = body["first_offset"].as_u64() else {
                        return;
                    };
                    let mut out = out.lock().unwrap_or_else(|p| p.into_inner());
                    let line = writeln!(out, "ack {first} {round}-{number}-{batch}");
                    if line.and_then(|()| out.flush()).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    for client in clients {
        let _ = client.await;
    }
    Ok(())
}
