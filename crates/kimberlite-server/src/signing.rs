//! Origins and the checkpoint key: what proofs and checkpoints name the store and sign with.
//!
//! The origin of a stream is `<store name>/<stream name>` (`kimberlite_proof::signing`); the
//! store name defaults to the store directory's name, as the CLI's `prove` and `audit`
//! default it, so a proof fetched from the server matches a checkpoint signed by the CLI.

use kimberlite::proof::{check_store_name, stream_origin, InvalidStoreName, SignerKey};
use kimberlite::Kimberlite;

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Signing {
    pub(crate) store_name: String,
    /// The key checkpoints are signed with (`kimberlite serve --signing-key`).
    pub(crate) key: Option<SignerKey>,
}

impl Signing {
    pub(crate) fn new(store_name: &str, key: Option<SignerKey>) -> Result<Self, InvalidStoreName> {
        check_store_name(store_name)?;
        Ok(Self {
            store_name: store_name.to_owned(),
            key,
        })
    }

    /// The default: the store directory's name (`kimberlite` for a store in memory or a
    /// directory whose name cannot start an origin), no key.
    pub(crate) fn of_store(store: &Kimberlite) -> Self {
        let name = store
            .path()
            .and_then(|path| path.file_name())
            .map(|name| name.to_string_lossy().into_owned())
            .filter(|name| check_store_name(name).is_ok())
            .unwrap_or_else(|| "kimberlite".to_owned());
        Self {
            store_name: name,
            key: None,
        }
    }

    /// The origin of `stream`.
    pub(crate) fn origin(&self, stream: &str) -> String {
        stream_origin(&self.store_name, stream)
            .unwrap_or_else(|_| format!("{}/{stream}", self.store_name))
    }
}
