//! Verification of stored records, the pieces every backend shares: each frame decoded and
//! re-hashed on its own ([`frames`], the one-thread reference the parallel path is tested
//! against), a full verification's report ([`VerifyReport`]) and its pause points
//! ([`pieces`]). The links between records are checked in order by [`crate::chain`].

pub(crate) mod frames;
mod pieces;
mod report;

#[cfg(test)]
pub(crate) use frames::{decode_frames, verify_frame};
pub(crate) use frames::{FrameRun, VerifiedFrame};
pub(crate) use pieces::new_handle_id;
pub use pieces::{VerifyResume, VerifyStep};
pub use report::VerifyReport;
