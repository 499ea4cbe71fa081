//! DuckDB → Polars: the only place that reads the events table.
//!
//! [`open_read_only`] opens a DuckDB file no other process holds (the CLI's `--db`);
//! the collector passes its own connection instead. [`events`] pushes the
//! [`ResolvedScope`] (site, since, until, bots) and the column list an audit asks for
//! into one SQL query over the `events` view ([`store::schema`]: each event once,
//! duplicates were dropped when written), leaves out bot events (`device = 'bot'`)
//! unless the scope includes them, and converts the Arrow record batches DuckDB streams back into a Polars
//! [`DataFrame`] with one column per [`Col`]. Times arrive as epoch milliseconds
//! (`Int64`), so the audits never deal with time zones.

use std::collections::HashSet;
use std::path::Path;

use duckdb::arrow::array::{Array, ArrayRef, AsArray, Int64Array, PrimitiveArray};
use duckdb::arrow::datatypes::{DataType as ArrowType, Int32Type, Int64Type, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::types::Value;
use duckdb::{AccessMode, Config, Connection};
use polars::prelude::*;

use crate::{Error, ResolvedScope};

/// A column of the events table an audit can load, named as in [`crate::schema`].
/// `ts` and `received_at` arrive as UTC epoch milliseconds (`Int64`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Site,
    Kind,
    Ts,
    ReceivedAt,
    Seq,
    SessionId,
    VisitorId,
    Path,
    Url,
    Referrer,
    Title,
    Nav,
    Screen,
    Selector,
    Text,
    Href,
    X,
    Y,
    Form,
    Field,
    FieldType,
    DurationMs,
    Empty,
    Name,
    Props,
    UserId,
    Browser,
    Os,
    Device,
    Status,
    Ad,
    Message,
    Source,
    Line,
    Ancestry,
}

/// How a [`Col`] is typed in the Polars frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    Str,
    U64,
    I32,
    I64,
    Bool,
}

impl Col {
    /// Every column of the events table except `event_id` and `session_key` (used
    /// only to store each event once and each session together).
    pub const ALL: [Col; 35] = [
        Col::Site,
        Col::Kind,
        Col::Ts,
        Col::ReceivedAt,
        Col::Seq,
        Col::SessionId,
        Col::VisitorId,
        Col::Path,
        Col::Url,
        Col::Referrer,
        Col::Title,
        Col::Nav,
        Col::Screen,
        Col::Selector,
        Col::Text,
        Col::Href,
        Col::X,
        Col::Y,
        Col::Form,
        Col::Field,
        Col::FieldType,
        Col::DurationMs,
        Col::Empty,
        Col::Name,
        Col::Props,
        Col::UserId,
        Col::Browser,
        Col::Os,
        Col::Device,
        Col::Status,
        Col::Ad,
        Col::Message,
        Col::Source,
        Col::Line,
        Col::Ancestry,
    ];

    /// The column's name in the events table and in the loaded frame.
    pub fn name(self) -> &'static str {
        match self {
            Col::Site => "site",
            Col::Kind => "kind",
            Col::Ts => "ts",
            Col::ReceivedAt => "received_at",
            Col::Seq => "seq",
            Col::SessionId => "session_id",
            Col::VisitorId => "visitor_id",
            Col::Path => "path",
            Col::Url => "url",
            Col::Referrer => "referrer",
            Col::Title => "title",
            Col::Nav => "nav",
            Col::Screen => "screen",
            Col::Selector => "selector",
            Col::Text => "text",
            Col::Href => "href",
            Col::X => "x",
            Col::Y => "y",
            Col::Form => "form",
            Col::Field => "field",
            Col::FieldType => "field_type",
            Col::DurationMs => "duration_ms",
            Col::Empty => "empty",
            Col::Name => "name",
            Col::Props => "props",
            Col::UserId => "user_id",
            Col::Browser => "browser",
            Col::Os => "os",
            Col::Device => "device",
            Col::Status => "status",
            Col::Ad => "ad",
            Col::Message => "message",
            Col::Source => "source",
            Col::Line => "line",
            Col::Ancestry => "ancestry",
        }
    }

    fn ty(self) -> Ty {
        match self {
            Col::Ts | Col::ReceivedAt | Col::DurationMs => Ty::I64,
            Col::Seq | Col::X | Col::Y | Col::Status | Col::Line => Ty::I32,
            Col::Empty => Ty::Bool,
            Col::SessionId => Ty::U64,
            _ => Ty::Str,
        }
    }

    /// The SELECT expression for this column.
    fn sql(self) -> String {
        match self {
            Col::Ts | Col::ReceivedAt => format!("epoch_ms({0}) AS {0}", self.name()),
            Col::Kind => "CAST(kind AS VARCHAR) AS kind".to_owned(),
            // A session is its 64-bit key: integers sort and group much faster than
            // the 32-character ids, and no report shows a session id.
            Col::SessionId => "session_key AS session_id".to_owned(),
            _ => self.name().to_owned(),
        }
    }
}

