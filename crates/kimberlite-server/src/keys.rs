//! The keys the server accepts: tokens and the principal each belongs to.

use std::sync::RwLock;

use crate::principal::Principal;

/// The keys the server accepts.
#[derive(Debug, Default)]
pub struct KeyRing {
    keys: RwLock<Vec<(String, Principal)>>,
}

impl KeyRing {
    /// A key ring holding `(token, principal)` pairs.
    #[must_use]
    pub fn from_tokens(keys: Vec<(String, Principal)>) -> Self {
        Self {
            keys: RwLock::new(keys),
        }
    }

    /// The principal `token` belongs to, if any.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let keys = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.iter()
            .find(|(known, _)| known == token)
            .map(|(_, principal)| principal.clone())
    }
}
