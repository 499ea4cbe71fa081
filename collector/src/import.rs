//! `clicktrail import --db DB FILE.parquet`: bulk-loads events from a Parquet file,
//! for shops that bring their history from another tool (and for benches).
//!
//! Columns, by name: `site`, `session_id`, `kind`, `ts` (Int64 ms since the epoch,
//! or a Parquet timestamp), `seq`, `path` are required; any other events column
//! ([`store::COLUMNS`]: `url`, `referrer`, `title`, `nav`, `screen`, `selector`,
//! `text`, `href`, `x`, `y`, `form`, `field`, `field_type`, `duration_ms`, `empty`,
//! `name`, `props`, `user_id`, `browser`, `os`, `device`, `status`, `ad`, `message`,
//! `source`, `line`, `ancestry`, `visitor_id`, `event_id`) is taken when present. Other columns
//! are named in the summary and left out.
//!
//! Every row goes through what `/collect` does to an event: the same limits
//! (protocol's), the same scrubbing of every text (emails, tokens, card and phone
//! numbers), the identify id stored as a keyed hash, and each event once: a row
//! without an `event_id` gets one derived from its file position and content, so
//! importing the same file twice stores it once: when a session of the file is
//! already stored or an event comes twice, the rows are merged with the stored ones
//! and each event kept once. A row that breaks a rule is
//! not stored and is counted, by reason, with its first row numbers, in the summary.
//!
//! Speed: rows are checked and scrubbed on a thread of their own (one part of each
//! Parquet batch per core), each distinct text scrubbed once per column (a bounded
//! memo), while DuckDB's own Arrow scan reads the checked batches into one sorted
//! insert ([`store::bulk`]). When a session of the file was already stored or an
//! event comes twice, that insert is rolled back and the file read again into the
//! append table and compacted, each event once.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, LazyLock, mpsc};
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int32Array, Int32Builder, Int64Array,
    Int64Builder, StringArray, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use duckdb::arrow::error::ArrowError;
