//! A node loses power after it acknowledged (as leader) or applied (as follower) appends whose
//! store sync and applied state record had not happened yet: the acknowledgement waits for
//! neither (docs/REPLICATION.md, section "State beside the store"). Its store comes back
//! with any prefix of those writes, its applied state behind them; it applies the entries
//! again from its Raft log. No acknowledged event is lost, none is there twice, and every
//! replica's heads and roots are equal.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kimberlite_raft::{Cluster, NodeId, LOG_FILE};
use kimberlite_sim::fs::{FaultConfig, SimFileSystem};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem};

use crate::common::{
    assert_each_once_everywhere, assert_replicas_equal, event, options, request, start_over, WAIT,
};

const VOTERS: [NodeId; 3] = [1, 2, 3];
const HELD_BATCHES: u64 = 4;
const EVENTS_PER_BATCH: u64 = 3;

#[derive(Default)]
struct Switch {
    /// Syncs of anything but the Raft log wait.
    hold: bool,
    /// Syncs of the Raft log wait.
    hold_log: bool,
    /// Power is off: every change and sync fails, held syncs too.
    cut: bool,
}

/// A node's simulated disk with a switch: hold its store's and applied state's syncs, cut
/// its power.
#[derive(Clone)]
struct Switched {
    disk: SimFileSystem,
    switch: Arc<(Mutex<Switch>, Condvar)>,
}

impl Switched {
    fn set(&self, change: impl FnOnce(&mut Switch)) {
        change(&mut self.switch.0.lock().unwrap());
        self.switch.1.notify_all();
    }

    fn powered(&self) -> io::Result<()> {
        if self.switch.0.lock().unwrap().cut {
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }

    /// Waits while syncs of `path` are held; fails once the power is cut.
    fn wait_for_sync(&self, path: &Path) -> io::Result<()> {
        let is_log = path.file_name().is_some_and(|name| name == LOG_FILE);
        let mut switch = self.switch.0.lock().unwrap();
        while (if is_log { switch.hold_log } else { switch.hold }) && !switch.cut {
            switch = self.switch.1.wait(switch).unwrap();
        }
        if switch.cut {
            return Err(io::Error::other("power cut"));
        }
        Ok(())
    }

    fn wrap(&self, file: <SimFileSystem as FileSystem>::File, path: &Path) -> SwitchedFile {
        SwitchedFile {
            file,
            path: path.to_owned(),
            fs: self.clone(),
        }
    }
}

struct SwitchedFile {
    file: <SimFileSystem as FileSystem>::File,
    path: PathBuf,
    fs: Switched,
}

impl FileHandle for SwitchedFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.file.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.file.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        self.fs.powered()?;
        self.file.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.powered()?;
        self.file.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.fs.wait_for_sync(&self.path)?;
        self.file.sync_data()
    }
}

