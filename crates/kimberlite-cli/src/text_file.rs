//! Reading the small text files commands are given: keys, policies, checkpoints, proofs.

use std::path::Path;

use crate::error::CliError;

/// The text of `path` (`what` names it in the error); a file that cannot be read is a usage
/// error.
pub fn read_text(path: &Path, what: &str) -> Result<String, CliError> {
    std::fs::read_to_string(path).map_err(|error| {
        CliError::usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })
}

/// Reads a checkpoint or proof: evidence handed in to be checked, so bytes that are not text
/// are not a usage error but evidence that does not hold (they fail to parse and are reported
/// INVALID, exit 1, as malformed text is); only a file that cannot be read is a usage error.
pub fn read_evidence(path: &Path, what: &str) -> Result<String, CliError> {
    let bytes = std::fs::read(path).map_err(|error| {
        CliError::usage(format!(
            "cannot read the {what} {}: {error}",
            path.display()
        ))
    })?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}