use duckdb::arrow::record_batch::{RecordBatch, RecordBatchReader};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::{enrich, scrub};

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {detail}")]
    Read { path: String, detail: String },
    #[error(
        "{path} lacks the column(s) {missing}; a file to import has site, session_id, kind, ts (Int64 ms), seq and path"
    )]
    MissingColumns { path: String, missing: String },
    #[error("column {column} is {found}; expected {expected}")]
    ColumnType {
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Open(String),
    #[error("database: {0}")]
    Db(#[from] duckdb::Error),
}

/// What an import did.
#[derive(Debug, Default)]
pub struct Summary {
    /// Rows in the file.
    pub read: u64,
    /// Rows appended (valid rows, duplicates included).
    pub appended: u64,
    /// Events stored in the database after the import, minus before.
    pub stored: u64,
    /// Rows not stored, by reason: (count, first row numbers, 0-based).
    pub rejected: BTreeMap<String, (u64, Vec<u64>)>,
    /// Columns of the file that are not events columns.
    pub ignored_columns: Vec<String>,
    /// How the rows were stored: written sorted in one pass, or (and why) appended
    /// and merged by compaction.
    pub path: &'static str,
    /// Seconds, from start to the events on disk.
    pub seconds: f64,
}

impl Summary {
    /// Duplicates dropped: valid rows that are the same event as another one.
    pub fn duplicates(&self) -> u64 {
        self.appended.saturating_sub(self.stored)
    }

    /// The summary as the command prints it.
    pub fn describe(&self, file: &Path) -> String {
        let mut out = format!(
            "imported {}: {} rows read, {} events stored, {} duplicates dropped, {} rejected; \
             {:.1} s ({:.0} events/s, {})",
            file.display(),
            self.read,
            self.stored,
            self.duplicates(),
            self.rejected.values().map(|(n, _)| n).sum::<u64>(),
            self.seconds,
            self.read as f64 / self.seconds.max(1e-9),
            self.path,
        );
        for (reason, (n, rows)) in &self.rejected {
            let _ = write!(out, "\n  rejected {n}: {reason} (rows {rows:?}");
            out.push_str(if *n > rows.len() as u64 {
                ", ...)"
            } else {
                ")"
            });
        }
        if !self.ignored_columns.is_empty() {
            let _ = write!(
                out,
                "\n  ignored columns (not events columns): {}",
                self.ignored_columns.join(", ")
            );
        }
        out
    }
}

/// The columns a file must have.
const REQUIRED: [&str; 6] = ["site", "session_id", "kind", "ts", "seq", "path"];

/// Texts scrubbed once per column and remembered, up to this many per column.
const MEMO_MAX: usize = 100_000;

/// Imports `file` into the database file `db`, which no other handle may hold
/// (the command runs on a file no collector holds).
pub fn import(db: &Path, file: &Path, uid_key: [u8; 32]) -> Result<Summary, ImportError> {
    import_sorting_at_most(db, file, uid_key, store::bulk::ONE_PASS_MAX_ROWS)
}

/// [`import`], with a file of more than `one_pass_max_rows` rows sent through the
/// append table and compaction by key ranges rather than sorted in one pass (tests
/// take that path with a small file).
pub fn import_sorting_at_most(
    db: &Path,
    file: &Path,
    uid_key: [u8; 32],
    one_pass_max_rows: u64,
) -> Result<Summary, ImportError> {
    let started = Instant::now();
    let header = parquet_reader(file)?;
    let schema = header.schema().clone();
    let rows_in_file = u64::try_from(header.metadata().file_metadata().num_rows()).unwrap_or(0);
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let missing: Vec<&str> = REQUIRED
        .iter()
        .filter(|c| !names.contains(c))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::MissingColumns {
            path: file.display().to_string(),
            missing: missing.join(", "),
        });
    }
    let database = open_bulk(db)?;
    let conn = database.conn();
    let before = count(conn)?;
    let received_ms = database.next_received_ms(crate::ingest::now_ms())?;
    let mut feed = ParquetFeed {
        file,
        uid_key,
        received_ms,
        running: None,
        counts: Counts::default(),
    };

    // A file that continues stored sessions (or is imported again) would fail the
    // one-pass check at its end; its first rows tell early. A very large file is
    // sorted by key ranges, so the sort's disk and memory stay bounded.
    let path = if rows_in_file > one_pass_max_rows {
        database.merge(&mut feed)?;
        "too many rows for one sort: appended, then sorted by key ranges"
    } else if database.any_stored(&first_sessions(header, file)?)? {
        database.merge(&mut feed)?;
        "its first sessions are stored: appended and merged"
    } else {
        match database.load(&mut feed, received_ms)? {
            store::bulk::Loaded::Sorted { .. } => "all new: written sorted in one pass",
            store::bulk::Loaded::Merged { .. } => {
                "some events repeat or continue stored sessions: appended and merged"
            }
        }
    };
    conn.execute_batch("CHECKPOINT")?;
    let Counts {
        read,
        appended,
        rejected,
    } = feed.counts;
    Ok(Summary {
        read,
        appended,
        stored: count(conn)?.saturating_sub(before),
        rejected,
        ignored_columns: names
            .iter()
            .filter(|n| {
                !store::COLUMNS.iter().any(|c| c.name == **n)
                    || matches!(**n, "received_at" | "session_key")
            })
            .map(|n| (*n).to_owned())
            .collect(),
        path,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The database file `db` opened for bulk writes, under the store's memory limit:
/// opened first as the collector opens it (schema, migrations), then through
/// [`store::bulk`]. No other handle may hold the file.
pub fn open_bulk(db: &Path) -> Result<store::bulk::Database, ImportError> {
    drop(crate::store::open_file(db).map_err(|e| ImportError::Open(e.to_string()))?);
    let database = store::bulk::Database::open(db)?;
    store::limit_memory(database.conn())?;
    Ok(database)
}

/// A session of the file as it is stored: its id scrubbed as any text, and the
/// key of (site, that id).
fn stored_session<'s>(site: &str, id: &'s str) -> (std::borrow::Cow<'s, str>, u64) {
    let id = scrub::text(id);
    let key = store::session_key(site, &id);
    (id, key)
}

/// The keys of the first sessions of `file` (of its first batch, up to 1,000), read
/// through `header`, the reader [`parquet_reader`] opened.
fn first_sessions(
    header: ParquetRecordBatchReaderBuilder<File>,
    file: &Path,
) -> Result<Vec<u64>, ImportError> {
    let Some(batch) = header
        .with_batch_size(8_192)
        .build()
        .map_err(|e| read_error(file, e))?
        .next()
    else {
        return Ok(Vec::new());
    };
    let batch = batch.map_err(|e| read_error(file, e))?;
    let input = Input::new(&batch)?;
    let named = &*NAMED;
    let mut keys = std::collections::BTreeSet::new();
    for i in 0..batch.num_rows() {
        if let (Some(site), Some(sid)) =
            (input.text(named.site, i), input.text(named.session_id, i))
            && valid_site(site)
            && valid_id(sid)
        {
            keys.insert(stored_session(site, sid).1);
            if keys.len() >= 1_000 {
                break;
            }
        }
    }
    Ok(keys.into_iter().collect())
}

/// Why `file` could not be read.
fn read_error(file: &Path, e: impl std::fmt::Display) -> ImportError {
    ImportError::Read {
        path: file.display().to_string(),
        detail: e.to_string(),
    }
}

fn parquet_reader(file: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, ImportError> {
    let f = File::open(file).map_err(|e| read_error(file, e))?;
    ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| read_error(file, e))
}

/// The record batches of `file`, as the import reads them (its bench's reference
/// reads the file through this too).
pub fn parquet_batches(
    file: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, ImportError> {
    parquet_reader(file)?
        .with_batch_size(65_536)
        .build()
        .map_err(|e| read_error(file, e))
}

/// What one read of the file counted.
#[derive(Default)]
struct Counts {
    read: u64,
    appended: u64,
    rejected: BTreeMap<String, (u64, Vec<u64>)>,
}

impl Counts {
    fn reject(&mut self, reason: &str, row: u64) {
        let entry = self.rejected.entry(reason.to_owned()).or_default();
        entry.0 += 1;
        if entry.1.len() < 5 {
            entry.1.push(row);
        }
    }
}

/// What the thread reading the file hands back: its counts, or why it stopped.
type Produced = Result<Counts, ImportError>;

/// The file's checked and scrubbed rows, read on a thread of their own while
/// DuckDB writes them.
struct ParquetFeed<'a> {
    file: &'a Path,
    uid_key: [u8; 32],
    received_ms: i64,
    running: Option<std::thread::JoinHandle<Produced>>,
    counts: Counts,
}

/// The batches the reading thread sends, as an Arrow reader DuckDB scans.
struct Batches {
    schema: SchemaRef,
    rx: mpsc::Receiver<RecordBatch>,
}

impl Iterator for Batches {
    type Item = Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok().map(Ok)
    }
}