/// Opens a DuckDB file read-only, for a file no process holds read-write.
///
/// A file held by a running collector gives [`Error::Locked`] (use the collector's
/// `/api/audit` instead); a missing file [`Error::NoSuchFile`]; a DuckDB file without
/// an events table [`Error::NoEventsTable`].
pub fn open_read_only(path: &Path) -> Result<Connection, Error> {
    open(path, true)
}

/// Opens a DuckDB file read-write (to save funnels in it), with the same checks and
/// errors as [`open_read_only`].
pub fn open_read_write(path: &Path) -> Result<Connection, Error> {
    open(path, false)
}

fn open(path: &Path, read_only: bool) -> Result<Connection, Error> {
    if !path.is_file() {
        return Err(Error::NoSuchFile {
            path: path.to_owned(),
        });
    }
    let conn = connect(path, read_only)?;
    let current = store::schema::is_current(&conn)?;
    if current && store::schema::has_added_columns(&conn)? {
        return Ok(conn);
    }
    if !current && !store::schema::is_old(&conn)? {
        return Err(Error::NoEventsTable {
            path: path.to_owned(),
        });
    }
    // A file of an older collector: brought up to date once (it needs to be
    // written); one of the first layout is also sorted.
    drop(conn);
    let rw = match connect(path, false) {
        Ok(rw) => rw,
        // One of this layout that cannot be written (a read-only copy, or one
        // another reader holds) is read as it is: the columns added since empty
        // (on each connection, see [`clone`]). Why it could not be opened for
        // writing is the error if even that fails.
        Err(e) if read_only && current => {
            let conn = connect(path, true)?;
            store::schema::read_as_current(&conn).map_err(|_| e)?;
            return Ok(conn);
        }
        Err(e) => return Err(e),
    };
    store::create_or_migrate(&rw)?;
    if !current {
        store::compact(&rw, store::Select::All)?;
    }
    drop(rw);
    connect(path, read_only)
}

/// Another connection to `conn`'s database (for work on a second thread) that
/// reads the events as `conn` does: a file read as it is (see [`open`]) has its
/// views on each connection.
pub fn clone(conn: &Connection) -> Result<Connection, Error> {
    let other = conn.try_clone()?;
    if store::schema::reads_as_current(conn)? {
        store::schema::read_as_current(&other)?;
    }
    Ok(other)
}

