//! Sealing a batch of events for one subject: one nonce draw per batch, and each chunk sealed
//! where the store encodes it (on the appending thread and the store's encode helper), into
//! one buffer per chunk, no allocation or copy per event but the envelope's own bytes
//! (docs/PERFORMANCE.md, "Design decisions").
//!
//! # Nonces (`docs/FORMAT.md`, "Sealed events")
//!
//! A batch draws one random 12-byte base from the operating system's generator; event `i` of
//! the batch is sealed with `base + i` (a 96-bit big-endian integer, wrapping). Nothing is
//! counted across batches, so no state can be lost or rolled back into a reuse.

use std::sync::Arc;

use bytes::Bytes;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;
use kimberlite_storage::{PayloadTransform, TransformError};
use kimberlite_types::StreamId;

use crate::sealed::envelope::{self, KeyId, SubjectCipher, NONCE_LEN, OVERHEAD_BYTES};

/// The nonce of event `index` of a batch whose nonce base is `base`: `base + index`, as a
/// 96-bit big-endian integer, wrapping.
#[must_use]
pub(crate) fn nonce_at(base: &[u8; NONCE_LEN], index: u64) -> [u8; NONCE_LEN] {
    let mut wide = [0u8; 16];
    wide[16 - NONCE_LEN..].copy_from_slice(base);
    let sum = u128::from_be_bytes(wide).wrapping_add(u128::from(index));
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sum.to_be_bytes()[16 - NONCE_LEN..]);
    nonce
}

/// A batch's events sealed as the store encodes them (`kimberlite_storage::PayloadTransform`):
/// each chunk is sealed on whichever thread encodes it, beside the store's hashing, straight
/// into the chunk's buffer. One nonce base for the batch; event `i` is sealed with `base + i`
/// whichever thread seals it.
#[derive(Clone)]
pub(crate) struct SealTransform {
    cipher: Arc<SubjectCipher>,
    key_id: KeyId,
    stream: StreamId,
    base: [u8; NONCE_LEN],
}

impl SealTransform {
    /// The sealing of one batch for stream `stream` under `cipher` (the key of `key_id`), with
    /// a nonce base freshly drawn from the operating system's generator.
    #[must_use]
    pub(crate) fn new(cipher: Arc<SubjectCipher>, key_id: KeyId, stream: StreamId) -> Self {
        let mut base = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut base);
        Self {
            cipher,
            key_id,
            stream,
            base,
        }
    }
}

impl std::fmt::Debug for SealTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealTransform")
            .field("key_id", &self.key_id)
            .field("stream", &self.stream)
            .finish_non_exhaustive()
    }
}

impl PayloadTransform for SealTransform {
    fn output_len(&self, len: usize) -> usize {
        len + OVERHEAD_BYTES
    }

    /// Ciphertext never compresses: the store stores it without trying LZ4.
    fn incompressible(&self) -> bool {
        true
    }

    fn transform(
        &self,
        first: usize,
        events: &[Bytes],
        out: &mut Vec<u8>,
    ) -> Result<(), TransformError> {
        let nonce = |index: usize| nonce_at(&self.base, (first + index) as u64);
        envelope::seal_all_into(&self.cipher, self.key_id, self.stream, events, nonce, out).map_err(
            |index| {
                let len = events.get(index).map_or(0, Bytes::len);
                TransformError(format!(
                    "event {} ({len} bytes) is too large to seal",
                    first + index
                ))
            },
        )
    }
}

