//! The one owner of the DuckDB file.
//!
//! Request handlers hand their rows to [`Store::commit`], which admits them to a
//! bounded queue and waits. One writer thread owns the write connection: it takes
//! whatever batches are waiting (up to a size limit, lingering a few ms for more),
//! appends them in one transaction, commits, and only then answers every waiting
//! request. Every other write (the day's salt in its key file, saved funnels, accounts, sites,
//! retention and erasure) travels the same queue as a [`Store::write`] job, so no
//! reader can ever delay a commit and there is one writer, as DuckDB wants.
//!
//! The queue is bounded twice: in batches (`queue_capacity`) and in bytes
//! (`queue_bytes`), and it is shared fairly between sites: no site may hold more than
//! half of it, and its last quarter is kept for sites below their fair share, so one
//! flooding site cannot push the others into 503. A batch that does not fit answers
//! [`StoreError::Overloaded`] at once (the HTTP layer turns it into 503 +
//! Retry-After): nothing is acknowledged that is not on disk, and nothing is dropped
//! silently. On shutdown the queue is closed, the writer drains what was accepted,
//! commits, checkpoints and exits.
//!
//! Audits read on their own connections ([`Store::reader`]), one per audit, each
//! interruptible, never on the writer's.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use duckdb::{
    Connection,
    types::{TimeUnit, Value},
};
use tokio::sync::{mpsc, oneshot};

/// One row of the events table, in the column order of [`store::COLUMNS`].
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
    /// [`store::session_key`] of (site, `session_id`).
    pub session_key: u64,
    pub ancestry: Option<String>,
}

fn text(v: Option<String>) -> Value {
    v.map_or(Value::Null, Value::Text)
}

fn opt_len(v: Option<&String>) -> usize {
    v.map_or(0, String::len)
}

impl Row {
    fn into_values(self) -> [Value; store::EVENT_COLUMNS] {
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
            Value::UBigInt(self.session_key),
            text(self.ancestry),
        ]
    }

    /// What the row holds in memory, roughly: what the byte bound of the queue counts.
    pub fn heap_bytes(&self) -> usize {
        const FIXED: usize = 160;
        FIXED
            + self.site.len()
            + self.event_id.len()
            + self.kind.len()
            + self.session_id.len()
            + self.visitor_id.len()
            + self.path.len()
            + [
                &self.url,
                &self.referrer,
                &self.title,
                &self.nav,
                &self.screen,
                &self.selector,
                &self.text,
                &self.href,
                &self.form,
                &self.field,
                &self.field_type,
                &self.name,
                &self.props,
                &self.user_id,
                &self.ad,
                &self.message,
                &self.source,
                &self.ancestry,
            ]
            .into_iter()
            .map(|v| opt_len(v.as_ref()))
            .sum::<usize>()
            + self.browser.len()
            + self.os.len()
            + self.device.len()
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
    #[error("{0}")]
    Open(String),
}

/// Upper bounds (ms) of the commit latency histogram buckets (`/metrics`).
pub const COMMIT_BUCKETS_MS: [u64; 10] = [1, 2, 5, 10, 25, 50, 100, 250, 1000, 5000];

/// Counters for `/healthz`, `/metrics` and logs.
#[derive(Debug, Default)]
pub struct Counters {
    pub batches_committed: AtomicU64,
    pub events_committed: AtomicU64,
    pub commits: AtomicU64,
    pub commit_failures: AtomicU64,
    pub overloaded: AtomicU64,
    /// Whether the last commit failed (cleared by the next good one).
    pub failing: AtomicBool,
    /// When the last commit failed, ms since the epoch (0: never).
    pub last_failure_ms: AtomicI64,
    /// Commit latency histogram: counts per [`COMMIT_BUCKETS_MS`] bucket, plus +Inf.
    pub commit_latency: [AtomicU64; COMMIT_BUCKETS_MS.len() + 1],
    /// Sum of commit latencies, µs.
    pub commit_latency_sum_us: AtomicU64,
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