/// Opens `path` in `mode`, naming a lock held by another process.
fn connect(path: &Path, read_only: bool) -> Result<Connection, Error> {
    let mode = if read_only {
        AccessMode::ReadOnly
    } else {
        AccessMode::ReadWrite
    };
    let config = Config::default().access_mode(mode)?;
    let conn = Connection::open_with_flags(path, config).map_err(|e| {
        let message = e.to_string();
        if message.contains("Could not set lock") || message.contains("Conflicting lock") {
            Error::Locked {
                path: path.to_owned(),
                detail: one_line(&message),
            }
        } else {
            Error::Db(e)
        }
    })?;
    store::limit_memory(&conn)?;
    Ok(conn)
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Loads the events in `scope` with the columns `cols`, each event once; bot events
/// only with [`ResolvedScope::include_bots`].
///
/// Rows come in no particular order; audits sort what they need.
pub fn events(conn: &Connection, scope: &ResolvedScope, cols: &[Col]) -> Result<DataFrame, Error> {
    events_of(conn, scope, cols, None, None)
}

/// [`events`] of the given kinds only (all for `None`), and of those only the rows
/// that meet `rows`, an audit's own SQL condition (a constant, never user input).
pub fn events_of(
    conn: &Connection,
    scope: &ResolvedScope,
    cols: &[Col],
    kinds: Option<&[&str]>,
    rows: Option<&str>,
) -> Result<DataFrame, Error> {
    let (mut sql, params) = select_sql(scope, cols);
    if let Some(kinds) = kinds {
        // Kinds are the audits' own constants, plain words.
        sql.push_str(" AND ");
        sql.push_str(&crate::matcher::kind_sql(kinds));
    }
    if let Some(rows) = rows {
        sql.push_str(" AND (");
        sql.push_str(rows);
        sql.push(')');
    }
    let mut stmt = conn.prepare(&sql)?;
    // Materialized, not streamed: the frame holds every row anyway, and DuckDB
    // fills a materialized result in parallel without a lock per small chunk.
    // Each Arrow batch goes into the columns as it comes and is dropped: the
    // rows are never held as Arrow and as Polars at once.
    let result = stmt.query_arrow(duckdb::params_from_iter(params))?;
    let mut columns: Vec<ColumnBuilder> = cols.iter().map(|&c| ColumnBuilder::new(c)).collect();
    let mut height = 0;
    for batch in result {
        height += batch.num_rows();
        for (i, column) in columns.iter_mut().enumerate() {
            column.push(batch.column(i))?;
        }
    }
    let columns = columns.into_iter().map(ColumnBuilder::finish).collect();
    Ok(DataFrame::new(height, columns)?)
}

/// One Polars column of [`events_of`], filled batch after batch.
enum ColumnBuilder {
    Str(Col, StringChunkedBuilder),
    I32(Col, PrimitiveChunkedBuilder<polars::datatypes::Int32Type>),
    U64(Col, PrimitiveChunkedBuilder<polars::datatypes::UInt64Type>),
    I64(Col, PrimitiveChunkedBuilder<polars::datatypes::Int64Type>),
    Bool(Col, BooleanChunkedBuilder),
}

impl ColumnBuilder {
    /// Rows reserved up front; the builders grow past it.
    const CAPACITY: usize = 1 << 16;

    fn new(col: Col) -> Self {
        let name = PlSmallStr::from_static(col.name());
        let n = Self::CAPACITY;
        match col.ty() {
            Ty::Str => Self::Str(col, StringChunkedBuilder::new(name, n)),
            Ty::I32 => Self::I32(col, PrimitiveChunkedBuilder::new(name, n)),
            Ty::U64 => Self::U64(col, PrimitiveChunkedBuilder::new(name, n)),
            Ty::I64 => Self::I64(col, PrimitiveChunkedBuilder::new(name, n)),
            Ty::Bool => Self::Bool(col, BooleanChunkedBuilder::new(name, n)),
        }
    }

    /// Appends the values of one batch's array of this column.
    fn push(&mut self, array: &ArrayRef) -> Result<(), Error> {
        match self {
            Self::Str(col, b) => {
                for v in str_iter(*col, array)? {
                    b.append_option(v);
                }
            }
            Self::I32(col, b) => numbers::<Int32Type, _>(*col, array, b, "INTEGER")?,
            Self::U64(col, b) => numbers::<UInt64Type, _>(*col, array, b, "UBIGINT")?,
            Self::I64(col, b) => numbers::<Int64Type, _>(*col, array, b, "BIGINT")?,
            Self::Bool(col, b) => {
                let a = array
                    .as_boolean_opt()
                    .ok_or_else(|| type_error(*col, array.data_type(), "BOOLEAN"))?;
                for v in a {
                    b.append_option(v);
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Column {
        match self {
            Self::Str(_, b) => b.finish().into_series().into(),
            Self::I32(_, b) => b.finish().into_series().into(),
            Self::U64(_, b) => b.finish().into_series().into(),
            Self::I64(_, b) => b.finish().into_series().into(),
            Self::Bool(_, b) => b.finish().into_series().into(),
        }
    }
}

/// The number of sessions with at least one event in `scope`: the unit count every
/// report carries. Counted on the sorted table, and apart for the sessions with rows
/// still waiting for compaction.
pub fn sessions(conn: &Connection, scope: &ResolvedScope) -> Result<u64, Error> {
    let (filter, params) = scope_filter(scope);
    let waiting: i64 = conn.query_row("SELECT count(*) FROM events_recent", [], |r| r.get(0))?;
    if waiting == 0 {
        return Ok(conn.query_row(
            &format!("SELECT count(DISTINCT session_key) FROM events_sorted WHERE {filter}"),
            duckdb::params_from_iter(params),
            |r| r.get(0),
        )?);
    }
    let twice: Vec<Value> = params.iter().chain(&params).cloned().collect();
    Ok(conn.query_row(
        &format!(
            "SELECT (SELECT count(DISTINCT session_key) FROM events_sorted
                     WHERE {filter} AND session_key NOT IN (SELECT session_key FROM events_pending))
                  + (SELECT count(DISTINCT session_key) FROM events_overlap WHERE {filter})"
        ),
        duckdb::params_from_iter(twice),
        |r| r.get(0),
    )?)
}

/// Streams rows of the events in scope session after session, each session's rows
/// in (ts, seq, `event_id`) order, as Arrow batches to `each`.
///
/// `query(from, order)` is the caller's SELECT over the table or view `from`, with
/// `session_key` as its first column and `order` appended; `params` are its
/// parameters. The sorted table is read first, in its stored order, and `each` is
/// told which sessions to skip there: those with rows still waiting for compaction,
/// which then come whole from the `events_overlap` view, sorted (with nothing to
/// skip). A pass that notices a new `session_key` therefore sees each session once,
/// in one run of rows. Memory is one batch at a time.
///
/// Run it inside one [`store::transaction`] with any count the report carries, so
/// both see the same snapshot.
pub(crate) fn stream_sessions(
    conn: &Connection,
    query: impl Fn(&str, &str) -> String,
    params: &[Value],
    mut each: impl FnMut(&RecordBatch, &HashSet<u64>) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut waiting = HashSet::new();
    let mut stmt = conn.prepare("SELECT DISTINCT session_key FROM events_pending")?;
    for key in stmt.query_map([], |r| r.get::<_, u64>(0))? {
        waiting.insert(key?);
    }
    let mut stmt = conn.prepare(&query("events_sorted", ""))?;
    for batch in stmt.stream_arrow(duckdb::params_from_iter(params.iter().cloned()))? {
        each(&batch?, &waiting)?;
    }
    if !waiting.is_empty() {
        let none = HashSet::new();
        let mut stmt = conn.prepare(&query(
            "events_overlap",
            "ORDER BY session_key, ts, seq, event_id",
        ))?;
        for batch in stmt.stream_arrow(duckdb::params_from_iter(params.iter().cloned()))? {
            each(&batch?, &none)?;
        }
    }
    Ok(())
}

/// The sessions one pass of a streamed audit reads: each session is in one half
/// by its key, so two passes over the halves, on two connections side by side,
/// give counts that add up ([`stream_sessions`] is mostly one thread reading what
/// DuckDB sends).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Half {
    Lower,
    Upper,
    /// Every session, in one pass.
    All,
}

impl Half {
    /// [`scope_filter`] of `scope`, kept to the sessions of this half.
    pub(crate) fn scope_filter(self, scope: &ResolvedScope) -> (String, Vec<Value>) {
        let (filter, params) = scope_filter(scope);
        let middle = 1u64 << 63;
        let filter = match self {
            Half::Lower => format!("{filter} AND session_key < {middle}"),
            Half::Upper => format!("{filter} AND session_key >= {middle}"),
            Half::All => filter,
        };
        (filter, params)
    }
}

/// Runs `pass` over the sessions of both [`Half`]s, on `conn` and on a second
/// connection side by side, and `merge`s the upper half's result into the
/// lower's; or, unless `spread`, once over every session on `conn` (in the
/// report, whose sections already keep every core busy).
pub(crate) fn by_halves<T: Send>(
    conn: &Connection,
    spread: bool,
    pass: impl Fn(&Connection, Half) -> Result<T, Error> + Sync,
    merge: impl FnOnce(&mut T, T),
) -> Result<T, Error> {
    if !spread {
        return pass(conn, Half::All);
    }
    let upper = clone(conn)?;
    let (lower, upper) = std::thread::scope(|s| {
        let pass = &pass;
        let upper = s.spawn(move || pass(&upper, Half::Upper));
        (
            pass(conn, Half::Lower),
            upper.join().expect("a pass does not panic"),
        )
    });
    let mut lower = lower?;
    merge(&mut lower, upper?);
    Ok(lower)
}

/// Where a streamed row falls ([`SessionCursor::at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RowIn {
    /// The first row of the next session.
    Next,
    /// Another row of the session at hand.
    Same,
    /// A row of a session skipped here (it comes whole from the overlap view later).
    Skipped,
}

/// Follows the session key through the batches of [`stream_sessions`], so every
/// streamed pass tells sessions apart and skips the same rows. A skipped session
/// leaves the one before it open: nothing touches it until the next session starts,
/// so ending it then is the same.
#[derive(Debug, Default)]
pub(crate) struct SessionCursor {
    key: Option<u64>,
    skipping: bool,
}

impl SessionCursor {
    /// Where the row of session `key` falls, given the sessions to `skip`.
    pub(crate) fn at(&mut self, key: u64, skip: &HashSet<u64>) -> RowIn {
        // A new key, or the session skipped in the sorted table now read whole from
        // the overlap view (where nothing is skipped): the next session.
        if self.key != Some(key) || (self.skipping && !skip.contains(&key)) {
            self.key = Some(key);
            self.skipping = skip.contains(&key);
            return if self.skipping {
                RowIn::Skipped
            } else {
                RowIn::Next
            };
        }
        if self.skipping {
            RowIn::Skipped
        } else {
            RowIn::Same
        }
    }
}

/// An integer column of a streamed batch as its Arrow type.
pub(crate) fn primitive<'a, T: duckdb::arrow::datatypes::ArrowPrimitiveType>(
    array: &'a ArrayRef,
    column: &'static str,
) -> Result<&'a PrimitiveArray<T>, Error> {
    array
        .as_primitive_opt::<T>()
        .ok_or_else(|| Error::ColumnType {
            column,
            found: array.data_type().to_string(),
            expected: "an integer",
        })
}

