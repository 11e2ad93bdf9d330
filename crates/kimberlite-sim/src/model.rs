//! The model of what a simulated store must show, and the pure checks of what it showed
//! against it (no I/O: the simulator's run feeds them what it read).

use bytes::Bytes;
use kimberlite_types::StreamId;

/// The outcome of one check: a violation's description, or nothing.
pub(crate) type Check = Result<(), String>;

/// What the store must show for one stream.
#[derive(Debug, Clone, Default)]
pub(crate) struct StreamModel {
    /// Every event acknowledged, in order: what a read must show.
    pub(crate) log: Vec<Bytes>,
    /// How many of `log` were made durable (a crash may not take them).
    pub(crate) durable_len: usize,
    /// The events of a batch whose append failed: a crash may leave a prefix of them.
    pub(crate) uncertain: Vec<Bytes>,
}

/// Checks one stream's surviving events against its model: every durable event is there, no
/// event changed, nothing was invented, and a clean restart lost nothing.
pub(crate) fn check_survivors(
    stream: StreamId,
    model: &StreamModel,
    actual: &[Bytes],
    after_crash: bool,
) -> Check {
    if actual.len() < model.durable_len {
        return Err(format!(
            "stream {stream}: {} events survived, but {} were acknowledged as durable",
            actual.len(),
            model.durable_len
        ));
    }
    let allowed: Vec<&Bytes> = model.log.iter().chain(&model.uncertain).collect();
    if actual.len() > allowed.len() {
        return Err(format!(
            "stream {stream}: {} events after restart, only {} were ever appended",
            actual.len(),
            allowed.len()
        ));
    }
    if let Some(at) = actual.iter().zip(&allowed).position(|(a, b)| a != *b) {
        return Err(format!(
            "stream {stream}: event {at} changed across restart"
        ));
    }
    if !after_crash && actual.len() < model.log.len() {
        return Err(format!(
            "stream {stream}: a clean restart lost events ({} of {})",
            actual.len(),
            model.log.len()
        ));
    }
    Ok(())
}

/// Checks one read against the model: the events at `from`, stopping once `max_bytes` of
/// payload are reached, at least one when any exists.
pub(crate) fn check_read(
    stream: StreamId,
    log: &[Bytes],
    from: u64,
    max_bytes: u64,
    events: &[Bytes],
) -> Check {
    let rest = usize::try_from(from)
        .ok()
        .and_then(|from| log.get(from..))
        .unwrap_or_default();
    let mut expected = 0;
    let mut bytes = 0u64;
    for event in rest {
        expected += 1;
        bytes += event.len() as u64;
        if bytes >= max_bytes {
            break;
        }
    }
    let want = rest.get(..expected).unwrap_or_default();
    if events != want {
        let first_difference = events.iter().zip(want).position(|(a, b)| a != b);
        return Err(format!(
            "stream {stream}: read from {from} (max_bytes {max_bytes}) returned {} events, \
             expected {}; first difference at {first_difference:?}",
            events.len(),
            want.len()
        ));
    }
    Ok(())
}
