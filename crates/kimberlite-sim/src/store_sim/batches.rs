//! Invariant 6, no partial batch survives a crash: every append's events are found after a
//! reopen all together or not at all. Each event of the workload names its batch and its place
//! in it (`stream/step/thread/IofN/padding`, `workload`), so the check needs only what was
//! read, whatever the model says of durability.

use bytes::Bytes;

/// An event's batch and its place in it.
#[derive(Debug, PartialEq, Eq)]
struct Place<'a> {
    batch: &'a [u8],
    index: usize,
    count: usize,
}

/// The event's place, when it names one (events of the fail-stop probe do not: each is a
/// batch of its own).
fn place(event: &Bytes) -> Option<Place<'_>> {
    let mut fields = event.splitn(5, |&byte| byte == b'/');
    let (name, step, thread) = (fields.next()?, fields.next()?, fields.next()?);
    let position = std::str::from_utf8(fields.next()?).ok()?;
    let (index, count) = position.split_once("of")?;
    let batch = event.get(..name.len() + step.len() + thread.len() + 2)?;
    Some(Place {
        batch,
        index: index.parse().ok()?,
        count: count.parse().ok()?,
    })
}

/// The payload of event `index` of a batch of `count` (`batch` = `stream/step/thread`).
pub(super) fn event_payload(batch: &str, index: usize, count: usize, padding: &str) -> Bytes {
    Bytes::from(format!("{batch}/{index}of{count}/{padding}"))
}

/// Checks that `read` (a stream's events from offset 0) is whole batches back to back.
pub(super) fn check_whole_batches(read: &[Bytes]) -> Result<(), String> {
    let mut offset = 0;
    while let Some(event) = read.get(offset) {
        let Some(first) = place(event) else {
            offset += 1;
            continue;
        };
        if first.index != 0 {
            return Err(format!(
                "event {} of a batch of {} at offset {offset}, without the ones before it",
                first.index, first.count
            ));
        }
        for index in 1..first.count {
            let next = read.get(offset + index).and_then(place);
            if next.as_ref().map(|p| (p.batch, p.index)) != Some((first.batch, index)) {
                return Err(format!(
                    "a partial batch survived at offset {offset}: {index} of its {} events",
                    first.count
                ));
            }
        }
        offset += first.count.max(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(name: &str, count: usize) -> Vec<Bytes> {
        (0..count)
            .map(|i| event_payload(name, i, count, "xx"))
            .collect()
    }

    #[test]
    fn whole_batches_pass_and_a_cut_one_is_caught() {
        let a = batch("s/1/0", 3);
        let b = batch("s/1/1", 2);
        let probe = Bytes::from_static(b"s/2/after-failure");
        let whole: Vec<Bytes> = [a.clone(), vec![probe], b.clone()].concat();
        assert!(check_whole_batches(&whole).is_ok());
        let cut: Vec<Bytes> = [a.clone(), b[..1].to_vec()].concat();
        assert!(check_whole_batches(&cut)
            .unwrap_err()
            .contains("partial batch"));
        let headless: Vec<Bytes> = a[1..].to_vec();
        assert!(check_whole_batches(&headless).is_err());
        let interleaved = vec![a[0].clone(), b[0].clone(), a[1].clone()];
        assert!(check_whole_batches(&interleaved).is_err());
    }
}
