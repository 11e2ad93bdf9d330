//! One witness asked to cosign one checkpoint: the request (`old <size>`, the consistency
//! proof from that size, the signed note), the answer read within bounds, and the bounded
//! retries the table in the module docs of `witnessing` gives.

use std::time::Duration;

use kimberlite::proof::{AddCheckpoint, WitnessKey};
use reqwest::header::CONTENT_TYPE;

use crate::witnessing::answer::{classify, Outcome};
use crate::witnessing::host::{Host, Pending};

/// Largest answer read from a witness, in bytes: a 200 holds a few signature lines, a 409 a
/// number; anything longer is garbage.
pub(crate) const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Asks `witness` at `url` (its submission prefix) to cosign `pending`; returns its valid
/// cosignature lines, or `None` when it gave none within the bounds. At most
/// `attempts_max` failed requests, plus one after a first 409: that one starts from the size
/// the witness named, and a second 409 ends the exchange.
pub(crate) async fn ask(
    host: &Host,
    witness: &WitnessKey,
    url: &str,
    pending: &Pending,
) -> Option<String> {
    let client = &host.client;
    let config = &client.config;
    let endpoint = format!("{}/add-checkpoint", url.trim_end_matches('/'));
    let mut old_size = client.last_size(&pending.stream, witness);
    let mut conflicts = 0u32;
    let mut failures = 0u32;
    loop {
        if old_size > pending.size {
            tracing::error!(
                stream = %pending.stream, witness = witness.name(), witness_size = old_size,
                size = pending.size,
                "the witness cosigned a larger tree of this stream than the log now holds: \
                 the store was rolled back or replaced; the witness will refuse it"
            );
            return None;
        }
        let body = request_body(host, pending, old_size).await?;
        let outcome = send(&client.http, &endpoint, body, witness, &pending.note).await;
        host.counters.count_request(outcome.label());
        match outcome {
            Outcome::Cosigned(lines) => {
                client.set_last_size(&pending.stream, witness, pending.size);
                return Some(lines);
            }
            Outcome::Conflict(size) if conflicts == 0 => {
                client.set_last_size(&pending.stream, witness, size);
                conflicts += 1;
                old_size = size;
            }
            Outcome::Conflict(size) => {
                // Asked from the very size it named and refused again: it cosigned another
                // tree of that size (a fork), or moved on meanwhile; the next checkpoint
                // starts from `size`.
                client.set_last_size(&pending.stream, witness, size);
                tracing::error!(
                    stream = %pending.stream, witness = witness.name(), witness_size = size,
                    size = pending.size,
                    "the witness refuses the checkpoint again from the size it named: it \
                     holds another tree of this log"
                );
                return None;
            }
            other => {
                failures += 1;
                let again = other.is_worth_retrying() && failures < config.attempts_max;
                tracing::warn!(
                    stream = %pending.stream, witness = witness.name(), size = pending.size,
                    outcome = other.label(), attempt = failures, again,
                    "the witness did not cosign the checkpoint"
                );
                if !again {
                    return None;
                }
                tokio::time::sleep(backoff(config.retry_backoff, failures)).await;
            }
        }
    }
}

/// The pause before retry `failures` (1-based): `base` doubling, capped at 64 times `base`.
fn backoff(base: Duration, failures: u32) -> Duration {
    base.saturating_mul(1 << failures.saturating_sub(1).min(6))
}

/// The `add-checkpoint` body for `pending` from `old_size`, with the store's consistency
/// proof (checked against the trusted root before it is handed out); `None` when the store
/// cannot give the proof.
async fn request_body(host: &Host, pending: &Pending, old_size: u64) -> Option<String> {
    let (id, size) = (pending.id, pending.size);
    let proof = if old_size == 0 {
        Ok(Vec::new())
    } else {
        host.blocking(move |store| Ok(store.consistency_proof(id, old_size, size)?.hashes))
            .await
    };
    match proof {
        Ok(proof) => Some(
            AddCheckpoint {
                old_size,
                proof,
                checkpoint: pending.note.clone(),
            }
            .to_body(),
        ),
        Err(error) => {
            tracing::warn!(
                stream = %pending.stream, old_size, size, %error,
                "no consistency proof for a witness"
            );
            None
        }
    }
}

/// Sends one request and reads at most [`ANSWER_BYTES_MAX`] of the answer (the client's
/// timeout covers the whole exchange).
async fn send(
    client: &reqwest::Client,
    endpoint: &str,
    body: String,
    witness: &WitnessKey,
    note: &str,
) -> Outcome {
    let failed = |error: &reqwest::Error| {
        if error.is_timeout() {
            Outcome::Timeout
        } else {
            Outcome::Unreachable
        }
    };
    let mut response = match client.post(endpoint).body(body).send().await {
        Ok(response) => response,
        Err(error) => return failed(&error),
    };
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let mut answer = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if answer.len() + chunk.len() <= ANSWER_BYTES_MAX => {
                answer.extend_from_slice(&chunk);
            }
            Ok(Some(_)) => return Outcome::Garbage,
            Ok(None) => break,
            Err(error) => return failed(&error),
        }
    }
    classify(status, content_type.as_deref(), &answer, witness, note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), base);
        assert_eq!(backoff(base, 2), base * 2);
        assert_eq!(backoff(base, 3), base * 4);
        assert_eq!(backoff(base, 40), base * 64);
    }
}
