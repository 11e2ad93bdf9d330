//! Helpers shared by the command-line tests: run the real binary, check its exit code and
//! output, build a store.

#![allow(dead_code)] // each test crate uses its own share of the helpers

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub fn kimberlite(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kimberlite");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("write stdin");
    drop(input);
    child.wait_with_output().expect("wait for kimberlite")
}

/// Starts `kimberlite tail DIR audit --from 0`, polling every `interval_ms` for `polls` polls
/// (so it stops by itself), its output piped.
pub fn spawn_tail(dir: &Path, interval_ms: u64, polls: u64) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(["tail", s(dir), "audit", "--from", "0"])
        .args(["--interval-ms", &interval_ms.to_string()])
        .args(["--polls", &polls.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kimberlite tail")
}

/// Waits for a tail started by [`spawn_tail`], requires it to have succeeded, and returns
/// what it printed.
pub fn finish_tail(tail: std::process::Child) -> String {
    let output = tail.wait_with_output().expect("wait for kimberlite tail");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn run(args: &[&str], stdin: &str) -> Run {
    let output = kimberlite(args, stdin);
    let run = Run {
        code: output.status.code().expect("exit code"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(!run.stderr.contains("panicked"), "panic: {}", run.stderr);
    assert!(
        !run.stderr.contains("stack backtrace"),
        "backtrace: {}",
        run.stderr
    );
    run
}

pub fn ok(args: &[&str], stdin: &str) -> String {
    let run = run(args, stdin);
    assert_eq!(
        run.code, 0,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    run.stdout
}

pub fn fails(args: &[&str], stdin: &str, code: i32, needle: &str) -> Run {
    let run = run(args, stdin);
    assert_eq!(
        run.code, code,
        "{args:?}\nstdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(needle) || run.stdout.contains(needle),
        "{args:?}: {needle:?} not in\nstdout: {}\nstderr: {}",
        run.stdout,
        run.stderr
    );
    run
}

pub fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// A store in a fresh temp dir with stream "audit" holding `events` numbered JSON events.
pub fn store_with(events: usize) -> (tempfile::TempDir, PathBuf) {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("store");
    let input: String = (0..events)
        .map(|i| format!("{{\"event\":\"record.viewed\",\"seq\":{i:05}}}\n"))
        .collect();
    ok(&["append", s(&dir), "audit", "--create"], &input);
    (temp, dir)
}

pub fn segments(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            segments(&path, out);
        } else if path.extension().is_some_and(|e| e == "seg") {
            out.push(path);
        }
    }
}

/// Node directories `dirs` (of one cluster) sharing one key file: a key named `admin` with
/// `grants` (`--allow` each) added to the first, its file copied to the others. Returns the
/// file holding the key's token, in `temp`.
pub fn shared_admin_key(temp: &Path, dirs: &[PathBuf], grants: &[&str]) -> PathBuf {
    let mut args = vec!["key", "add", s(&dirs[0]), "--name", "admin"];
    for grant in grants {
        args.extend(["--allow", grant]);
    }
    let token = ok(&args, "");
    let token_file = temp.join("admin.token");
    std::fs::write(&token_file, token.trim()).expect("token");
    for dir in &dirs[1..] {
        std::fs::create_dir_all(dir).expect("dir");
        std::fs::copy(
            dirs[0].join("server-keys.json"),
            dir.join("server-keys.json"),
        )
        .expect("keys");
    }
    token_file
}

/// `kimberlite verify-proof --pubkey PUBKEY --checkpoint CHECKPOINT --proof PROOF`, which
/// must succeed: what it prints.
pub fn verify_proof(pubkey: &Path, checkpoint: &Path, proof: &Path) -> String {
    let args = [
        "verify-proof",
        "--pubkey",
        s(pubkey),
        "--checkpoint",
        s(checkpoint),
        "--proof",
        s(proof),
    ];
    ok(&args, "")
}

/// A `kimberlite serve` process, killed when dropped (a failed test included).
pub struct Serving(pub Child);

impl Drop for Serving {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 (the listener that found it is closed again).
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr")
}

/// Runs `kimberlite ARGS`, a server listening on `addr`, its output dropped and its stderr as
/// `stderr` asks; returns once `addr` takes connections (within `patience`, else a panic).
pub fn serving(args: &[&str], addr: SocketAddr, stderr: Stdio, patience: Duration) -> Serving {
    let child = Command::new(env!("CARGO_BIN_EXE_kimberlite"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("run kimberlite serve");
    let serving = Serving(child);
    let started = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            started.elapsed() < patience,
            "{args:?} did not listen on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    serving
}
