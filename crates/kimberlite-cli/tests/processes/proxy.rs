//! TCP proxies in front of each node, which the test can cut per pair of nodes: the
//! partitions of the real-process tests (docs/TESTING.md, section "Real processes").
//!
//! Every node reaches node N through N's proxy (the URLs in `--peers` are the proxies'), so
//! all Raft traffic crosses a proxy. Raft's messages are requests whose answers come back on
//! the same connection, so cutting "into N" is not enough to isolate N: its own requests to
//! the others would still be answered. A proxy therefore tells which node opened each
//! connection, by the process that owns the connecting socket (Linux: `/proc/net/tcp` gives
//! the socket's inode, `/proc/PID/fd` the process holding it), and refuses or cuts the
//! connections of a cut pair in both directions.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::task::AbortHandle;

/// Node ids and the pids of their running processes.
pub type Pids = Arc<Mutex<Vec<(u64, u32)>>>;

/// One forwarded connection: who opened it, the node it goes to, and its task.
struct Link {
    from: Option<u64>,
    to: u64,
    task: AbortHandle,
}

#[derive(Default)]
struct Shared {
    /// Cut pairs, each both ways: `(a, b)` with `a < b`.
    cut: BTreeSet<(u64, u64)>,
    links: Vec<Link>,
}

impl Shared {
    fn is_cut(&self, from: Option<u64>, to: u64) -> bool {
        from.is_some_and(|from| self.cut.contains(&(from.min(to), from.max(to))))
    }
}

/// The proxies of a cluster, on a runtime of their own.
pub struct Proxies {
    runtime: Runtime,
    shared: Arc<Mutex<Shared>>,
    pids: Pids,
}

impl Proxies {
    pub fn new(pids: Pids) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("the proxies' runtime");
        Self {
            runtime,
            shared: Arc::default(),
            pids,
        }
    }

    /// Starts a proxy on a free port of 127.0.0.1 forwarding to `target`, for node `to`;
    /// returns its address.
    pub fn start(&self, to: u64, target: SocketAddr) -> SocketAddr {
        let listener = self
            .runtime
            .block_on(TcpListener::bind("127.0.0.1:0"))
            .expect("bind a proxy");
        let address = listener.local_addr().expect("the proxy's address");
        let shared = Arc::clone(&self.shared);
        let pids = Arc::clone(&self.pids);
        self.runtime.spawn(async move {
            loop {
                let Ok((inbound, peer)) = listener.accept().await else {
                    // Out of descriptors, or a connection reset before it was accepted: a
                    // proxy that stopped accepting would cut its node off for good.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let (shared, pids) = (Arc::clone(&shared), Arc::clone(&pids));
                // Who opened it is read from /proc on a blocking thread, so that neither this
                // loop nor any forwarding waits for it: under load, a proxy that read /proc
                // in its accept loop fell behind, timing every Raft message out.
                tokio::spawn(async move {
                    let from = tokio::task::spawn_blocking(move || opener(peer, address, &pids))
                        .await
                        .ok()
                        .flatten();
                    let mut state = shared.lock().expect("proxy state");
                    if state.is_cut(from, to) {
                        return; // dropped: the connection is refused as soon as it opens
                    }
                    let task = tokio::spawn(forward(inbound, target));
                    state.links.retain(|link| !link.task.is_finished());
                    state.links.push(Link {
                        from,
                        to,
                        task: task.abort_handle(),
                    });
                });
            }
        });
        address
    }

    /// Cuts `a` from `b` both ways: open connections are closed, new ones refused.
    pub fn cut(&self, a: u64, b: u64) {
        let mut state = self.shared.lock().expect("proxy state");
        state.cut.insert((a.min(b), a.max(b)));
        let Shared { cut: _, links } = &mut *state;
        for link in links.iter() {
            if link.from == Some(a) && link.to == b || link.from == Some(b) && link.to == a {
                link.task.abort();
            }
        }
    }

    /// Cuts `node` from every other node of `nodes`.
    pub fn isolate(&self, node: u64, nodes: &[u64]) {
        for &other in nodes.iter().filter(|&&other| other != node) {
            self.cut(node, other);
        }
    }

    /// Mends every cut.
    pub fn heal(&self) {
        self.shared.lock().expect("proxy state").cut.clear();
    }
}

/// Copies both ways between `inbound` and `target` until either side closes.
async fn forward(mut inbound: TcpStream, target: SocketAddr) {
    if let Ok(mut outbound) = TcpStream::connect(target).await {
        let _ = inbound.set_nodelay(true);
        let _ = outbound.set_nodelay(true);
        let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
    }
}

/// The node whose process opened the connection from `peer` to the proxy at `proxy`, if it
/// is one of `pids` (None for the test's own client, or a socket already gone).
fn opener(peer: SocketAddr, proxy: SocketAddr, pids: &Pids) -> Option<u64> {
    let inode = socket_inode(peer.port(), proxy.port())?;
    let needle = format!("socket:[{inode}]");
    let pids = pids.lock().expect("pids").clone();
    pids.into_iter().find_map(|(node, pid)| {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
        fds.flatten()
            .any(|fd| {
                std::fs::read_link(fd.path()).is_ok_and(|link| link.as_os_str() == needle.as_str())
            })
            .then_some(node)
    })
}

/// The inode of the IPv4 socket from local port `local` to port `remote` of 127.0.0.1, from
/// `/proc/net/tcp` (`sl local_address rem_address st ... uid timeout inode`, ports in hex).
/// One substring search, not a parse of every line: the table holds every socket of the
/// machine, those in TIME_WAIT included, and grows fast while connections churn.
fn socket_inode(local: u16, remote: u16) -> Option<u64> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let needle = format!(":{local:04X} 0100007F:{remote:04X} ");
    table.match_indices(&needle).find_map(|(at, _)| {
        let start = table[..at].rfind('\n').map_or(0, |newline| newline + 1);
        let end = table[at..]
            .find('\n')
            .map_or(table.len(), |newline| at + newline);
        let inode: u64 = table[start..end].split_whitespace().nth(9)?.parse().ok()?;
        // A socket in TIME_WAIT has inode 0: not the live one.
        (inode != 0).then_some(inode)
    })
}
