use super::*;
use crate::principal::Permission;

fn grants(list: &[(Permission, &str)]) -> Vec<Grant> {
    list.iter()
        .map(|(permission, pattern)| Grant {
            permission: *permission,
            pattern: (*pattern).into(),
        })
        .collect()
}

fn key_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join(KEY_FILE_NAME);
    (dir, path)
}

#[test]
fn a_key_added_by_one_ring_is_accepted_by_another_and_refused_once_revoked() {
    let (_dir, path) = key_file();
    let server = KeyRing::open(&path).expect("open");
    assert_eq!(server.authenticate("kb_x"), Err(AuthFailure::NoKeys));
    let cli = KeyRing::open(&path).expect("open");
    let added = cli
        .add("billing", grants(&[(Permission::Append, "billing-*")]))
        .expect("add");
    assert!(added.token.starts_with(TOKEN_PREFIX));
    let principal = server.authenticate(&added.token).expect("accepted");
    assert_eq!(principal.key_id, added.entry.id);
    assert!(principal.may(Permission::Append, "billing-1"));
    assert_eq!(server.authenticate("kb_wrong"), Err(AuthFailure::Unknown));
    // Revoked by the other ring: refused on the very next call, with no wait.
    cli.revoke(&added.entry.id).expect("revoke");
    assert_eq!(
        server.authenticate(&added.token),
        Err(AuthFailure::NoKeys),
        "the only key is revoked"
    );
    let listed = server.list().expect("list");
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked);
}

#[test]
fn the_file_keeps_hashes_never_tokens() {
    let (_dir, path) = key_file();
    let ring = KeyRing::open(&path).expect("open");
    let added = ring
        .add("auditor", grants(&[(Permission::Read, "*")]))
        .expect("add");
    let text = std::fs::read_to_string(&path).expect("read");
    let secret = added.token.strip_prefix(TOKEN_PREFIX).expect("prefix");
    assert!(!text.contains(secret));
    assert!(text.contains(&hex::encode(hash_token(&added.token))));
}

#[test]
fn names_are_unique_among_active_keys_and_ids_must_exist() {
    let (_dir, path) = key_file();
    let ring = KeyRing::open(&path).expect("open");
    let first = ring.add("svc", Vec::new()).expect("add");
    let error = ring.add("svc", Vec::new()).expect_err("duplicate");
    assert!(error.to_string().contains("exists"), "{error}");
    ring.revoke(&first.entry.id).expect("revoke");
    ring.add("svc", Vec::new()).expect("name free again");
    let error = ring.revoke("kid_0000000000000000").expect_err("unknown");
    assert!(matches!(error, KeyFileError::UnknownKey(_)));
    for bad in ["", "a\u{7}b"] {
        assert!(matches!(
            ring.add(bad, Vec::new()),
            Err(KeyFileError::Invalid(_))
        ));
    }
    assert_eq!(ring.list().expect("list").len(), 2);
}

#[test]
fn a_garbage_key_file_is_refused_at_open_and_refuses_every_key_while_running() {
    let (_dir, path) = key_file();
    let ring = KeyRing::open(&path).expect("open");
    let added = ring
        .add("admin", grants(&[(Permission::Admin, "*")]))
        .expect("add");
    let good = std::fs::read(&path).expect("read");
    for garbage in [
        &b"\x00\xffnot json"[..],
        b"{}",
        b"{\"kimberlite_server_keys\":1,\"keys\":[{\"id\":\"x\"}]}",
        b"{\"kimberlite_server_keys\":9,\"keys\":[]}",
    ] {
        std::fs::write(&path, garbage).expect("write garbage");
        let error = KeyRing::open(&path).expect_err("garbage refused");
        assert!(matches!(error, KeyFileError::Damaged { .. }), "{error:?}");
        assert!(error.to_string().contains("server-keys.json"), "{error}");
        assert!(matches!(
            ring.authenticate(&added.token),
            Err(AuthFailure::KeyFileBroken(_))
        ));
    }
    // A hash swapped for another token's: the file parses, the token no longer matches.
    let tampered = String::from_utf8(good.clone())
        .expect("utf-8")
        .replace(&added.entry.sha256, &hex::encode(hash_token("kb_other")));
    std::fs::write(&path, tampered).expect("write");
    assert_eq!(ring.authenticate(&added.token), Err(AuthFailure::Unknown));
    std::fs::write(&path, &good).expect("repair");
    assert!(
        ring.authenticate(&added.token).is_ok(),
        "repaired file used again"
    );
}

#[test]
fn concurrent_writers_lose_no_change() {
    let (_dir, path) = key_file();
    let threads: Vec<_> = (0..4)
        .map(|thread| {
            let path = path.clone();
            std::thread::spawn(move || {
                let ring = KeyRing::open(&path).expect("open");
                for n in 0..10 {
                    ring.add(&format!("k{thread}-{n}"), Vec::new())
                        .expect("add");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("writer");
    }
    assert_eq!(
        KeyRing::open(&path)
            .expect("open")
            .list()
            .expect("list")
            .len(),
        40
    );
}

#[test]
fn client_certificate_names_map_to_active_keys_only() {
    let ring = KeyRing::default();
    let added = ring
        .add("ehr", grants(&[(Permission::Append, "ehr")]))
        .expect("add");
    assert_eq!(
        ring.authenticate_name("ehr").expect("mapped").key_id,
        added.entry.id
    );
    assert_eq!(ring.authenticate_name("other"), Err(AuthFailure::Unknown));
    ring.revoke(&added.entry.id).expect("revoke");
    assert!(ring.authenticate_name("ehr").is_err());
}
