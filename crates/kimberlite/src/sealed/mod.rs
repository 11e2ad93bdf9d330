//! Sealed events and erasure by crypto-shredding (`docs/COMPLIANCE.md`, "Erasure").
//!
//! An event appended for a data subject ([`SubjectKeys::append`]) is stored sealed: encrypted
//! with the subject's own data key inside an envelope ([`envelope`], `docs/FORMAT.md`,
//! "Sealed events"). The chain hash and the Merkle leaf commit to the envelope, so verifying,
//! proving, checkpoints and witnesses never need a key. Data keys are kept wrapped by the
//! operator's master key ([`KeyWrapper`], [`MasterKey`]) in the key store (`keys/`).
//! [`SubjectKeys::erase`] records the erasure in `_erasure` and destroys the key: the events
//! stay in the log, proven, and can never be read again.
//!
//! Modules: `envelope` (the bytes, pure), `gcm_many` (AES-256-GCM for many short events),
//! `batch` (sealing a batch), `master` (the master
//! key), `key_store` (the key files), `counts` (events per key, after a crash too),
//! `erasures` (the erasure log), `opened` (what a reader is given), `subject_keys` (appends,
//! reads, erase).

mod batch;
mod counts;
pub mod envelope;
mod erasures;
mod error;
mod gcm_many;
mod key_store;
mod master;
mod opened;
mod subject_keys;
#[cfg(test)]
mod tests;

pub use erasures::{Erasure, Erasures, ERASURE_STREAM};
pub use error::SealError;
pub use key_store::KEYS_DIR;
pub use master::{DataKey, KeyWrapError, KeyWrapper, MasterKey, KEY_LEN, MASTER_KEY_LABEL};
pub use opened::{Content, OpenedEvent};
pub use subject_keys::{ErasureReceipt, SubjectKeys};
