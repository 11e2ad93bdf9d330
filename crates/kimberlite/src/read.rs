//! Reading: one page with [`Kimberlite::read`], or a lazy iterator with [`Kimberlite::events`].
//!
//! Readers see only *durable* events: under group commit an event becomes visible when the sync
//! covering it finishes, so a reader never sees an event that a crash could still take away.
//! Every event returned was decoded, checksum-checked and linked into its stream's chain by the
//! storage layer; corruption is an error naming the stream and offset, never data.

use std::collections::VecDeque;

use bytes::Bytes;
use kimberlite_storage::StorageError;
use kimberlite_types::{Offset, StreamId};

use crate::error::{Error, Result};
use crate::store::Kimberlite;

/// One event read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's offset in its stream.
    pub offset: Offset,
    /// The event's bytes, exactly as appended.
    pub payload: Bytes,
}

impl Kimberlite {
    /// Reads events of stream `id` from offset `from` on, in order, until the payload bytes
    /// returned reach `max_bytes`; at least one event is returned when one exists at `from`.
    /// Past the stream's end the result is empty.
    ///
    /// A large read goes a page of [`crate::Config::read_page_bytes`] at a time, each under the
    /// store's read lock, so appends are not held back for the whole read; it ends at the
    /// stream's durable end as of its last page (events appended meanwhile may be included,
    /// as with [`Kimberlite::events`]). The events returned are the same as one walk's: a
    /// page stops where the bytes reach its share of the budget, and the last page's share is
    /// what is left of it.
    ///
    /// Errors: [`Error::UnknownStream`]; [`Error::Storage`] for corruption (stream, offset and
    /// location in the source) or I/O failure.
    pub fn read(&self, id: StreamId, from: Offset, max_bytes: u64) -> Result<Vec<Event>> {
        let page_bytes = self.inner.config.read_page_bytes.max(1);
        let mut events = Vec::new();
        let mut next = from;
        let mut left = max_bytes;
        loop {
            let (page, at_end) = self.read_page(id, next, left.min(page_bytes))?;
            let Some(last) = page.last() else {
                return Ok(events);
            };
            next = Offset::new(last.offset.as_u64() + 1);
            let bytes: u64 = page.iter().map(|event| event.payload.len() as u64).sum();
            events.extend(page);
            if at_end || bytes >= left {
                return Ok(events);
            }
            left -= bytes;
        }
    }

    /// One page of [`Kimberlite::read`], under one hold of the read lock; also says whether it
    /// reached the stream's durable end.
    fn read_page(&self, id: StreamId, from: Offset, max_bytes: u64) -> Result<(Vec<Event>, bool)> {
        // A read lock: readers run side by side, and wait only for appends.
        let state = self.read_state();
        let name = state.name_of(id)?;
        let heads = state.heads.get(&id);
        let end = heads.map_or(Offset::ZERO, |heads| heads.durable.next_offset);
        // A damaged stream's end may be unknown (its files could not be opened): the backend
        // says what is wrong rather than this returning nothing.
        let damaged = heads.is_some_and(|heads| heads.damaged);
        if from >= end && !damaged {
            return Ok((Vec::new(), true));
        }
        // A damaged stream takes no appends, so it has no events written but not yet
        // durable to hide: what the backend verifies before the damage is readable.
        let visible = if damaged {
            usize::MAX
        } else {
            usize::try_from(end.as_u64().saturating_sub(from.as_u64())).unwrap_or(usize::MAX)
        };
        let mut payloads = state
            .backend
            .read_from(id, from, max_bytes)
            .map_err(|source| Error::storage(Some(name), source))?;
        payloads.truncate(visible);
        let at_end = payloads.len() >= visible;
        let events = payloads
            .into_iter()
            .zip(from.as_u64()..)
            .map(|(payload, offset)| Event {
                offset: Offset::new(offset),
                payload,
            })
            .collect();
        Ok((events, at_end))
    }

