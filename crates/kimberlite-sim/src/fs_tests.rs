use super::*;
use kimberlite_storage::FileHandle;

fn dir() -> PathBuf {
    PathBuf::from("/store")
}

fn file() -> PathBuf {
    dir().join("a.seg")
}

fn new_fs(seed: u64, faults: FaultConfig) -> SimFileSystem {
    let fs = SimFileSystem::new(seed, faults);
    fs.create_dir_all(&dir()).unwrap();
    fs
}

#[test]
fn synced_data_and_entries_survive_a_crash() {
    let fs = new_fs(1, FaultConfig::NONE);
    let mut handle = fs.create(&file()).unwrap();
    handle.write_all_at(b"hello", 0).unwrap();
    handle.sync_data().unwrap();
    fs.sync_dir(&dir()).unwrap();
    fs.crash();
    assert_eq!(fs.read_raw(&file()).unwrap(), b"hello");
    // Handles from before the crash are dead.
    assert!(handle.write_all_at(b"x", 0).is_err());
}

#[test]
fn unsynced_entry_is_lost_by_a_crash() {
    let fs = new_fs(1, FaultConfig::NONE);
    let mut handle = fs.create(&file()).unwrap();
    handle.write_all_at(b"hello", 0).unwrap();
    handle.sync_data().unwrap();
    fs.crash();
    assert_eq!(fs.read_raw(&file()), None);
    assert!(fs.list_dir(&dir()).unwrap().is_empty());
}

#[test]
fn unsynced_writes_survive_as_a_possibly_torn_prefix() {
    let mut outcomes = BTreeSet::new();
    for seed in 0..200 {
        let fs = new_fs(seed, FaultConfig::NONE);
        let mut handle = fs.create(&file()).unwrap();
        handle.write_all_at(b"base", 0).unwrap();
        handle.sync_data().unwrap();
        fs.sync_dir(&dir()).unwrap();
        handle.write_all_at(b"1111", 4).unwrap();
        handle.write_all_at(b"2222", 8).unwrap();
        fs.crash();
        let image = fs.read_raw(&file()).unwrap();
        let full = b"base11112222";
        assert!(full.starts_with(&image), "not a prefix: {image:?}");
        assert!(image.starts_with(b"base"), "synced data lost: {image:?}");
        outcomes.insert(image.len());
    }
    // Every cut point occurs: nothing, torn first write, whole first, torn second, all.
    assert_eq!(outcomes, (4..=12).collect());
}

#[test]
fn rename_is_atomic_and_needs_a_dir_sync() {
    let fs = new_fs(3, FaultConfig::NONE);
    let target = dir().join("manifest.json");
    let temp = dir().join("manifest.json.tmp");
    let mut old = fs.create(&target).unwrap();
    old.write_all_at(b"old", 0).unwrap();
    old.sync_data().unwrap();
    fs.sync_dir(&dir()).unwrap();

    let mut new = fs.create(&temp).unwrap();
    new.write_all_at(b"new", 0).unwrap();
    new.sync_data().unwrap();
    fs.rename(&temp, &target).unwrap();
    assert_eq!(fs.read_raw(&target).unwrap(), b"new");
    fs.crash();
    assert_eq!(fs.read_raw(&target).unwrap(), b"old");
    assert_eq!(fs.read_raw(&temp), None);

    let mut new = fs.create(&temp).unwrap();
    new.write_all_at(b"new", 0).unwrap();
    new.sync_data().unwrap();
    fs.rename(&temp, &target).unwrap();
    fs.sync_dir(&dir()).unwrap();
    fs.crash();
    assert_eq!(fs.read_raw(&target).unwrap(), b"new");
}

#[test]
fn read_flips_are_transient_and_counted() {
    let faults = FaultConfig {
        read_flip_probability: 1.0,
        ..FaultConfig::NONE
    };
    let fs = new_fs(5, faults);
    let mut handle = fs.create(&file()).unwrap();
    handle.write_all_at(&[0u8; 64], 0).unwrap();
    let mut buf = [0u8; 64];
    handle.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf.iter().map(|b| b.count_ones()).sum::<u32>(), 1);
    assert_eq!(fs.read_raw(&file()).unwrap(), vec![0u8; 64]);
    assert_eq!(fs.counts().read_flips, 1);
    fs.set_faults_enabled(false);
    handle.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0u8; 64]);
}

