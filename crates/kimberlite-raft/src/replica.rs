//! [`Replica`]: applying commands to one replica's Kimberlite store, deterministically, with the
//! leader's expected heads checked and each request answered once (docs/REPLICATION.md,
//! section "Applying a command").

use std::fmt;

use bytes::Bytes;
use kimberlite::{Error, ExpectedOffset, Kimberlite, StreamId};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::request_table::RequestTable;

/// A replica computed another head than the leader expected: it stops applying, so it never
/// holds a history other than the cluster's without saying so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "replica diverged at log index {index}: stream {stream} computed head {computed}, the \
     leader expected {expected}; applying stopped"
)]
pub struct Divergence {
    /// The log index of the entry.
    pub index: u64,
    /// The stream.
    pub stream: u64,
    /// The head the entry carried.
    pub expected: Head,
    /// The head this replica computed.
    pub computed: Head,
}

/// Why a replica could not apply an entry; either stops the replica.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The replica computed another head than the leader.
    #[error(transparent)]
    Diverged(#[from] Divergence),
    /// The local store failed (I/O, damage): not a property of the command.
    #[error("store failed applying log index {index}: {source}")]
    Store {
        /// The log index of the entry.
        index: u64,
        /// The store's error.
        source: Error,
    },
}

/// One replica's applied state: its store and the request table.
pub struct Replica {
    store: Kimberlite,
    requests: RequestTable,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("store", &self.store.path())
            .field("requests", &self.requests.len())
            .finish()
    }
}

impl Replica {
    /// A replica over `store` with the request table `requests` (from its last saved state).
    #[must_use]
    pub fn new(store: Kimberlite, requests: RequestTable) -> Self {
        Self { store, requests }
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Kimberlite {
        &self.store
    }

    /// The request table.
    #[must_use]
    pub fn requests(&self) -> &RequestTable {
        &self.requests
    }

    /// Replaces the store and the table (a snapshot was installed).
    pub fn replace(&mut self, store: Kimberlite, requests: RequestTable) {
        self.store = store;
        self.requests = requests;
    }

    /// Applies the command of log entry `index`.
    ///
    /// Re-applying an entry already in the store (after a restart, whose saved state is
    /// older than the store) answers what the first apply answered: an append whose
    /// expected head is already a prefix of the stream is found by its chain hash.
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Response, ApplyError> {
        let request = command.request();
        if let Some(first) = self.requests.get(request) {
            return Ok(first.clone());
        }
        let response = match command {
            Command::CreateStream { name, .. } => self.create(index, name)?,
            Command::Append {
                stream,
                prev,
                expected,
                events,
                ..
            } => self.append(index, *stream, *prev, *expected, events)?,
        };
        self.remember(request, index, &response);
        Ok(response)
    }

    fn remember(&mut self, request: RequestId, index: u64, response: &Response) {
        // A stale head is the leader's view being behind, not an answer: its retry must run.
        if !matches!(response, Response::Rejected(Rejection::StaleHead { .. })) {
            self.requests.insert(request, index, response.clone());
        }
    }

    fn create(&mut self, index: u64, name: &str) -> Result<Response, ApplyError> {
        if let Some(id) = self.store.stream(name) {
            return Ok(Response::Stream {
                stream: id.as_u64(),
            });
        }
        match self.store.create_stream(name) {
            Ok(id) => Ok(Response::Stream {
                stream: id.as_u64(),
            }),
            Err(error @ Error::InvalidStreamName { .. }) => Ok(invalid(&error)),
            Err(source) => Err(ApplyError::Store { index, source }),
        }
    }

    fn append(
        &mut self,
        index: u64,
        stream: u64,
        prev: Head,
        expected: Head,
        events: &[Bytes],
    ) -> Result<Response, ApplyError> {
        let id = StreamId::new(stream);
        let current = match self.store.head(id) {
            Ok(head) => Head::of(head),
            Err(Error::UnknownStream { .. }) => {
                return Ok(Response::Rejected(Rejection::UnknownStream { stream }))
            }
            Err(source) => return Err(ApplyError::Store { index, source }),
        };
        if current != prev {
            return self.reapplied_or_stale(index, stream, prev, expected, current);
        }
        let offset = ExpectedOffset::Exact(prev.next_offset.into());
        let appended = match self.store.append(id, events.iter().cloned(), offset) {
            Ok(appended) => appended,
            Err(error @ Error::EmptyBatch { .. }) => return Ok(invalid(&error)),
            Err(source) => return Err(ApplyError::Store { index, source }),
        };
        let computed = Head {
            next_offset: appended.next_offset.as_u64(),
            hash: Some(*appended.head.as_bytes()),
        };
        if computed != expected {
            return Err(Divergence {
                index,
                stream,
                expected,
                computed,
            }
            .into());
        }
        Ok(Response::Appended {
            first_offset: appended.first_offset.as_u64(),
            head: computed,
        })
    }

    /// The stream's head is not the one the entry was proposed against: either this entry is
    /// already in the store (re-applied after a restart) or the leader's view was stale.
    fn reapplied_or_stale(
        &self,
        index: u64,
        stream: u64,
        prev: Head,
        expected: Head,
        current: Head,
    ) -> Result<Response, ApplyError> {
        if current.next_offset >= expected.next_offset && expected.next_offset > prev.next_offset {
            let hash = self
                .store
                .prefix_hash(StreamId::new(stream), expected.next_offset)
                .map_err(|source| ApplyError::Store { index, source })?;
            if hash.map(|hash| *hash.as_bytes()) == expected.hash {
                return Ok(Response::Appended {
                    first_offset: prev.next_offset,
                    head: expected,
                });
            }
        }
        Ok(Response::Rejected(Rejection::StaleHead {
            stream,
            prev,
            current,
        }))
    }
}

fn invalid(error: &Error) -> Response {
    Response::Rejected(Rejection::Invalid {
        reason: error.to_string(),
    })
}
