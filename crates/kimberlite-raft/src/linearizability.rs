//! A linearizability checker for the event-log model, over a recorded history of appends and
//! reads of one stream (docs/REPLICATION.md, section "Tests"). Pure: a function of the history
//! and of the stream as the replicas hold it at the end.
//!
//! The model: a stream is a sequence of events; an append puts its events at the next offsets
//! and answers the first; a read answers the whole sequence. Since every event is unique (the
//! recorder names it), the final stream fixes the one order the appends took effect in, and a
//! read's answer fixes where it sits in that order (after the appends it saw, before the
//! others). The history is linearizable iff that order can be given points in time inside each
//! operation's interval: placing each operation at the latest invocation so far, in order, it
//! never passes its own response.

/// A logical time: the recorder's counter, increasing with real time across all clients.
pub type Time = u64;

/// How an append ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppendOutcome {
    /// Acknowledged: its first event is at this offset.
    Acknowledged {
        /// The offset answered.
        first_offset: u64,
    },
    /// Refused: it must not be in the stream.
    Refused,
    /// No answer (a timeout, a lost leader): it may or may not be in the stream.
    Unknown,
}

/// One operation of a history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operation {
    /// An append of `events` (each unique in the history), retried under one request id.
    Append {
        /// The events, in order.
        events: Vec<String>,
        /// How it ended.
        outcome: AppendOutcome,
    },
    /// A linearizable read that answered `seen` (the stream from offset 0). A read that failed
    /// is not recorded: it constrains nothing.
    Read {
        /// The events it answered.
        seen: Vec<String>,
    },
}

/// An operation and its interval: invoked at `invoked`, answered at `returned` (`None`: no
/// answer, so it may take effect any time after its invocation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    /// The operation.
    pub operation: Operation,
    /// When the client invoked it.
    pub invoked: Time,
    /// When the client got its answer, if it did.
    pub returned: Option<Time>,
}

/// Why a history is not linearizable. Operations are named by their index in the history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// An acknowledged append is not in the final stream.
    #[error("append {op} was acknowledged but its event {event:?} is not in the stream")]
    LostAcknowledgement {
        /// The append.
        op: usize,
        /// Its missing event.
        event: String,
    },
    /// An event is in the final stream more than once.
    #[error("event {event:?} is in the stream at offsets {first} and {second}")]
    Duplicate {
        /// The event.
        event: String,
        /// Its first offset.
        first: u64,
        /// Another offset.
        second: u64,
    },
    /// An event in the final stream that no append of the history carried (or a refused one).
    #[error("event {event:?} at offset {offset} was never appended (or its append was refused)")]
    Phantom {
        /// The event.
        event: String,
        /// Its offset.
        offset: u64,
    },
    /// An append whose events are not at consecutive offsets in the stream (one batch split,
    /// cut, or reordered).
    #[error("append {op}'s events are not consecutive in the stream")]
    Torn {
        /// The append.
        op: usize,
    },
    /// An append acknowledged with an offset other than where its events are.
    #[error("append {op} was acknowledged at offset {acknowledged} but is at offset {actual}")]
    WrongOffset {
        /// The append.
        op: usize,
        /// The offset answered.
        acknowledged: u64,
        /// Where its first event is.
        actual: u64,
    },
    /// A read answered something other than a prefix of the final stream.
    #[error("read {op} answered events that are not a prefix of the stream")]
    NotAPrefix {
        /// The read.
        op: usize,
    },
    /// A read that did not see an append acknowledged before the read began.
    #[error("read {read} did not see append {append}, acknowledged before the read began")]
    StaleRead {
        /// The read.
        read: usize,
        /// The append it missed.
        append: usize,
    },
    /// `first` takes effect before `second` (by the stream's order or a read's answer), but
    /// `second` was answered before `first` was invoked.
    #[error("operation {first} is ordered before operation {second}, which ended before it began")]
    RealTimeOrder {
        /// The operation ordered first.
        first: usize,
        /// The operation that ended before it began.
        second: usize,
    },
}

/// Where an operation sits in the order: before the append at `slot` (the end of a read's
/// prefix), or as the append at `slot`; reads come before the append at their slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    slot: u64,
    is_append: bool,
    invoked: Time,
    op: usize,
}

