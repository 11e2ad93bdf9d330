//! Lost data: what the store's own files say its streams held, compared with the log.
//!
//! The log can lose data without a damaged byte: a stream directory removed, `streams/`
//! removed with the catalogue in it, a segment cut back on a record boundary. Each then reads
//! as a clean, shorter (or empty) log. Files kept *outside* each stream's directory still say
//! how far the stream went, so one deletion cannot remove the data and its evidence:
//!
//! - the Merkle leaves file `merkle/<id>/level-00.hashes`: one leaf per event hashed;
//! - the checkpoints the CLI signs, `checkpoints/<id>/<size>.checkpoint`.
//!
//! Both are read at open, before the trees are reconciled with the log (which would cut the
//! leaves file to the log's length and so erase the evidence). A stream whose log holds fewer
//! events than either is reported lost ([`Loss`]): `verify` says TAMPERED with what is missing
//! and which file says so, appends to the stream are refused (`Error::StreamLost`), its tree
//! files are left as they are, and no new stream takes its id. What this cannot catch, and what only anchors,
//! signed checkpoints kept elsewhere and witnesses do: docs/ARCHITECTURE.md, "Trust model".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kimberlite_types::{Offset, StreamId};

use crate::merkle::{level_name, MERKLE_DIR};
use crate::report::Problem;
use crate::store_fs::{file_len, StoreFs};

/// Directory under the store where the CLI keeps the checkpoints it signs.
pub const CHECKPOINT_DIR: &str = "checkpoints";

/// Bytes of one leaf hash in a leaves file.
const LEAF_BYTES: u64 = 32;

/// One file that says a stream held at least `events` events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claim {
    /// Events the file vouches for.
    pub(crate) events: u64,
    /// The file.
    pub(crate) file: PathBuf,
    /// What the file is, for the report.
    pub(crate) what: &'static str,
}

/// A stream whose log holds fewer events than its evidence says it had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Loss {
    pub(crate) stream: StreamId,
    /// Events the log holds now.
    pub(crate) log_events: u64,
    /// The strongest evidence (most events).
    pub(crate) claim: Claim,
    /// Whether the catalogue still names the stream.
    pub(crate) named: bool,
}

impl Loss {
    /// The error an append to the stream gets.
    pub(crate) fn refusal(&self, name: &str) -> crate::Error {
        crate::Error::StreamLost {
            name: name.to_owned(),
            held: self.log_events,
            claimed: self.claim.events,
            evidence: self.claim.file.clone(),
        }
    }

    /// The loss as a `verify` problem: stream, first missing offset, the evidence file.
    pub(crate) fn problem(&self, name: Option<String>) -> Problem {
        let Claim { events, file, what } = &self.claim;
        let missing = if self.log_events == 0 {
            "its log is gone".to_owned()
        } else {
            format!("its log holds only {} events", self.log_events)
        };
        let unnamed = if self.named {
            ""
        } else {
            " (and the catalogue no longer names the stream: its entries are gone too)"
        };
        let reason = format!(
            "events {}..{events} are missing: {what} {} says the stream held {events} events, \
             {missing}{unnamed}",
            self.log_events,
            file.display()
        );
        Problem {
            stream: self.stream,
            name,
            offset: Offset::new(self.log_events),
            segment: None,
            file: Some(file.clone()),
            position: None,
            message: format!("stream {}: {reason}", self.stream),
            reason,
        }
    }
}

/// Every claim the store's files make, by stream: the largest per stream.
pub(crate) fn gather(fs: &dyn StoreFs, store: &Path) -> BTreeMap<StreamId, Claim> {
    let mut claims: BTreeMap<StreamId, Claim> = BTreeMap::new();
    let mut keep = |id: StreamId, claim: Claim| {
        if claim.events == 0 {
            return;
        }
        let entry = claims.entry(id).or_insert_with(|| claim.clone());
        if claim.events > entry.events {
            *entry = claim;
        }
    };
    for (id, dir) in id_dirs(fs, &store.join(MERKLE_DIR)) {
        let file = dir.join(level_name(0));
        if let Ok(Some(len)) = file_len(fs, &file) {
            let what = "the Merkle leaves file";
            let events = len / LEAF_BYTES;
            keep(id, Claim { events, file, what });
        }
    }
    for (id, dir) in id_dirs(fs, &store.join(CHECKPOINT_DIR)) {
        for name in fs.list_dir(&dir).unwrap_or_default() {
            let Some(named) = name
                .strip_suffix(".checkpoint")
                .and_then(|size| size.parse::<u64>().ok())
            else {
                continue;
            };
            let file = dir.join(&name);
            // The size the checkpoint's body states (C2SP: origin, then tree size), else the
            // one its name states: a renamed or edited file can raise an alarm, never hide one.
            let events = fs
                .read(&file)
                .ok()
                .and_then(|body| checkpoint_size(&body))
                .map_or(named, |stated| stated.max(named));
            let what = "the checkpoint";
            keep(id, Claim { events, file, what });
        }
    }
    claims
}

/// The losses: streams whose log (`log_events`, `None` when the store holds no such stream)
/// is shorter than a claim. `named` tells whether the catalogue names a stream.
pub(crate) fn losses(
    claims: BTreeMap<StreamId, Claim>,
    log_events: impl Fn(StreamId) -> u64,
    named: impl Fn(StreamId) -> bool,
) -> Vec<Loss> {
    claims
        .into_iter()
        .filter_map(|(stream, claim)| {
            let log_events = log_events(stream);
            (claim.events > log_events).then(|| Loss {
                stream,
                log_events,
                claim,
                named: named(stream),
            })
        })
        .collect()
}

/// The tree size a C2SP checkpoint states on its second line.
fn checkpoint_size(body: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(body).ok()?;
    text.lines().nth(1)?.trim().parse().ok()
}

/// The entries of `checkpoints/` of a type the store never writes there: a link or a file in
/// its place or in place of a stream's directory, a link or a directory in place of a
/// checkpoint. `gather` skips them (never followed), so evidence hidden that way is reported
/// here instead of going unmentioned.
pub(crate) fn refused_entries(fs: &dyn StoreFs, store: &Path) -> Vec<PathBuf> {
    use kimberlite_storage::EntryKind;
    let kind = |path: &Path| fs.entry_kind(path).ok().flatten();
    let dir = store.join(CHECKPOINT_DIR);
    match kind(&dir) {
        None => return Vec::new(),
        Some(EntryKind::Dir) => {}
        Some(_) => return vec![dir],
    }
    let mut refused = Vec::new();
    for name in fs.list_dir(&dir).unwrap_or_default() {
        let stream = dir.join(name);
        if kind(&stream) != Some(EntryKind::Dir) {
            refused.push(stream);
            continue;
        }
        let files = fs.list_dir(&stream).unwrap_or_default().into_iter();
        let files = files.map(|name| stream.join(name));
        refused.extend(files.filter(|file| kind(file) != Some(EntryKind::File)));
    }
    refused.sort();
    refused
}

/// The subdirectories of `dir` named as stream ids (20 digits), with their paths.
fn id_dirs(fs: &dyn StoreFs, dir: &Path) -> Vec<(StreamId, PathBuf)> {
    let mut dirs: Vec<(StreamId, PathBuf)> = fs
        .list_dir(dir)
        .unwrap_or_default()
        .into_iter()
        .filter(|name| name.len() == 20 && name.bytes().all(|byte| byte.is_ascii_digit()))
        .filter_map(|name| {
            let id = StreamId::new(name.parse::<u64>().ok()?);
            Some((id, dir.join(name)))
        })
        .collect();
    dirs.sort();
    dirs
}
