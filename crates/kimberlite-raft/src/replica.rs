//! [`Replica`]: applying commands to one replica's Kimberlite store, deterministically, with the
//! leader's expected heads checked and each request answered once (docs/REPLICATION.md,
//! section "Applying a command").

use std::collections::BTreeMap;
use std::fmt;

use kimberlite::sealed::SealError;
use kimberlite::{Error, ExpectedOffset, Kimberlite, StreamId};
use serde::{Deserialize, Serialize};

use crate::command::{Command, Head, Rejection, RequestId, Response};
use crate::request_table::{Answer, RequestTable};

/// A replica computed another head than the leader expected: it stops applying, so it never
/// holds a history other than the cluster's without saying so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error(
    "replica diverged at log index {index}: stream {stream} has {point} {computed}, the \
     leader's is {expected}; applying stopped"
)]
pub struct Divergence {
    /// The log index of the entry.
    pub index: u64,
    /// The stream.
    pub stream: u64,
    /// Whether the heads differ before the batch or after it.
    pub point: DivergencePoint,
    /// The head the entry carried.
    pub expected: Head,
    /// The head this replica computed.
    pub computed: Head,
}

/// Where a replica's head and the leader's differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DivergencePoint {
    /// Before the batch: the replica's stream differs from the leader's with no entry in
    /// between to explain it.
    Before,
    /// After the batch: appending the same events to the same head gave another head.
    After,
    /// At a checkpoint the leader published: this replica's tree at the checkpoint's size
    /// has another root, or fewer events. Here a head's `next_offset` is a tree size and
    /// its `hash` the tree's root (`crate::replica_checkpoint`).
    Checkpoint,
}

impl fmt::Display for DivergencePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DivergencePoint::Before => "head before the batch",
            DivergencePoint::After => "head after the batch",
            DivergencePoint::Checkpoint => "tree size@root at the checkpoint's size",
        })
    }
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

/// The replicated state kept beside the store: what the store cannot tell by itself. The
/// same on every replica at the same log index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The answers to recent requests.
    pub requests: RequestTable,
    /// For each stream, the log index of the last entry that appended to it: a head other
    /// than the one an entry was proposed against is the leader's stale view only if the
    /// stream changed after the leader read it; otherwise this replica's store differs.
    pub changed_at: BTreeMap<u64, u64>,
}

/// One change of a [`Ledger`]: the unit the applied state file records
/// (`crate::applied_file`), so that a batch writes its changes, not the whole ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LedgerChange {
    /// An answer kept in the request table.
    Answer(Answer),
    /// A stream appended to at a log index.
    ChangedAt {
        /// The stream.
        stream: u64,
        /// The log index.
        index: u64,
    },
}

impl Ledger {
    /// Applies `change`, as the replica that made it did.
    pub fn apply(&mut self, change: LedgerChange) {
        match change {
            LedgerChange::Answer(answer) => {
                self.requests
                    .insert(answer.request, answer.index, answer.response);
            }
            LedgerChange::ChangedAt { stream, index } => {
                self.changed_at.insert(stream, index);
            }
        }
    }
}

/// One replica's applied state: its store and its [`Ledger`].
pub struct Replica {
    store: Kimberlite,
    ledger: Ledger,
    /// The ledger's changes since [`Replica::take_changes`].
    changes: Vec<LedgerChange>,
}

impl fmt::Debug for Replica {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replica")
            .field("store", &self.store.path())
            .field("requests", &self.ledger.requests.len())
            .finish()
    }
}

impl Replica {
    /// A replica over `store` with `ledger` (from its last saved state).
    #[must_use]
    pub fn new(store: Kimberlite, ledger: Ledger) -> Self {
        Self {
            store,
            ledger,
            changes: Vec::new(),
        }
    }

    /// The ledger's changes since the last call (or since the replica was made or replaced).
    pub fn take_changes(&mut self) -> Vec<LedgerChange> {
        std::mem::take(&mut self.changes)
    }

