//! The work bound of a synced batch (`append_fsync`): what no implementation of our record
//! format can beat on this machine, from parts measured in one sequence, interleaved with the
//! baseline.
//!
//! A synced batch must, before the `fdatasync` that makes it durable can start, have done
//! every part of its CPU work: the chain hash of each record (the part any thread can do,
//! [`UnlinkedHash::new`], and the link to its predecessor, [`UnlinkedHash::link`]), the CRC32C
//! of each frame, and the `write` of the frames into the page cache (aligned and into blocks
//! allocated ahead, as the engine writes). Two cores can at best halve that work, whatever the
//! split, so
//!
//! `bound = (unlinked + link + crc + write) / 2 + flush`
//!
//! where `flush` is an `fdatasync` of those bytes once they are all in the page cache. Taken as
//! free: framing and copying the payloads into frames, every hand-off and wake-up, and any
//! imbalance between the cores. Starting the device early does not lower `flush`
//! (`docs/PERFORMANCE.md`, section "Why the unmet targets are not met"), which is what makes it
//! a bound and not an estimate.
//!
//! The same sum for *any* hash-chained log ([`ChainWork::AnyChain`]): SHA-256 of every payload
//! byte (a chain must take in each byte once) and the `write` and flush of the payload bytes
//! alone, no frame, no checksum, no link. The gap between the two is what the record format
//! costs.
//!
//! [`UnlinkedHash::new`]: kimberlite_crypto::UnlinkedHash::new
//! [`UnlinkedHash::link`]: kimberlite_crypto::UnlinkedHash::link

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_crypto::ChainHash;
use kimberlite_storage::RECORD_OVERHEAD;

use crate::{link_all, median, sha256_each, unlinked_hashes, SyncedFile};

/// Blocks allocated ahead of the writes, as the engine allocates them (its largest step).
const ALLOCATE_AHEAD: u64 = 8 << 20;

/// The engine's write size and alignment: its batch writes end at multiples of this many bytes
/// of the file (`docs/PERFORMANCE.md`, section "Design decisions").
const WRITE_CHUNK_BYTES: usize = 64 << 10;

/// How much of `buffered` bytes, to be written at file position `position`, to write now so
/// that the write ends at a multiple of [`WRITE_CHUNK_BYTES`]; 0 when no boundary is reached.
fn aligned_write_len(position: u64, buffered: usize) -> usize {
    let end = position.saturating_add(buffered as u64);
    let cut = end - end % WRITE_CHUNK_BYTES as u64;
    usize::try_from(cut.saturating_sub(position)).map_or(buffered, |len| len.min(buffered))
}

/// Which log's work is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainWork {
    /// Our record format: chain hashes (unlinked, then linked in order), a CRC32C per frame,
    /// frames of `RECORD_OVERHEAD` more bytes than their payloads.
    OurFormat,
    /// The least any hash chain must do: SHA-256 of each payload, payload bytes written.
    AnyChain,
}

/// Median time of each part of a synced batch, and of the baseline beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkParts {
    /// The chain hashes but their links (`OurFormat`), or SHA-256 of each payload (`AnyChain`).
    pub hashing: Duration,
    /// Linking each hash to its predecessor, in order (zero for `AnyChain`).
    pub link: Duration,
    /// CRC32C of each frame (zero for `AnyChain`).
    pub crc: Duration,
    /// `write`s of the bytes into the page cache.
    pub write: Duration,
    /// `fdatasync` of those bytes, once written.
    pub flush: Duration,
    /// The baseline (`write` + `fdatasync` of the payloads) in the same rounds.
    pub baseline: Duration,
}

impl WorkParts {
    /// The CPU work that must precede the flush.
    #[must_use]
    pub fn cpu(&self) -> Duration {
        self.hashing + self.link + self.crc + self.write
    }

    /// The least a synced batch can take: its CPU work spread perfectly over two cores, then
    /// the flush.
    #[must_use]
    pub fn bound(&self) -> Duration {
        self.cpu() / 2 + self.flush
    }

    /// The best ratio to the baseline any implementation can reach (baseline / bound).
    #[must_use]
    pub fn best_ratio(&self) -> f64 {
        self.baseline.as_secs_f64() / self.bound().as_secs_f64().max(1e-12)
    }
}

/// A file written at the end in aligned pieces into blocks allocated ahead, as the engine
/// writes a segment.
pub(crate) struct AlignedFile {
    file: File,
    position: u64,
    allocated_to: u64,
}

impl AlignedFile {
    pub(crate) fn create(path: &Path) -> Self {
        Self {
            file: File::create(path).expect("create the bound's file"),
            position: 0,
            allocated_to: 0,
        }
    }

    /// Writes `bytes` at the end: up to each 64 KiB boundary of the file, then the rest.
    pub(crate) fn write(&mut self, mut bytes: &[u8]) {
        let end = self.position + bytes.len() as u64;
        if end > self.allocated_to {
            let flags = rustix::fs::FallocateFlags::KEEP_SIZE;
            let to = self.position + ALLOCATE_AHEAD;
            // A hint, as in the engine: a file system without it writes as before.
            let _ = rustix::fs::fallocate(&self.file, flags, self.position, to - self.position);
            self.allocated_to = to;
        }
        while !bytes.is_empty() {
            let aligned = aligned_write_len(self.position, bytes.len());
            let len = if aligned == 0 {
                bytes.len()
            } else {
                aligned.min(WRITE_CHUNK_BYTES)
            };
            let (piece, rest) = bytes.split_at(len);
            self.file
                .write_all_at(piece, self.position)
                .expect("write the bound's file");
            self.position += len as u64;
            bytes = rest;
        }
    }

