//! docs/OPERATIONS.md works as written: its shell blocks, in order, run as one script on
//! this machine (a three-node cluster on loopback, a node replaced, a backup taken and the
//! cluster restored from it), with this build's `kimberlite` first on the PATH. A block after
//! a `<!-- not run` comment (the three-machine commands) is left out.

use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long the whole page may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);
/// The ports the page's nodes listen on.
const PORTS: [u16; 4] = [7101, 7102, 7103, 7104];

/// The page's shell blocks that run on one machine, joined.
fn script(page: &str) -> String {
    let mut script = String::new();
    let mut lines = page.lines();
    let mut skip_next = false;
    while let Some(line) = lines.next() {
        if line.starts_with("<!-- not run") {
            skip_next = true;
        } else if line.trim_end() == "```sh" {
            let block: Vec<&str> = lines
                .by_ref()
                .take_while(|l| l.trim_end() != "```")
                .collect();
            if !std::mem::take(&mut skip_next) {
                script.push_str(&block.join("\n"));
                script.push('\n');
            }
        }
    }
    script
}

/// The script's process group, killed when dropped (the nodes it started in the background
/// included), a failed test too.
struct Group(Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn the_operations_page_runs_as_written() {
    let page_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/OPERATIONS.md");
    let page = std::fs::read_to_string(&page_path).expect("docs/OPERATIONS.md");
    let body = script(&page);
    assert!(
        body.contains("kimberlite serve"),
        "no commands found in {page_path:?}"
    );
    for port in PORTS {
        assert!(
            TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "port {port}, which docs/OPERATIONS.md uses, is taken on this machine"
        );
    }
    let bin = Path::new(env!("CARGO_BIN_EXE_kimberlite"));
    let path = format!(
        "{}:{}",
        bin.parent().expect("the binary's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let temp = tempfile::tempdir().expect("a temporary directory");
    let full = format!(
        "set -euo pipefail\ntrap 'kill -9 $(jobs -p) 2>/dev/null || true' EXIT\nset -x\n{body}"
    );
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(&full)
        .current_dir(temp.path())
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("run bash");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let mut group = Group(child);
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    let status = loop {
        if let Some(status) = group.0.try_wait().expect("wait for bash") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(group); // the nodes too, so that the pipes close
    let (stdout, stderr) = (out.join().unwrap(), err.join().unwrap());
    let logs: String = ["node1", "node2", "node3", "node4"]
        .iter()
        .map(|node| {
            let log = temp.path().join("kb-cluster").join(format!("{node}.log"));
            format!(
                "--- {node}.log\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            )
        })
        .collect();
    let report = format!("stdout:\n{stdout}\nstderr:\n{stderr}\n{logs}");
    let status = status.unwrap_or_else(|| panic!("timed out after {SCRIPT_TIMEOUT:?}\n{report}"));
    assert!(status.success(), "the page failed: {status}\n{report}");
    // The restored cluster holds what was written before the backup.
    let restored = stdout.rsplit("\"events\"").next().unwrap_or_default();
    assert!(restored.contains("viewed P-1"), "{report}");
    assert!(
        stdout.contains("intact: "),
        "verify of the backup: {report}"
    );
}
