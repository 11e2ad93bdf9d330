//! What one acknowledged append costs a node in device flushes: one sync of the Raft log for
//! its entry, one of the store's segment and one of the applied state, nothing else (no
//! committed-id sync, no index, manifest or directory syncs of the store): the syncs are most
//! of a batch's time (docs/PERFORMANCE.md, section "Why the unmet targets are not met"). The
//! acknowledgement waits for the Raft log's sync only: the store's and the applied state's
//! run after it, in the background, and batches applied meanwhile share the next ones
//! (docs/REPLICATION.md, section "State beside the store").

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite_raft::{Cluster, NodeFs, APPLIED_FILE, LOG_FILE, SAVE_PACE};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem, OsFileSystem};

use crate::common::{eventually, options, request, WAIT};

type Counts = Arc<Mutex<BTreeMap<String, u64>>>;

/// While true, the syncs it is for wait.
#[derive(Clone, Default)]
struct Hold(Arc<(Mutex<bool>, Condvar)>);

impl Hold {
    fn set(&self, held: bool) {
        *self.0 .0.lock().unwrap() = held;
        self.0 .1.notify_all();
    }

    fn wait(&self) {
        let mut held = self.0 .0.lock().unwrap();
        while *held {
            held = self.0 .1.wait(held).unwrap();
        }
    }
}

/// What a synced path is, for counting: the Raft log, the applied state, a store segment,
/// a directory, or the file's name.
fn kind(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name == LOG_FILE || name == APPLIED_FILE {
        name
    } else if name.ends_with(".seg") {
        "segment".to_string()
    } else {
        format!("other {name}")
    }
}

fn count(counts: &Counts, key: String) {
    *counts.lock().unwrap().entry(key).or_default() += 1;
}

/// The real file system, counting syncs by [`kind`].
#[derive(Clone, Default)]
pub(crate) struct SyncCounting {
    counts: Counts,
    /// Holds the syncs of the store's segments and of the applied state.
    hold: Hold,
    /// Holds the syncs of the Raft log.
    log_hold: Hold,
}

pub(crate) struct CountingFile {
    file: <OsFileSystem as FileSystem>::File,
    path: PathBuf,
    counts: Counts,
    hold: Hold,
    log_hold: Hold,
}

impl FileHandle for CountingFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.file.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.file.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        if kind(&self.path) == LOG_FILE {
            self.log_hold.wait();
        } else {
            self.hold.wait();
        }
        count(&self.counts, kind(&self.path));
        self.file.sync_data()
    }
}

impl SyncCounting {
    fn wrap(&self, file: <OsFileSystem as FileSystem>::File, path: &Path) -> CountingFile {
        CountingFile {
            file,
            path: path.to_owned(),
            counts: self.counts.clone(),
            hold: self.hold.clone(),
            log_hold: self.log_hold.clone(),
        }
    }

    /// Holds (or releases) the Raft log's syncs.
    pub(crate) fn hold_log(&self, held: bool) {
        self.log_hold.set(held);
    }

    fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.counts.lock().unwrap())
    }
}

impl FileSystem for SyncCounting {
    type File = CountingFile;
    type Lock = <OsFileSystem as FileSystem>::Lock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.open(path)?, path))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.open_readonly(path)?, path))
    }
    fn create(&self, path: &Path) -> io::Result<CountingFile> {
        Ok(self.wrap(OsFileSystem.create(path)?, path))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        OsFileSystem.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        OsFileSystem.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        OsFileSystem.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        OsFileSystem.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        count(&self.counts, "directory".to_string());
        OsFileSystem.sync_dir(path)
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        OsFileSystem.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        OsFileSystem.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>> {
        OsFileSystem.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        OsFileSystem.map_readonly(path)
    }
}

fn batch() -> Vec<Bytes> {
    (0..100).map(|i| Bytes::from(vec![i as u8; 256])).collect()
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs
        .iter()
        .map(|(name, count)| ((*name).to_string(), *count))
        .collect()
}

/// Waits until node 1 has applied the entry at `index` (an append may be answered once
/// committed, before its apply; the metrics' last log index may not show its entry yet then)
/// and saved everything it applied (the store's and the applied state's syncs run in the
/// background).
async fn saved(cluster: &Cluster, index: u64) {
    cluster.wait_applied(index, WAIT).await.unwrap();
    let node = cluster.node(1).unwrap();
    let machine = node.state_machine();
    eventually("the applied state to be saved", || {
        machine.saved() == machine.last_applied()
    })
    .await;
}

