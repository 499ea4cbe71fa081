//! `clicktrail import --db DB FILE.parquet`: bulk-loads events from a Parquet file,
//! for shops that bring their history from another tool (and for benches).
//!
//! Columns, by name: `site`, `session_id`, `kind`, `ts` (Int64 ms since the epoch,
//! or a Parquet timestamp), `seq`, `path` are required; any other events column
//! ([`store::COLUMNS`]: `url`, `referrer`, `title`, `nav`, `screen`, `selector`,
//! `text`, `href`, `x`, `y`, `form`, `field`, `field_type`, `duration_ms`, `empty`,
//! `name`, `props`, `user_id`, `browser`, `os`, `device`, `status`, `ad`, `message`,
//! `source`, `line`, `visitor_id`, `event_id`) is taken when present. Other columns
//! are named in the summary and left out.
//!
//! Every row goes through what `/collect` does to an event: the same limits
//! (protocol's), the same scrubbing of every text (emails, tokens, card and phone
//! numbers), the identify id stored as a keyed hash, and each event once: a row
//! without an `event_id` gets one derived from its file position and content, so
//! importing the same file twice stores it once, and duplicates are dropped when the
//! rows are compacted into the sorted layout at the end. A row that breaks a rule is
//! not stored and is counted, by reason, with its first row numbers, in the summary.
//!
//! Speed: rows are checked and scrubbed in parallel (one part of each Parquet batch
//! per core) while the batch before goes to DuckDB, each distinct text is scrubbed
//! once per column (a bounded memo), and batches go to DuckDB as Arrow record
//! batches.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Int32Array, Int32Builder, Int64Array,
    Int64Builder, StringArray, StringBuilder, TimestampMicrosecondBuilder, UInt64Builder,
};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use duckdb::arrow::record_batch::RecordBatch;
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
    /// Seconds reading, checking, scrubbing and appending.
    pub load_s: f64,
    /// Seconds moving the rows into the sorted layout (deduplicating).
    pub compact_s: f64,
}

impl Summary {
    /// Duplicates dropped: valid rows that are the same event as another one.
    pub fn duplicates(&self) -> u64 {
        self.appended.saturating_sub(self.stored)
    }

    fn reject(&mut self, reason: &str, row: u64) {
        let entry = self.rejected.entry(reason.to_owned()).or_default();
        entry.0 += 1;
        if entry.1.len() < 5 {
            entry.1.push(row);
        }
    }

    /// The summary as the command prints it.
    pub fn describe(&self, file: &Path) -> String {
        let total = self.load_s + self.compact_s;
        let mut out = format!(
            "imported {}: {} rows read, {} events stored, {} duplicates dropped, {} rejected; \
             {:.1} s ({:.0} events/s: load {:.1} s, sort and dedupe {:.1} s)",
            file.display(),
            self.read,
            self.stored,
            self.duplicates(),
            self.rejected.values().map(|(n, _)| n).sum::<u64>(),
            total,
            self.read as f64 / total.max(1e-9),
            self.load_s,
            self.compact_s,
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

/// Imports `file` into the database `conn` holds (opened by
/// [`crate::store::open_file`]), then compacts.
pub fn import(conn: &Connection, file: &Path, uid_key: [u8; 32]) -> Result<Summary, ImportError> {
    let read_err = |detail: String| ImportError::Read {
        path: file.display().to_string(),
        detail,
    };
    let started = Instant::now();
    let before = count(conn)?;
    let f = File::open(file).map_err(|e| read_err(e.to_string()))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| read_err(e.to_string()))?;
    let schema = builder.schema().clone();
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
    let mut summary = Summary {
        ignored_columns: names
            .iter()
            .filter(|n| {
                !store::COLUMNS.iter().any(|c| c.name == **n)
                    || matches!(**n, "received_at" | "session_key")
            })
            .map(|n| (*n).to_owned())
            .collect(),
        ..Summary::default()
    };
    let reader = builder
        .with_batch_size(65_536)
        .build()
        .map_err(|e| read_err(e.to_string()))?;
    let received_ms = crate::ingest::now_ms();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get().min(8));
    let mut memos: Vec<Memo> = (0..workers).map(|_| Memo::default()).collect();
    let mut first_row = 0u64;
    store::transaction(conn, || -> Result<(), ImportError> {
        let mut app = conn.appender("events_recent")?;
        // Each batch's rows are checked on every core while the previous batch's
        // rows go to DuckDB on this thread.
        let mut waiting: Vec<Output> = Vec::new();
        for batch in reader {
            let batch = batch.map_err(|e| read_err(e.to_string()))?;
            let input = Input::new(&batch)?;
            let n = batch.num_rows();
            let part = n.div_ceil(workers).max(1);
            let ctx = Ctx {
                input: &input,
                received_ms,
                uid_key: &uid_key,
                first_row,
            };
            let (outputs, appended) = std::thread::scope(|scope| {
                let handles: Vec<_> = memos
                    .iter_mut()
                    .enumerate()
                    .map(|(w, memo)| {
                        let range = (w * part).min(n)..((w + 1) * part).min(n);
                        let ctx = &ctx;
                        scope.spawn(move || ctx.rows(range, memo))
                    })
                    .collect();
                let appended = append(&mut app, std::mem::take(&mut waiting), &mut summary);
                let outputs: Vec<Output> = handles
                    .into_iter()
                    .map(|h| h.join().expect("an import worker does not panic"))
                    .collect();
                (outputs, appended)
            });
            appended?;
            waiting = outputs;
            summary.read += n as u64;
            first_row += n as u64;
        }
        append(&mut app, waiting, &mut summary)?;
        app.flush()?;
        Ok(())
    })?;
    summary.load_s = started.elapsed().as_secs_f64();
    let t = Instant::now();
    store::compact(conn, store::Select::All)?;
    conn.execute_batch("CHECKPOINT")?;
    summary.compact_s = t.elapsed().as_secs_f64();
    summary.stored = count(conn)?.saturating_sub(before);
    Ok(summary)
}

/// Appends the checked rows of one batch (its parts in order) and counts them
/// and the rows rejected.
fn append(
    app: &mut duckdb::Appender<'_>,
    outputs: Vec<Output>,
    summary: &mut Summary,
) -> Result<(), duckdb::Error> {
    for out in outputs {
        for (reason, row) in &out.rejected {
            summary.reject(reason, *row);
        }
        summary.appended += out.rows as u64;
        if out.rows > 0 {
            app.append_record_batch(out.finish())?;
        }
    }
    Ok(())
}

fn count(conn: &Connection) -> Result<u64, duckdb::Error> {
    conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))
}