#[test]
fn failed_sync_and_failed_write_report_errors() {
    let faults = FaultConfig {
        sync_fail_probability: 1.0,
        write_fail_probability: 1.0,
        ..FaultConfig::NONE
    };
    let fs = new_fs(7, faults);
    let mut handle = fs.create(&file()).unwrap();
    let error = handle.write_all_at(b"abcdef", 0).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::StorageFull);
    assert!(handle.len_bytes().unwrap() <= 6);
    assert!(handle.sync_data().is_err());
    let counts = fs.counts();
    assert_eq!((counts.write_failures, counts.sync_failures), (1, 1));
    assert_eq!(counts.detectable(), 2);
}

#[test]
fn lying_sync_loses_data() {
    let faults = FaultConfig {
        lie_on_sync: true,
        ..FaultConfig::NONE
    };
    let mut lost = false;
    for seed in 0..20 {
        let fs = new_fs(seed, faults);
        let mut handle = fs.create(&file()).unwrap();
        fs.sync_dir(&dir()).unwrap();
        handle.write_all_at(b"acknowledged", 0).unwrap();
        handle.sync_data().unwrap();
        fs.crash();
        lost |= fs.read_raw(&file()).unwrap() != b"acknowledged";
    }
    assert!(lost);
}

#[test]
fn same_seed_same_run() {
    let run = |seed| {
        let fs = new_fs(
            seed,
            FaultConfig {
                read_flip_probability: 0.5,
                ..FaultConfig::NONE
            },
        );
        let mut handle = fs.create(&file()).unwrap();
        fs.sync_dir(&dir()).unwrap();
        let mut seen = Vec::new();
        for i in 0..20u8 {
            handle.write_all_at(&[i; 16], u64::from(i) * 16).unwrap();
            let mut buf = [0u8; 16];
            handle.read_exact_at(&mut buf, u64::from(i) * 16).unwrap();
            seen.extend_from_slice(&buf);
        }
        fs.crash();
        (seen, fs.read_raw(&file()), fs.counts())
    };
    assert_eq!(run(11), run(11));
    assert_ne!(run(11).0, run(12).0);
}

#[test]
fn locks_are_exclusive_until_dropped_or_crash() {
    let fs = new_fs(1, FaultConfig::NONE);
    let lock_path = dir().join("LOCK");
    let held = fs.try_lock(&lock_path).unwrap();
    assert!(held.is_some());
    assert!(fs.try_lock(&lock_path).unwrap().is_none());
    drop(held);
    let again = fs.try_lock(&lock_path).unwrap();
    assert!(again.is_some());
    fs.crash();
    assert!(fs.try_lock(&lock_path).unwrap().is_some());
    drop(again);
}

