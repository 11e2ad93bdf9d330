//! A partitioned old leader cannot acknowledge (issue 20), on real processes: the leader of
//! three `kimberlite serve` nodes is cut from the other two by the TCP proxies between them
//! while a client talks to it directly. Its appends and its linearizable reads are not
//! answered; the other two elect a leader that acknowledges; once the cut is mended the old
//! leader follows the new one, and every node holds the majority's history, without the
//! write the old leader could not commit.

mod processes;

use std::time::Duration;

use processes::http::Http;
use processes::Cluster;
use serde_json::json;

const STREAM: &str = "partition";

/// Appends `text` through node `id`'s own address; panics unless acknowledged.
fn append_acknowledged(cluster: &Cluster, id: u64, text: &str) {
    let url = format!("{}/v1/streams/{STREAM}/events", cluster.direct_url(id));
    let answer = cluster
        .http
        .post(&url, &json!([text]), None)
        .unwrap_or_else(|error| panic!("append {text} on node {id}: {error}"));
    assert_eq!(
        answer.status, 200,
        "append {text} on node {id}: {}",
        answer.body
    );
}

#[test]
fn a_partitioned_old_leader_acknowledges_nothing_and_rejoins_the_majority() {
    let cluster = Cluster::start(3);
    let old = cluster.wait_leader(&[]);
    cluster.create_stream(old, STREAM);
    for n in 0..3 {
        append_acknowledged(&cluster, old, &format!("before {n}"));
    }
    cluster.wait_converged(STREAM);

    cluster.proxies().isolate(old, &cluster.ids());
    // The client reaches the old leader directly: only the nodes are cut from each other.
    let patient = Http::new(&cluster.token, Duration::from_secs(3));
    let direct = cluster.direct_url(old);
    let cut_off = patient.post(
        &format!("{direct}/v1/streams/{STREAM}/events"),
        &json!(["written to the cut-off leader"]),
        Some("0123456789abcdef0123456789abcdef-1"),
    );
    assert!(
        !matches!(&cut_off, Ok(answer) if answer.status == 200),
        "the cut-off leader acknowledged an append: {cut_off:?}"
    );
    let read = patient.get(&format!("{direct}/v1/streams/{STREAM}/events?from=0"));
    assert!(
        !matches!(&read, Ok(answer) if answer.status == 200),
        "the cut-off leader answered a linearizable read: {read:?}"
    );

    let new = cluster.wait_leader(&[old]);
    assert_ne!(new, old);
    for n in 0..3 {
        append_acknowledged(&cluster, new, &format!("after {n}"));
    }

    cluster.proxies().heal();
    assert_eq!(
        cluster.wait_leader(&[]),
        new,
        "the old leader follows the new one"
    );
    cluster.wait_converged(STREAM);
    let events = cluster.same_events_everywhere(STREAM);
    let texts: Vec<&str> = events.iter().map(|(_, text)| text.as_str()).collect();
    assert_eq!(
        texts,
        ["before 0", "before 1", "before 2", "after 0", "after 1", "after 2"],
        "the majority's history, without the cut-off leader's write"
    );
    let mut cluster = cluster;
    cluster.stop_and_compare_stores(&cluster.ids());
}

/// The proxies themselves: a connection is forwarded, told apart by the process that opened
/// it, and closed (then refused) once its pair is cut, and forwarded again once mended.
#[test]
fn the_proxies_cut_the_pairs_they_are_told_to() {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    use processes::proxy::Proxies;

    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in echo.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buffer = [0; 64];
                while let Ok(read @ 1..) = stream.read(&mut buffer) {
                    if stream.write_all(&buffer[..read]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    // This process stands for node 7; the proxy is node 1's.
    let proxies = Proxies::new(Arc::new(Mutex::new(vec![(7, std::process::id())])));
    let proxy = proxies.start(1, target);
    let echoes = |stream: &mut TcpStream| {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut buffer = [0; 5];
        stream.write_all(b"hello").is_ok() && stream.read_exact(&mut buffer).is_ok()
    };

    let mut open = TcpStream::connect(proxy).unwrap();
    assert!(echoes(&mut open));
    proxies.cut(1, 7);
    assert!(
        !echoes(&mut open),
        "an open connection of a cut pair is closed"
    );
    assert!(
        !echoes(&mut TcpStream::connect(proxy).unwrap()),
        "a new one is refused"
    );
    proxies.cut(2, 3);
    proxies.heal();
    assert!(echoes(&mut TcpStream::connect(proxy).unwrap()), "mended");
}