    fn observe_commit(&self, took: Duration) {
        let ms = took.as_millis() as u64;
        let bucket = COMMIT_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(COMMIT_BUCKETS_MS.len());
        self.commit_latency[bucket].fetch_add(1, Ordering::Relaxed);
        self.commit_latency_sum_us
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }
}

type Reply = oneshot::Sender<Result<usize, StoreError>>;

enum Job {
    Rows {
        rows: Vec<Row>,
        permit: Permit,
        reply: Reply,
    },
    Exec(Box<dyn FnOnce(&Connection) + Send>),
}

/// Tuning for the writer.
#[derive(Debug, Clone, Copy)]
pub struct WriterOptions {
    /// Batches that may wait for the writer.
    pub queue_capacity: usize,
    /// Bytes of rows that may wait for the writer.
    pub queue_bytes: usize,
    pub commit_max_events: usize,
    pub linger: Duration,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: 1024,
            queue_bytes: 64 << 20,
            commit_max_events: 10_000,
            linger: Duration::from_millis(2),
        }
    }
}

/// The byte bound of the queue and its fair share between sites.
#[derive(Debug)]
struct Admission {
    max_bytes: usize,
    state: Mutex<AdmissionState>,
}

#[derive(Debug, Default)]
struct AdmissionState {
    used: usize,
    per_site: HashMap<String, usize>,
}

impl Admission {
    /// Admits `bytes` for `site`, or says no. A site holds at most half the queue;
    /// above three quarters full only sites under their fair share (the queue divided
    /// by the sites waiting) are admitted.
    fn admit(self: &Arc<Self>, site: &str, bytes: usize) -> Option<Permit> {
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mine = s.per_site.get(site).copied().unwrap_or(0);
        let sites = s.per_site.len() + usize::from(mine == 0);
        let fair = self.max_bytes / sites.max(1);
        let fits = s.used + bytes <= self.max_bytes
            && mine + bytes <= self.max_bytes / 2
            && (s.used + bytes <= self.max_bytes / 4 * 3 || mine + bytes <= fair);
        if !fits {
            return None;
        }
        s.used += bytes;
        *s.per_site.entry(site.to_owned()).or_default() += bytes;
        Some(Permit {
            admission: self.clone(),
            site: site.to_owned(),
            bytes,
        })
    }

    fn used(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .used
    }
}

/// Bytes held in the queue for one batch, given back when it is committed or refused.
#[derive(Debug)]
struct Permit {
    admission: Arc<Admission>,
    site: String,
    bytes: usize,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut s = self
            .admission
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.used = s.used.saturating_sub(self.bytes);
        if let Some(n) = s.per_site.get_mut(&self.site) {
            *n = n.saturating_sub(self.bytes);
            if *n == 0 {
                s.per_site.remove(&self.site);
            }
        }
    }
}

