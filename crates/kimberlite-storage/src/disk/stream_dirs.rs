//! The streams directory of a store: each stream's directory name, and opening every stream
//! found there (a corrupt one is set aside as unopened, reported, not fatal).

use std::collections::BTreeMap;
use std::path::Path;

use kimberlite_types::StreamId;

use super::config::StorageConfig;
use super::fs::FileSystem;
use super::recovery::open_stream;
use super::stream::{io_error, StreamState, Unopened};
use crate::error::StorageError;
use crate::recovery_report::{RecoveryAction, RecoveryReport};

/// The streams of a store that opened, and those that did not.
type OpenedStreams<F> = (
    BTreeMap<StreamId, StreamState<F>>,
    BTreeMap<StreamId, Unopened>,
);

/// Streams opened from `streams_dir` and streams that could not be; entries that are not a
/// stream's directory, and streams that could not be opened, are noted in `report`.
pub(super) fn open_streams<F: FileSystem>(
    fs: &F,
    streams_dir: &Path,
    config: &StorageConfig,
    report: &mut RecoveryReport,
) -> Result<OpenedStreams<F>, StorageError> {
    let mut streams = BTreeMap::new();
    let mut unopened = BTreeMap::new();
    let mut names = fs
        .list_dir(streams_dir)
        .map_err(|source| io_error(streams_dir, source))?;
    names.sort_unstable();
    for name in names {
        let Some(id) = parse_stream_dir_name(&name) else {
            report.actions.push(RecoveryAction::UnexpectedEntry {
                path: streams_dir.join(&name),
            });
            continue;
        };
        let stream_dir = streams_dir.join(&name);
        match open_stream(fs, &stream_dir, id, config, report) {
            Ok(Some(state)) => {
                streams.insert(id, state);
            }
            Ok(None) => {}
            Err(StorageError::Unrecoverable { path, reason, .. }) => {
                let stream = Unopened { path, reason };
                report.actions.push(RecoveryAction::CorruptionFound {
                    stream: id,
                    error: stream.to_error(id).to_string(),
                });
                unopened.insert(id, stream);
            }
            Err(StorageError::UnexpectedEntry(entry)) => {
                let reason = entry.to_string();
                let stream = Unopened {
                    path: entry.path,
                    reason,
                };
                report.actions.push(RecoveryAction::CorruptionFound {
                    stream: id,
                    error: stream.to_error(id).to_string(),
                });
                unopened.insert(id, stream);
            }
            Err(error) => return Err(error),
        }
    }
    Ok((streams, unopened))
}

/// A stream's directory name: its id as 20 decimal digits.
#[must_use]
pub(super) fn stream_dir_name(id: StreamId) -> String {
    format!("{:020}", id.as_u64())
}

fn parse_stream_dir_name(name: &str) -> Option<StreamId> {
    if name.len() != 20 || !name.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    name.parse().ok().map(StreamId::new)
}
