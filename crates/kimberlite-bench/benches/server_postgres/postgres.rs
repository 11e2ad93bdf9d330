//! The PostgreSQL side: a table `kb_events(stream, offset, payload, hash)`, each event's hash
//! computed by the client exactly as Kimberlite chains it (`ChainHash::compute`: offset,
//! kind, payload, then the previous event's hash), written over PostgreSQL's wire protocol
//! with `synchronous_commit = on`.
//!
//! `tokio-postgres`: its clients are tasks on the runtime the HTTP clients run on, one
//! connection each, so both sides get the same client model; the blocking `postgres` crate
//! wraps the same client in a runtime per connection (64 more runtimes for 64 clients).

use bytes::Bytes;
use kimberlite_bench::concurrent::SingleAppender;
use kimberlite_crypto::ChainHash;
use kimberlite_types::{Offset, RecordKind};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};

/// Drops and creates the tables; returns the server's settings that decide durability, as
/// printed, after checking that commits wait for the WAL flush.
pub async fn reset(connection: &str) -> String {
    let client = connect(connection).await;
    client
        .batch_execute(
            "DROP TABLE IF EXISTS kb_events, kb_heads;
             CREATE TABLE kb_events (stream bigint NOT NULL, \"offset\" bigint NOT NULL,
                 payload bytea NOT NULL, hash bytea NOT NULL, PRIMARY KEY (stream, \"offset\"));
             CREATE TABLE kb_heads (stream bigint PRIMARY KEY, next_offset bigint NOT NULL,
                 hash bytea);",
        )
        .await
        .expect("create the PostgreSQL tables");
    let mut settings = Vec::new();
    for name in [
        "server_version",
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
    ] {
        let row = client
            .query_one(&format!("SHOW {name}"), &[])
            .await
            .expect("a PostgreSQL setting");
        settings.push(format!("{name}={}", row.get::<_, String>(0)));
    }
    for required in ["synchronous_commit=on", "fsync=on"] {
        assert!(
            settings.iter().any(|setting| setting == required),
            "PostgreSQL must run with {required}: {settings:?}"
        );
    }
    settings.join(", ")
}

/// A connection, its connection task spawned on the current runtime.
async fn connect(connection: &str) -> Client {
    let (client, driver) = tokio_postgres::connect(connection, NoTls)
        .await
        .expect("connect to PostgreSQL (KIMBERLITE_BENCH_POSTGRES)");
    tokio::spawn(async move {
        let _ = driver.await;
    });
    client
        .batch_execute("SET synchronous_commit = on")
        .await
        .expect("synchronous_commit");
    client
}

/// The chain hash of `payload` at `offset` after `prev`, as Kimberlite computes it.
fn chain(prev: Option<&ChainHash>, offset: u64, payload: &[u8]) -> ChainHash {
    ChainHash::compute(prev, Offset::new(offset), RecordKind::Data, payload)
}

/// A client that is its stream's only writer, so it knows the stream's head without asking:
/// a batch is one statement (`unnest` of three arrays), a single event one `INSERT`, each its
/// own transaction.
pub struct OwnStream {
    client: Client,
    stream: i64,
    next: u64,
    head: Option<ChainHash>,
    insert_batch: Statement,
    insert_one: Statement,
}

impl OwnStream {
    /// Connects as the writer of `stream` (a stream no one has written yet).
    pub async fn connect(connection: &str, stream: i64) -> Self {
        let client = connect(connection).await;
        let insert_batch = client
            .prepare(
                "INSERT INTO kb_events (stream, \"offset\", payload, hash)
                 SELECT $1::int8, o, p, h FROM unnest($2::int8[], $3::bytea[], $4::bytea[])
                     AS t(o, p, h)",
            )
            .await
            .expect("prepare the batch insert");
        let insert_one = client
            .prepare(
                "INSERT INTO kb_events (stream, \"offset\", payload, hash)
                 VALUES ($1::int8, $2::int8, $3::bytea, $4::bytea)",
            )
            .await
            .expect("prepare the insert");
        Self {
            client,
            stream,
            next: 0,
            head: None,
            insert_batch,
            insert_one,
        }
    }

    /// Appends `batch` in one transaction; returns once it is committed.
    pub async fn append_batch(&mut self, batch: &[Bytes]) {
        let mut offsets = Vec::with_capacity(batch.len());
        let mut chained = Vec::with_capacity(batch.len());
        for payload in batch {
            let hash = chain(self.head.as_ref(), self.next, payload);
            offsets.push(self.next as i64);
            chained.push(hash);
            self.head = Some(hash);
            self.next += 1;
        }
        let payloads: Vec<&[u8]> = batch.iter().map(|payload| &payload[..]).collect();
        let hashes: Vec<&[u8]> = chained.iter().map(|hash| &hash.as_bytes()[..]).collect();
        self.client
            .execute(
                &self.insert_batch,
                &[&self.stream, &offsets, &payloads, &hashes],
            )
            .await
            .expect("insert a batch");
    }
}

impl SingleAppender for OwnStream {
    async fn append_one(&mut self, event: Bytes) {
        let hash = chain(self.head.as_ref(), self.next, &event);
        let offset = self.next as i64;
        self.client
            .execute(
                &self.insert_one,
                &[&self.stream, &offset, &&event[..], &&hash.as_bytes()[..]],
            )
            .await
            .expect("insert an event");
        self.head = Some(hash);
        self.next += 1;
    }
}

/// A client of a stream that many clients write, as Kimberlite's one stream: the client must
/// read the stream's head to hash its event, so each event is a transaction that locks the
/// head row (`SELECT .. FOR UPDATE`), inserts the event and moves the head, in two round
/// trips (`BEGIN` pipelined with the lock, the write with `COMMIT`).
pub struct SharedStream {
    client: Client,
    stream: i64,
    lock_head: Statement,
    write: Statement,
}

impl SharedStream {
    /// Creates `stream`'s head row, empty.
    pub async fn create(connection: &str, stream: i64) {
        connect(connection)
            .await
            .execute(
                "INSERT INTO kb_heads (stream, next_offset, hash) VALUES ($1::int8, 0, NULL)",
                &[&stream],
            )
            .await
            .expect("create the shared stream's head");
    }

    /// Connects as one of the writers of `stream` ([`SharedStream::create`]).
    pub async fn connect(connection: &str, stream: i64) -> Self {
        let client = connect(connection).await;
        let lock_head = client
            .prepare("SELECT next_offset, hash FROM kb_heads WHERE stream = $1::int8 FOR UPDATE")
            .await
            .expect("prepare the head lock");
        let write = client
            .prepare(
                "WITH appended AS (INSERT INTO kb_events (stream, \"offset\", payload, hash)
                     VALUES ($1::int8, $2::int8, $3::bytea, $4::bytea))
                 UPDATE kb_heads SET next_offset = $2::int8 + 1, hash = $4::bytea
                     WHERE stream = $1::int8",
            )
            .await
            .expect("prepare the write");
        Self {
            client,
            stream,
            lock_head,
            write,
        }
    }
}

impl SingleAppender for SharedStream {
    async fn append_one(&mut self, event: Bytes) {
        let lock_params: [&(dyn ToSql + Sync); 1] = [&self.stream];
        let (_, head) = tokio::try_join!(
            self.client.batch_execute("BEGIN"),
            self.client.query_one(&self.lock_head, &lock_params),
        )
        .expect("lock the stream's head");
        let next: i64 = head.get(0);
        let prev: Option<Vec<u8>> = head.get(1);
        let prev = prev
            .map(|bytes| ChainHash::from_bytes(bytes.try_into().expect("a 32-byte stored hash")));
        let hash = chain(prev.as_ref(), next as u64, &event);
        let (payload, hash) = (&event[..], &hash.as_bytes()[..]);
        let write_params: [&(dyn ToSql + Sync); 4] = [&self.stream, &next, &payload, &hash];
        tokio::try_join!(
            self.client.execute(&self.write, &write_params),
            self.client.batch_execute("COMMIT"),
        )
        .expect("write the event and commit");
    }
}
