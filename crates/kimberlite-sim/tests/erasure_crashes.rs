//! A crash at every step of an erasure (`docs/INTERNALS.md`, "Erasure"): the file system
//! refuses every change after the first `budget` ones (the process died there), then the
//! simulated machine loses what was not synced. Whatever the step, the reopened store has the
//! subject either wholly erased and recorded (reads say erased, no key file is left) or not
//! erased at all (reads open its events, no erasure recorded); the chain verifies either way.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use kimberlite::sealed::{Content, MasterKey, SubjectKeys, KEYS_DIR};
use kimberlite::{Config, ExpectedOffset, Kimberlite};
use kimberlite_sim::fs::{SimFile, SimLock};
use kimberlite_sim::{FaultConfig, SimFileSystem};
use kimberlite_storage::{EntryKind, FileHandle, FileSystem};

const STORE: &str = "/store";

/// [`SimFileSystem`] that fails every change once its budget of changes is spent.
#[derive(Debug, Clone)]
struct DiesAfter {
    inner: SimFileSystem,
    budget: Arc<AtomicI64>,
}

fn spend(budget: &AtomicI64) -> io::Result<()> {
    if budget.fetch_sub(1, Ordering::SeqCst) <= 0 {
        return Err(io::Error::other("the process died here"));
    }
    Ok(())
}

struct DyingFile {
    inner: SimFile,
    budget: Arc<AtomicI64>,
}

impl FileHandle for DyingFile {
    fn len_bytes(&self) -> io::Result<u64> {
        self.inner.len_bytes()
    }
    fn read_exact_at(&self, buf: &mut [u8], position: u64) -> io::Result<()> {
        self.inner.read_exact_at(buf, position)
    }
    fn write_all_at(&mut self, buf: &[u8], position: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.write_all_at(buf, position)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.set_len(len)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync_data()
    }
}