/// A one-node cluster whose node 1 counts its syncs, and a stream whose files exist: the
/// first append to a stream creates its files (segment, manifest: synced, as any new file
/// is); the appends after it are what a running stream costs.
async fn counted_cluster(dir: &Path, fs: &SyncCounting) -> (Cluster, u64) {
    let mut options = options(0);
    options.file_systems.insert(1, NodeFs::new(fs.clone()));
    let cluster = Cluster::start(dir, &[1], options).await.unwrap();
    cluster.leader(WAIT).await.unwrap();
    let stream = cluster.create_stream(request(1, 0), "audit").await.unwrap();
    let appended = cluster
        .append(request(1, 1), stream, batch())
        .await
        .unwrap();
    saved(&cluster, appended.log_id.index).await;
    (cluster, stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_costs_each_node_one_log_one_segment_and_one_applied_state_sync() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SyncCounting::default();
    let (cluster, stream) = counted_cluster(dir.path(), &fs).await;
    for seq in 2..=6u64 {
        fs.take();
        let appended = cluster
            .append(request(1, seq), stream, batch())
            .await
            .unwrap();
        saved(&cluster, appended.log_id.index).await;
        let expected = counts(&[(LOG_FILE, 1), (APPLIED_FILE, 1), ("segment", 1)]);
        assert_eq!(fs.take(), expected, "append {seq}");
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_is_acknowledged_before_the_store_and_applied_state_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let fs = SyncCounting::default();
    let (cluster, stream) = counted_cluster(dir.path(), &fs).await;
    fs.take();
    fs.hold.set(true);
    const HELD: u64 = 3;
    let mut waited = None;
    let mut last = 0;
    for seq in 2..2 + HELD {
        let append = cluster.append(request(1, seq), stream, batch());
        match tokio::time::timeout(Duration::from_secs(10), append).await {
            Ok(Ok(appended)) => last = appended.log_id.index,
            _ => {
                waited = Some(seq);
                break;
            }
        }
    }
    let during = fs.take();
    // Released before asserting, so that a failure leaves no apply blocked.
    fs.hold.set(false);
    assert_eq!(
        waited, None,
        "an append waited for the store's or the applied state's sync"
    );
    // Only the Raft log's syncs are behind the acknowledgements.
    assert_eq!(during, counts(&[(LOG_FILE, HELD)]));
    saved(&cluster, last).await;
    // The held syncs happen, the store's before the record's; the batches applied while a
    // save waited share the next one.
    let after = fs.take();
    let segment = after.get("segment").copied().unwrap_or(0);
    assert!((1..HELD).contains(&segment), "{after:?}");
    assert_eq!(
        after,
        counts(&[(APPLIED_FILE, segment), ("segment", segment)])
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_quick_succession_share_the_background_saves() {
    // The saver waits `SAVE_PACE` after each save: appends acknowledged one after the other
    // share saves (about one per pace), where saving after each would sync per append.
    const APPENDS: u64 = 20;
    let dir = tempfile::tempdir().unwrap();
    let fs = SyncCounting::default();
    let (cluster, stream) = counted_cluster(dir.path(), &fs).await;
    fs.take();
    let started = Instant::now();
    let mut last = 0;
    for seq in 2..2 + APPENDS {
        let appended = cluster
            .append(request(1, seq), stream, batch())
            .await
            .unwrap();
        last = appended.log_id.index;
    }
    let paces = (started.elapsed().as_micros() / SAVE_PACE.as_micros()) as u64;
    saved(&cluster, last).await;
    let after = fs.take();
    assert_eq!(after.get(LOG_FILE).copied(), Some(APPENDS), "{after:?}");
    let applied = after.get(APPLIED_FILE).copied().unwrap_or(0);
    assert!(
        applied <= paces + 2,
        "{applied} saves in {paces} paces: {after:?}"
    );
    // A save whose events an earlier store sync covered syncs no segment.
    let segment = after.get("segment").copied().unwrap_or(0);
    assert!(segment <= applied, "{after:?}");
    cluster.shutdown().await;
}
