//! The whole store over `SimFileSystem` with links and special files placed inside it
//! (`SimFileSystem::place`): refused as damage that names the path, never followed.

use std::path::Path;

use kimberlite::{Config, ExpectedOffset, Kimberlite};
use kimberlite_sim::{FaultConfig, SimFileSystem};
use kimberlite_storage::EntryKind;

const STORE: &str = "/store";

fn written_store() -> SimFileSystem {
    let fs = SimFileSystem::new(11, FaultConfig::NONE);
    let store = Kimberlite::open_with_fs(fs.clone(), STORE, Config::default()).unwrap();
    let id = store.create_stream("audit").unwrap();
    store
        .append(id, ["a", "b", "c"], ExpectedOffset::NoStream)
        .unwrap();
    store.tree_head(id).unwrap();
    store.sync().unwrap();
    drop(store);
    fs
}

#[test]
fn a_link_in_place_of_a_stream_directory_is_reported_not_followed() {
    let fs = written_store();
    let stream_dir = Path::new(STORE).join("streams/00000000000000000001");
    fs.place(&stream_dir, EntryKind::Link);
    let store = Kimberlite::open_with_fs(fs.clone(), STORE, Config::default());
    let said = match store {
        Ok(store) => format!("{}", store.recovery_report()),
        Err(error) => error.to_string(),
    };
    assert!(said.contains(&stream_dir.display().to_string()), "{said}");
    assert!(said.contains("symbolic link"), "{said}");
}

#[test]
fn a_special_file_in_place_of_a_tree_level_is_refused() {
    let fs = written_store();
    let level = Path::new(STORE).join("merkle/00000000000000000001/level-00.hashes");
    fs.place(&level, EntryKind::Other);
    let said = match Kimberlite::open_with_fs(fs.clone(), STORE, Config::default()) {
        Ok(store) => {
            let id = store.stream("audit").unwrap();
            format!("{:?}", store.tree_head(id))
        }
        Err(error) => error.to_string(),
    };
    assert!(said.contains("special file"), "{said}");
    assert!(said.contains(&level.display().to_string()), "{said}");
}

#[test]
fn a_link_in_place_of_the_streams_directory_stops_the_open() {
    let fs = written_store();
    fs.place(&Path::new(STORE).join("streams"), EntryKind::Link);
    let error = Kimberlite::open_with_fs(fs.clone(), STORE, Config::default())
        .expect_err("the streams directory behind a link must be refused");
    assert!(error.is_corruption(), "{error}");
    assert!(error.to_string().contains("/store/streams"), "{error}");
}
