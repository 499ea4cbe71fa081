//! Bulk writes through DuckDB's own Arrow scan.
//!
//! duckdb-rs appends Arrow record batches by converting them value by value on one
//! thread (about 500,000 rows/s for the events table). DuckDB's Arrow scan reads a
//! stream of record batches straight into a query, so one `INSERT ... SELECT ...
//! ORDER BY` can check, sort and write millions of rows while the stream is still
//! being produced. duckdb-rs does not expose it, so this module opens the database
//! through DuckDB's C API, hands the `duckdb-rs` [`Connection`] the same database,
//! and runs the scan on a connection of its own ([`Session`]).
//!
//! This is the store's only unsafe code: each call is one C API call on a handle
//! this module opened and closes, with the contract stated beside it.

#![allow(unsafe_code)]

use std::ffi::{CStr, CString};
use std::path::Path;
use std::ptr;

use duckdb::arrow::ffi_stream::FFI_ArrowArrayStream;
use duckdb::arrow::record_batch::RecordBatchReader;
use duckdb::{Connection, ffi};

use crate::compact::{Compacted, Select, compact};
use crate::schema::{SORT_ORDER, column_list, typed_select};

/// Rows for [`Database::load`], which may read them twice.
pub trait Feed {
    /// What stops the feed (its input is unreadable, ...).
    type Error: From<duckdb::Error>;

    /// The rows from their beginning, as record batches with `events_recent`'s
    /// columns, in its order and types.
    fn start(&mut self) -> Result<Box<dyn RecordBatchReader + Send>, Self::Error>;

    /// Called once the batches of [`Feed::start`] are read to their end or dropped:
    /// whether the feed failed.
    fn end(&mut self) -> Result<(), Self::Error>;
}

/// The most rows [`Database::load`] should sort in one pass: its sort holds every
/// row, spilled to disk beyond the memory limit (100M events spilled over 35 GB).
/// A larger feed goes to [`Database::merge`], whose compaction sorts key ranges of
/// about as many rows, one after the other.
pub const ONE_PASS_MAX_ROWS: u64 = crate::compact::CHUNK_ROWS;

/// How [`Database::load`] stored the rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loaded {
    /// Every session was new and every event once: the rows went straight into
    /// `events_sorted`, sorted, in one pass.
    Sorted {
        /// Rows written.
        rows: u64,
    },
    /// Some sessions were already stored, or some events came twice: the rows were
    /// appended to `events_recent` and compacted, each event once, each session
    /// merged with its stored rows.
    Merged {
        /// Rows appended (duplicates included).
        rows: u64,
        /// What the compaction did.
        compacted: Compacted,
    },
}

/// A database file opened for bulk writes: a `duckdb-rs` connection for ordinary
/// statements, and [`Session`]s for Arrow scans, on one database.
pub struct Database {
    // Dropped first: every connection closes before the database does.
    conn: Connection,
    raw: RawDb,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database").finish_non_exhaustive()
    }
}

/// The C handle of the database; closed when dropped, after the connections.
struct RawDb(ffi::duckdb_database);

impl Drop for RawDb {
    fn drop(&mut self) {
        // SAFETY: the handle came from `duckdb_open` and is closed once, here; the
        // `Database` field order drops the `Connection` first, and a `Session`
        // borrows the `Database`, so no connection outlives it.
        unsafe { ffi::duckdb_close(&raw mut self.0) };
    }
}

fn failure(detail: String) -> duckdb::Error {
    duckdb::Error::DuckDBFailure(ffi::Error::new(ffi::DuckDBError), Some(detail))
}