    pub(crate) fn flush(&self) {
        self.file.sync_data().expect("fdatasync the bound's file");
    }
}

/// Our format's CPU work on `batch` from `first_offset` on: returns the head of the chain and
/// a fold of the CRCs (so that none of it is optimised away), and the time of each part.
pub(crate) fn our_format_work(
    batch: &[Bytes],
    first_offset: u64,
    frames: &[u8],
) -> (Option<ChainHash>, u32, [Duration; 3]) {
    let started = Instant::now();
    let unlinked = unlinked_hashes(batch, first_offset);
    let hashing = started.elapsed();
    let started = Instant::now();
    let head = link_all(unlinked, None);
    let link = started.elapsed();
    let started = Instant::now();
    let frame_len = frames.len() / batch.len().max(1);
    let crcs = frames
        .chunks(frame_len.max(1))
        .fold(0, |fold, frame| fold ^ crc32c::crc32c(frame));
    let crc = started.elapsed();
    (head, crcs, [hashing, link, crc])
}

/// Measures `work` for `batch` over `rounds` rounds in `dir`, each round interleaved with one
/// call of `baseline` (the bench's `write` + `fdatasync` of the payloads); returns the medians.
///
/// # Panics
///
/// On an I/O error (a bench failure).
#[must_use]
pub fn measure(
    dir: &Path,
    batch: &[Bytes],
    work: ChainWork,
    baseline: &mut SyncedFile,
    rounds: usize,
) -> WorkParts {
    let payload_bytes: Vec<u8> = batch.iter().flat_map(|e| e.iter().copied()).collect();
    let bytes = match work {
        ChainWork::OurFormat => vec![0x5a; payload_bytes.len() + batch.len() * RECORD_OVERHEAD],
        ChainWork::AnyChain => payload_bytes,
    };
    let mut file = AlignedFile::create(&dir.join(format!("bound-{work:?}.bin")));
    let mut samples: [Vec<Duration>; 6] = Default::default();
    let mut offset = 0;
    for round in 0..=rounds {
        let started = Instant::now();
        baseline.append();
        let base = started.elapsed();
        let [hashing, link, crc] = match work {
            ChainWork::OurFormat => {
                let (head, crcs, parts) = our_format_work(batch, offset, &bytes);
                std::hint::black_box((head, crcs));
                parts
            }
            ChainWork::AnyChain => {
                let started = Instant::now();
                sha256_each(batch);
                [started.elapsed(), Duration::ZERO, Duration::ZERO]
            }
        };
        offset += batch.len() as u64;
        let started = Instant::now();
        file.write(&bytes);
        let write = started.elapsed();
        let started = Instant::now();
        file.flush();
        let flush = started.elapsed();
        // Round 0 warms the files and the code up.
        if round > 0 {
            for (part, time) in samples
                .iter_mut()
                .zip([hashing, link, crc, write, flush, base])
            {
                part.push(time);
            }
        }
    }
    let [hashing, link, crc, write, flush, baseline] = samples.map(median);
    WorkParts {
        hashing,
        link,
        crc,
        write,
        flush,
        baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{chain_hash_each, events};

    #[test]
    fn the_bound_is_half_the_cpu_work_then_the_flush() {
        let micros = Duration::from_micros;
        let parts = WorkParts {
            hashing: micros(150),
            link: micros(58),
            crc: micros(14),
            write: micros(58),
            flush: micros(300),
            baseline: micros(352),
        };
        assert_eq!(parts.cpu(), micros(280));
        assert_eq!(parts.bound(), micros(440));
        assert!((parts.best_ratio() - 0.8).abs() < 1e-9);
    }

    /// The measured work is the real work: our format's parts compute the chain of the batch.
    #[test]
    fn our_format_work_computes_the_chain() {
        let batch = events(5, 100);
        let frames = vec![1u8; batch.len() * 300];
        let (head, _, _) = our_format_work(&batch, 5, &frames);
        assert_eq!(head, chain_hash_each(&batch, 5));
    }

    #[test]
    fn aligned_writes_put_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut file = AlignedFile::create(&path);
        let first: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let second: Vec<u8> = (0..70_000u32).map(|i| (i % 241) as u8).collect();
        file.write(&first);
        file.write(&second);
        file.flush();
        let written = std::fs::read(&path).unwrap();
        assert_eq!(written.len(), 170_000);
        assert_eq!(&written[..100_000], &first[..]);
        assert_eq!(&written[100_000..], &second[..]);
    }

    #[test]
    fn measure_reports_every_part_of_each_kind_of_work() {
        let dir = tempfile::tempdir().unwrap();
        let batch = events(0, 50);
        let mut baseline = SyncedFile::payloads(&dir.path().join("base.bin"), &batch);
        let ours = measure(dir.path(), &batch, ChainWork::OurFormat, &mut baseline, 3);
        for part in [ours.hashing, ours.link, ours.crc, ours.write, ours.flush] {
            assert!(part > Duration::ZERO, "{ours:?}");
        }
        let any = measure(dir.path(), &batch, ChainWork::AnyChain, &mut baseline, 3);
        assert_eq!((any.link, any.crc), (Duration::ZERO, Duration::ZERO));
        assert!(any.hashing > Duration::ZERO && any.flush > Duration::ZERO);
        let written = std::fs::metadata(dir.path().join("bound-OurFormat.bin")).unwrap();
        assert_eq!(written.len(), 4 * 50 * (256 + RECORD_OVERHEAD as u64));
    }
}
