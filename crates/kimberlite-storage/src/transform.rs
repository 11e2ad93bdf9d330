//! [`PayloadTransform`]: a change the store makes to each event of a batch as it encodes it.
//!
//! Why: work a caller does on every event before the store sees it (the `kimberlite` store
//! seals a data subject's events) would otherwise run on the appending thread alone, before
//! the store's own encoding starts. Given as a transform, it runs chunk by chunk on whichever
//! thread encodes the chunk (`crate::parallel`), beside the store's hashing. The store knows
//! nothing of what it does: what it returns is the payload stored, hashed and read back.

use bytes::Bytes;

/// A per-event change of a batch's payloads, applied by the store as it encodes the batch.
pub trait PayloadTransform: Send + Sync + std::fmt::Debug {
    /// The length of an event of `len` bytes once transformed.
    fn output_len(&self, len: usize) -> usize;

    /// Whether the transformed events never compress (ciphertext, random bytes): the store
    /// then stores them as they are without trying its codec on any, whatever codec it is
    /// configured with (a try costs about as much as the codec's fixed setup per event). Each
    /// frame still names its codec, so readers are unaffected. False unless overridden.
    fn incompressible(&self) -> bool {
        false
    }

    /// Appends to `out` `events` transformed, in order, each [`Self::output_len`] bytes;
    /// `events` are the batch's events from index `first` on (a chunk of it). Called once
    /// per chunk, from any thread; the result must not depend on which.
    ///
    /// # Errors
    ///
    /// Why the events cannot be transformed; the append then fails (the store is poisoned,
    /// as for a failed write).
    fn transform(
        &self,
        first: usize,
        events: &[Bytes],
        out: &mut Vec<u8>,
    ) -> Result<(), TransformError>;
}

/// Why a [`PayloadTransform`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event could not be transformed: {0}")]
pub struct TransformError(pub String);

/// `events` (the batch's events from index `first` on) transformed, each a slice of one new
/// buffer.
///
/// # Errors
///
/// The transform's, or one that did not write [`PayloadTransform::output_len`] bytes per event.
pub fn transform_events(
    transform: &dyn PayloadTransform,
    first: usize,
    events: &[Bytes],
) -> Result<Vec<Bytes>, TransformError> {
    let total: usize = events
        .iter()
        .map(|event| transform.output_len(event.len()))
        .sum();
    let mut out = Vec::with_capacity(total);
    transform.transform(first, events, &mut out)?;
    if out.len() != total {
        return Err(TransformError(format!(
            "the transform wrote {} bytes for events of {total}",
            out.len()
        )));
    }
    let buffer = Bytes::from(out);
    let mut start = 0;
    Ok(events
        .iter()
        .map(|event| {
            let end = start + transform.output_len(event.len());
            let stored = buffer.slice(start..end);
            start = end;
            stored
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each event reversed after its index in the batch.
    #[derive(Debug)]
    pub(crate) struct Reverse;

    impl PayloadTransform for Reverse {
        fn output_len(&self, len: usize) -> usize {
            len + 8
        }

        fn transform(
            &self,
            first: usize,
            events: &[Bytes],
            out: &mut Vec<u8>,
        ) -> Result<(), TransformError> {
            for (index, event) in (first..).zip(events) {
                out.extend_from_slice(&(index as u64).to_le_bytes());
                out.extend(event.iter().rev());
            }
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Short;

    impl PayloadTransform for Short {
        fn output_len(&self, len: usize) -> usize {
            len + 1
        }

        fn transform(
            &self,
            _: usize,
            events: &[Bytes],
            out: &mut Vec<u8>,
        ) -> Result<(), TransformError> {
            for event in events {
                out.extend_from_slice(event);
            }
            Ok(())
        }
    }

    #[test]
    fn events_are_transformed_in_order_each_its_own_slice() {
        let events = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"xyz"),
        ];
        let stored = transform_events(&Reverse, 5, &events).unwrap();
        assert_eq!(stored.len(), 3);
        assert_eq!(&stored[0][..], [&5u64.to_le_bytes()[..], b"ba"].concat());
        assert_eq!(&stored[1][..], 6u64.to_le_bytes());
        assert_eq!(&stored[2][..], [&7u64.to_le_bytes()[..], b"zyx"].concat());
    }

    #[test]
    fn a_transform_that_writes_the_wrong_length_is_an_error() {
        let events = vec![Bytes::from_static(b"ab")];
        assert!(transform_events(&Short, 0, &events).is_err());
    }
}
