//! What one request to the server costs, in quantities a busy machine does not change much:
//! CPU time, system calls and context switches per request, for the server's process and the
//! clients' process separately, beside the same figures for the embedded store doing the same
//! appends from as many threads. Wall-clock figures are printed too, for information only.
//!
//! Run (the bench profile, as `cargo bench` builds):
//!
//! ```sh
//! cargo build --profile bench -p kimberlite-bench --example server_cost
//! target/release/examples/server_cost [--clients 64] [--requests 200] [--batch 1] [--in-process]
//! ```
//!
//! `--requests` is per client; `--batch` events per request (1,000 for `server_batch`'s
//! workload); `--no-embedded` skips the embedded side (for a profiler). By default the clients run in a child process (their CPU apart from the
//! server's); `--in-process` runs them as tasks on the server's runtime, as the server benches
//! do (one figure for both). Counts come from `perf stat` attached to each process for the
//! timed phase only (system calls: the `raw_syscalls:sys_enter` tracepoint), CPU also from
//! `/proc/<pid>/stat`; without `perf`, the CPU figures alone are printed.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kimberlite::ExpectedOffset;
use kimberlite_bench::concurrent::single_appends;
use kimberlite_bench::http_client::{connect_all, length_prefixed, HttpStream};
use kimberlite_bench::server::{open_store, BenchServer};
use kimberlite_bench::{cpu_seconds, event, events};
use tokio::runtime::Runtime;

const STREAM: &str = "bench";

#[derive(Clone, Copy)]
struct Workload {
    clients: u64,
    requests: u64,
    batch: u64,
}

impl Workload {
    fn total(&self) -> u64 {
        self.clients * self.requests
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str, default: u64| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|at| args.get(at + 1))
            .map_or(default, |text| text.parse().expect("a number"))
    };
    let work = Workload {
        clients: value("--clients", 64),
        requests: value("--requests", 200),
        batch: value("--batch", 1),
    };
    if let Some(at) = args.iter().position(|arg| arg == "--client-child") {
        let addr: SocketAddr = args[at + 1].parse().expect("an address");
        client_child(addr, work);
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    println!(
        "server_cost: {} clients x {} requests of {} event(s) of 256 B, synced",
        work.clients, work.requests, work.batch
    );
    if !args.iter().any(|arg| arg == "--no-embedded") {
        embedded(&dir.path().join("embedded"), work);
    }
    let server = BenchServer::start(open_store(&dir.path().join("server"), &[STREAM.into()]));
    if args.iter().any(|arg| arg == "--in-process") {
        in_process(&server, work);
    } else {
        over_process(&server, work);
    }
}

/// The embedded store: `clients` threads, each `requests` appends of `batch` events.
fn embedded(dir: &std::path::Path, work: Workload) {
    let store = open_store(dir, &[STREAM.into()]);
    let id = store.stream(STREAM).expect("the stream");
    let round = |requests: u64| {
        std::thread::scope(|scope| {
            for thread in 0..work.clients {
                let store = &store;
                scope.spawn(move || {
                    for i in 0..requests {
                        let first = (thread * 1_000_000 + i) * work.batch;
                        let batch: Vec<Bytes> = (first..first + work.batch).map(event).collect();
                        store
                            .append(id, batch, ExpectedOffset::Any)
                            .expect("append");
                    }
                });
            }
        });
    };
    round(work.requests / 4 + 1);
    let me = std::process::id();
    let probe = Probe::start(me);
    let started = Instant::now();
    round(work.requests);
    let wall = started.elapsed();
    print_costs("embedded", &probe.stop(), work.total(), wall);
}

/// Clients as tasks on the server's runtime, as the server benches run them.
fn in_process(server: &BenchServer, work: Workload) {
    let mut clients = connect_all(
        server.runtime(),
        server.addr(),
        STREAM,
        work.clients as usize,
    );
    let body = length_prefixed(&events(0, work.batch as usize));
    run_clients(
        server.runtime(),
        &mut clients,
        work.requests / 4 + 1,
        work,
        &body,
    );
    let probe = Probe::start(std::process::id());
    let started = Instant::now();
    run_clients(server.runtime(), &mut clients, work.requests, work, &body);
    let wall = started.elapsed();
    print_costs(
        "HTTP, server and clients in one process",
        &probe.stop(),
        work.total(),
        wall,
    );
}