impl Database {
    /// Opens (or creates) the database file at `path`. No other handle may hold the
    /// file: open it after every [`Connection`] to it in this process is dropped.
    pub fn open(path: &Path) -> Result<Self, duckdb::Error> {
        let c_path = CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| failure(format!("{} has a NUL byte", path.display())))?;
        let mut db: ffi::duckdb_database = ptr::null_mut();
        let mut err: *mut std::os::raw::c_char = ptr::null_mut();
        // SAFETY: `c_path` is a valid C string for the call; `db` and `err` are out
        // pointers DuckDB fills; a null config means its defaults.
        let state = unsafe {
            ffi::duckdb_open_ext(c_path.as_ptr(), &raw mut db, ptr::null_mut(), &raw mut err)
        };
        if state != ffi::DuckDBSuccess {
            let detail = if err.is_null() {
                format!("cannot open {}", path.display())
            } else {
                // SAFETY: on failure `err` is a C string DuckDB allocated, freed once.
                let s = unsafe { CStr::from_ptr(err) }
                    .to_string_lossy()
                    .into_owned();
                unsafe { ffi::duckdb_free(err.cast()) };
                s
            };
            if !db.is_null() {
                // SAFETY: a handle DuckDB returned, closed once.
                unsafe { ffi::duckdb_close(&raw mut db) };
            }
            return Err(failure(detail));
        }
        let raw = RawDb(db);
        // SAFETY: `raw.0` is an open database; `open_from_raw` connects to it and does
        // not close it, `RawDb` does, after this connection is dropped.
        let conn = unsafe { Connection::open_from_raw(raw.0) }?;
        Ok(Database { conn, raw })
    }

    /// The `duckdb-rs` connection.
    pub fn conn(&self) -> &Connection {
        &self.conn
    }

    /// A connection for Arrow scans.
    pub fn session(&self) -> Result<Session<'_>, duckdb::Error> {
        let mut con: ffi::duckdb_connection = ptr::null_mut();
        // SAFETY: the database is open while `self` lives; `con` is an out pointer.
        let state = unsafe { ffi::duckdb_connect(self.raw.0, &raw mut con) };
        if state != ffi::DuckDBSuccess {
            // SAFETY: disconnecting a failed (possibly null) handle is allowed.
            unsafe { ffi::duckdb_disconnect(&raw mut con) };
            return Err(failure("cannot connect to the database".to_owned()));
        }
        let mut session = Session {
            con,
            file_db: String::new(),
            _db: std::marker::PhantomData,
        };
        let name: String = self
            .conn
            .query_row("SELECT current_database()", [], |r| r.get(0))?;
        session.file_db = format!("\"{}\"", name.replace('"', "\"\""));
        Ok(session)
    }
}

/// A connection of a [`Database`] that can read Arrow streams.
pub struct Session<'db> {
    con: ffi::duckdb_connection,
    /// The file's database name, quoted.
    file_db: String,
    _db: std::marker::PhantomData<&'db Database>,
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        // SAFETY: the handle came from `duckdb_connect` and is disconnected once.
        unsafe { ffi::duckdb_disconnect(&raw mut self.con) };
    }
}

/// A query's materialized result, destroyed when dropped.
struct QueryResult(ffi::duckdb_result);

impl Drop for QueryResult {
    fn drop(&mut self) {
        // SAFETY: `duckdb_query` filled the result (also on failure); destroyed once.
        unsafe { ffi::duckdb_destroy_result(&raw mut self.0) };
    }
}