/// Handle to the writer: cheap to clone, shared by all handlers.
#[derive(Clone)]
pub struct Store {
    tx: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    counters: Arc<Counters>,
    /// The connection readers are cloned from (never used to read or write itself).
    base: Arc<Mutex<Connection>>,
    admission: Arc<Admission>,
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

/// Older collectors kept the daily salts of the visitor hash in the database, where
/// a copy of the file would give them away with the visitor ids; they now live in
/// the key file ([`crate::keyfile`]). The table goes, and with it the salts: the day's
/// visitor ids change once, at the upgrade.
const DROP_SALTS: &str = "DROP TABLE IF EXISTS salts;";

/// Opens (or creates) the DuckDB file and brings every table up to date, with an
/// error that says what is wrong and what to do when the file or its WAL is damaged.
pub fn open_file(path: &Path) -> Result<Connection, StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Open(format!(
                "cannot create the folder {} for the database: {e}",
                dir.display()
            ))
        })?;
    }
    let conn = Connection::open(path).map_err(|e| open_error(path, &e.to_string()))?;
    store::limit_memory(&conn).map_err(|e| open_error(path, &e.to_string()))?;
    let old = store::schema::is_old(&conn).map_err(|e| open_error(path, &e.to_string()))?;
    store::create_or_migrate(&conn).map_err(|e| open_error(path, &e.to_string()))?;
    if old {
        // A file of an older collector: its events move into the sorted layout once,
        // before anything is served.
        let started = Instant::now();
        let done = store::compact(&conn, store::Select::All)
            .map_err(|e| StoreError::Open(format!("cannot migrate the events: {e}")))?;
        tracing::info!(
            rows = done.rows,
            sessions = done.sessions,
            took_ms = started.elapsed().as_millis() as u64,
            "events of an older collector moved into the sorted layout"
        );
    }
    let had_salts: bool = conn
        .query_row(
            "SELECT count(*) > 0 FROM duckdb_tables() WHERE table_name = 'salts'",
            [],
            |r| r.get(0),
        )
        .map_err(|e| open_error(path, &e.to_string()))?;
    if had_salts {
        conn.execute_batch(DROP_SALTS)
            .and_then(|()| conn.execute_batch("CHECKPOINT"))
            .map_err(|e| open_error(path, &e.to_string()))?;
        tracing::info!(
            "visitor salts dropped from the database; they are kept in its key file now \
             (today's visitor ids change once)"
        );
    }
    conn.execute_batch(crate::accounts::CREATE_TABLES)
        .map_err(|e| open_error(path, &e.to_string()))?;
    // The key of the keyed hash of identify ids, made once, before any reader.
    crate::accounts::secret(&conn, "uid_key").map_err(|e| StoreError::Open(e.to_string()))?;
    Ok(conn)
}

/// Names the failure to open `path`: held by another process, a damaged WAL, a damaged
/// or foreign file, or something else, each with what to do.
fn open_error(path: &Path, detail: &str) -> StoreError {
    let wal = PathBuf::from(format!("{}.wal", path.display()));
    let lower = detail.to_ascii_lowercase();
    let one_line = detail.split_whitespace().collect::<Vec<_>>().join(" ");
    let msg = if lower.contains("could not set lock") || lower.contains("conflicting lock") {
        format!(
            "{} is held by another process (another collector, or an analyzer --db run); \
             stop it first ({one_line})",
            path.display()
        )
    } else if wal.exists() && (lower.contains("wal") || lower.contains("replay")) {
        format!(
            "the write-ahead log {} is damaged, so {} cannot be opened ({one_line}). \
             Keep a copy of both files; then either restore them from a backup, or move the \
             .wal file aside to open the database as of its last checkpoint (the events \
             committed after it are in that log and would be missing)",
            wal.display(),
            path.display()
        )
    } else if lower.contains("not a valid duckdb")
        || lower.contains("corrupt")
        || lower.contains("checksum")
        || lower.contains("invalid")
        || lower.contains("magic")
    {
        format!(
            "{} is damaged or is not a clicktrail database ({one_line}). Keep a copy; \
             restore it from a backup, or start with another --db",
            path.display()
        )
    } else {
        format!("cannot open the database {}: {one_line}", path.display())
    };
    StoreError::Open(msg)
}