/// The clients in a child process: the server's costs and the clients' apart.
fn over_process(server: &BenchServer, work: Workload) {
    let mut child = Command::new(std::env::current_exe().expect("this program"))
        .args(["--client-child", &server.addr().to_string()])
        .args(["--clients", &work.clients.to_string()])
        .args(["--requests", &work.requests.to_string()])
        .args(["--batch", &work.batch.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the clients");
    let mut lines = BufReader::new(child.stdout.take().expect("the child's output")).lines();
    let mut say = child.stdin.take().expect("the child's input");
    let ready = lines.next().expect("the child says ready").expect("a line");
    assert_eq!(ready, "ready", "the clients' process answered {ready:?}");
    let server_probe = Probe::start(std::process::id());
    let client_probe = Probe::start(child.id());
    writeln!(say, "go").expect("tell the child to go");
    let done = lines.next().expect("the child says done").expect("a line");
    let wall = Duration::from_nanos(
        done.strip_prefix("done ")
            .and_then(|nanos| nanos.parse().ok())
            .expect("done <nanoseconds>"),
    );
    let server_costs = server_probe.stop();
    let client_costs = client_probe.stop();
    drop(say);
    child.wait().expect("the clients' process ends");
    print_costs(
        "HTTP, the server's process",
        &server_costs,
        work.total(),
        wall,
    );
    print_costs(
        "HTTP, the clients' process",
        &client_costs,
        work.total(),
        wall,
    );
}

/// The child: connects, warms up, says `ready`, runs the timed round on `go`, says
/// `done <wall nanoseconds>`, and ends when its input closes.
fn client_child(addr: SocketAddr, work: Workload) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let mut clients = connect_all(&runtime, addr, STREAM, work.clients as usize);
    let body = length_prefixed(&events(0, work.batch as usize));
    run_clients(&runtime, &mut clients, work.requests / 4 + 1, work, &body);
    let mut out = std::io::stdout();
    writeln!(out, "ready")
        .and_then(|()| out.flush())
        .expect("say ready");
    let mut line = String::new();
    let stdin = std::io::stdin();
    stdin.lock().read_line(&mut line).expect("wait for go");
    let started = Instant::now();
    run_clients(&runtime, &mut clients, work.requests, work, &body);
    let wall = started.elapsed();
    writeln!(out, "done {}", wall.as_nanos())
        .and_then(|()| out.flush())
        .expect("say done");
    let _ = stdin.lock().read_line(&mut line);
}

fn run_clients(
    runtime: &Runtime,
    clients: &mut Vec<HttpStream>,
    requests: u64,
    work: Workload,
    body: &Bytes,
) {
    if work.batch == 1 {
        single_appends(runtime, clients, requests);
        return;
    }
    let taken = std::mem::take(clients);
    *clients = runtime.block_on(async {
        let tasks: Vec<_> = taken
            .into_iter()
            .map(|mut client| {
                let body = body.clone();
                tokio::spawn(async move {
                    for _ in 0..requests {
                        client.append_batch(body.clone()).await;
                    }
                    client
                })
            })
            .collect();
        let mut back = Vec::with_capacity(tasks.len());
        for task in tasks {
            back.push(task.await.expect("a client task"));
        }
        back
    });
}

/// What a process spent over a phase.
#[derive(Debug, Default)]
struct Costs {
    /// User and system CPU from `/proc/<pid>/stat`, in seconds.
    user: f64,
    system: f64,
    /// From `perf stat`, when it ran.
    syscalls: Option<f64>,
    context_switches: Option<f64>,
    task_clock_ms: Option<f64>,
}

/// `perf stat` attached to a process, and its CPU times at the start.
struct Probe {
    pid: u32,
    start: (f64, f64),
    perf: Option<(Child, tempfile::NamedTempFile)>,
}

impl Probe {
    fn start(pid: u32) -> Self {
        let output = tempfile::NamedTempFile::new().expect("a temp file");
        let perf = Command::new("perf")
            .args(["stat", "-x", ",", "-e"])
            .arg("task-clock,context-switches,raw_syscalls:sys_enter")
            .args(["-p", &pid.to_string(), "-o"])
            .arg(output.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()
            .map(|child| (child, output));
        // perf needs a moment to attach to every thread.
        std::thread::sleep(Duration::from_millis(300));
        Self {
            pid,
            start: cpu_seconds(&pid.to_string()).expect("/proc/<pid>/stat"),
            perf,
        }
    }

    fn stop(self) -> Costs {
        let end = cpu_seconds(&self.pid.to_string()).expect("/proc/<pid>/stat");
        let mut costs = Costs {
            user: end.0 - self.start.0,
            system: end.1 - self.start.1,
            ..Costs::default()
        };
        if let Some((mut child, output)) = self.perf {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let text = std::fs::read_to_string(output.path()).unwrap_or_default();
            for line in text.lines() {
                let fields: Vec<&str> = line.split(',').collect();
                let (Some(value), Some(name)) = (fields.first(), fields.get(2)) else {
                    continue;
                };
                let Ok(value) = value.parse::<f64>() else {
                    continue;
                };
                match *name {
                    "task-clock" => costs.task_clock_ms = Some(value),
                    "context-switches" => costs.context_switches = Some(value),
                    "raw_syscalls:sys_enter" => costs.syscalls = Some(value),
                    _ => {}
                }
            }
        }
        costs
    }
}

fn print_costs(side: &str, costs: &Costs, requests: u64, wall: Duration) {
    let per = |total: f64| total / requests as f64;
    let mut line = format!(
        "{side}: per request CPU {:.1} us (user {:.1}, system {:.1})",
        per(costs.user + costs.system) * 1e6,
        per(costs.user) * 1e6,
        per(costs.system) * 1e6
    );
    if let Some(ms) = costs.task_clock_ms {
        line += &format!(", perf task-clock {:.1} us", per(ms) * 1e3);
    }
    if let Some(calls) = costs.syscalls {
        line += &format!(", syscalls {:.1}", per(calls));
    }
    if let Some(switches) = costs.context_switches {
        line += &format!(", context switches {:.2}", per(switches));
    }
    line += &format!(
        "; wall {:.2?} for {requests} requests ({:.0}/s, information only)",
        wall,
        requests as f64 / wall.as_secs_f64()
    );
    println!("{line}");
}
