//! Opening a store for a command: never creating one by accident, waiting briefly for a store
//! another process holds, telling what recovery did, and finding a stream by name.

use std::path::Path;
use std::time::{Duration, Instant};

use kimberlite::{Config, Error, Kimberlite, StreamId};

use crate::error::CliError;

/// How long a command waits for a store another process holds (for example a `tail` that is
/// reading it for a moment) before reporting it in use.
pub const LOCK_WAIT: Duration = Duration::from_millis(1500);

/// Opens the store in `dir`, waiting up to `wait` while another process holds it.
pub fn open_waiting(dir: &Path, config: Config, wait: Duration) -> Result<Kimberlite, Error> {
    let deadline = Instant::now() + wait;
    loop {
        match Kimberlite::open_with(dir, config.clone()) {
            Err(Error::Locked { .. }) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            outcome => return outcome,
        }
    }
}

/// Opens an existing store; never creates one. Missing directories and directories that are
/// not stores get a hint. Waits up to [`LOCK_WAIT`] for a store in use. What recovery did on
/// opening it is told on standard error ([`announce_recovery`]).
pub fn open_existing(dir: &Path, config: Config) -> Result<Kimberlite, CliError> {
    let store = open_existing_waiting(dir, config, LOCK_WAIT)?;
    announce_recovery(&store);
    Ok(store)
}

/// Tells on standard error what recovery repaired or found when `store` was opened, if
/// anything. Every command that opens a store does (`verify` and `inspect` put it in their
/// report instead): recovery cuts a torn tail at the first open, whichever command that is,
/// so only that command can tell.
pub fn announce_recovery(store: &Kimberlite) {
    for action in store.recovery_report().actions {
        eprintln!(
            "kimberlite: note: on open, {}",
            recovery_line(store, &action)
        );
    }
}

/// What recovery did, or, for a store opened read-only, would do (nothing was changed).
pub fn recovery_line(store: &Kimberlite, action: &impl std::fmt::Display) -> String {
    if store.is_read_only() {
        format!("recovery would do this (read-only: nothing changed): {action}")
    } else {
        format!("recovery {action}")
    }
}

/// [`open_existing`] with a chosen wait for a store in use, telling nothing of recovery.
pub fn open_existing_waiting(
    dir: &Path,
    config: Config,
    wait: Duration,
) -> Result<Kimberlite, CliError> {
    open_waiting(dir, config.create_if_missing(false), wait).map_err(with_hint)
}

/// Opens an existing store to look, not to change ([`Kimberlite::open_read_only`]): for
/// `verify`, `read`, `inspect`, `prove`, `audit` and `tail`. Writes nothing, takes no lock
/// (so it never waits for a writer), works on a read-only copy; what recovery would do is in
/// the store's recovery report, told by [`announce_recovery`] or the command's report.
pub fn open_read_only(dir: &Path) -> Result<Kimberlite, CliError> {
    Kimberlite::open_read_only(dir, Config::default()).map_err(with_hint)
}

/// [`open_read_only`], then what recovery would do told on standard error.
pub fn open_looking(dir: &Path) -> Result<Kimberlite, CliError> {
    let store = open_read_only(dir)?;
    announce_recovery(&store);
    Ok(store)
}

/// The error of an open, with a hint for a wrong path.
fn with_hint(error: Error) -> CliError {
    {
        let hint = match &error {
            Error::StoreNotFound { .. } => Some(
                "check the path; `kimberlite append DIR STREAM --create` creates a store, \
                 `kimberlite demo` builds an example one",
            ),
            Error::NotAStore { .. } => {
                Some("point at the directory that holds kimberlite.json, or at a new directory")
            }
            _ => None,
        };
        match hint {
            Some(hint) => CliError::Store {
                error,
                hint: Some(hint.to_owned()),
            },
            None => CliError::from(error),
        }
    }
}

/// The id of the stream named `name`, or an error listing the streams there are.
pub fn find_stream(store: &Kimberlite, dir: &Path, name: &str) -> Result<StreamId, CliError> {
    if let Some(id) = store.stream(name) {
        return Ok(id);
    }
    let names: Vec<String> = store.list_streams().into_iter().map(|s| s.name).collect();
    let hint = if names.is_empty() {
        "the store has no streams yet".to_owned()
    } else {
        format!("streams in this store: {}", names.join(", "))
    };
    Err(CliError::usage_hint(
        format!("no stream named {name:?} in {}", dir.display()),
        hint,
    ))
}
