//! How far ahead of its writes an active segment's blocks are allocated.
//!
//! A write that extends a file makes the file system reserve a block for every new page on
//! the way in; writing into blocks allocated beforehand (`fallocate` with `KEEP_SIZE`, one
//! call per several megabytes) skips that, and makes the writes of an append cheaper
//! (docs/PERFORMANCE.md, section "Design decisions"). The file's length, and so everything
//! recovery reads, is unchanged: the blocks lie past the end until written.
//!
//! Preserved: nothing is allocated for a segment until it holds [`ALLOCATE_FROM`] bytes (a
//! store of many small streams takes no more disk than its records), and never more ahead than
//! what the segment already holds, at most [`ALLOCATE_AHEAD_MAX`], nor past the segment's
//! size limit. A completed segment gives back what it did not fill (`rotate`). The price: until
//! then, and in an active segment when the store is closed, up to [`ALLOCATE_AHEAD_MAX`] of
//! disk per stream is allocated and unused; `du` counts it, the file's length does not.

/// Bytes a segment holds before any of its blocks are allocated ahead.
pub const ALLOCATE_FROM: u64 = 1 << 20;

/// Most bytes allocated ahead of a segment's end.
pub const ALLOCATE_AHEAD_MAX: u64 = 8 << 20;

/// The range to allocate before a write of `position..end` in a segment whose blocks are
/// allocated up to `allocated_to` and whose size limit is `max_segment_size`: `None` when
/// the write needs nothing allocated ahead.
#[must_use]
pub fn range_to_allocate(
    position: u64,
    end: u64,
    allocated_to: u64,
    max_segment_size: u64,
) -> Option<(u64, u64)> {
    if end <= allocated_to || end < ALLOCATE_FROM {
        return None;
    }
    let ahead = end.min(ALLOCATE_AHEAD_MAX);
    let to = end.saturating_add(ahead).min(max_segment_size).max(end);
    Some((position.max(allocated_to), to))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 256 << 20;

    #[test]
    fn nothing_is_allocated_in_a_small_segment() {
        assert_eq!(range_to_allocate(0, 4096, 0, MAX), None);
        assert_eq!(range_to_allocate(900_000, ALLOCATE_FROM - 1, 0, MAX), None);
    }

    #[test]
    fn allocation_doubles_the_segment_up_to_the_most_ahead() {
        let one = ALLOCATE_FROM;
        assert_eq!(
            range_to_allocate(one - 100, one, 0, MAX),
            Some((one - 100, 2 * one))
        );
        // Within what is allocated: nothing.
        assert_eq!(range_to_allocate(one, one + 5_000, 2 * one, MAX), None);
        // Past it: from where the allocation ended, as far ahead again as the segment holds.
        assert_eq!(
            range_to_allocate(2 * one - 10, 2 * one + 10, 2 * one, MAX),
            Some((2 * one, 4 * one + 20))
        );
        let big = 100 << 20;
        assert_eq!(
            range_to_allocate(big, big + 1, big, MAX),
            Some((big, big + 1 + ALLOCATE_AHEAD_MAX))
        );
    }

    #[test]
    fn allocation_stops_at_the_segment_limit_but_covers_the_write() {
        let end = MAX - 1_000;
        assert_eq!(
            range_to_allocate(end - 64, end, end - 64, MAX),
            Some((end - 64, MAX))
        );
        // The last batch of a segment may run past the limit: its own bytes, no more.
        assert_eq!(
            range_to_allocate(MAX - 10, MAX + 500, MAX, MAX),
            Some((MAX, MAX + 500))
        );
        assert_eq!(
            range_to_allocate(0, u64::MAX, 0, u64::MAX),
            Some((0, u64::MAX))
        );
    }
}
