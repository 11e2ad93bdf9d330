//! How `append` cuts its input into atomic batches.

use kimberlite::Bytes;

/// Events per atomic batch written by `append`.
pub const APPEND_BATCH_EVENTS: usize = 10_000;

/// Most payload bytes `append --server` sends in one request: under the server's default
/// body limit (16 MiB) with room for the length prefixes.
pub const APPEND_BATCH_BYTES_MAX: usize = 8 * 1024 * 1024;

/// `lines` cut into batches of at most [`APPEND_BATCH_EVENTS`] events and, past a first
/// event, [`APPEND_BATCH_BYTES_MAX`] payload bytes.
pub fn batches(lines: &[Bytes]) -> Vec<&[Bytes]> {
    let mut batches = Vec::new();
    let mut rest = lines;
    while !rest.is_empty() {
        let mut bytes = 0usize;
        let mut count = 0usize;
        for line in rest.iter().take(APPEND_BATCH_EVENTS) {
            if count > 0 && bytes + line.len() > APPEND_BATCH_BYTES_MAX {
                break;
            }
            bytes += line.len();
            count += 1;
        }
        let (batch, after) = rest.split_at(count);
        batches.push(batch);
        rest = after;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_bound_events_and_bytes_and_keep_every_line_once() {
        let small: Vec<Bytes> = (0..APPEND_BATCH_EVENTS * 2 + 3)
            .map(|i| Bytes::from(i.to_string()))
            .collect();
        let sizes: Vec<usize> = batches(&small).iter().map(|b| b.len()).collect();
        assert_eq!(sizes, [APPEND_BATCH_EVENTS, APPEND_BATCH_EVENTS, 3]);
        let big = Bytes::from(vec![b'x'; APPEND_BATCH_BYTES_MAX / 2 + 1]);
        let huge = Bytes::from(vec![b'y'; APPEND_BATCH_BYTES_MAX + 1]);
        let lines = vec![big.clone(), big.clone(), huge, big];
        let sizes: Vec<usize> = batches(&lines).iter().map(|b| b.len()).collect();
        assert_eq!(
            sizes,
            [1, 1, 1, 1],
            "an event over the byte bound goes alone"
        );
        assert!(batches(&[]).is_empty());
    }
}