/// A TIMESTAMP column as epoch milliseconds, whatever unit DuckDB sent it in.
pub(crate) fn millis(array: &ArrayRef) -> Result<Int64Array, Error> {
    use duckdb::arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    let bad = || Error::ColumnType {
        column: "ts",
        found: array.data_type().to_string(),
        expected: "TIMESTAMP",
    };
    let ArrowType::Timestamp(unit, _) = array.data_type() else {
        return Err(bad());
    };
    let out = match unit {
        TimeUnit::Second => array
            .as_primitive_opt::<TimestampSecondType>()
            .ok_or_else(bad)?
            .unary(|v| v * 1000),
        TimeUnit::Millisecond => array
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(bad)?
            .unary(|v| v),
        TimeUnit::Microsecond => array
            .as_primitive_opt::<TimestampMicrosecondType>()
            .ok_or_else(bad)?
            .unary(|v| v.div_euclid(1000)),
        TimeUnit::Nanosecond => array
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(bad)?
            .unary(|v| v.div_euclid(1_000_000)),
    };
    Ok(out)
}

/// Row `i` of a VARCHAR column in whichever Arrow layout DuckDB chose.
pub(crate) fn str_at(array: &ArrayRef, i: usize) -> Option<&str> {
    if array.is_null(i) {
        return None;
    }
    match array.data_type() {
        ArrowType::Utf8 => Some(array.as_string::<i32>().value(i)),
        ArrowType::LargeUtf8 => Some(array.as_string::<i64>().value(i)),
        ArrowType::Utf8View => Some(array.as_string_view().value(i)),
        _ => None,
    }
}