impl FileSystem for Switched {
    type File = SwitchedFile;
    type Lock = <SimFileSystem as FileSystem>::Lock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.powered()?;
        self.disk.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<SwitchedFile> {
        self.powered()?;
        Ok(self.wrap(self.disk.open(path)?, path))
    }
    fn open_readonly(&self, path: &Path) -> io::Result<SwitchedFile> {
        Ok(self.wrap(self.disk.open_readonly(path)?, path))
    }
    fn create(&self, path: &Path) -> io::Result<SwitchedFile> {
        self.powered()?;
        Ok(self.wrap(self.disk.create(path)?, path))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.disk.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.powered()?;
        self.disk.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.powered()?;
        self.disk.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.disk.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.wait_for_sync(path)?;
        self.disk.sync_dir(path)
    }
    fn resolve(&self, path: &Path) -> io::Result<PathBuf> {
        self.disk.resolve(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.disk.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<Self::Lock>> {
        self.powered()?;
        self.disk.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.disk.map_readonly(path)
    }
}

#[derive(Clone, Copy, Debug)]
enum Victim {
    Leader,
    Follower,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_power_before_saving_what_it_acknowledged_loses_nothing() {
    let mut dropped = 0;
    for seed in 0..4 {
        dropped += run(seed, Victim::Leader).await;
    }
    assert!(dropped > 0, "the power cuts lost nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_loses_power_before_saving_what_it_applied_loses_nothing() {
    let mut dropped = 0;
    for seed in 0..4 {
        dropped += run(seed, Victim::Follower).await;
    }
    assert!(dropped > 0, "the power cuts lost nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_power_before_its_log_sync_had_acknowledged_nothing() {
    // The leader's own entries are synced beside replication (docs/REPLICATION.md, section
    // "The Raft log"): with that sync held, the followers hold the entry, but nothing is
    // answered; the power cut loses it on the leader, and the cluster goes on consistent.
    let mut dropped = 0;
    for seed in 0..4 {
        dropped += run_log_held(seed).await;
    }
    assert!(dropped > 0, "the power cuts lost nothing");
}

/// Switched simulated disks for [`VOTERS`], and a cluster over them with a stream and one
/// acknowledged and applied batch (the first append to a stream creates its files, synced as
/// any new file is: before a test holds the syncs): the disks, the cluster, the stream, the
/// batch's first log index and its events.
async fn started(
    seed: u64,
) -> (
    BTreeMap<NodeId, Switched>,
    Cluster,
    u64,
    u64,
    BTreeSet<String>,
) {
    let disks: BTreeMap<NodeId, Switched> = VOTERS
        .iter()
        .map(|&id| {
            let disk = SimFileSystem::new(seed * 16 + id, FaultConfig::NONE);
            let switch = Arc::new((Mutex::new(Switch::default()), Condvar::new()));
            (id, Switched { disk, switch })
        })
        .collect();
    let cluster = start_over(Path::new("/cluster"), &disks, options(seed)).await;
    let stream = cluster.create_stream(request(0, 0), "s").await.unwrap();
    let (first, texts) = append(&cluster, stream, 0, WAIT).await.unwrap();
    cluster.wait_applied(first, WAIT).await.unwrap();
    (disks, cluster, stream, first, texts.into_iter().collect())
}

/// The leader's Raft log syncs held while one batch is replicated, then its power cut;
/// returns how many unsynced writes it lost.
async fn run_log_held(seed: u64) -> u64 {
    let (disks, cluster, stream, _, mut acked) = started(seed).await;
    let id = cluster.leader(WAIT).await.unwrap();
    let node = cluster.node(id).unwrap();
    let index = node.raft().metrics().borrow().last_log_index.unwrap() + 1;
    disks[&id].set(|switch| switch.hold_log = true);
    let held = append(&cluster, stream, 1, Duration::from_secs(2));
    assert!(
        held.await.is_none(),
        "seed {seed}: answered before the leader's log sync"
    );
    for other in VOTERS {
        let log = cluster
            .node(other)
            .unwrap()
            .raft()
            .metrics()
            .borrow()
            .last_log_index;
        assert!(
            log >= Some(index),
            "seed {seed}: node {other} lacks the entry"
        );
    }
    let applied = node.state_machine().last_applied().map(|id| id.index);
    assert!(
        applied < Some(index),
        "seed {seed}: applied before its log sync"
    );
    disks[&id].set(|switch| switch.cut = true);
    cluster.stop(id).await;
    drop(node);
    disks[&id].disk.crash();
    disks[&id].set(|switch| *switch = Switch::default());
    cluster.start_node(id).await.unwrap();
    let (end, texts) = append(&cluster, stream, 2, WAIT).await.unwrap();
    acked.extend(texts);
    assert_replicas_equal(&cluster, end).await;
    assert_each_once_everywhere(&cluster, stream, &acked, seed);
    cluster.shutdown().await;
    disks[&id].disk.counts().dropped_operations
}

/// Appends batch `n` (`EVENTS_PER_BATCH` events) within `timeout`; its texts if acknowledged.
async fn append(
    cluster: &Cluster,
    stream: u64,
    n: u64,
    timeout: Duration,
) -> Option<(u64, Vec<String>)> {
    let texts: Vec<String> = (0..EVENTS_PER_BATCH).map(|i| format!("b{n}-{i}")).collect();
    let events = texts.iter().cloned().map(event).collect();
    let appended = tokio::time::timeout(timeout, cluster.append(request(1, n), stream, events));
    match appended.await {
        Ok(Ok(appended)) => Some((appended.log_id.index, texts)),
        _ => None,
    }
}

/// Whether `check` holds within `timeout`, asked on a thread of its own: a state machine that
/// syncs while it applies holds its lock meanwhile, and the test must go on to release it.
async fn within(timeout: Duration, mut check: impl FnMut() -> bool + Send + 'static) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    let task = tokio::task::spawn_blocking(move || {
        while !check() {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    });
    let answer = tokio::time::timeout(timeout + Duration::from_secs(1), task).await;
    matches!(answer, Ok(Ok(true)))
}

/// One power cut of `victim`; returns how many unsynced writes it lost.
async fn run(seed: u64, victim: Victim) -> u64 {
    let (disks, cluster, stream, first, mut acked) = started(seed).await;
    let leader = cluster.leader(WAIT).await.unwrap();
    let id = match victim {
        Victim::Leader => leader,
        Victim::Follower => *VOTERS.iter().find(|&&id| id != leader).unwrap(),
    };
    let node = cluster.node(id).unwrap();
    let machine = node.state_machine().clone();
    let saved = machine.clone();
    let settled = move || {
        let applied = saved.last_applied();
        applied.is_some_and(|id| id.index >= first) && saved.saved() == applied
    };
    assert!(within(WAIT, settled).await);
    disks[&id].set(|switch| switch.hold = true);
    // Acknowledged (by the leader) while the victim's store and applied state syncs wait.
    let mut last = None;
    for n in 1..=HELD_BATCHES {
        let Some((index, texts)) = append(&cluster, stream, n, Duration::from_secs(10)).await
        else {
            break;
        };
        acked.extend(texts);
        last = Some(index);
    }
    let applied = match last {
        Some(last) => {
            let machine = machine.clone();
            within(Duration::from_secs(10), move || {
                machine.last_applied().is_some_and(|id| id.index >= last)
            })
            .await
        }
        None => false,
    };
    // Power off: held syncs fail, nothing more reaches the disk; what was not synced is lost
    // or torn.
    disks[&id].set(|switch| switch.cut = true);
    let unsaved = machine.saved() < machine.last_applied();
    cluster.stop(id).await;
    drop((node, machine));
    disks[&id].disk.crash();
    disks[&id].set(|switch| *switch = Switch::default());
    assert!(
        last.is_some() && applied,
        "seed {seed}, {victim:?}: the appends waited for the held syncs ({last:?})"
    );
    assert!(unsaved, "seed {seed}, {victim:?}: nothing was left unsaved");
    cluster.start_node(id).await.unwrap();
    let n = HELD_BATCHES + 1;
    let (end, texts) = append(&cluster, stream, n, WAIT).await.unwrap();
    acked.extend(texts);
    assert_replicas_equal(&cluster, end).await;
    assert_each_once_everywhere(&cluster, stream, &acked, seed);
    cluster.shutdown().await;
    disks[&id].disk.counts().dropped_operations
}
