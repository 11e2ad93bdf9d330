//! The Merkle side files forged so that they are self-consistent (a leaf or an interior node
//! replaced and every parent recomputed), as an attacker with write access to the store
//! directory can: `checkpoint` signs nothing, `prove` prints nothing, and `audit` blames the
//! tree files, not the intact log that the honest checkpoint still matches.

mod common;

use std::path::{Path, PathBuf};

use common::{ok, run, s, store_with};
use kimberlite::proof::{event_leaf_hash, node_hash, Hash};

const EVENTS: usize = 40;

/// Every level of the tree over `leaves`.
fn levels_of(leaves: Vec<Hash>) -> Vec<Vec<Hash>> {
    let mut levels = vec![leaves];
    while let Some(below) = levels.last().filter(|level| level.len() >= 2) {
        let above = below
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
        levels.push(above);
    }
    levels
}

fn tree_dir(store: &Path) -> PathBuf {
    // Stream "audit" is the store's first stream, id 1.
    store.join("merkle").join(format!("{:020}", 1))
}

fn level_file(store: &Path, level: usize) -> PathBuf {
    tree_dir(store).join(format!("level-{level:02}.hashes"))
}

/// Reads the stored leaves, replaces node `(level, index)` with `hash`, recomputes every
/// node above it from the level below, and writes all levels back: a self-consistent tree.
fn forge(store: &Path, (level, index): (usize, usize), hash: Hash) {
    let bytes = std::fs::read(level_file(store, 0)).expect("read leaves");
    let leaves: Vec<Hash> = bytes
        .chunks_exact(32)
        .map(|chunk| Hash(chunk.try_into().expect("32 bytes")))
        .collect();
    let mut levels = levels_of(leaves);
    levels[level][index] = hash;
    for above in level + 1..levels.len() {
        levels[above] = levels[above - 1]
            .chunks_exact(2)
            .map(|pair| node_hash(&pair[0], &pair[1]))
            .collect();
    }
    for (level, nodes) in levels.iter().enumerate() {
        let bytes: Vec<u8> = nodes.iter().flat_map(|hash| hash.0).collect();
        std::fs::write(level_file(store, level), bytes).expect("write level");
    }
}

#[test]
fn forged_side_files_are_never_signed_or_proven_and_audit_blames_them() {
    let forgeries = [
        ("a leaf", 10, (0, 10), event_leaf_hash(10, b"forged")),
        // Node (2, 3): offsets 12..=15.
        ("an interior node", 13, (2, 3), Hash([7; 32])),
    ];
    for (what, offset, node, hash) in forgeries {
        let (tmp, store) = store_with(EVENTS);
        let key = tmp.path().join("auditor.key");
        ok(&["keygen", "--name", "auditor", "--out", s(&key)], "");
        let honest = ok(&["checkpoint", s(&store), "audit", "--key", s(&key)], "");
        let honest_path = tmp.path().join("honest.checkpoint");
        std::fs::write(&honest_path, &honest).expect("write checkpoint");
        let stored = store
            .join("checkpoints")
            .join(format!("{:020}", 1))
            .join(format!("{EVENTS:020}.checkpoint"));
        forge(&store, node, hash);

        let refused = run(&["checkpoint", s(&store), "audit", "--key", s(&key)], "");
        assert_eq!(refused.code, 1, "{what}: {}", refused.stderr);
        assert_eq!(refused.stdout, "", "{what}: nothing is signed");
        assert!(
            refused
                .stderr
                .contains("the stored Merkle tree of stream \"audit\" (id 1) is damaged"),
            "{what}: {}",
            refused.stderr
        );
        assert_eq!(
            std::fs::read_to_string(&stored).expect("stored checkpoint"),
            honest,
            "{what}: the stored checkpoint is the honest one"
        );

        let refused = run(&["prove", s(&store), "audit", &offset.to_string()], "");
        assert_eq!(refused.code, 1, "{what}: {}", refused.stderr);
        assert_eq!(refused.stdout, "", "{what}: no proof is printed");
        let refused = run(&["prove-consistency", s(&store), "audit", "8", "40"], "");
        assert_eq!(refused.code, 1, "{what}: {}", refused.stderr);
        assert_eq!(refused.stdout, "", "{what}: no proof is printed");

        let pubkey = tmp.path().join("auditor.key.pub");
        let audit = run(
            &[
                "audit",
                s(&store),
                "--checkpoint",
                s(&honest_path),
                "--pubkey",
                s(&pubkey),
            ],
            "",
        );
        assert_eq!(audit.code, 1, "{what}: {}", audit.stdout);
        assert!(
            audit.stdout.contains("TAMPERED"),
            "{what}: {}",
            audit.stdout
        );
        if node.0 == 0 {
            assert!(
                audit
                    .stdout
                    .contains("the log still hashes to the signed checkpoint: the tree files"),
                "{what}: {}",
                audit.stdout
            );
        }
        assert!(
            audit.stdout.contains("merkle/"),
            "{what}: the tree files are named: {}",
            audit.stdout
        );
        for blame in ["HISTORY REWRITTEN", "TAIL CUT", "wrong store"] {
            assert!(
                !audit.stdout.contains(blame),
                "{what}: the intact log is blamed: {}",
                audit.stdout
            );
        }
    }
}