impl FileSystem for DiesAfter {
    type File = DyingFile;
    type Lock = SimLock;

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.create_dir_all(path)
    }
    fn open(&self, path: &Path) -> io::Result<DyingFile> {
        let inner = self.inner.open(path)?;
        Ok(DyingFile {
            inner,
            budget: self.budget.clone(),
        })
    }
    fn create(&self, path: &Path) -> io::Result<DyingFile> {
        spend(&self.budget)?;
        let inner = self.inner.create(path)?;
        Ok(DyingFile {
            inner,
            budget: self.budget.clone(),
        })
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.inner.read(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.remove_file(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        spend(&self.budget)?;
        self.inner.sync_dir(path)
    }
    fn entry_kind(&self, path: &Path) -> io::Result<Option<EntryKind>> {
        self.inner.entry_kind(path)
    }
    fn try_lock(&self, path: &Path) -> io::Result<Option<SimLock>> {
        self.inner.try_lock(path)
    }
    fn map_readonly(&self, path: &Path) -> io::Result<Bytes> {
        self.inner.map_readonly(path)
    }
}

fn key_files(fs: &SimFileSystem) -> Vec<PathBuf> {
    let dir = Path::new(STORE).join(KEYS_DIR);
    fs.files()
        .into_iter()
        .filter(|path| path.starts_with(&dir))
        .collect()
}

/// A simulated file system of `seed` without faults, and the store [`STORE`] opened over it
/// through a [`DiesAfter`] whose budget is unlimited until the test sets it.
fn dying_store(seed: u64) -> (SimFileSystem, DiesAfter, Kimberlite) {
    let fs = SimFileSystem::new(seed, FaultConfig::NONE);
    let dying = DiesAfter {
        inner: fs.clone(),
        budget: Arc::new(AtomicI64::new(i64::MAX)),
    };
    let store = Kimberlite::open_with_fs(dying.clone(), STORE, Config::default()).unwrap();
    (fs, dying, store)
}

#[test]
fn a_crash_at_every_step_of_an_erasure_leaves_it_whole_or_undone() {
    let (_, text) = MasterKey::generate();
    let master = || Arc::new(MasterKey::from_text(&text).unwrap());
    let mut outcomes = [0u32; 2];
    for budget in 0.. {
        let (fs, dying, store) = dying_store(budget as u64);
        let id = store.create_stream("records").unwrap();
        let keys = SubjectKeys::open(&store, master()).unwrap();
        keys.append(id, "alice", ["a1", "a2"], ExpectedOffset::Any)
            .unwrap();
        keys.append(id, "bob", ["b1"], ExpectedOffset::Any).unwrap();
        keys.save_counts().unwrap();
        dying.budget.store(budget, Ordering::SeqCst);
        let erased = keys.erase("alice", "dpo");
        let finished = erased.is_ok() && dying.budget.load(Ordering::SeqCst) >= 0;
        drop(keys);
        drop(store);
        fs.crash();

        let store = Kimberlite::open_with_fs(fs.clone(), STORE, Config::default()).unwrap();
        let keys = SubjectKeys::open(&store, master()).unwrap();
        assert!(store.verify_all().unwrap().is_intact(), "budget {budget}");
        let id = store.stream("records").unwrap();
        let read = keys.read(id, 0.into(), u64::MAX).unwrap();
        assert_eq!(read[2].payload().map(|p| &p[..]), Some(b"b1".as_slice()));
        let recorded = keys.erasures().iter().count();
        match (&read[0].content, &read[1].content) {
            (Content::Erased { key_id, erasure }, Content::Erased { .. }) => {
                assert_eq!(recorded, 1, "budget {budget}");
                assert_eq!(erasure.events, 2);
                let left = key_files(&fs);
                assert!(
                    !left
                        .iter()
                        .any(|p| p.to_string_lossy().contains(&key_id.to_hex())),
                    "budget {budget}: the erased key's file is left: {left:?}"
                );
                outcomes[0] += 1;
            }
            (Content::Opened { payload, .. }, Content::Opened { .. }) => {
                assert_eq!(&payload[..], b"a1");
                assert_eq!(recorded, 0, "budget {budget}");
                assert!(
                    erased.is_err(),
                    "budget {budget}: acknowledged but not erased"
                );
                outcomes[1] += 1;
            }
            other => panic!("budget {budget}: half erased: {other:?}"),
        }
        if finished {
            assert!(budget > 3, "the erasure takes several steps");
            break;
        }
    }
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}

/// An erasure record counts every event the store holds under the key, also those sealed
/// after the last save of the counts when a crash stopped the process (at any step of a save
/// of the counts, or before one): the next open counts them (`counts.rs`).
#[test]
fn an_erasure_counts_the_events_sealed_since_the_last_save_before_a_crash() {
    let (_, text) = MasterKey::generate();
    let master = || Arc::new(MasterKey::from_text(&text).unwrap());
    for budget in 0.. {
        let (fs, dying, store) = dying_store(budget as u64);
        let records = store.create_stream("records").unwrap();
        let notes = store.create_stream("notes").unwrap();
        let keys = SubjectKeys::open(&store, master()).unwrap();
        keys.append(records, "alice", ["a1", "a2"], ExpectedOffset::Any)
            .unwrap();
        keys.append(records, "bob", ["b1"], ExpectedOffset::Any)
            .unwrap();
        keys.save_counts().unwrap();
        keys.append(records, "alice", ["a3", "a4", "a5"], ExpectedOffset::Any)
            .unwrap();
        keys.append(notes, "alice", ["n1"], ExpectedOffset::Any)
            .unwrap();
        store.append(notes, ["plain"], ExpectedOffset::Any).unwrap();
        keys.append(notes, "carol", ["c1", "c2"], ExpectedOffset::Any)
            .unwrap();
        store.sync().unwrap();
        // The process dies after `budget` changes of this save (or of the save on drop).
        dying.budget.store(budget, Ordering::SeqCst);
        let saved = keys.save_counts();
        let finished = saved.is_ok() && dying.budget.load(Ordering::SeqCst) >= 0;
        drop(keys);
        drop(store);
        fs.crash();

        let store = Kimberlite::open_with_fs(fs.clone(), STORE, Config::default()).unwrap();
        let keys = SubjectKeys::open(&store, master()).unwrap();
        keys.append(records, "alice", ["a6"], ExpectedOffset::Any)
            .unwrap();
        let counts: Vec<u64> = ["alice", "bob", "carol"]
            .iter()
            .map(|subject| keys.erase(subject, "dpo").unwrap().events)
            .collect();
        assert_eq!(counts, [7, 1, 2], "budget {budget}");
        let recorded: Vec<u64> = {
            let mut events: Vec<u64> = keys.erasures().iter().map(|e| e.events).collect();
            events.sort_unstable();
            events
        };
        assert_eq!(recorded, [1, 2, 7], "budget {budget}");
        // A clean close and open count nothing twice.
        drop(keys);
        let keys = SubjectKeys::open(&store, master()).unwrap();
        let mut again: Vec<u64> = keys.erasures().iter().map(|e| e.events).collect();
        again.sort_unstable();
        assert_eq!(again, [1, 2, 7], "budget {budget}");
        if finished {
            assert!(budget > 10, "a save of the counts takes several steps");
            break;
        }
    }
}
