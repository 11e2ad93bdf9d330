//! Stream names as routes take them: the store's rules, and no names that read as paths.

use crate::error::ApiError;

/// Names a route may address: what the store accepts, minus names that read as paths
/// (`..`, `a/b`) and names starting with `_`, kept for the server's own streams.
pub(crate) fn check_stream_name(name: &str) -> Result<(), ApiError> {
    kimberlite::validate_stream_name(name)?;
    if name == "." || name == ".." || name.contains('/') || name.contains('\\') {
        return Err(ApiError::BadRequest(format!(
            "invalid stream name {name:?}: a name must not be a path (no `/`, `\\`, `.` or `..`)"
        )));
    }
    Ok(())
}

/// [`check_stream_name`], and the name is not one of the server's own (`_`-prefixed): for
/// creating streams.
pub(crate) fn check_new_stream_name(name: &str) -> Result<(), ApiError> {
    check_stream_name(name)?;
    if name.starts_with('_') {
        return Err(ApiError::BadRequest(format!(
            "invalid stream name {name:?}: names starting with `_` are kept for the server's own streams"
        )));
    }
    Ok(())
}