    pub(crate) fn change(&mut self, change: LedgerChange) {
        self.ledger.apply(change.clone());
        self.changes.push(change);
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Kimberlite {
        &self.store
    }

    /// The ledger.
    #[must_use]
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Replaces the store and the ledger (a snapshot was installed).
    pub fn replace(&mut self, store: Kimberlite, ledger: Ledger) {
        self.store = store;
        self.ledger = ledger;
        self.changes.clear();
    }

    /// Applies the command of log entry `index`.
    ///
    /// Re-applying an entry already in the store (after a restart, whose saved state is
    /// older than the store) answers what the first apply answered: an append whose
    /// expected head is already a prefix of the stream is found by its chain hash.
    pub fn apply(&mut self, index: u64, command: &Command) -> Result<Response, ApplyError> {
        match command {
            Command::Batch(commands) => self.apply_batch(index, commands),
            Command::PublishCheckpoint {
                stream,
                tree_size,
                root,
                note,
            } => self.keep_checkpoint(index, *stream, (*tree_size, *root), note),
            _ => Ok(self.apply_single(index, command, None)?.0),
        }
    }

    /// Applies one command that is not a batch, an append as if the leader had read its
    /// head at `read_at` when given (else at the command's own); says whether it was
    /// applied now (not answered from the request table).
    fn apply_single(
        &mut self,
        index: u64,
        command: &Command,
        read_at: Option<u64>,
    ) -> Result<(Response, bool), ApplyError> {
        let Some(request) = command.request() else {
            return Ok((nested_batch(), false));
        };
        if let Some(first) = self.ledger.requests.get(request) {
            return Ok((first.clone(), false));
        }
        let response = match command {
            Command::CreateStream { name, .. } => self.create(index, name)?,
            Command::Append { .. } => self.append(index, command, read_at)?,
            // Not reached: neither carries a request id.
            Command::Batch(_) | Command::PublishCheckpoint { .. } => nested_batch(),
        };
        self.remember(request, index, &response);
        Ok((response, true))
    }

    /// Applies the commands of a batch in order. An append to a stream an earlier append of
    /// the batch went to was proposed against the head that one leaves: if it left that head
    /// now, the leader had seen it (as if read at this index); otherwise the leader's view
    /// of the stream is stale for the rest of the batch.
    fn apply_batch(&mut self, index: u64, commands: &[Command]) -> Result<Response, ApplyError> {
        // For each stream appended to so far: the head its last append left, if applied now.
        let mut left: BTreeMap<u64, Option<Head>> = BTreeMap::new();
        let mut answers = Vec::with_capacity(commands.len());
        let mut position = 0;
        while let Some(rest @ [command, ..]) = commands.get(position..) {
            // Appends chained on one stream go to the store together (`crate::replica_run`).
            let run = self.apply_run(index, rest, &mut left, &mut answers)?;
            position += run.max(1);
            if run > 0 {
                continue;
            }
            let Command::Append {
                request,
                stream,
                prev,
                ..
            } = command
            else {
                let answer = match command {
                    // Keeps a note; changes no head the appends after it were proposed against.
                    Command::PublishCheckpoint { .. } => self.apply(index, command)?,
                    _ => self.apply_single(index, command, None)?.0,
                };
                answers.push(answer);
                continue;
            };
            let (stream, prev) = (*stream, *prev);
            let read_at = match left.get(&stream) {
                None => None,
                Some(Some(head)) if *head == prev => Some(index),
                Some(_) => {
                    let answer = self.ledger.requests.get(*request).cloned();
                    answers.push(
                        answer.unwrap_or(Response::Rejected(Rejection::StaleHead { stream, prev })),
                    );
                    continue;
                }
            };
            let (answer, applied_now) = self.apply_single(index, command, read_at)?;
            let after = match answer {
                Response::Appended { head, .. } if applied_now => Some(head),
                _ => None,
            };
            left.insert(stream, after);
            answers.push(answer);
        }
        Ok(Response::Batch(answers))
    }

    pub(crate) fn remember(&mut self, request: RequestId, index: u64, response: &Response) {
        // A stale head is the leader's view being behind, not an answer: its retry must run.
        if !matches!(response, Response::Rejected(Rejection::StaleHead { .. })) {
            self.change(LedgerChange::Answer(Answer {
                request,
                index,
                response: response.clone(),
            }));
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
        command: &Command,
        read_at_instead: Option<u64>,
    ) -> Result<Response, ApplyError> {
        let Command::Append {
            stream,
            prev,
            read_at,
            expected,
            events,
            ..
        } = command
        else {
            return Ok(Response::None);
        };
        let (stream, prev, expected) = (*stream, *prev, *expected);
        let id = StreamId::new(stream);
        let current = match self.store.head(id) {
            Ok(head) => Head::of(head),
            Err(Error::UnknownStream { .. }) => {
                return Ok(Response::Rejected(Rejection::UnknownStream { stream }))
            }
            Err(source) => return Err(ApplyError::Store { index, source }),
        };
        if current != prev {
            let read_at = read_at_instead.unwrap_or(*read_at);
            return self.not_at_prev(index, stream, (prev, read_at, expected), current);
        }
        let offset = ExpectedOffset::Exact(prev.next_offset.into());
        let appended = match self.store.append(id, events.iter().cloned(), offset) {
            Ok(appended) => appended,
            // Refused with nothing written, alike on every replica: an answer, not a failure
            // (the leader refuses both before proposing; an older leader may not have).
            Err(
                error @ (Error::EmptyBatch { .. } | Error::Sealed(SealError::LooksSealed { .. })),
            ) => return Ok(invalid(&error)),
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
                point: DivergencePoint::After,
                expected,
                computed,
            }
            .into());
        }
        self.change(LedgerChange::ChangedAt { stream, index });
        Ok(Response::Appended {
            first_offset: appended.first_offset.as_u64(),
            head: computed,
        })
    }

    /// The stream's head is not the one the entry was proposed against: the stream changed
    /// after the leader read it (stale, on every replica), or the entry is already in the
    /// store (applied again after a restart: the ledger replays as it did the first time, so
    /// only an entry that was accepted then gets here), or this replica's store differs.
    fn not_at_prev(
        &mut self,
        index: u64,
        stream: u64,
        (prev, read_at, expected): (Head, u64, Head),
        current: Head,
    ) -> Result<Response, ApplyError> {
        let changed_at = self.ledger.changed_at.get(&stream).copied().unwrap_or(0);
        if changed_at > read_at {
            return Ok(Response::Rejected(Rejection::StaleHead { stream, prev }));
        }
        if current.next_offset >= expected.next_offset && expected.next_offset > prev.next_offset {
            let hash = self
                .store
                .prefix_hash(StreamId::new(stream), expected.next_offset)
                .map_err(|source| ApplyError::Store { index, source })?;
            if hash.map(|hash| *hash.as_bytes()) == expected.hash {
                self.change(LedgerChange::ChangedAt { stream, index });
                return Ok(Response::Appended {
                    first_offset: prev.next_offset,
                    head: expected,
                });
            }
        }
        Err(Divergence {
            index,
            stream,
            point: DivergencePoint::Before,
            expected: prev,
            computed: current,
        }
        .into())
    }
}

/// A batch inside a batch: refused (the leader never proposes one).
fn nested_batch() -> Response {
    Response::Rejected(Rejection::Invalid {
        reason: "a batch inside a batch".into(),
    })
}

fn invalid(error: &Error) -> Response {
    Response::Rejected(Rejection::Invalid {
        reason: error.to_string(),
    })
}