/// The columns of one Parquet batch, cast to the types the rows are read in.
struct Input {
    /// The text columns, in [`text_columns`] order (`None`: not in the file).
    text: Vec<Option<StringArray>>,
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
        Ok(Input {
            text,
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
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        let mut text = self.text.iter_mut();
        let mut ints = self.ints.iter_mut();
        for c in &store::COLUMNS {
            let (ty, array): (DataType, ArrayRef) = match (c.name, c.ty) {
                ("ts", _) => (
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    Arc::new(self.ts.finish()),
                ),
                ("received_at", _) => (
                    DataType::Timestamp(TimeUnit::Microsecond, None),
                    Arc::new(self.received.finish()),
                ),
                ("seq", _) => (DataType::Int32, Arc::new(self.seq.finish())),
                ("duration_ms", _) => (DataType::Int64, Arc::new(self.duration.finish())),
                ("empty", _) => (DataType::Boolean, Arc::new(self.empty.finish())),
                ("session_key", _) => (DataType::UInt64, Arc::new(self.key.finish())),
                (_, "VARCHAR") => (
                    DataType::Utf8,
                    Arc::new(text.next().expect("text column").finish()),
                ),
                (_, "INTEGER") => (
                    DataType::Int32,
                    Arc::new(ints.next().expect("int column").finish()),
                ),
                (name, ty) => unreachable!("column {name} of type {ty} has no builder"),
            };
            fields.push(Field::new(c.name, ty, !c.not_null));
            columns.push(array);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .expect("columns match the schema")
    }
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
        for (col, name) in text_columns().enumerate() {
            if let (Some(max), Some(v)) = (LIMITS[col], input.text(col, i))
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
            let (sid, key) = match &last_session {
                Some((site, id, clean, key)) if *site == c.site && *id == c.sid => {
                    (clean.clone(), *key)
                }
                _ => {
                    let clean = scrub::text(c.sid).into_owned();
                    let key = store::session_key(c.site, &clean);
                    last_session = Some((c.site, c.sid, clean.clone(), key));
                    (clean, key)
                }
            };
            let mut text = out.text.iter_mut();
            for (col, name) in text_columns().enumerate() {
                let b = text.next().expect("one builder per text column");
                let value = input.text(col, i);
                match name {
                    "site" | "kind" => b.append_value(value.unwrap_or_default()),
                    "session_id" => b.append_value(&sid),
                    "path" => b.append_option(memo.get(col, c.path, |p| Some(scrub::path(p)))),
                    "event_id" => {
                        if let Some(id) = value {
                            b.append_value(id);
                        } else {
                            let content = mix(c.ts as u64 ^ (u64::from(c.seq as u32) << 32));
                            let h = mix(row ^ mix(key ^ content));
                            b.append_value(format!("{key:016x}{h:016x}"));
                        }
                    }
                    "visitor_id" => match value {
                        Some(v) => {
                            b.append_option(
                                memo.get(col, v, |v| Some(scrub::text(v).into_owned())),
                            );
                        }
                        None => b.append_value(format!("i_{key:016x}")),
                    },
                    "user_id" => {
                        b.append_option(value.map(|u| enrich::user_hash(self.uid_key, c.site, u)));
                    }
                    "props" => b.append_option(c.props.as_deref()),
                    "browser" | "os" | "device" if value.is_none() => b.append_value("unknown"),
                    "href" => b.append_option(value.and_then(|v| memo.get(col, v, scrub::href))),
                    "url" | "referrer" | "source" => {
                        b.append_option(value.and_then(|v| memo.get(col, v, scrub::url)));
                    }
                    _ => b.append_option(
                        value.and_then(|v| memo.get(col, v, |v| Some(scrub::text(v).into_owned()))),
                    ),
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