/// Checks that `history` is linearizable for the event-log model, given `stream`: the events
/// every replica holds once the run is over (checked equal by the caller).
pub fn check(history: &[Recorded], stream: &[String]) -> Result<(), Violation> {
    let offsets = offsets_of(stream)?;
    let mut places = Vec::with_capacity(history.len());
    let mut appended = std::collections::HashSet::new();
    for (op, recorded) in history.iter().enumerate() {
        match &recorded.operation {
            Operation::Append { events, outcome } => {
                let Some(slot) = place_append(op, events, outcome, &offsets)? else {
                    continue;
                };
                appended.extend(events.iter().map(String::as_str));
                places.push(Place {
                    slot,
                    is_append: true,
                    invoked: recorded.invoked,
                    op,
                });
            }
            Operation::Read { seen } => {
                if stream.get(..seen.len()) != Some(seen.as_slice()) {
                    return Err(Violation::NotAPrefix { op });
                }
                places.push(Place {
                    slot: seen.len() as u64,
                    is_append: false,
                    invoked: recorded.invoked,
                    op,
                });
            }
        }
    }
    for (offset, event) in (0u64..).zip(stream) {
        if !appended.contains(event.as_str()) {
            return Err(Violation::Phantom {
                event: event.clone(),
                offset,
            });
        }
    }
    places.sort_unstable();
    order_fits_real_time(history, &places)
}

/// Each event's offset in the final stream; an event twice is a duplicate.
fn offsets_of(stream: &[String]) -> Result<std::collections::HashMap<&str, u64>, Violation> {
    let mut offsets = std::collections::HashMap::with_capacity(stream.len());
    for (offset, event) in (0u64..).zip(stream) {
        if let Some(first) = offsets.insert(event.as_str(), offset) {
            return Err(Violation::Duplicate {
                event: event.clone(),
                first,
                second: offset,
            });
        }
    }
    Ok(offsets)
}

/// The offset of an append's first event if it took effect, `None` if it did not (and was
/// allowed not to).
fn place_append(
    op: usize,
    events: &[String],
    outcome: &AppendOutcome,
    offsets: &std::collections::HashMap<&str, u64>,
) -> Result<Option<u64>, Violation> {
    let found: Vec<Option<u64>> = events
        .iter()
        .map(|event| offsets.get(event.as_str()).copied())
        .collect();
    let first = match found.first() {
        None => return Ok(None),
        Some(first) => *first,
    };
    if found.iter().all(Option::is_none) {
        return match outcome {
            AppendOutcome::Acknowledged { .. } => Err(Violation::LostAcknowledgement {
                op,
                event: events.first().cloned().unwrap_or_default(),
            }),
            AppendOutcome::Refused | AppendOutcome::Unknown => Ok(None),
        };
    }
    let Some(first) = first else {
        return Err(Violation::Torn { op });
    };
    let consecutive = (first..).zip(&found).all(|(want, got)| *got == Some(want));
    if !consecutive {
        return Err(Violation::Torn { op });
    }
    match outcome {
        AppendOutcome::Acknowledged { first_offset } if *first_offset != first => {
            Err(Violation::WrongOffset {
                op,
                acknowledged: *first_offset,
                actual: first,
            })
        }
        AppendOutcome::Refused => Err(Violation::Phantom {
            event: events.first().cloned().unwrap_or_default(),
            offset: first,
        }),
        AppendOutcome::Acknowledged { .. } | AppendOutcome::Unknown => Ok(Some(first)),
    }
}

/// Gives each operation, in order, the latest invocation so far as its point in time; the
/// order fits real time iff no operation's point passes its own response.
fn order_fits_real_time(history: &[Recorded], places: &[Place]) -> Result<(), Violation> {
    // (time, the operation whose invocation set it)
    let mut latest: Option<(Time, usize)> = None;
    for place in places {
        if latest.is_none_or(|(time, _)| place.invoked > time) {
            latest = Some((place.invoked, place.op));
        }
        let returned = history.get(place.op).and_then(|recorded| recorded.returned);
        let (Some((time, first)), Some(returned)) = (latest, returned) else {
            continue;
        };
        if time > returned {
            let first_is_read = matches!(
                history.get(first).map(|recorded| &recorded.operation),
                Some(Operation::Read { .. })
            );
            return Err(if first_is_read && place.is_append {
                Violation::StaleRead {
                    read: first,
                    append: place.op,
                }
            } else {
                Violation::RealTimeOrder {
                    first,
                    second: place.op,
                }
            });
        }
    }
    Ok(())
}
