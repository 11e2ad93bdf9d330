//! The state machine's JSON files (the snapshot's description): read whole, replaced whole.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::node_fs::NodeFs;
use crate::open_error::OpenError;

/// The value in the JSON file at `path`, or `None` when there is none.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(
    fs: &NodeFs,
    path: &Path,
) -> Result<Option<T>, OpenError> {
    let bytes = fs.read_if_exists(path).map_err(|source| OpenError::Io {
        path: path.to_owned(),
        source,
    })?;
    bytes
        .map(|bytes| {
            serde_json::from_slice(&bytes).map_err(|source| OpenError::Parse {
                path: path.to_owned(),
                source,
            })
        })
        .transpose()
}

/// Replaces `dir/name` by `value` as JSON: written beside it, synced, renamed over it.
pub(crate) fn write_json<T: Serialize>(
    fs: &NodeFs,
    dir: &Path,
    name: &str,
    value: &T,
    sync: bool,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
    fs.replace(dir, name, &bytes, sync)
}