    /// A lazy iterator over the events of stream `id` from `from` on. It fetches a page of
    /// about [`crate::Config::read_page_bytes`] at a time and ends at the stream's end as of
    /// the last page fetched (events appended meanwhile are included). When a page reaches
    /// damage, the intact events before it are still yielded (each read and verified on its
    /// own), then the error, naming the damaged offset; after an error it ends. "Intact" is
    /// what a read can vouch for: every event but the one just before the damaged record,
    /// whose chain hash a read confirms by its successor's link, and that successor is the
    /// damaged record.
    ///
    /// # Examples
    ///
    /// ```
    /// use kimberlite::{ExpectedOffset, Kimberlite};
    /// let store = Kimberlite::in_memory();
    /// let id = store.create_stream("audit")?;
    /// store.append(id, ["a", "b", "c"], ExpectedOffset::Any)?;
    /// let payloads: Vec<_> = store
    ///     .events(id, 1.into())
    ///     .map(|event| event.map(|e| e.payload))
    ///     .collect::<Result<_, _>>()?;
    /// assert_eq!(payloads, ["b", "c"]);
    /// # Ok::<(), kimberlite::Error>(())
    /// ```
    #[must_use]
    pub fn events(&self, id: StreamId, from: Offset) -> Events {
        Events {
            store: self.clone(),
            stream: id,
            next: from,
            page: VecDeque::new(),
            done: false,
            failed: None,
        }
    }
}

/// Lazy, paging iterator over a stream's events; see [`Kimberlite::events`].
#[derive(Debug)]
pub struct Events {
    store: Kimberlite,
    stream: StreamId,
    next: Offset,
    page: VecDeque<Event>,
    done: bool,
    /// The error to yield once the intact events read before it (in `page`) are yielded.
    failed: Option<Error>,
}

impl Events {
    /// The offset of the next event this iterator will yield.
    #[must_use]
    pub fn next_offset(&self) -> Offset {
        self.page.front().map_or(self.next, |event| event.offset)
    }
}

impl Iterator for Events {
    type Item = Result<Event>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(event) = self.page.pop_front() {
            return Some(Ok(event));
        }
        if let Some(error) = self.failed.take() {
            return Some(Err(error));
        }
        if self.done {
            return None;
        }
        let page_bytes = self.store.inner.config.read_page_bytes;
        match self.store.read(self.stream, self.next, page_bytes) {
            Ok(events) if events.is_empty() => {
                self.done = true;
                None
            }
            Ok(events) => {
                self.next = Offset::new(self.next.as_u64() + events.len() as u64);
                self.page = events.into();
                self.page.pop_front().map(Ok)
            }
            Err(error) => {
                self.done = true;
                let before = self.intact_before(&error);
                if before.is_empty() {
                    return Some(Err(error));
                }
                self.next = Offset::new(self.next.as_u64() + before.len() as u64);
                self.page = before.into();
                self.failed = Some(error);
                self.page.pop_front().map(Ok)
            }
        }
    }
}

impl Events {
    /// The events from `self.next` towards the offset `error` says is damaged, each read on
    /// its own (a read returns at least one event, verified against the chain from the
    /// restart record before it and vouched for by its successor's link), so that a page reaching
    /// damage does not hide the intact events before it; up to the first that cannot be read
    /// (the one just before the damage, whose successor is the damaged record). Empty when the
    /// error names no offset after `self.next`.
    fn intact_before(&self, error: &Error) -> Vec<Event> {
        let Some(damaged) = damaged_offset(error) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        let mut offset = self.next;
        while offset < damaged {
            match self.store.read(self.stream, offset, 0) {
                Ok(read) => match read.into_iter().next() {
                    Some(event) if event.offset == offset => events.push(event),
                    _ => break,
                },
                Err(_) => break,
            }
            offset = Offset::new(offset.as_u64() + 1);
        }
        events
    }
}

/// The offset a storage corruption error names, if it is one.
fn damaged_offset(error: &Error) -> Option<Offset> {
    let Error::Storage { source, .. } = error else {
        return None;
    };
    match &**source {
        StorageError::CorruptRecord { offset, .. }
        | StorageError::OffsetMismatch { offset, .. }
        | StorageError::ChainVerificationFailed { offset, .. }
        | StorageError::MissingRecords { offset, .. } => Some(*offset),
        _ => None,
    }
}