impl RecordBatchReader for Batches {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl store::bulk::Feed for ParquetFeed<'_> {
    type Error = ImportError;

    fn start(&mut self) -> Result<Box<dyn RecordBatchReader + Send>, ImportError> {
        let reader = parquet_batches(self.file)?;
        // A few batches ahead of DuckDB, no more: memory stays bounded.
        let (tx, rx) = mpsc::sync_channel(4);
        let (file, uid_key, received_ms) =
            (self.file.to_path_buf(), self.uid_key, self.received_ms);
        self.running = Some(std::thread::spawn(move || {
            produce(reader, &file, &uid_key, received_ms, &tx)
        }));
        Ok(Box::new(Batches {
            schema: output_schema(),
            rx,
        }))
    }

    fn end(&mut self) -> Result<(), ImportError> {
        let handle = self.running.take().expect("end follows start");
        self.counts = handle.join().expect("the import reader does not panic")?;
        Ok(())
    }
}

/// Reads, checks and scrubs every batch of `reader` (each batch's parts on every
/// core) and sends the valid rows to `tx`; stops early when the receiver is gone.
fn produce(
    reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
    file: &Path,
    uid_key: &[u8; 32],
    received_ms: i64,
    tx: &mpsc::SyncSender<RecordBatch>,
) -> Produced {
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let mut memos: Vec<Memo> = (0..workers).map(|_| Memo::default()).collect();
    let mut counts = Counts::default();
    for batch in reader {
        let batch = batch.map_err(|e| read_error(file, e))?;
        let input = Input::new(&batch)?;
        let n = batch.num_rows();
        let part = n.div_ceil(workers).max(1);
        let ctx = Ctx {
            input: &input,
            received_ms,
            uid_key,
            first_row: counts.read,
        };
        let outputs: Vec<Output> = std::thread::scope(|scope| {
            let handles: Vec<_> = memos
                .iter_mut()
                .enumerate()
                .map(|(w, memo)| {
                    let range = (w * part).min(n)..((w + 1) * part).min(n);
                    let ctx = &ctx;
                    scope.spawn(move || ctx.rows(range, memo))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("an import worker does not panic"))
                .collect()
        });
        counts.read += n as u64;
        for out in outputs {
            for (reason, row) in &out.rejected {
                counts.reject(reason, *row);
            }
            counts.appended += out.rows as u64;
            if out.rows > 0 && tx.send(out.finish()).is_err() {
                // DuckDB stopped reading; its error is the one reported.
                return Ok(counts);
            }
        }
    }
    Ok(counts)
}

fn count(conn: &Connection) -> Result<u64, duckdb::Error> {
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
}

/// The columns of one Parquet batch, cast to the types the rows are read in.
struct Input {
    /// The text columns, in [`text_columns`] order (`None`: not in the file).
    text: Vec<Option<StringArray>>,
    /// The text columns in the file that have a longest length: (index in
    /// [`text_columns`], limit, name).
    limited: Vec<(usize, usize, &'static str)>,
    ts: Int64Array,
    seq: Int32Array,
    /// The integer columns, in [`int_columns`] order.
    ints: Vec<Option<Int32Array>>,
    duration_ms: Option<Int64Array>,
    empty: Option<BooleanArray>,
}

fn cast_to(
    array: &ArrayRef,
    name: &str,
    to: &DataType,
    expected: &'static str,
) -> Result<ArrayRef, ImportError> {
    cast(array, to).map_err(|_| ImportError::ColumnType {
        column: name.to_owned(),
        found: array.data_type().to_string(),
        expected,
    })
}

impl Input {
    fn new(batch: &RecordBatch) -> Result<Self, ImportError> {
        let col = |name: &str| batch.column_by_name(name);
        let text = text_columns()
            .map(|name| {
                col(name)
                    .map(|a| {
                        cast_to(a, name, &DataType::Utf8, "text")
                            .map(|a| a.as_string::<i32>().clone())
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let ts = col("ts").expect("checked");
        let ts = match ts.data_type() {
            DataType::Timestamp(unit, _) => {
                let raw = cast_to(ts, "ts", &DataType::Int64, "Int64 ms")?;
                let raw = raw.as_primitive::<duckdb::arrow::datatypes::Int64Type>();
                let per_ms: (i64, i64) = match unit {
                    TimeUnit::Second => (1000, 1),
                    TimeUnit::Millisecond => (1, 1),
                    TimeUnit::Microsecond => (1, 1000),
                    TimeUnit::Nanosecond => (1, 1_000_000),
                };
                raw.unary(|v| v.saturating_mul(per_ms.0).div_euclid(per_ms.1))
            }
            _ => cast_to(ts, "ts", &DataType::Int64, "Int64 ms since the epoch")?
                .as_primitive::<duckdb::arrow::datatypes::Int64Type>()
                .clone(),
        };
        let seq = cast_to(
            col("seq").expect("checked"),
            "seq",
            &DataType::Int32,
            "an integer",
        )?
        .as_primitive::<duckdb::arrow::datatypes::Int32Type>()
        .clone();
        let ints = int_columns()
            .map(|name| {
                col(name)
                    .map(|a| {
                        cast_to(a, name, &DataType::Int32, "an integer").map(|a| {
                            a.as_primitive::<duckdb::arrow::datatypes::Int32Type>()
                                .clone()
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let duration_ms = col("duration_ms")
            .map(|a| {
                cast_to(a, "duration_ms", &DataType::Int64, "an integer").map(|a| {
                    a.as_primitive::<duckdb::arrow::datatypes::Int64Type>()
                        .clone()
                })
            })
            .transpose()?;
        let empty = col("empty")
            .map(|a| {
                cast_to(a, "empty", &DataType::Boolean, "a boolean").map(|a| a.as_boolean().clone())
            })
            .transpose()?;
        let limited = text_columns()
            .enumerate()
            .filter_map(|(col, name)| Some((col, LIMITS[col]?, name)))
            .filter(|(col, _, _)| text[*col].is_some())
            .collect();
        Ok(Input {
            text,
            limited,
            ts,
            seq,
            ints,
            duration_ms,
            empty,
        })
    }

    /// Row `row` of the text column at `col` of [`text_columns`].
    fn text(&self, col: usize, row: usize) -> Option<&str> {
        let a = self.text.get(col)?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }

    /// Row `row` of the integer column at `col` of [`int_columns`].
    fn int(&self, col: usize, row: usize) -> Option<i32> {
        let a = self.ints.get(col)?.as_ref()?;
        a.is_valid(row).then(|| a.value(row))
    }
}

/// Where [`Ctx::check`] finds the texts it reads by name, in [`text_columns`].
struct Named {
    site: usize,
    session_id: usize,
    kind: usize,
    path: usize,
    event_id: usize,
    props: usize,
}

static NAMED: LazyLock<Named> = LazyLock::new(|| {
    let at = |name: &str| {
        text_columns()
            .position(|c| c == name)
            .expect("a text column of the events table")
    };
    Named {
        site: at("site"),
        session_id: at("session_id"),
        kind: at("kind"),
        path: at("path"),
        event_id: at("event_id"),
        props: at("props"),
    }
});

/// What a text column of the file becomes in the row stored.
#[derive(Clone, Copy)]
enum Role {
    /// Checked as it is (`site`, `kind`).
    Verbatim,
    /// Scrubbed once per session.
    SessionId,
    Path,
    /// Kept, or derived from the row's position and content.
    EventId,
    /// Scrubbed, or one per session (`i_<key>`).
    VisitorId,
    /// A keyed hash.
    UserId,
    /// Parsed and scrubbed by [`Ctx::check`].
    Props,
    /// `browser`, `os`, `device`: scrubbed, or `unknown`.
    Client,
    Href,
    /// `url`, `referrer`, `source`.
    Url,
    /// Any other text: scrubbed.
    Text,
}

/// The [`Role`] of each of [`text_columns`], in order: decided once, not per row.
static ROLES: LazyLock<Vec<Role>> = LazyLock::new(|| {
    text_columns()
        .map(|name| match name {
            "site" | "kind" => Role::Verbatim,
            "session_id" => Role::SessionId,
            "path" => Role::Path,
            "event_id" => Role::EventId,
            "visitor_id" => Role::VisitorId,
            "user_id" => Role::UserId,
            "props" => Role::Props,
            "browser" | "os" | "device" => Role::Client,
            "href" => Role::Href,
            "url" | "referrer" | "source" => Role::Url,
            _ => Role::Text,
        })
        .collect()
});

/// [`limit`] of each of [`text_columns`], in order.
static LIMITS: LazyLock<Vec<Option<usize>>> = LazyLock::new(|| text_columns().map(limit).collect());

/// Scrubbed texts, per text column, remembered: each distinct value is numbered,
/// its scrubbed form kept once.
#[derive(Default)]
struct Memo {
    columns: Vec<MemoColumn>,
}

#[derive(Default)]
struct MemoColumn {
    ids: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    scrubbed: Vec<Option<Box<str>>>,
}

impl Memo {
    /// `v`, a value of the text column at `column`, scrubbed as any text.
    fn text(&mut self, column: usize, v: &str) -> Option<&str> {
        self.get(column, v, |v| Some(scrub::text(v).into_owned()))
    }

    /// `f(value)`, computed once per distinct value of the text column at `column`.
    fn get(
        &mut self,
        column: usize,
        value: &str,
        f: impl FnOnce(&str) -> Option<String>,
    ) -> Option<&str> {
        if self.columns.len() <= column {
            self.columns.resize_with(column + 1, MemoColumn::default);
        }
        let memo = &mut self.columns[column];
        let id = if let Some(&id) = memo.ids.get(value) {
            id
        } else {
            if memo.scrubbed.len() >= MEMO_MAX {
                memo.ids.clear();
                memo.scrubbed.clear();
            }
            let id = u32::try_from(memo.scrubbed.len()).expect("MEMO_MAX fits in u32");
            memo.scrubbed.push(f(value).map(Into::into));
            memo.ids.insert(value.into(), id);
            id
        };
        memo.scrubbed[id as usize].as_deref()
    }
}

struct Ctx<'a> {
    input: &'a Input,
    received_ms: i64,
    uid_key: &'a [u8; 32],
    first_row: u64,
}

/// Valid rows of one part of a batch, as Arrow builders in `events_recent` order.
struct Output {
    rows: usize,
    rejected: Vec<(&'static str, u64)>,
    text: Vec<StringBuilder>,
    ts: TimestampMicrosecondBuilder,
    received: TimestampMicrosecondBuilder,
    seq: Int32Builder,
    ints: Vec<Int32Builder>,
    duration: Int64Builder,
    empty: BooleanBuilder,
    key: UInt64Builder,
}

/// The text columns of `events_recent`, in order.
fn text_columns() -> impl Iterator<Item = &'static str> {
    store::COLUMNS
        .iter()
        .filter(|c| c.ty == "VARCHAR")
        .map(|c| c.name)
}

/// The INTEGER columns of `events_recent` but `seq` (`x`, `y`, `status`, `line`), in
/// order.
fn int_columns() -> impl Iterator<Item = &'static str> {
    store::COLUMNS
        .iter()
        .filter(|c| c.ty == "INTEGER" && c.name != "seq")
        .map(|c| c.name)
}

impl Output {
    fn new(capacity: usize) -> Self {
        Output {
            rows: 0,
            rejected: Vec::new(),
            text: text_columns()
                .map(|_| StringBuilder::with_capacity(capacity, capacity * 16))
                .collect(),
            ts: TimestampMicrosecondBuilder::with_capacity(capacity),
            received: TimestampMicrosecondBuilder::with_capacity(capacity),
            seq: Int32Builder::with_capacity(capacity),
            ints: int_columns()
                .map(|_| Int32Builder::with_capacity(capacity))
                .collect(),
            duration: Int64Builder::with_capacity(capacity),
            empty: BooleanBuilder::with_capacity(capacity),
            key: UInt64Builder::with_capacity(capacity),
        }
    }

    /// The record batch, its columns in `events_recent` order.
    fn finish(mut self) -> RecordBatch {
        let mut text = self.text.iter_mut();
        let mut ints = self.ints.iter_mut();
        let columns: Vec<ArrayRef> = store::COLUMNS
            .iter()
            .map(|c| -> ArrayRef {
                match (c.name, c.ty) {
                    ("ts", _) => Arc::new(self.ts.finish()),
                    ("received_at", _) => Arc::new(self.received.finish()),
                    ("seq", _) => Arc::new(self.seq.finish()),
                    ("duration_ms", _) => Arc::new(self.duration.finish()),
                    ("empty", _) => Arc::new(self.empty.finish()),
                    ("session_key", _) => Arc::new(self.key.finish()),
                    (_, "VARCHAR") => Arc::new(text.next().expect("text column").finish()),
                    (_, "INTEGER") => Arc::new(ints.next().expect("int column").finish()),
                    (name, ty) => unreachable!("column {name} of type {ty} has no builder"),
                }
            })
            .collect();
        RecordBatch::try_new(output_schema(), columns).expect("columns match the schema")
    }
}

/// The Arrow type each column of `events_recent` is sent in.
fn arrow_type(c: &store::Column) -> DataType {
    match (c.name, c.ty) {
        ("ts" | "received_at", _) => DataType::Timestamp(TimeUnit::Microsecond, None),
        ("seq", _) | (_, "INTEGER") => DataType::Int32,
        ("duration_ms", _) => DataType::Int64,
        ("empty", _) => DataType::Boolean,
        ("session_key", _) => DataType::UInt64,
        (_, "VARCHAR") => DataType::Utf8,
        (name, ty) => unreachable!("column {name} of type {ty} has no Arrow type"),
    }
}

static OUTPUT_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(
        store::COLUMNS
            .iter()
            .map(|c| Field::new(c.name, arrow_type(c), !c.not_null))
            .collect::<Vec<_>>(),
    ))
});

/// The schema of the batches sent to DuckDB: `events_recent`'s columns.
fn output_schema() -> SchemaRef {
    OUTPUT_SCHEMA.clone()
}

/// The stored kinds a file may hold (`links` is a tracker message, not a row).
fn storable_kind(kind: &str) -> bool {
    kind != protocol::kind::LINKS && store::schema::KINDS.contains(&kind)
}

fn valid_site(site: &str) -> bool {
    !site.is_empty()
        && site.len() <= protocol::MAX_SITE
        && site
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && !id.chars().any(char::is_control)
}

/// A stable 64-bit mix (splitmix64).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Longest text allowed per column, in bytes (chars for `text`), as `/collect` has it.
fn limit(column: &str) -> Option<usize> {
    Some(match column {
        "path" => protocol::MAX_PATH,
        "url" | "referrer" | "href" | "source" => protocol::MAX_URL,
        "selector" => protocol::MAX_SELECTOR,
        "ancestry" => protocol::MAX_ANCESTRY,
        "title" => protocol::MAX_TITLE,
        "props" => protocol::MAX_PROPS_BYTES,
        "message" => protocol::MAX_ERROR_CHARS * 4,
        "text" => protocol::MAX_TEXT_CHARS * 4,
        "screen" | "form" | "field" | "field_type" | "name" | "ad" | "nav" | "browser" | "os"
        | "device" => protocol::MAX_NAME,
        _ => return None,
    })
}

/// The checked required fields of one row.
struct Checked<'i> {
    site: &'i str,
    sid: &'i str,
    path: &'i str,
    ts: i64,
    seq: i32,
    props: Option<String>,
}

impl Ctx<'_> {
    /// The row's required fields, or why it cannot be stored.
    fn check(&self, i: usize) -> Result<Checked<'_>, &'static str> {
        let input = self.input;
        let named = &*NAMED;
        let (Some(site), Some(sid), Some(kind), Some(path)) = (
            input.text(named.site, i),
            input.text(named.session_id, i),
            input.text(named.kind, i),
            input.text(named.path, i),
        ) else {
            return Err("site, session_id, kind or path is null");
        };
        if !valid_site(site) {
            return Err("site must be 1 to 64 characters of [A-Za-z0-9._-]");
        }
        if !valid_id(sid) {
            return Err("session_id must be 1 to 128 characters, no control characters");
        }
        if !storable_kind(kind) {
            return Err("kind is not an event kind");
        }
        if !path.starts_with('/') || path.len() > protocol::MAX_PATH {
            return Err("path must start with / and be at most 1024 bytes");
        }
        let ts = Some(input.ts.value(i))
            .filter(|t| input.ts.is_valid(i) && (1..4_102_444_800_000).contains(t))
            .ok_or("ts must be ms since the epoch, before 2100")?;
        let seq = Some(input.seq.value(i))
            .filter(|s| input.seq.is_valid(i) && *s >= 0)
            .ok_or("seq must be a number >= 0")?;
        for &(col, max, name) in &input.limited {
            if let Some(v) = input.text(col, i)
                && v.len() > max
            {
                return Err(match name {
                    "url" | "referrer" | "href" | "source" => "a URL is longer than 2048 bytes",
                    "selector" => "selector is longer than 512 bytes",
                    "title" => "title is longer than 256 bytes",
                    "props" => "props are longer than 2048 bytes",
                    _ => "a text is longer than its limit",
                });
            }
        }
        if input
            .text(named.event_id, i)
            .is_some_and(|id| !valid_id(id))
        {
            return Err("event_id must be 1 to 128 characters, no control characters");
        }
        let props = match input.text(named.props, i) {
            Some(p) => match serde_json::from_str::<serde_json::Value>(p) {
                Ok(mut v @ serde_json::Value::Object(_)) => {
                    scrub::json(&mut v);
                    Some(v.to_string())
                }
                _ => return Err("props must be a JSON object"),
            },
            None => None,
        };
        Ok(Checked {
            site,
            sid,
            path,
            ts,
            seq,
            props,
        })
    }

    fn rows(&self, range: std::ops::Range<usize>, memo: &mut Memo) -> Output {
        let mut out = Output::new(range.len());
        let input = self.input;
        // The session of the row before: (site, id as read, id scrubbed, key).
        let mut last_session: Option<(&str, &str, String, u64)> = None;
        for i in range {
            let row = self.first_row + i as u64;
            let c = match self.check(i) {
                Ok(c) => c,
                Err(reason) => {
                    out.rejected.push((reason, row));
                    continue;
                }
            };
            let fresh =
                !matches!(&last_session, Some((site, id, _, _)) if *site == c.site && *id == c.sid);
            if fresh {
                let (clean, key) = stored_session(c.site, c.sid);
                last_session = Some((c.site, c.sid, clean.into_owned(), key));
            }
            let (_, _, sid, key) = last_session.as_ref().expect("set above");
            let key = *key;
            for ((col, role), b) in ROLES.iter().enumerate().zip(out.text.iter_mut()) {
                let value = input.text(col, i);
                match role {
                    Role::Verbatim => b.append_option(value),
                    Role::SessionId => b.append_value(sid),
                    Role::Path => b.append_option(memo.get(col, c.path, |p| Some(scrub::path(p)))),
                    Role::EventId => {
                        if let Some(id) = value {
                            b.append_value(id);
                        } else {
                            let content = mix(c.ts as u64 ^ (u64::from(c.seq as u32) << 32));
                            let h = mix(row ^ mix(key ^ content));
                            b.append_value(format!("{key:016x}{h:016x}"));
                        }
                    }
                    Role::VisitorId => match value {
                        Some(v) => {
                            b.append_option(memo.text(col, v));
                        }
                        None => b.append_value(format!("i_{key:016x}")),
                    },
                    Role::UserId => {
                        b.append_option(value.map(|u| enrich::user_hash(self.uid_key, c.site, u)));
                    }
                    Role::Props => b.append_option(c.props.as_deref()),
                    Role::Client => match value {
                        Some(v) => {
                            b.append_option(memo.text(col, v));
                        }
                        None => b.append_value("unknown"),
                    },
                    Role::Href => {
                        b.append_option(value.and_then(|v| memo.get(col, v, scrub::href)));
                    }
                    Role::Url => {
                        b.append_option(value.and_then(|v| memo.get(col, v, scrub::url)));
                    }
                    Role::Text => b.append_option(value.and_then(|v| memo.text(col, v))),
                }
            }
            out.ts.append_value(c.ts * 1000);
            out.received.append_value(self.received_ms * 1000);
            out.seq.append_value(c.seq);
            for (col, b) in out.ints.iter_mut().enumerate() {
                b.append_option(input.int(col, i));
            }
            out.duration.append_option(
                input
                    .duration_ms
                    .as_ref()
                    .and_then(|a| a.is_valid(i).then(|| a.value(i))),
            );
            out.empty.append_option(
                input
                    .empty
                    .as_ref()
                    .and_then(|a| a.is_valid(i).then(|| a.value(i))),
            );
            out.key.append_value(key);
            out.rows += 1;
        }
        out
    }
}