impl<'db> Session<'db> {
    fn query(&self, sql: &str) -> Result<QueryResult, duckdb::Error> {
        let c_sql =
            CString::new(sql).map_err(|_| failure("a statement has a NUL byte".to_owned()))?;
        // SAFETY: an all-zero `duckdb_result` is the empty result DuckDB expects to fill.
        let mut result = QueryResult(unsafe { std::mem::zeroed() });
        // SAFETY: `con` is connected, `c_sql` valid for the call, `result` an out value.
        let state = unsafe { ffi::duckdb_query(self.con, c_sql.as_ptr(), &raw mut result.0) };
        if state != ffi::DuckDBSuccess {
            // SAFETY: on failure the result holds an error message or null.
            let msg = unsafe { ffi::duckdb_result_error(&raw mut result.0) };
            let detail = if msg.is_null() {
                "query failed".to_owned()
            } else {
                // SAFETY: a C string owned by `result`, read before it is destroyed.
                unsafe { CStr::from_ptr(msg) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(failure(detail));
        }
        Ok(result)
    }

    /// Runs `sql` (one or more statements); the rows the last one changed.
    pub fn execute(&self, sql: &str) -> Result<u64, duckdb::Error> {
        let mut result = self.query(sql)?;
        // SAFETY: a successful result.
        Ok(unsafe { ffi::duckdb_rows_changed(&raw mut result.0) })
    }

    /// The first row of `sql`'s result, each column as an i64 (0 for NULL).
    pub fn row_i64(&self, sql: &str) -> Result<Vec<i64>, duckdb::Error> {
        let mut result = self.query(sql)?;
        // SAFETY: `result` is a successful result; column and row indexes are within
        // the counts DuckDB reports.
        unsafe {
            if ffi::duckdb_row_count(&raw mut result.0) == 0 {
                return Err(failure("the query returned no row".to_owned()));
            }
            let columns = ffi::duckdb_column_count(&raw mut result.0);
            Ok((0..columns)
                .map(|c| ffi::duckdb_value_int64(&raw mut result.0, c, 0))
                .collect())
        }
    }

    /// Makes the view `ct_feeds.{name}` read `batches` as a table, once, until the
    /// returned [`Scan`] is dropped. Call it outside a transaction: DuckDB creates the
    /// view as a catalog entry, so it lives in an in-memory database of this session
    /// (`ct_feeds`), which a transaction of the file may read but not write.
    pub fn scan(
        &self,
        name: &'static str,
        batches: Box<dyn RecordBatchReader + Send>,
    ) -> Result<Scan<'_, 'db>, duckdb::Error> {
        let c_name =
            CString::new(name).map_err(|_| failure("a view name has a NUL byte".to_owned()))?;
        // On the heap: DuckDB keeps the stream's address until the view is dropped.
        let mut stream = Box::new(FFI_ArrowArrayStream::new(batches));
        self.execute("ATTACH IF NOT EXISTS ':memory:' AS ct_feeds; USE ct_feeds")?;
        // SAFETY: `stream` is a valid Arrow C stream at a fixed address that outlives
        // every use DuckDB makes of it: `Scan` drops the view before the stream.
        let state = unsafe {
            ffi::duckdb_arrow_scan(
                self.con,
                c_name.as_ptr(),
                (&raw mut *stream).cast::<std::ffi::c_void>() as ffi::duckdb_arrow_stream,
            )
        };
        let back = self.execute(&format!("USE {}", self.file_db));
        if state != ffi::DuckDBSuccess {
            return Err(failure(format!("cannot scan the batches as {name}")));
        }
        back?;
        Ok(Scan {
            session: self,
            name,
            stream: Some(stream),
        })
    }
}

/// A stream of record batches readable as the view `ct_feeds.<name>`; the view is
/// dropped, then the stream, when this is dropped.
pub struct Scan<'s, 'db> {
    session: &'s Session<'db>,
    name: &'static str,
    stream: Option<Box<FFI_ArrowArrayStream>>,
}

impl std::fmt::Debug for Scan<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scan")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for Scan<'_, '_> {
    fn drop(&mut self) {
        // If the view cannot be dropped (the connection is broken), the stream is
        // leaked rather than freed under a view that still points at it.
        if self
            .session
            .execute(&format!("DROP VIEW IF EXISTS ct_feeds.{}", self.name))
            .is_err()
        {
            std::mem::forget(self.stream.take());
        }
    }
}

impl Database {
    /// Stores the rows of `feed`, each event once, each session in one place in
    /// `events_sorted` and in order, in one transaction per pass. Every row fed has
    /// `received_at` = `received_ms`, a time later than every stored row's
    /// ([`Database::next_received_ms`]), which tells the new rows from the stored.
    ///
    /// First pass: the rows are sorted and inserted into `events_sorted` while the
    /// feed produces them. Before that transaction commits, it checks that none of
    /// the new rows' sessions had rows stored before and that no event came twice; if
    /// either fails it is rolled back, and a second pass appends the rows to
    /// `events_recent` and compacts them (merged with the stored rows of their
    /// sessions, duplicates dropped), as the collector's writer does.
    pub fn load<F: Feed>(&self, feed: &mut F, received_ms: i64) -> Result<Loaded, F::Error> {
        let s = self.session()?;
        let (cols, typed) = (column_list(), typed_select());
        let insert = format!(
            "INSERT INTO events_sorted ({cols}) SELECT {typed} FROM ct_feeds.ct_feed ORDER BY {SORT_ORDER}"
        );
        if let Some(rows) =
            Self::pass(&s, feed, &insert, |s| Self::only_new_events(s, received_ms))?
        {
            return Ok(Loaded::Sorted { rows });
        }
        self.merge(feed)
    }

    /// Stores the rows of `feed` through the append table: appended in one
    /// transaction, then compacted (merged with the stored rows of their sessions,
    /// each event once). For a feed known to continue stored sessions.
    pub fn merge<F: Feed>(&self, feed: &mut F) -> Result<Loaded, F::Error> {
        let s = self.session()?;
        let rows = Self::pass(
            &s,
            feed,
            "INSERT INTO events_recent SELECT * FROM ct_feeds.ct_feed",
            |_| Ok(true),
        )?
        .unwrap_or(0);
        drop(s);
        let compacted = compact(&self.conn, Select::All)?;
        Ok(Loaded::Merged { rows, compacted })
    }

