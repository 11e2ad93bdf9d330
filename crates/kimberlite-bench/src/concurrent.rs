//! Concurrent single-event appenders (HTTP clients, PostgreSQL clients), each with one
//! request in flight, timed as a round: its wall time and every request's latency.

use std::future::Future;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::runtime::Runtime;

/// A client that appends one event per request.
pub trait SingleAppender: Send + 'static {
    /// Appends `event`; returns once it is durable.
    fn append_one(&mut self, event: Bytes) -> impl Future<Output = ()> + Send;
}

/// What a round of concurrent clients did.
#[derive(Debug, Default)]
pub struct Round {
    /// From the round's start to the last answer.
    pub elapsed: Duration,
    /// Each request's time, from sending to its answer.
    pub latencies: Vec<Duration>,
}

impl Round {
    /// Events per second over the round.
    #[must_use]
    pub fn rate(&self) -> f64 {
        crate::rate(self.latencies.len() as u64, self.elapsed)
    }
}

/// Every client of `clients` appends `per_client` single events at once, each as a task on
/// `runtime`; client `c`'s `i`-th event is `crate::event(c * 1_000_000 + i)`. The clients
/// are put back (their connections stay open for the next round).
///
/// # Panics
///
/// Panics if a client task panics (a failed request).
pub fn single_appends<C: SingleAppender>(
    runtime: &Runtime,
    clients: &mut Vec<C>,
    per_client: u64,
) -> Round {
    let taken = std::mem::take(clients);
    let (back, round) = runtime.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0u64..)
            .zip(taken)
            .map(|(index, mut client)| {
                tokio::spawn(async move {
                    let mut latencies = Vec::with_capacity(per_client as usize);
                    for i in 0..per_client {
                        let event = crate::event(index * 1_000_000 + i);
                        let sent = Instant::now();
                        client.append_one(event).await;
                        latencies.push(sent.elapsed());
                    }
                    (client, latencies)
                })
            })
            .collect();
        let mut clients = Vec::with_capacity(tasks.len());
        let mut round = Round::default();
        for task in tasks {
            let (client, latencies) = task.await.expect("a client task");
            clients.push(client);
            round.latencies.extend(latencies);
        }
        round.elapsed = started.elapsed();
        (clients, round)
    });
    *clients = back;
    round
}
