//! [`Events`]: every event of a range, read a page at a time.

use std::collections::VecDeque;

use crate::client::Client;
use crate::error::ClientError;
use crate::model::Event;

impl Client {
    /// Every event from offset `from` to the stream's end as it was when each page was
    /// read, a page at a time (an iterator of `Result<Event, ClientError>`).
    pub fn events(&self, stream: &str, from: u64) -> Events<'_> {
        Events::new(self, stream, from)
    }
}

/// An iterator over the events of a stream from an offset to the stream's end as it was when
/// each page was read; made by [`Client::events`]. One request per page; an error ends it.
#[derive(Debug)]
pub struct Events<'a> {
    client: &'a Client,
    stream: String,
    next_offset: u64,
    page: VecDeque<Event>,
    done: bool,
    /// Events still to yield when a limit was set: pages ask for no more than this.
    remaining: Option<u64>,
}

impl<'a> Events<'a> {
    fn new(client: &'a Client, stream: &str, from: u64) -> Self {
        Self {
            client,
            stream: stream.to_owned(),
            next_offset: from,
            page: VecDeque::new(),
            done: false,
            remaining: None,
        }
    }

    /// At most `count` events, asking the server for no more than are still wanted (unlike
    /// `Iterator::take`, which would still read whole pages).
    #[must_use]
    pub fn limit(mut self, count: u64) -> Self {
        self.remaining = Some(count);
        self
    }

    /// The offset the next page would start at.
    #[must_use]
    pub fn next_offset(&self) -> u64 {
        self.next_offset
    }

    fn fetch(&mut self) -> Result<(), ClientError> {
        let page = self
            .client
            .read(&self.stream, self.next_offset, self.remaining)?;
        if page.next_offset <= self.next_offset && !page.events.is_empty() {
            return Err(ClientError::Protocol(format!(
                "a page from offset {} does not move forward",
                self.next_offset
            )));
        }
        if let Some(first) = page.events.first() {
            if first.offset != self.next_offset {
                return Err(ClientError::Protocol(format!(
                    "asked for events from offset {}, got a page from {}",
                    self.next_offset, first.offset
                )));
            }
        }
        // An empty page, or one reaching the end the server saw, is the last: the loop is
        // bounded by the stream's length when it started, not by how fast writers go.
        self.done = page.events.is_empty() || page.is_last();
        self.next_offset = page.next_offset;
        self.page = page.events.into();
        Ok(())
    }
}

impl Iterator for Events<'_> {
    type Item = Result<Event, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == Some(0) {
            return None;
        }
        if self.page.is_empty() && !self.done {
            if let Err(error) = self.fetch() {
                self.done = true;
                return Some(Err(error));
            }
        }
        let event = self.page.pop_front()?;
        if let Some(remaining) = &mut self.remaining {
            *remaining -= 1;
        }
        Some(Ok(event))
    }
}
