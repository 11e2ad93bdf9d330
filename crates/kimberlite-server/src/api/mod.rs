//! The `/v1` handlers, one module per resource.

pub(crate) mod append;
pub(crate) mod body;
pub(crate) mod checkpoint;
pub(crate) mod erase;
pub(crate) mod health;
pub(crate) mod keys;
pub(crate) mod proofs;
pub(crate) mod read;
pub(crate) mod receipt;
pub(crate) mod retain;
pub(crate) mod streams;
pub(crate) mod tail;
pub(crate) mod tiles;
pub(crate) mod verify;
pub(crate) mod witnessed;
