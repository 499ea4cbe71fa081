//! The one owner of the DuckDB file.
//!
//! Request handlers hand their rows to [`Store::commit`], which puts them on a
//! bounded queue and waits. One writer thread owns the write connection: it takes
//! whatever batches are waiting (up to a size limit, lingering a few ms for more),
//! appends them in one transaction, commits, and only then answers every waiting
//! request. A full queue answers [`StoreError::Overloaded`] at once (the HTTP layer
//! turns it into 503 + Retry-After): nothing is acknowledged that is not on disk,
//! and nothing is dropped silently. On shutdown the queue is closed, the writer
//! drains what was accepted, commits, checkpoints and exits.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use duckdb::{
    Connection,
    types::{TimeUnit, Value},
};
use tokio::sync::{mpsc, oneshot};

/// One row of the events table, in column order of [`analyzer::schema::CREATE_EVENTS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub site: String,
    pub event_id: String,
    pub kind: String,
    pub ts_ms: i64,
    pub received_ms: i64,
    pub seq: i32,
    pub session_id: String,
    pub visitor_id: String,
    pub path: String,
    pub url: Option<String>,
    pub referrer: Option<String>,
    pub title: Option<String>,
    pub nav: Option<String>,
    pub screen: Option<String>,
    pub selector: Option<String>,
    pub text: Option<String>,
    pub href: Option<String>,
    pub x: Option<i32>,
    pub y: Option<i32>,
    pub form: Option<String>,
    pub field: Option<String>,
    pub field_type: Option<String>,
    pub duration_ms: Option<i64>,
    pub empty: Option<bool>,
    pub name: Option<String>,
    pub props: Option<String>,
    pub user_id: Option<String>,
    pub browser: String,
    pub os: String,
    pub device: String,
    pub status: Option<i32>,
    pub ad: Option<String>,
    pub message: Option<String>,
    pub source: Option<String>,
    pub line: Option<i32>,
}

fn text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

impl Row {
    fn into_values(self) -> [Value; analyzer::schema::EVENT_COLUMNS] {
        [
            Value::Text(self.site),
            Value::Text(self.event_id),
            Value::Text(self.kind),
            Value::Timestamp(TimeUnit::Millisecond, self.ts_ms),
            Value::Timestamp(TimeUnit::Millisecond, self.received_ms),
            Value::Int(self.seq),
            Value::Text(self.session_id),
            Value::Text(self.visitor_id),
            Value::Text(self.path),
            text(self.url),
            text(self.referrer),
            text(self.title),
            text(self.nav),
            text(self.screen),
            text(self.selector),
            text(self.text),
            text(self.href),
            self.x.map_or(Value::Null, Value::Int),
            self.y.map_or(Value::Null, Value::Int),
            text(self.form),
            text(self.field),
            text(self.field_type),
            self.duration_ms.map_or(Value::Null, Value::BigInt),
            self.empty.map_or(Value::Null, Value::Boolean),
            text(self.name),
            text(self.props),
            text(self.user_id),
            Value::Text(self.browser),
            Value::Text(self.os),
            Value::Text(self.device),
            self.status.map_or(Value::Null, Value::Int),
            text(self.ad),
            text(self.message),
            text(self.source),
            self.line.map_or(Value::Null, Value::Int),
        ]
    }
}

/// Why rows were not committed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    /// The queue is full.
    #[error("write queue is full")]
    Overloaded,
    /// The store is shutting down and takes no more rows.
    #[error("store is shutting down")]
    Closed,
    /// DuckDB refused the commit; nothing of the group was stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The database could not be opened.
    #[error("cannot open the DuckDB file {path}: {detail}")]
    Open { path: PathBuf, detail: String },
}

/// Counters for `/healthz` and logs.
#[derive(Debug, Default)]
pub struct Counters {
    pub batches_committed: AtomicU64,
    pub events_committed: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    pub overloaded: AtomicU64,
    pub rejected: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Counters {
    /// Count a rejected batch by its error code.
    pub fn reject(&self, code: &'static str) {
        let mut m = self
            .rejected
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *m.entry(code).or_default() += 1;
    }
}

type Reply = oneshot::Sender<Result<usize, StoreError>>;

struct Job {
    rows: Vec<Row>,
    reply: Reply,
}

/// Tuning for the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    pub queue_capacity: usize,
    pub commit_max_events: usize,
    pub linger: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: 1024,
            commit_max_events: 10_000,
            linger: Duration::from_millis(2),
        }
    }
}

