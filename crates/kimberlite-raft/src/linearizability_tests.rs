//! The checker accepts the histories a correct log can produce and names the first thing wrong
//! in each kind it must reject.

use crate::linearizability::{check, AppendOutcome, Operation, Recorded, Violation};

fn texts(events: &[&str]) -> Vec<String> {
    events.iter().map(|&event| event.to_owned()).collect()
}

fn append(event: &str, outcome: AppendOutcome, invoked: u64, returned: Option<u64>) -> Recorded {
    Recorded {
        operation: Operation::Append {
            events: texts(&[event]),
            outcome,
        },
        invoked,
        returned,
    }
}

fn acked(event: &str, first_offset: u64, invoked: u64, returned: u64) -> Recorded {
    append(
        event,
        AppendOutcome::Acknowledged { first_offset },
        invoked,
        Some(returned),
    )
}

fn read(seen: &[&str], invoked: u64, returned: u64) -> Recorded {
    Recorded {
        operation: Operation::Read { seen: texts(seen) },
        invoked,
        returned: Some(returned),
    }
}

#[test]
fn sequential_appends_and_reads_are_linearizable() {
    let history = [
        acked("a", 0, 0, 1),
        read(&["a"], 2, 3),
        acked("b", 1, 4, 5),
        read(&["a", "b"], 6, 7),
    ];
    assert_eq!(check(&history, &texts(&["a", "b"])), Ok(()));
}

#[test]
fn concurrent_appends_may_take_either_order() {
    // Both overlap, so "b" before "a" is as good as the other way.
    let history = [acked("a", 1, 0, 5), acked("b", 0, 1, 4)];
    assert_eq!(check(&history, &texts(&["b", "a"])), Ok(()));
    // A read overlapping an append may or may not see it.
    let history = [acked("a", 0, 0, 5), read(&[], 1, 2), read(&["a"], 1, 3)];
    assert_eq!(check(&history, &texts(&["a"])), Ok(()));
}

#[test]
fn an_unanswered_append_may_or_may_not_have_happened() {
    let history = [
        append("lost", AppendOutcome::Unknown, 0, None),
        acked("b", 0, 1, 2),
        // Applied late, after a retry on a new leader answered elsewhere (no answer recorded).
        append("late", AppendOutcome::Unknown, 3, None),
        read(&["b", "late"], 10, 11),
    ];
    assert_eq!(check(&history, &texts(&["b", "late"])), Ok(()));
}

#[test]
fn batches_take_consecutive_offsets() {
    let history = [
        Recorded {
            operation: Operation::Append {
                events: texts(&["a1", "a2"]),
                outcome: AppendOutcome::Acknowledged { first_offset: 0 },
            },
            invoked: 0,
            returned: Some(1),
        },
        acked("b", 2, 2, 3),
    ];
    assert_eq!(check(&history, &texts(&["a1", "a2", "b"])), Ok(()));
    assert_eq!(
        check(&history, &texts(&["a1", "b", "a2"])),
        Err(Violation::Torn { op: 0 })
    );
    assert_eq!(
        check(&history, &texts(&["a2", "b"])),
        Err(Violation::Torn { op: 0 })
    );
}

#[test]
fn a_lost_acknowledgement_is_rejected() {
    let history = [acked("a", 0, 0, 1), acked("b", 1, 2, 3)];
    assert_eq!(
        check(&history, &texts(&["a"])),
        Err(Violation::LostAcknowledgement {
            op: 1,
            event: "b".into()
        })
    );
}

#[test]
fn a_duplicate_is_rejected() {
    let history = [acked("a", 0, 0, 1)];
    assert_eq!(
        check(&history, &texts(&["a", "a"])),
        Err(Violation::Duplicate {
            event: "a".into(),
            first: 0,
            second: 1
        })
    );
}

#[test]
fn an_event_nobody_appended_or_a_refused_append_is_rejected() {
    let history = [acked("a", 0, 0, 1)];
    assert_eq!(
        check(&history, &texts(&["a", "ghost"])),
        Err(Violation::Phantom {
            event: "ghost".into(),
            offset: 1
        })
    );
    let history = [append("no", AppendOutcome::Refused, 0, Some(1))];
    assert_eq!(
        check(&history, &texts(&["no"])),
        Err(Violation::Phantom {
            event: "no".into(),
            offset: 0
        })
    );
}

#[test]
fn an_acknowledged_offset_other_than_the_events_is_rejected() {
    let history = [acked("a", 0, 0, 1), acked("b", 0, 0, 1)];
    assert_eq!(
        check(&history, &texts(&["a", "b"])),
        Err(Violation::WrongOffset {
            op: 1,
            acknowledged: 0,
            actual: 1
        })
    );
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_rejected() {
    let history = [acked("a", 0, 0, 1), read(&[], 2, 3)];
    assert_eq!(
        check(&history, &texts(&["a"])),
        Err(Violation::StaleRead { read: 1, append: 0 })
    );
    // Also when a later read saw the write first (reads must not go back in time).
    let history = [
        append("a", AppendOutcome::Unknown, 0, None),
        read(&["a"], 1, 2),
        read(&[], 3, 4),
    ];
    assert_eq!(
        check(&history, &texts(&["a"])),
        Err(Violation::RealTimeOrder {
            first: 2,
            second: 1
        })
    );
}

#[test]
fn a_read_that_is_not_a_prefix_is_rejected() {
    let history = [acked("a", 0, 0, 1), acked("b", 1, 0, 1), read(&["b"], 2, 3)];
    assert_eq!(
        check(&history, &texts(&["a", "b"])),
        Err(Violation::NotAPrefix { op: 2 })
    );
}

#[test]
fn offsets_out_of_real_time_order_are_rejected() {
    // "a" was acknowledged before "b" began, yet "b" took the earlier offset.
    let history = [acked("a", 1, 0, 1), acked("b", 0, 2, 3)];
    assert_eq!(
        check(&history, &texts(&["b", "a"])),
        Err(Violation::RealTimeOrder {
            first: 1,
            second: 0
        })
    );
    // A read that saw an append invoked only after the read ended.
    let history = [read(&["a"], 0, 1), acked("a", 0, 2, 3)];
    assert_eq!(
        check(&history, &texts(&["a"])),
        Err(Violation::RealTimeOrder {
            first: 1,
            second: 0
        })
    );
}
