//! Copying a store directory, as a backup or the demo's copies do: every file and directory,
//! the store's lock file left out (a copy is a store of its own, unlocked).

use std::path::Path;

use crate::error::CliError;

/// Copies the directory tree `from` to `to` (created if missing), lock files left out.
pub(crate) fn copy_dir(from: &Path, to: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(to).map_err(|e| io_error(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io_error(from, e))? {
        let entry = entry.map_err(|e| io_error(from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = entry.metadata().map_err(|e| io_error(&source, e))?;
        if meta.is_dir() {
            copy_dir(&source, &target)?;
        } else if !entry.file_name().to_string_lossy().ends_with(".lock") {
            std::fs::copy(&source, &target).map_err(|e| io_error(&source, e))?;
        }
    }
    Ok(())
}

fn io_error(path: &Path, error: std::io::Error) -> CliError {
    CliError::usage(format!("{}: {error}", path.display()))
}
