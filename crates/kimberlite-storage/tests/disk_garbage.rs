//! Bad input never panics: a store directory of arbitrary (and arbitrarily damaged) files opens
//! with a typed error or opens and answers every call with data or a typed error.

mod common;

use common::{append_events, small_config, stream_dir};
use kimberlite_storage::{Storage, StorageBackend, StoreBackend};
use kimberlite_types::{Offset, StreamId};
use proptest::prelude::*;

const STREAM: StreamId = StreamId::new(1);

/// Exercises every read entry point; none may panic.
fn poke_everything(storage: &mut Storage) {
    for stream in storage.streams() {
        let _ = storage.latest_chain_hash(stream);
        let _ = storage.verify_stream(stream);
        let _ = storage.stream_stats(stream);
        for from in [0, 1, 3, 7, 50] {
            // Whatever a read returns is the original data: damage is an error, never data.
            if let Ok(events) = storage.read_from(stream, Offset::new(from), 100) {
                for (i, event) in events.iter().enumerate() {
                    let offset = from + i as u64;
                    if offset < 30 {
                        assert_eq!(*event, common::event(1, offset), "offset {offset}");
                    }
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Damage {
    /// Overwrite bytes at a position (modulo the length) of a file.
    Overwrite {
        file: usize,
        at: usize,
        bytes: Vec<u8>,
    },
    /// Truncate a file to a fraction of its length.
    Truncate { file: usize, keep_per_mille: usize },
    /// Replace a file with arbitrary bytes.
    Replace { file: usize, bytes: Vec<u8> },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (
            0usize..16,
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(file, at, bytes)| Damage::Overwrite { file, at, bytes }),
        (0usize..16, 0usize..1000).prop_map(|(file, keep_per_mille)| Damage::Truncate {
            file,
            keep_per_mille
        }),
        (0usize..16, proptest::collection::vec(any::<u8>(), 0..200))
            .prop_map(|(file, bytes)| Damage::Replace { file, bytes }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn damaged_stores_never_panic(damages in proptest::collection::vec(damage(), 1..5)) {
        let dir = common::scratch_dir();
        {
            let mut storage = Storage::open_with(dir.path(), small_config()).unwrap();
            append_events(&mut storage, STREAM, 0, 30, 4, false);
            storage.flush().unwrap();
        }
        let stream_dir = stream_dir(dir.path(), STREAM);
        let mut files: Vec<_> = std::fs::read_dir(&stream_dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        for damage in damages {
            match damage {
                Damage::Overwrite { file, at, bytes } => {
                    let path = &files[file % files.len()];
                    let mut content = std::fs::read(path).unwrap();
                    if !content.is_empty() {
                        for (i, byte) in bytes.iter().enumerate() {
                            let index = (at + i) % content.len();
                            content[index] = *byte;
                        }
                    }
                    std::fs::write(path, content).unwrap();
                }
                Damage::Truncate { file, keep_per_mille } => {
                    let path = &files[file % files.len()];
                    let content = std::fs::read(path).unwrap();
                    std::fs::write(path, &content[..content.len() * keep_per_mille / 1000]).unwrap();
                }
                Damage::Replace { file, bytes } => {
                    std::fs::write(&files[file % files.len()], bytes).unwrap();
                }
            }
        }
        if let Ok(mut storage) = Storage::open_with(dir.path(), small_config()) {
            poke_everything(&mut storage);
            let _ = storage.append_batch(STREAM, vec![bytes::Bytes::from_static(b"x")], Offset::new(30), None, false);
            let _ = storage.flush();
            drop(storage);
            if let Ok(mut storage) = Storage::open_with(dir.path(), small_config()) {
                poke_everything(&mut storage);
            }
        }
    }
}
