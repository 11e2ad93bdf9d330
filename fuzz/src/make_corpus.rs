//! Writes the starting corpus of each fuzz target into `corpus/<target>/`: real stores made
//! by the engine (so `open_store` starts from valid files and mutates them) and real frames.
//!
//! Run from `fuzz/`: `cargo run --bin make_corpus`.

use std::path::Path;

use bytes::Bytes;
use kimberlite_fuzz::{encode_files, STORE};
use kimberlite_sim::{FaultConfig, SimFileSystem};
use kimberlite_storage::{Record, Storage, StorageBackend, StorageConfig};
use kimberlite_types::{CompressionKind, Offset, RecordKind, StreamId};

fn main() -> std::io::Result<()> {
    for target in ["record_decode", "record_lz4", "open_store"] {
        std::fs::create_dir_all(Path::new("corpus").join(target))?;
    }
    for (i, payload) in [&b""[..], b"hello", &[b'a'; 300]].iter().enumerate() {
        let record = Record::with_compression(
            Offset::new(i as u64),
            None,
            RecordKind::Data,
            CompressionKind::Lz4,
            Bytes::copy_from_slice(payload),
        );
        std::fs::write(format!("corpus/record_decode/frame{i}"), record.to_bytes())?;
        let compressed = lz4_block(payload);
        let mut input = vec![(payload.len() / 16) as u8];
        input.extend_from_slice(&compressed);
        std::fs::write(format!("corpus/record_lz4/block{i}"), input)?;
    }
    for (i, events) in [3usize, 20, 70].iter().enumerate() {
        let fs = SimFileSystem::new(0, FaultConfig::NONE);
        let config = StorageConfig {
            max_segment_size: 4096,
            restart_interval: 4,
            index_interval: 2,
            compression: if i == 1 {
                CompressionKind::Lz4
            } else {
                CompressionKind::None
            },
            ..StorageConfig::default()
        };
        {
            let mut storage =
                Storage::open_on(fs.clone(), STORE, config).map_err(std::io::Error::other)?;
            let mut head = None;
            let mut next = Offset::ZERO;
            for chunk in 0..*events / 3 + 1 {
                let batch: Vec<Bytes> = (0..3)
                    .map(|j| {
                        Bytes::from(format!(
                            "{{\"event\":{},\"pad\":\"{}\"}}",
                            chunk * 3 + j,
                            "x".repeat(j * 20)
                        ))
                    })
                    .collect();
                let (n, h) = storage
                    .append_batch(StreamId::new(1), batch, next, head, true)
                    .map_err(std::io::Error::other)?;
                next = n;
                head = Some(h);
            }
            storage.flush_indexes().map_err(std::io::Error::other)?;
        }
        let files: Vec<(String, Vec<u8>)> = fs
            .files()
            .into_iter()
            .filter_map(|path| {
                let content = fs.read_raw(&path)?;
                let name = path
                    .strip_prefix(STORE)
                    .ok()?
                    .to_string_lossy()
                    .into_owned();
                Some((name, content))
            })
            .collect();
        std::fs::write(format!("corpus/open_store/store{i}"), encode_files(&files))?;
    }
    Ok(())
}

fn lz4_block(payload: &[u8]) -> Vec<u8> {
    let record = Record::with_compression(
        Offset::ZERO,
        None,
        RecordKind::Data,
        CompressionKind::Lz4,
        Bytes::copy_from_slice(payload),
    );
    let frame = record.to_bytes();
    frame[52..frame.len() - 4].to_vec()
}