/// The query for [`events`] and its parameters.
fn select_sql(scope: &ResolvedScope, cols: &[Col]) -> (String, Vec<Value>) {
    let (filter, params) = scope_filter(scope);
    let select = cols.iter().map(|c| c.sql()).collect::<Vec<_>>().join(", ");
    (
        format!("SELECT {select} FROM events WHERE {filter}"),
        params,
    )
}

/// The scope as a SQL condition over the events tables and views, with its
/// parameters. Bots are left out by a condition that keeps rows without a device
/// (NULL).
pub fn scope_filter(scope: &ResolvedScope) -> (String, Vec<Value>) {
    let mut conditions = Vec::new();
    let mut params = Vec::new();
    if !scope.include_bots {
        conditions.push("coalesce(device, '') <> 'bot'");
    }
    if let Some(site) = &scope.site {
        conditions.push("site = ?");
        params.push(Value::Text(site.clone()));
    }
    if let Some(since) = scope.since_ms {
        conditions.push("ts >= epoch_ms(?::BIGINT)");
        params.push(Value::BigInt(since));
    }
    if let Some(until) = scope.until_ms {
        conditions.push("ts < epoch_ms(?::BIGINT)");
        params.push(Value::BigInt(until));
    }
    let filter = if conditions.is_empty() {
        "true".to_owned()
    } else {
        conditions.join(" AND ")
    };
    (filter, params)
}