#[test]
fn missing_files_and_dirs_are_not_found() {
    let fs = new_fs(1, FaultConfig::NONE);
    assert_eq!(
        fs.open(&file()).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert_eq!(
        fs.create(Path::new("/nowhere/x")).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
    assert!(fs.list_dir(Path::new("/nowhere")).unwrap().is_empty());
    let mut handle = fs.create(&file()).unwrap();
    let mut buf = [0u8; 1];
    assert!(handle.read_exact_at(&mut buf, 0).is_err());
    handle.set_len(3).unwrap();
    assert_eq!(handle.len_bytes().unwrap(), 3);
    assert_eq!(fs.list_dir(&dir()).unwrap(), vec!["a.seg".to_owned()]);
    assert_eq!(fs.files(), vec![file()]);
    fs.remove_file(&file()).unwrap();
    assert!(fs.remove_file(&file()).is_err());
}

#[test]
fn planned_flip_hits_one_read_of_one_byte() {
    let fs = new_fs(1, FaultConfig::NONE);
    let mut handle = fs.create(&file()).unwrap();
    handle.write_all_at(&[0u8; 32], 0).unwrap();
    fs.flip_next_read(&file(), 20);
    let mut buf = [0u8; 8];
    handle.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, [0u8; 8], "a read not covering the byte is clean");
    let mut buf = [0u8; 16];
    handle.read_exact_at(&mut buf, 16).unwrap();
    assert_eq!(buf[4], 1);
    assert_eq!(fs.counts().read_flips, 1);
    handle.read_exact_at(&mut buf, 16).unwrap();
    assert_eq!(buf, [0u8; 16], "the flip is transient");
    fs.flip_next_read(&file(), 3);
    assert_eq!(fs.read(&file()).unwrap()[3], 1);
    assert_eq!(fs.read(&file()).unwrap()[3], 0);
}

#[test]
fn entry_kind_tells_files_directories_and_nothing() {
    let fs = new_fs(1, FaultConfig::NONE);
    assert_eq!(fs.entry_kind(&dir()).unwrap(), Some(EntryKind::Dir));
    assert_eq!(fs.entry_kind(&file()).unwrap(), None);
    fs.create(&file()).unwrap();
    assert_eq!(fs.entry_kind(&file()).unwrap(), Some(EntryKind::File));
    fs.remove_file(&file()).unwrap();
    assert_eq!(fs.entry_kind(&file()).unwrap(), None);
}

#[test]
fn a_read_only_mount_refuses_and_counts_every_change_and_reads_as_before() {
    let fs = new_fs(1, FaultConfig::NONE);
    let mut handle = fs.create(&file()).unwrap();
    handle.write_all_at(b"kept", 0).unwrap();
    drop(handle);
    fs.set_read_only(true);
    let before = fs.snapshot();
    let read_only = |error: io::Error| error.kind() == io::ErrorKind::ReadOnlyFilesystem;
    assert!(fs.open(&file()).is_err_and(read_only));
    assert!(fs.create(&dir().join("new")).is_err_and(read_only));
    assert!(fs.create_dir_all(&dir().join("sub")).is_err_and(read_only));
    assert!(fs.rename(&file(), &dir().join("b")).is_err_and(read_only));
    assert!(fs.remove_file(&file()).is_err_and(read_only));
    assert!(fs.try_lock(&dir().join("LOCK")).is_err_and(read_only));
    let mut handle = fs.open_readonly(&file()).unwrap();
    assert!(handle.write_all_at(b"x", 0).is_err());
    assert!(handle.set_len(0).is_err());
    assert_eq!(fs.counts().read_only_refusals, 8);
    assert_eq!(fs.read(&file()).unwrap(), b"kept");
    fs.create_dir_all(&dir()).unwrap();
    assert_eq!(fs.snapshot(), before, "nothing changed");
    fs.set_read_only(false);
    assert!(fs.open(&file()).is_ok());
}

#[test]
fn links_are_refused_unless_the_breakage_follows_them_outside() {
    let fs = new_fs(1, FaultConfig::NONE);
    let victim = PathBuf::from("/outside/victim");
    fs.write_raw(&victim, b"precious");
    fs.place_link(&file(), &victim);
    assert!(fs.entry_is_link(&file()));
    let refused = fs.open(&file()).unwrap_err();
    assert!(UnexpectedEntry::in_error(&refused).is_some(), "{refused}");
    fs.set_follow_links(true);
    fs.open(&file()).unwrap().write_all_at(b"X", 0).unwrap();
    assert_eq!(fs.read_raw(&victim).unwrap(), b"Xrecious");
}

#[test]
fn removed_directories_and_raw_writes_are_at_rest_and_snapshots_undo_them() {
    let fs = new_fs(1, FaultConfig::NONE);
    let nested = dir().join("s/1/a.seg");
    fs.write_raw(&nested, b"forged");
    let before = fs.snapshot();
    assert!(fs.remove_dir_all(&dir().join("s")));
    assert!(!fs.remove_dir_all(&dir().join("s")));
    fs.crash();
    assert_eq!(fs.read_raw(&nested), None, "removed for good");
    assert!(!fs.dirs().contains(&dir().join("s")));
    fs.restore(&before);
    fs.crash();
    assert_eq!(fs.read_raw(&nested).unwrap(), b"forged", "written at rest");
    assert_eq!(
        fs.snapshot().under(&dir().join("s")),
        before.under(&dir().join("s"))
    );
    assert!(fs.rename(&nested, &dir().join("b")).is_ok());
    fs.place(&dir().join("c"), EntryKind::Dir);
    let refused = fs.rename(&dir().join("b"), &dir().join("c")).unwrap_err();
    assert!(UnexpectedEntry::in_error(&refused).is_some(), "{refused}");
}