/// Handle to the writer: cheap to clone, shared by all handlers.
#[derive(Clone)]
pub struct Store {
    tx: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    counters: Arc<Counters>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    queue_capacity: usize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The running writer thread; join it after [`Store::close`] to wait for the drain.
#[derive(Debug)]
pub struct Writer(JoinHandle<()>);

impl Writer {
    /// Wait until every accepted row is committed and the file is checkpointed.
    pub fn join(self) {
        let _ = self.0.join();
    }
}

impl Store {
    /// Open (or create) the DuckDB file, create the schema, start the writer.
    pub fn open(path: &Path, opts: WriterOptions) -> Result<(Store, Writer), StoreError> {
        let open_err = |e: duckdb::Error| StoreError::Open {
            path: path.to_path_buf(),
            detail: e.to_string(),
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        }
        let conn = Connection::open(path).map_err(open_err)?;
        conn.execute_batch(analyzer::schema::CREATE_EVENTS)
            .map_err(open_err)?;
        conn.execute_batch(&analyzer::schema::migrate_events())
            .map_err(open_err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS salts (day BIGINT PRIMARY KEY, salt BLOB NOT NULL);",
        )
        .map_err(open_err)?;
        let reader = conn.try_clone().map_err(open_err)?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let handle = std::thread::Builder::new()
            .name("duckdb-writer".into())
            .spawn(move || writer_loop(&conn, rx, &c, opts))
            .map_err(|e| StoreError::Open {
                path: path.to_path_buf(),
                detail: e.to_string(),
            })?;
        let store = Store {
            tx: Arc::new(Mutex::new(Some(tx))),
            counters,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_path_buf(),
            queue_capacity: opts.queue_capacity,
        };
        Ok((store, Writer(handle)))
    }

    /// Queue rows and wait until they are committed. Returns the number committed.
    pub async fn commit(&self, rows: Vec<Row>) -> Result<usize, StoreError> {
        let tx = {
            let guard = self
                .tx
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.clone().ok_or(StoreError::Closed)?
        };
        let (reply, wait) = oneshot::channel();
        match tx.try_send(Job { rows, reply }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
                return Err(StoreError::Overloaded);
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(StoreError::Closed),
        }
        drop(tx);
        wait.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Stop taking rows; the writer drains what was queued, commits and exits.
    pub fn close(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }

    /// Batches waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard
            .as_ref()
            .map_or(0, |tx| self.queue_capacity - tx.capacity())
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The DuckDB file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Run a read-only job on the collector's reading connection (blocking: call from
    /// `spawn_blocking`). Reads see every committed row.
    pub fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn)
    }

    /// The salt stored for `day`, or store `fresh` for it (and forget salts older than
    /// yesterday, so old visitor ids can never be recomputed).
    pub fn salt_for_day(&self, day: i64, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let err = |e: duckdb::Error| StoreError::Commit(e.to_string());
        self.with_reader(|conn| {
            conn.execute("DELETE FROM salts WHERE day < ?", [day - 1])
                .map_err(err)?;
            conn.execute(
                "INSERT INTO salts VALUES (?, ?) ON CONFLICT DO NOTHING",
                duckdb::params![day, fresh.to_vec()],
            )
            .map_err(err)?;
            let salt: Vec<u8> = conn
                .query_row("SELECT salt FROM salts WHERE day = ?", [day], |r| r.get(0))
                .map_err(err)?;
            salt.try_into()
                .map_err(|_| StoreError::Commit("stored salt has the wrong length".into()))
        })
    }
}

fn writer_loop(
    conn: &Connection,
    mut rx: mpsc::Receiver<Job>,
    counters: &Counters,
    opts: WriterOptions,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        let mut events = jobs[0].rows.len();
        let deadline = Instant::now() + opts.linger;
        while events < opts.commit_max_events {
            match rx.try_recv() {
                Ok(job) => {
                    events += job.rows.len();
                    jobs.push(job);
                }
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => break,
            }
        }
        let counts: Vec<usize> = jobs.iter().map(|j| j.rows.len()).collect();
        let result = commit_group(conn, &mut jobs);
        counters.commits.fetch_add(1, Ordering::Relaxed);
        match &result {
            Ok(()) => {
                counters
                    .batches_committed
                    .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                counters
                    .events_committed
                    .fetch_add(events as u64, Ordering::Relaxed);
                tracing::debug!(batches = jobs.len(), events, "committed");
            }
            Err(e) => {
                counters.commit_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, batches = jobs.len(), events, "commit failed");
            }
        }
        for (job, n) in jobs.into_iter().zip(counts) {
            let _ = job.reply.send(result.clone().map(|()| n));
        }
    }
    if let Err(e) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed");
    }
    tracing::info!("writer drained and stopped");
}

fn commit_group(conn: &Connection, jobs: &mut [Job]) -> Result<(), StoreError> {
    let err = |e: duckdb::Error| StoreError::Commit(e.to_string());
    conn.execute_batch("BEGIN TRANSACTION").map_err(err)?;
    let appended = (|| {
        let mut app = conn.appender("events")?;
        for job in jobs.iter_mut() {
            for row in std::mem::take(&mut job.rows) {
                app.append_row(duckdb::appender_params_from_iter(row.into_values()))?;
            }
        }
        app.flush()
    })();
    match appended {
        Ok(()) => conn.execute_batch("COMMIT").map_err(err),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(err(e))
        }
    }
}