    /// One read of `feed` by `insert` (which reads `ct_feeds.ct_feed`), in one
    /// transaction, committed when `keep` says so: the rows inserted, or `None`
    /// when rolled back.
    fn pass<F: Feed>(
        s: &Session<'_>,
        feed: &mut F,
        insert: &str,
        keep: impl FnOnce(&Session<'_>) -> Result<bool, duckdb::Error>,
    ) -> Result<Option<u64>, F::Error> {
        let scan = s.scan("ct_feed", feed.start()?)?;
        s.execute("BEGIN TRANSACTION")?;
        let inserted = s.execute(insert);
        // The feed's own error (an unreadable file) explains a failed insert best.
        let ended = feed.end();
        let kept = match (inserted, ended) {
            (Ok(rows), Ok(())) => keep(s)
                .map(|kept| kept.then_some(rows))
                .map_err(F::Error::from),
            (_, Err(e)) => Err(e),
            (Err(e), Ok(())) => Err(e.into()),
        };
        match kept {
            Ok(Some(_)) => s.execute("COMMIT")?,
            Ok(None) => s.execute("ROLLBACK")?,
            Err(e) => {
                let _ = s.execute("ROLLBACK");
                return Err(e);
            }
        };
        drop(scan);
        Ok(kept.ok().flatten())
    }

    /// In the transaction that inserted rows received at `received_ms` into
    /// `events_sorted`: whether no session of those rows had rows stored before and
    /// no event is there twice.
    fn only_new_events(s: &Session<'_>, received_ms: i64) -> Result<bool, duckdb::Error> {
        let at = format!("received_at = epoch_ms({received_ms}::BIGINT)");
        let counts = s.row_i64(&format!(
            "WITH new AS MATERIALIZED (SELECT DISTINCT session_key FROM events_sorted WHERE {at})
             SELECT
                 (SELECT count(*) FROM events_recent
                  WHERE session_key IN (SELECT session_key FROM new)),
                 (SELECT count(*) FROM events_sorted
                  WHERE session_key IN (SELECT session_key FROM new) AND NOT {at}),
                 (SELECT count(*) - count(DISTINCT (session_key, event_id)) FROM events_sorted
                  WHERE {at})"
        ))?;
        Ok(counts == [0, 0, 0])
    }

    /// Whether any of the sessions `keys` has rows stored.
    pub fn any_stored(&self, keys: &[u64]) -> Result<bool, duckdb::Error> {
        if keys.is_empty() {
            return Ok(false);
        }
        let list = keys
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let n: i64 = self.conn.query_row(
            &format!(
                "SELECT (SELECT count(*) FROM events_sorted WHERE session_key IN ({list}))
                      + (SELECT count(*) FROM events_recent WHERE session_key IN ({list}))"
            ),
            [],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// A receive time (epoch ms) later than every stored row's and not before now:
    /// the rows of a bulk write get it, so they can be told from the stored ones.
    pub fn next_received_ms(&self, now_ms: i64) -> Result<i64, duckdb::Error> {
        let last: Option<i64> = self.conn.query_row(
            "SELECT epoch_ms(max(t)) FROM (
                 SELECT max(received_at) AS t FROM events_sorted
                 UNION ALL SELECT max(received_at) FROM events_recent)",
            [],
            |r| r.get(0),
        )?;
        Ok(last.map_or(now_ms, |t| now_ms.max(t + 1)))
    }
}

#[cfg(test)]
mod tests {
    use duckdb::arrow::record_batch::{RecordBatch, RecordBatchIterator};

    use super::*;
    use crate::schema::{create_or_migrate, session_key};

    /// Rows of `events_recent`, made by DuckDB: `(event_id, session, ts ms, seq)`.
    fn batches(rows: &[(&str, &str, i64, i32)], received_ms: i64) -> Vec<RecordBatch> {
        let mem = Connection::open_in_memory().unwrap();
        create_or_migrate(&mem).unwrap();
        for (id, session, ts, seq) in rows {
            mem.execute(
                "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq,
                     session_id, visitor_id, path, browser, os, device, session_key)
                 VALUES ('shop', ?, 'pageview', epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ?, ?,
                     'v', '/', 'b', 'o', 'desktop', ?)",
                duckdb::params![
                    id,
                    ts,
                    received_ms,
                    seq,
                    session,
                    session_key("shop", session)
                ],
            )
            .unwrap();
        }
        let mut stmt = mem.prepare("SELECT * FROM events_recent").unwrap();
        stmt.query_arrow([]).unwrap().collect()
    }

    /// A feed of fixed batches; `fail` makes it report an error when it ends.
    struct Fixed {
        batches: Vec<RecordBatch>,
        fail: bool,
        starts: usize,
    }

    /// The feed's own failure.
    #[derive(Debug)]
    struct FeedFailed;

    impl From<duckdb::Error> for FeedFailed {
        fn from(e: duckdb::Error) -> Self {
            panic!("database: {e}")
        }
    }

    impl Feed for Fixed {
        type Error = FeedFailed;

        fn start(&mut self) -> Result<Box<dyn RecordBatchReader + Send>, FeedFailed> {
            self.starts += 1;
            let schema = self.batches[0].schema();
            Ok(Box::new(RecordBatchIterator::new(
                self.batches.clone().into_iter().map(Ok),
                schema,
            )))
        }

        fn end(&mut self) -> Result<(), FeedFailed> {
            if self.fail { Err(FeedFailed) } else { Ok(()) }
        }
    }

    fn count(db: &Database, sql: &str) -> i64 {
        db.conn().query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn stored(db: &Database) -> Vec<(String, String)> {
        crate::compact::tests::sorted(db.conn())
    }

    fn open(path: &Path) -> Database {
        let db = Database::open(path).unwrap();
        create_or_migrate(db.conn()).unwrap();
        db
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(s, e)| ((*s).to_owned(), (*e).to_owned()))
            .collect()
    }

    #[test]
    fn new_sessions_go_sorted_in_one_pass_and_stored_ones_are_merged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.duckdb");
        let db = open(&path);
        let t = db.next_received_ms(1_000_000).unwrap();
        assert_eq!(t, 1_000_000, "an empty store takes now");
        let mut first = Fixed {
            batches: batches(
                &[
                    ("b2", "s2", 20, 1),
                    ("a2", "s1", 20, 2),
                    ("a1", "s1", 10, 1),
                ],
                t,
            ),
            fail: false,
            starts: 0,
        };
        assert_eq!(db.load(&mut first, t).unwrap(), Loaded::Sorted { rows: 3 });
        assert_eq!(first.starts, 1, "one pass");
        let order = stored(&db);
        let key = |s: &str| session_key("shop", s);
        let mut expect = vec![("s1", "a1"), ("s1", "a2"), ("s2", "b2")];
        expect.sort_by_key(|(s, _)| key(s));
        assert_eq!(order, pairs(&expect));

        // s1 again (one event repeated, one new) and a new s3: merged.
        let t2 = db.next_received_ms(1_000_000).unwrap();
        assert_eq!(t2, t + 1, "later than every stored row");
        let mut second = Fixed {
            batches: batches(
                &[("a2", "s1", 20, 2), ("a3", "s1", 30, 3), ("c1", "s3", 5, 1)],
                t2,
            ),
            fail: false,
            starts: 0,
        };
        let loaded = db.load(&mut second, t2).unwrap();
        assert!(
            matches!(loaded, Loaded::Merged { rows: 3, .. }),
            "{loaded:?}"
        );
        assert_eq!(
            second.starts, 2,
            "the sorted pass was rolled back, then merged"
        );
        assert_eq!(count(&db, "SELECT count(*) FROM events"), 5);
        assert_eq!(count(&db, "SELECT count(*) FROM events_recent"), 0);
        // Each session in one place, in order, each event once.
        let order = stored(&db);
        let s1: Vec<usize> = (0..order.len()).filter(|&i| order[i].0 == "s1").collect();
        assert_eq!(s1.len(), 3);
        assert_eq!(s1[2] - s1[0], 2, "s1 in one run: {order:?}");
        let ids: Vec<&str> = s1.iter().map(|&i| order[i].1.as_str()).collect();
        assert_eq!(ids, ["a1", "a2", "a3"]);
    }

    #[test]
    fn a_feed_that_fails_stores_nothing_and_leaves_no_view() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.duckdb");
        {
            let db = open(&path);
            let t = db.next_received_ms(1_000).unwrap();
            let mut feed = Fixed {
                batches: batches(&[("a1", "s1", 10, 1), ("a2", "s1", 20, 2)], t),
                fail: true,
                starts: 0,
            };
            assert!(matches!(db.load(&mut feed, t), Err(FeedFailed)));
            assert_eq!(count(&db, "SELECT count(*) FROM events"), 0);
        }
        // The file opens as any other, with no view left of the scan.
        let conn = Connection::open(&path).unwrap();
        let views: i64 = conn
            .query_row(
                "SELECT count(*) FROM duckdb_views() WHERE view_name LIKE 'ct_%'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(views, 0);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0);
    }
}
