//! Events decoded as slices of the buffer that holds a message, not as copies of their own.
//!
//! serde hands a deserializer's bytes to a visitor as a borrowed slice, with no way to name the
//! buffer that owns them; [`decode_sharing`] names it for the duration of one decode on this
//! thread, and the events' visitor (`command::hex_events`) cuts each event out of it
//! (`Bytes::slice_ref`): a batch of 1,000 events costs no allocation and no copy per event on
//! the receiving node (docs/PERFORMANCE.md, section "Design decisions").

use std::cell::RefCell;

use bytes::Bytes;

thread_local! {
    /// The buffer being decoded on this thread, if a decode shares it.
    static SHARED: RefCell<Option<Bytes>> = const { RefCell::new(None) };
}

/// Puts the buffer a decode shared before back when the decode ends, panicking or not.
struct Restore(Option<Bytes>);

impl Drop for Restore {
    fn drop(&mut self) {
        let previous = self.0.take();
        SHARED.with(|shared| *shared.borrow_mut() = previous);
    }
}

/// Runs `decode` (a synchronous decode of `buffer`'s bytes) so that the events it decodes are
/// slices of `buffer`, sharing its allocation: they keep all of it alive as long as any of them
/// lives, so a caller whose buffer is much larger than the message (a connection's read
/// buffer) copies the message out first.
pub fn decode_sharing<R>(buffer: &Bytes, decode: impl FnOnce() -> R) -> R {
    let previous = SHARED.with(|shared| shared.borrow_mut().replace(buffer.clone()));
    let _restore = Restore(previous);
    decode()
}

/// `bytes` as a slice of the buffer [`decode_sharing`] names, when they lie in it; otherwise a
/// copy of their own.
pub(crate) fn event_bytes(bytes: &[u8]) -> Bytes {
    SHARED.with(|shared| {
        let shared = shared.borrow();
        match shared.as_ref() {
            Some(buffer) if !bytes.is_empty() && lies_in(buffer, bytes) => buffer.slice_ref(bytes),
            _ => Bytes::copy_from_slice(bytes),
        }
    })
}

/// Whether `part` is a range of `buffer`'s bytes.
fn lies_in(buffer: &[u8], part: &[u8]) -> bool {
    let range = buffer.as_ptr_range();
    let part = part.as_ptr_range();
    range.start <= part.start && part.end <= range.end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_a_shared_buffer_are_its_slices_and_others_are_copies() {
        let buffer = Bytes::from(b"0123456789".to_vec());
        let outside = b"456".to_vec();
        let (inside, copied) = decode_sharing(&buffer, || {
            (event_bytes(&buffer[2..5]), event_bytes(&outside))
        });
        assert_eq!(&inside[..], b"234");
        assert_eq!(inside.as_ptr(), buffer[2..].as_ptr());
        assert_eq!(&copied[..], b"456");
        assert_ne!(copied.as_ptr(), outside.as_ptr());
        // Outside a decode nothing is shared.
        let after = event_bytes(&buffer[2..5]);
        assert_ne!(after.as_ptr(), buffer[2..].as_ptr());
        assert_eq!(&after[..], b"234");
    }

    #[test]
    fn the_previous_buffer_is_back_after_a_nested_or_panicking_decode() {
        let outer = Bytes::from(b"outer".to_vec());
        let inner = Bytes::from(b"inner".to_vec());
        decode_sharing(&outer, || {
            decode_sharing(&inner, || {
                assert_eq!(event_bytes(&inner[1..]).as_ptr(), inner[1..].as_ptr());
            });
            assert_eq!(event_bytes(&outer[1..]).as_ptr(), outer[1..].as_ptr());
            let panicked = std::panic::catch_unwind(|| decode_sharing(&inner, || panic!("bad")));
            assert!(panicked.is_err());
            assert_eq!(event_bytes(&outer[1..]).as_ptr(), outer[1..].as_ptr());
        });
        assert_ne!(event_bytes(&outer[1..]).as_ptr(), outer[1..].as_ptr());
    }
}