/// `events` sealed under `cipher` (the key of `key_id`) for stream `id`, in order, each a
/// slice of one shared buffer: what [`SealTransform`] makes of them in the store.
#[cfg(test)]
pub(crate) fn seal_batch(
    cipher: &Arc<SubjectCipher>,
    key_id: KeyId,
    id: StreamId,
    events: &[Bytes],
) -> Result<Vec<Bytes>, TransformError> {
    let transform = SealTransform::new(cipher.clone(), key_id, id);
    kimberlite_storage::transform_events(&transform, 0, events)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The envelopes of `events` sealed one by one with `seal_into` (`aes-gcm`), nonces from
    /// `base` as a batch numbers them.
    fn one_by_one(
        cipher: &SubjectCipher,
        key_id: KeyId,
        base: &[u8; NONCE_LEN],
        events: &[Bytes],
    ) -> Vec<Vec<u8>> {
        (0..)
            .zip(events)
            .map(|(index, event)| {
                let nonce = nonce_at(base, index);
                envelope::seal(cipher, key_id, &nonce, StreamId::new(9), event).unwrap()
            })
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn a_batch_is_the_same_bytes_as_its_events_sealed_one_by_one(
            key in any::<[u8; 32]>(),
            key_id in any::<[u8; envelope::KEY_ID_LEN]>(),
            lens in proptest::collection::vec(
                prop_oneof![8 => 0usize..2000, 1 => 4000usize..4200, 1 => 0usize..20_000],
                1..120,
            ),
        ) {
            let cipher = Arc::new(SubjectCipher::new(&key));
            let key_id = KeyId(key_id);
            let events: Vec<Bytes> = lens
                .iter()
                .enumerate()
                .map(|(n, len)| (0..*len).map(|b| (b * 31 + n) as u8).collect())
                .collect();
            let sealed = seal_batch(&cipher, key_id, StreamId::new(9), &events).unwrap();
            let header = envelope::HEADER_LEN;
            let base: [u8; NONCE_LEN] =
                sealed[0][header - NONCE_LEN..header].try_into().unwrap();
            let expected = one_by_one(&cipher, key_id, &base, &events);
            prop_assert_eq!(sealed.len(), expected.len());
            for (got, want) in sealed.iter().zip(&expected) {
                prop_assert_eq!(got.as_ref(), want.as_slice());
            }
        }

        #[test]
        fn a_batch_sealed_in_chunks_is_the_same_bytes_as_sealed_whole(
            count in 1usize..300,
            chunk in 1usize..100,
        ) {
            let cipher = Arc::new(SubjectCipher::new(&[3; 32]));
            let transform = SealTransform::new(cipher, KeyId([4; envelope::KEY_ID_LEN]), StreamId::new(5));
            let events: Vec<Bytes> =
                (0..count).map(|n| Bytes::from(vec![n as u8; n % 300])).collect();
            let mut whole = Vec::new();
            transform.transform(0, &events, &mut whole).unwrap();
            let mut pieces = Vec::new();
            for (index, piece) in events.chunks(chunk).enumerate() {
                transform.transform(index * chunk, piece, &mut pieces).unwrap();
            }
            prop_assert_eq!(whole, pieces);
        }
    }

    /// Ciphertext never shrinks: the store is told not to try its codec on sealed chunks.
    #[test]
    fn sealed_chunks_are_declared_incompressible() {
        let cipher = Arc::new(SubjectCipher::new(&[1; 32]));
        let transform =
            SealTransform::new(cipher, KeyId([2; envelope::KEY_ID_LEN]), StreamId::new(3));
        assert!(transform.incompressible());
    }

    #[test]
    fn nonces_count_up_from_the_base_and_wrap() {
        let base = [0xab; NONCE_LEN];
        assert_eq!(nonce_at(&base, 0), base);
        let mut next = base;
        next[NONCE_LEN - 1] = 0xac;
        assert_eq!(nonce_at(&base, 1), next);
        let mut carry = [0u8; NONCE_LEN];
        carry[NONCE_LEN - 1] = 0xff;
        let mut carried = [0u8; NONCE_LEN];
        carried[NONCE_LEN - 2] = 1;
        assert_eq!(nonce_at(&carry, 1), carried);
        assert_eq!(nonce_at(&[0xff; NONCE_LEN], 1), [0; NONCE_LEN], "wraps");
    }

    #[test]
    fn a_batch_seals_each_event_under_its_own_nonce_in_order() {
        let cipher = Arc::new(SubjectCipher::new(&[5; 32]));
        let key_id = KeyId([1; envelope::KEY_ID_LEN]);
        for count in [1, 255, 257] {
            let events: Vec<Bytes> = (0..count)
                .map(|n| Bytes::from(vec![n as u8; n % 7]))
                .collect();
            let sealed = seal_batch(&cipher, key_id, StreamId::new(2), &events).unwrap();
            assert_eq!(sealed.len(), count);
            let mut nonces = std::collections::HashSet::new();
            for (event, envelope) in events.iter().zip(&sealed) {
                assert_eq!(envelope.len(), event.len() + OVERHEAD_BYTES);
                assert_eq!(
                    &envelope::open(&cipher, StreamId::new(2), envelope).unwrap(),
                    event
                );
                let header = envelope::HEADER_LEN;
                assert!(nonces.insert(envelope[header - NONCE_LEN..header].to_vec()));
            }
            let base: [u8; NONCE_LEN] = sealed[0]
                [envelope::HEADER_LEN - NONCE_LEN..envelope::HEADER_LEN]
                .try_into()
                .unwrap();
            let last = &sealed[count - 1];
            assert_eq!(
                last[envelope::HEADER_LEN - NONCE_LEN..envelope::HEADER_LEN],
                nonce_at(&base, count as u64 - 1),
                "event i is sealed with base + i"
            );
        }
    }
}
