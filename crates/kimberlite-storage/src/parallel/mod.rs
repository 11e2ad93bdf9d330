//! The speed machinery, in one private place: helper threads that share the CPU-bound part of
//! an append (encoding a large batch's chunks) and of a verified read (decoding and hashing a
//! run of frames) with the calling thread.
//!
//! The rest of the crate calls [`Encoder::encode`] and [`VerifyPool::decode`] (and
//! [`VerifyPool::wake_ahead`] before a long read). Their results are those of the one-thread
//! references they are tested against, [`crate::encode::encode_chunk`] and
//! [`crate::verify::decode_frames`]: the threads change the speed, never the bytes.
//!
//! Every helper thread belongs to what started it and is joined when that is dropped
//! (`job_board`): a store's verify helpers with the store, the shared encode helper with the
//! last store holding it. Spin-waits, and the figures that justify each, are listed in
//! docs/PERFORMANCE.md, section "Spin-waits".

mod encoder;
mod job_board;
mod verify_pool;

pub(crate) use encoder::Encoder;
pub use encoder::MIN_EVENTS;
pub use verify_pool::BLOCK_FRAMES;
pub(crate) use verify_pool::{default_verify_threads, VerifyPool};