impl Store {
    /// Open (or create) the DuckDB file, create the schema, start the writer.
    pub fn open(path: &Path, opts: WriterOptions) -> Result<(Store, Writer), StoreError> {
        let conn = open_file(path)?;
        let base = conn
            .try_clone()
            .map_err(|e| open_error(path, &e.to_string()))?;
        let (tx, rx) = mpsc::channel(opts.queue_capacity.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let handle = std::thread::Builder::new()
            .name("duckdb-writer".into())
            .spawn(move || writer_loop(&conn, rx, &c, opts))
            .map_err(|e| StoreError::Open(format!("cannot start the writer thread: {e}")))?;
        let store = Store {
            tx: Arc::new(Mutex::new(Some(tx))),
            counters,
            base: Arc::new(Mutex::new(base)),
            admission: Arc::new(Admission {
                max_bytes: opts.queue_bytes.max(1),
                state: Mutex::default(),
            }),
            path: path.to_path_buf(),
            queue_capacity: opts.queue_capacity,
        };
        Ok((store, Writer(handle)))
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let guard = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.clone().ok_or(StoreError::Closed)
    }

    /// Queue rows and wait until they are committed. Returns the number committed.
    pub async fn commit(&self, rows: Vec<Row>) -> Result<usize, StoreError> {
        let site = rows.first().map(|r| r.site.clone()).unwrap_or_default();
        let bytes = rows.iter().map(Row::heap_bytes).sum();
        let tx = self.sender()?;
        let Some(permit) = self.admission.admit(&site, bytes) else {
            self.counters.overloaded.fetch_add(1, Ordering::Relaxed);
            return Err(StoreError::Overloaded);
        };
        let (reply, wait) = oneshot::channel();
        match tx.try_send(Job::Rows {
            rows,
            permit,
            reply,
        }) {
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

    /// Runs a write on the writer thread, between two commits, and waits for its
    /// result. Waits up to 10 s for room in the queue.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> T + Send + 'static,
    ) -> Result<T, StoreError> {
        let tx = self.sender()?;
        let (reply, wait) = oneshot::channel();
        let job = Job::Exec(Box::new(move |conn| {
            let _ = reply.send(f(conn));
        }));
        match tokio::time::timeout(Duration::from_secs(10), tx.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(StoreError::Closed),
            Err(_) => return Err(StoreError::Overloaded),
        }
        drop(tx);
        wait.await.map_err(|_| StoreError::Closed)
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

    /// Bytes of rows waiting for the writer.
    pub fn queue_bytes(&self) -> usize {
        self.admission.used()
    }

    /// Counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The DuckDB file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection for reading: its own, so one audit never waits for another
    /// or for the writer; it sees every committed row.
    pub fn reader(&self) -> Result<Connection, StoreError> {
        self.base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .try_clone()
            .map_err(|e| StoreError::Commit(e.to_string()))
    }

    /// Run a read-only job on a fresh reading connection (blocking: call from
    /// `spawn_blocking`).
    pub fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        if let Ok(conn) = self.reader() {
            f(&conn)
        } else {
            let conn = self
                .base
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            f(&conn)
        }
    }

    /// The salt kept for `day` in the database's key file ([`crate::keyfile`]), or
    /// `fresh` kept for it (and salts older than yesterday deleted, so old visitor
    /// ids can never be recomputed). Never in the database. The writer does it, so
    /// one request at a time reads and writes the file.
    pub async fn salt_for_day(&self, day: i64, fresh: [u8; 32]) -> Result<[u8; 32], StoreError> {
        let file = crate::keyfile::path_for(self.path());
        self.write(move |_| {
            crate::keyfile::salt_for_day(&file, day, fresh).map_err(|e| {
                StoreError::Commit(format!("cannot keep the salt in {}: {e}", file.display()))
            })
        })
        .await?
    }
}

fn writer_loop(
    conn: &Connection,
    mut rx: mpsc::Receiver<Job>,
    counters: &Counters,
    opts: WriterOptions,
) {
    let mut pending: Option<Job> = None;
    loop {
        let first = match pending.take() {
            Some(job) => job,
            None => match rx.blocking_recv() {
                Some(job) => job,
                None => break,
            },
        };
        let mut jobs = match first {
            Job::Exec(f) => {
                // A write that panics loses its own answer, never the writer.
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn))).is_err() {
                    tracing::error!("a write job panicked");
                }
                continue;
            }
            rows @ Job::Rows { .. } => vec![rows],
        };
        let mut events = job_rows(&jobs[0]);
        let deadline = Instant::now() + opts.linger;
        while events < opts.commit_max_events {
            match rx.try_recv() {
                Ok(exec @ Job::Exec(_)) => {
                    // Runs after this group's commit, in order.
                    pending = Some(exec);
                    break;
                }
                Ok(job) => {
                    events += job_rows(&job);
                    jobs.push(job);
                }
                Err(mpsc::error::TryRecvError::Empty) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(_) => break,
            }
        }
        commit_jobs(conn, jobs, events, counters);
    }
    if let Err(e) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(error = %e, "checkpoint at shutdown failed");
    }
    tracing::info!("writer drained and stopped");
}

