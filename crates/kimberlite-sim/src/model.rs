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
    /// The events of a batch whose append failed: a reopen shows all of them or none.
    pub(crate) uncertain: Vec<Bytes>,
    /// Where each batch of `log` ends (its length after the batch), ascending: a reopen
    /// shows `log` up to one of them, never into a batch.
    pub(crate) batch_ends: Vec<usize>,
}

impl StreamModel {
    /// Appends an acknowledged batch.
    pub(crate) fn push_batch(&mut self, batch: Vec<Bytes>) {
        self.log.extend(batch);
        self.batch_ends.push(self.log.len());
    }

    /// Makes `survived` (checked by [`check_survivors`]) the model: it ends on a batch end
    /// of `log`, or is all of `log` and the failed batch.
    pub(crate) fn take_survivors(&mut self, survived: Vec<Bytes>) {
        self.batch_ends.retain(|&end| end <= survived.len());
        if self
            .batch_ends
            .last()
            .is_none_or(|&end| end < survived.len())
        {
            self.batch_ends.push(survived.len());
        }
        self.log = survived;
        self.durable_len = self.durable_len.min(self.log.len());
        self.uncertain.clear();
    }
}

/// Checks one stream's surviving events against its model: every durable event is there, no
/// event changed, nothing was invented, no batch survived in part, and a clean restart lost
/// nothing.
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
    let whole = actual.is_empty()
        || model.batch_ends.binary_search(&actual.len()).is_ok()
        || actual.len() == model.log.len() + model.uncertain.len();
    if !whole {
        return Err(format!(
            "stream {stream}: a partial batch survived: {} events, batches end at {:?} \
             (and {} with the failed batch)",
            actual.len(),
            model.batch_ends.iter().rev().take(3).collect::<Vec<_>>(),
            model.log.len() + model.uncertain.len()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn events(names: &[&'static str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|n| Bytes::from_static(n.as_bytes()))
            .collect()
    }

    #[test]
    fn survivors_end_on_a_batch_end_or_with_the_failed_batch_whole() {
        let stream = StreamId::new(1);
        let mut model = StreamModel::default();
        model.push_batch(events(&["a", "b"]));
        model.push_batch(events(&["c", "d", "e"]));
        model.uncertain = events(&["f", "g"]);
        let check = |read: &[&'static str]| check_survivors(stream, &model, &events(read), true);
        assert!(check(&[]).is_ok());
        assert!(check(&["a", "b"]).is_ok());
        assert!(check(&["a", "b", "c", "d", "e"]).is_ok());
        assert!(check(&["a", "b", "c", "d", "e", "f", "g"]).is_ok());
        assert!(check(&["a"]).unwrap_err().contains("partial batch"));
        assert!(check(&["a", "b", "c", "d"]).is_err());
        assert!(check(&["a", "b", "c", "d", "e", "f"]).is_err());
        model.take_survivors(events(&["a", "b", "c", "d", "e", "f", "g"]));
        assert_eq!(model.batch_ends, [2, 5, 7]);
        model.take_survivors(events(&["a", "b"]));
        assert_eq!(model.batch_ends, [2]);
    }
}