fn type_error(col: Col, found: &ArrowType, expected: &'static str) -> Error {
    Error::ColumnType {
        column: col.name(),
        found: found.to_string(),
        expected,
    }
}

type StrIter<'a> = Box<dyn Iterator<Item = Option<&'a str>> + 'a>;

/// The values of a VARCHAR column, whichever Arrow string layout DuckDB chose.
fn str_iter(col: Col, array: &ArrayRef) -> Result<StrIter<'_>, Error> {
    match array.data_type() {
        ArrowType::Utf8 => Ok(Box::new(array.as_string::<i32>().iter())),
        ArrowType::LargeUtf8 => Ok(Box::new(array.as_string::<i64>().iter())),
        ArrowType::Utf8View => Ok(Box::new(array.as_string_view().iter())),
        other => Err(type_error(col, other, "VARCHAR")),
    }
}

/// Appends a numeric column's values: DuckDB's Arrow array of `A` (a `sql_type`
/// column) into a Polars builder of `P`.
fn numbers<A, P>(
    col: Col,
    array: &ArrayRef,
    builder: &mut PrimitiveChunkedBuilder<P>,
    sql_type: &'static str,
) -> Result<(), Error>
where
    A: duckdb::arrow::datatypes::ArrowPrimitiveType,
    P: PolarsNumericType<Native = A::Native>,
{
    let a = array
        .as_primitive_opt::<A>()
        .ok_or_else(|| type_error(col, array.data_type(), sql_type))?;
    if a.null_count() == 0 {
        for &v in a.values() {
            builder.append_value(v);
        }
    } else {
        for v in a {
            builder.append_option(v);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Db, ev};

    #[test]
    fn loads_only_the_scope_once_per_event_id() {
        let db = Db::new();
        db.insert(&[
            ev("a", "s1", 1_000, 1, "pageview").path("/"),
            ev("a", "s1", 1_000, 1, "pageview").path("/"), // resent batch
            ev("b", "s1", 2_000, 2, "click").selector("#buy"),
            ev("c", "s1", 3_000, 3, "pageview").site("other"),
            ev("d", "s2", 9_000, 1, "pageview").path("/late"),
        ]);
        let scope = ResolvedScope {
            site: Some("shop".into()),
            since_ms: Some(1_000),
            until_ms: Some(9_000),
            include_bots: false,
        };
        let df = events(
            &db.conn(),
            &scope,
            &[Col::SessionId, Col::Ts, Col::Seq, Col::Selector, Col::Empty],
        )
        .unwrap()
        .sort(["ts"], SortMultipleOptions::default())
        .unwrap();
        assert_eq!(df.height(), 2);
        let ts: Vec<_> = df
            .column("ts")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(ts, [1_000, 2_000]);
        let sel: Vec<_> = df
            .column("selector")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .collect();
        assert_eq!(sel, [None, Some("#buy")]);
        assert_eq!(df.column("seq").unwrap().dtype(), &DataType::Int32);
        assert_eq!(df.column("empty").unwrap().dtype(), &DataType::Boolean);
    }

    #[test]
    fn bot_events_load_only_when_the_scope_includes_them() {
        let db = Db::new();
        db.insert(&[
            ev("a", "s1", 1_000, 1, "pageview").device("desktop"),
            ev("b", "bot", 2_000, 1, "pageview").device("bot"),
            ev("c", "s2", 3_000, 1, "pageview"), // no device: kept
        ]);
        let sessions = |include_bots| {
            let scope = ResolvedScope {
                include_bots,
                ..ResolvedScope::default()
            };
            let df = events(&db.conn(), &scope, &[Col::SessionId, Col::Device])
                .unwrap()
                .sort(["session_id"], SortMultipleOptions::default())
                .unwrap();
            let mut keys = df
                .column("session_id")
                .unwrap()
                .u64()
                .unwrap()
                .iter()
                .map(Option::unwrap)
                .collect::<Vec<_>>();
            keys.sort_unstable();
            keys
        };
        let keys = |ids: &[&str]| {
            let mut keys: Vec<u64> = ids
                .iter()
                .map(|id| store::session_key("shop", id))
                .collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(sessions(false), keys(&["s1", "s2"]));
        assert_eq!(sessions(true), keys(&["bot", "s1", "s2"]));
    }

    #[test]
    fn every_column_of_the_schema_loads_with_its_type() {
        assert_eq!(
            Col::ALL.len() + 2,
            store::EVENT_COLUMNS,
            "Col::ALL + event_id + session_key"
        );
        for c in Col::ALL {
            assert!(
                store::COLUMNS.iter().any(|s| s.name == c.name()),
                "{} is not a column of the store",
                c.name()
            );
        }
        let db = Db::new();
        db.insert(&[ev("a", "s1", 1_000, 1, "pageview")]);
        let df = events(&db.conn(), &ResolvedScope::default(), &Col::ALL).unwrap();
        assert_eq!(df.height(), 1);
        assert_eq!(df.width(), Col::ALL.len());
        assert_eq!(
            df.column("received_at").unwrap().i64().unwrap().get(0),
            Some(1_500)
        );
        assert_eq!(df.column("line").unwrap().dtype(), &DataType::Int32);
    }

    #[test]
    fn empty_table_gives_typed_empty_frame() {
        let db = Db::new();
        let df = events(
            &db.conn(),
            &ResolvedScope::default(),
            &[Col::SessionId, Col::Ts],
        )
        .unwrap();
        assert_eq!(df.height(), 0);
        assert_eq!(df.column("ts").unwrap().dtype(), &DataType::Int64);
        assert_eq!(df.column("session_id").unwrap().dtype(), &DataType::UInt64);
    }

    #[test]
    fn open_read_only_explains_missing_files_and_tables() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.duckdb");
        assert!(matches!(
            open_read_only(&missing),
            Err(Error::NoSuchFile { .. })
        ));

        let other = dir.path().join("other.duckdb");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x INT)")
            .unwrap();
        assert!(matches!(
            open_read_only(&other),
            Err(Error::NoEventsTable { .. })
        ));

        open_read_only(Db::new().path()).unwrap();
    }

    /// Env var naming the file [`hold_lock_child`] keeps open (read-write, or
    /// read-only with [`HOLD_READ_ONLY_ENV`] set).
    const HOLD_ENV: &str = "CLICKTRAIL_TEST_HOLD_LOCK";
    const HOLD_READ_ONLY_ENV: &str = "CLICKTRAIL_TEST_HOLD_READ_ONLY";

    /// Not a test on its own: the body of the child process [`hold`] starts.
    #[test]
    #[ignore = "helper process of the tests that hold a file open (see `hold`)"]
    fn hold_lock_child() {
        let Ok(path) = std::env::var(HOLD_ENV) else {
            return;
        };
        let _conn = if std::env::var_os(HOLD_READ_ONLY_ENV).is_some() {
            let config = Config::default().access_mode(AccessMode::ReadOnly).unwrap();
            Connection::open_with_flags(&path, config).unwrap()
        } else {
            Connection::open(&path).unwrap()
        };
        std::fs::write(format!("{path}.ready"), b"").unwrap();
        std::thread::sleep(std::time::Duration::from_secs(60));
    }

    /// A child process holding `path` open (read-only or not) until killed.
    fn hold(path: &Path, read_only: bool) -> std::process::Child {
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "load::tests::hold_lock_child",
            "--ignored",
            "--quiet",
        ])
        .env(HOLD_ENV, path)
        .stdout(std::process::Stdio::null());
        if read_only {
            cmd.env(HOLD_READ_ONLY_ENV, "1");
        }
        let child = cmd.spawn().unwrap();
        let ready = std::path::PathBuf::from(format!("{}.ready", path.display()));
        let started = std::time::Instant::now();
        while !ready.exists() && started.elapsed().as_secs() < 30 {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        child
    }

    /// A file of the collector before the `ancestry` column that cannot be
    /// written now (another reader holds it): read as it is, the column empty,
    /// and left unchanged.
    #[test]
    fn an_earlier_file_that_cannot_be_written_is_read_as_it_is() {
        let db = Db::new();
        db.insert(&[
            ev("e1", "s1", 1_000, 0, "pageview").path("/"),
            ev("e2", "s1", 2_000, 1, "click")
                .path("/")
                .selector("button.buy"),
        ]);
        db.append(&[ev("e3", "s2", 3_000, 0, "pageview").path("/cart")]);
        let path = db.path().to_owned();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP VIEW events; DROP VIEW events_overlap; DROP VIEW events_pending;
                 ALTER TABLE events_recent DROP COLUMN ancestry;
                 ALTER TABLE events_sorted DROP COLUMN ancestry;",
            )
            .unwrap();
            conn.execute_batch(&store::schema::create_views().replace(", ancestry", ""))
                .unwrap();
        }
        let mut child = hold(&path, true);
        let outcome = open_read_only(&path)
            .and_then(|c| {
                let cols = [Col::Kind, Col::Path, Col::Ancestry];
                let df = events(&c, &ResolvedScope::default(), &cols)?;
                // A second connection (the audits' second thread) reads the same.
                let other = clone(&c)?;
                let cloned = events(&other, &ResolvedScope::default(), &cols)?;
                Ok((df, store::schema::has_added_columns(&c)?, cloned))
            })
            .map_err(|e| e.to_string());
        child.kill().unwrap();
        child.wait().unwrap();
        let (df, migrated, cloned) = outcome.unwrap();
        assert_eq!(df.height(), 3);
        assert_eq!(df.column("ancestry").unwrap().null_count(), 3);
        let mut paths: Vec<_> = df
            .column("path")
            .unwrap()
            .str()
            .unwrap()
            .iter()
            .map(Option::unwrap)
            .collect();
        paths.sort_unstable();
        assert_eq!(paths, ["/", "/", "/cart"]);
        assert_eq!(cloned.height(), 3);
        assert_eq!(cloned.column("ancestry").unwrap().null_count(), 3);
        // Read through temporary views: the file itself was not changed.
        assert!(!migrated);
        // Once it can be written, it is brought up to date.
        let conn = open_read_only(&path).unwrap();
        assert!(store::schema::has_added_columns(&conn).unwrap());
    }

    #[test]
    fn a_file_held_by_another_process_is_reported_as_locked() {
        let db = Db::new();
        let path = db.path().to_owned();
        let mut child = hold(&path, false);
        let result = open_read_only(&path);
        child.kill().unwrap();
        child.wait().unwrap();
        let Err(err) = result else {
            panic!("the file is held read-write by the child, yet it opened");
        };
        assert!(matches!(err, Error::Locked { .. }), "{err}");
        assert!(err.to_string().contains("--collector"), "{err}");
    }
}

#[cfg(test)]
mod cursor_tests {
    use super::*;

    #[test]
    fn a_skipped_session_is_read_when_the_overlap_view_sends_it() {
        let waiting: HashSet<u64> = [7].into();
        let none = HashSet::new();
        let mut c = SessionCursor::default();
        // The sorted table: session 3, then 7 (waiting: skipped).
        assert_eq!(c.at(3, &waiting), RowIn::Next);
        assert_eq!(c.at(3, &waiting), RowIn::Same);
        assert_eq!(c.at(7, &waiting), RowIn::Skipped);
        assert_eq!(c.at(7, &waiting), RowIn::Skipped);
        // The overlap view starts with that same session 7: now it counts.
        assert_eq!(c.at(7, &none), RowIn::Next);
        assert_eq!(c.at(7, &none), RowIn::Same);
        assert_eq!(c.at(9, &none), RowIn::Next);
    }
}