fn job_rows(job: &Job) -> usize {
    match job {
        Job::Rows { rows, .. } => rows.len(),
        Job::Exec(_) => 0,
    }
}

fn commit_jobs(conn: &Connection, jobs: Vec<Job>, events: usize, counters: &Counters) {
    let mut rows = Vec::with_capacity(events);
    let mut replies = Vec::with_capacity(jobs.len());
    for job in jobs {
        if let Job::Rows {
            rows: r,
            permit,
            reply,
        } = job
        {
            replies.push((reply, r.len(), permit));
            rows.extend(r);
        }
    }
    let started = Instant::now();
    let result = commit_group(conn, rows);
    counters.observe_commit(started.elapsed());
    counters.commits.fetch_add(1, Ordering::Relaxed);
    match &result {
        Ok(()) => {
            counters
                .batches_committed
                .fetch_add(replies.len() as u64, Ordering::Relaxed);
            counters
                .events_committed
                .fetch_add(events as u64, Ordering::Relaxed);
            counters.failing.store(false, Ordering::Relaxed);
            tracing::debug!(batches = replies.len(), events, "committed");
        }
        Err(e) => {
            counters.commit_failures.fetch_add(1, Ordering::Relaxed);
            counters.failing.store(true, Ordering::Relaxed);
            counters
                .last_failure_ms
                .store(crate::ingest::now_ms(), Ordering::Relaxed);
            tracing::error!(error = %e, batches = replies.len(), events, "commit failed");
        }
    }
    for (reply, n, permit) in replies {
        drop(permit);
        let _ = reply.send(result.clone().map(|()| n));
    }
}

fn commit_group(conn: &Connection, rows: Vec<Row>) -> Result<(), StoreError> {
    store::transaction(conn, || {
        let mut app = conn.appender("events_recent")?;
        for row in rows {
            app.append_row(duckdb::appender_params_from_iter(row.into_values()))?;
        }
        app.flush()
    })
    .map_err(|e| StoreError::Commit(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max: usize) -> Arc<Admission> {
        Arc::new(Admission {
            max_bytes: max,
            state: Mutex::default(),
        })
    }

    #[test]
    fn one_site_cannot_take_more_than_half_the_queue() {
        let a = admission(1000);
        let p1 = a.admit("flood", 400).unwrap();
        assert!(a.admit("flood", 200).is_none(), "over half");
        let p2 = a.admit("other", 400).unwrap();
        assert_eq!(a.used(), 800);
        drop((p1, p2));
        assert_eq!(a.used(), 0);
    }

    #[test]
    fn the_last_quarter_is_kept_for_sites_under_their_fair_share() {
        let a = admission(1000);
        let _a1 = a.admit("a", 450).unwrap();
        let _b1 = a.admit("b", 300).unwrap();
        // 750 used: b (300, fair share 500) may grow, a (450 > 500 after) may not.
        assert!(a.admit("a", 100).is_none());
        let _b2 = a.admit("b", 100).unwrap();
        // A new site still finds room: its fair share is 1000/3.
        let _c = a.admit("c", 100).unwrap();
        assert!(a.admit("c", 100).is_none(), "queue full");
    }
}
