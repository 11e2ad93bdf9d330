//! The model of one named stream and the pure check of what a reopen may show of it.

use bytes::Bytes;

/// What the simulator knows of one named stream.
#[derive(Debug, Clone, Default)]
pub(super) struct StreamModel {
    /// Events acknowledged (and, after a reopen, found), in offset order from 0.
    pub(super) events: Vec<Bytes>,
    /// How many of `events` are durable: acknowledged by a syncing append or a later `sync()`.
    pub(super) durable: usize,
}

/// Batches whose append failed since the last reopen, each in its order.
pub(super) type FailedBatches = Vec<Vec<Bytes>>;

/// What a reopen may show of a stream: every durable event at its offset; of the events
/// acknowledged but not durable, a prefix (all of them unless the file system crashed); then
/// only events of failed appends: whole batches, the last possibly cut (a torn write keeps a
/// prefix). Anything else is a hole, a reordering, or an event never appended.
pub(super) fn check_survivors(
    model: &StreamModel,
    read: &[Bytes],
    failed: &[Vec<Bytes>],
    crashed: bool,
) -> Result<(), String> {
    let known = model.events.len();
    if read.len() < model.durable {
        return Err(format!(
            "durable event {} lost: {} durable, {} read",
            read.len(),
            model.durable,
            read.len()
        ));
    }
    if !crashed && read.len() < known {
        return Err(format!(
            "acknowledged event {} lost at a clean restart ({known} acknowledged)",
            read.len()
        ));
    }
    if let Some(offset) = read.iter().zip(&model.events).position(|(a, b)| a != b) {
        return Err(format!("event at offset {offset} changed or out of order"));
    }
    let mut rest = read.get(known..).unwrap_or_default();
    let mut used = vec![false; failed.len()];
    while let Some(first) = rest.first() {
        let offset = read.len() - rest.len();
        let Some(index) = failed
            .iter()
            .zip(&used)
            .position(|(batch, used)| !used && batch.first() == Some(first))
        else {
            return Err(format!(
                "event at offset {offset} was never appended, or not at the start of its batch"
            ));
        };
        let batch = failed.get(index).map(Vec::as_slice).unwrap_or_default();
        let same = batch.iter().zip(rest).take_while(|(a, b)| a == b).count();
        if same < batch.len() && same < rest.len() {
            return Err(format!(
                "a failed batch at offset {offset} is followed by other events after {same} of \
                 its {} (a hole or a reordering)",
                batch.len()
            ));
        }
        if let Some(flag) = used.get_mut(index) {
            *flag = true;
        }
        rest = rest.get(same..).unwrap_or_default();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(names: &[&'static str]) -> Vec<Bytes> {
        names
            .iter()
            .map(|name| Bytes::from_static(name.as_bytes()))
            .collect()
    }

    fn model(acknowledged: &[&'static str], durable: usize) -> StreamModel {
        StreamModel {
            events: events(acknowledged),
            durable,
        }
    }

    #[test]
    fn durable_events_must_survive_and_unsynced_ones_only_a_crash_may_cut() {
        let m = model(&["a", "b", "c"], 2);
        assert!(check_survivors(&m, &events(&["a", "b"]), &[], true).is_ok());
        assert!(check_survivors(&m, &events(&["a"]), &[], true).is_err());
        assert!(check_survivors(&m, &events(&["a", "b"]), &[], false).is_err());
        assert!(check_survivors(&m, &events(&["a", "c"]), &[], true).is_err());
    }

    #[test]
    fn failed_batches_may_show_only_as_a_prefix_without_holes() {
        let m = model(&["a"], 1);
        let failed = vec![events(&["x1", "x2"]), events(&["y1", "y2"])];
        let ok = |read: &[&'static str]| check_survivors(&m, &events(read), &failed, true);
        assert!(ok(&["a", "x1"]).is_ok());
        assert!(ok(&["a", "y1", "y2", "x1"]).is_ok());
        assert!(ok(&["a", "x1", "y1"]).is_err(), "a hole after x1");
        assert!(ok(&["a", "x2"]).is_err(), "x2 without x1");
        assert!(ok(&["a", "z"]).is_err(), "never appended");
    }
}
