//! The events schema: one column table ([`COLUMNS`]) from which the DDL, the
//! migrations, the writer's column order and the readers' column list all come.
//!
//! Two tables and three views hold the events of a DuckDB file:
//!
//! - `events_recent`: what the collector appends, batch after batch, in [`COLUMNS`]
//!   order (the writer's Appender order). Small: [`crate::compact`] moves sessions
//!   out of it once they are idle.
//! - `events_sorted`: the typed layout the audits read. `kind` is the
//!   [`KIND_TYPE`] enum, `session_key` a fixed-size 64-bit id of (site, session), and
//!   rows are stored in blocks sorted by (site, `session_key`, ts, seq, `event_id`), each
//!   session whole in one block, each event once. DuckDB keeps low-cardinality text
//!   (site, browser, os, device, nav, `field_type`, ...) dictionary-encoded on disk.
//! - `events_pending` (view): `events_recent` in the typed layout.
//! - `events_overlap` (view): the sessions that have rows in `events_recent`, with
//!   their rows from both tables, each event once (first received wins).
//! - `events` (view): every event once: the sorted rows of all other sessions, then
//!   `events_overlap`. This is what audits, tests and anyone's SQL read.
//!
//! Append-only for users: sessions, funnels and exits are derived at analysis time,
//! never by UPDATE; compaction only moves rows between the two tables.

use std::fmt::Write as _;

use duckdb::Connection;

/// One column of the events table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Its name, in every table and view.
    pub name: &'static str,
    /// Its DuckDB type in `events_recent` (what the writer appends).
    pub ty: &'static str,
    /// Its DuckDB type in `events_sorted` and the views, when it differs from `ty`.
    pub typed: Option<&'static str>,
    pub not_null: bool,
    /// Added after the first release: a file written before gets it on open.
    pub added: bool,
    /// What it holds.
    pub doc: &'static str,
}

impl Column {
    /// Its DuckDB type in a table of the `typed` layout (`events_sorted`) or not.
    fn ty_in(&self, typed: bool) -> &'static str {
        if typed {
            self.typed.unwrap_or(self.ty)
        } else {
            self.ty
        }
    }
}

const fn col(name: &'static str, ty: &'static str, doc: &'static str) -> Column {
    Column {
        name,
        ty,
        typed: None,
        not_null: false,
        added: false,
        doc,
    }
}

const fn required(name: &'static str, ty: &'static str, doc: &'static str) -> Column {
    Column {
        not_null: true,
        ..col(name, ty, doc)
    }
}

const fn added(name: &'static str, ty: &'static str, doc: &'static str) -> Column {
    Column {
        added: true,
        ..col(name, ty, doc)
    }
}

/// The DuckDB enum type of `kind` in the typed layout.
pub const KIND_TYPE: &str = "event_kind";

/// Every stored event kind: what the tracker sends, and `link_view`, the row a
/// `links` event becomes. The enum's order is this order.
pub const KINDS: [&str; 16] = [
    protocol::kind::PAGEVIEW,
    protocol::kind::SCREEN,
    protocol::kind::CLICK,
    protocol::kind::FOCUS,
    protocol::kind::BLUR,
    protocol::kind::CHANGE,
    protocol::kind::SUBMIT,
    protocol::kind::LEAVE,
    protocol::kind::CUSTOM,
    protocol::kind::IDENTIFY,
    protocol::kind::LINKS,
    protocol::kind::LINK_VIEW,
    protocol::kind::AD_VIEW,
    protocol::kind::ERROR,
    protocol::kind::DEAD_CLICK,
    protocol::kind::INVALID,
];

/// Number of columns the writer appends.
pub const EVENT_COLUMNS: usize = 37;

/// The events columns, in the order the writer appends them.
pub const COLUMNS: [Column; EVENT_COLUMNS] = [
    required("site", "VARCHAR", "data-site of the snippet"),
    required(
        "event_id",
        "VARCHAR",
        "random 128-bit id from the tracker (32 hex): the same event sent twice is stored once",
    ),
    Column {
        typed: Some(KIND_TYPE),
        ..required("kind", "VARCHAR", "event kind (protocol::kind)")
    },
    required(
        "ts",
        "TIMESTAMP",
        "event time, UTC (client clock, corrected when skewed by > 60 s)",
    ),
    required(
        "received_at",
        "TIMESTAMP",
        "when the collector received the batch, UTC",
    ),
    required(
        "seq",
        "INTEGER",
        "per-page sequence number: orders equal times",
    ),
    required(
        "session_id",
        "VARCHAR",
        "tracker session (sessionStorage, 30 min idle)",
    ),
    required(
        "visitor_id",
        "VARCHAR",
        "hash(daily salt, site, ip, user agent); never the ip",
    ),
    required("path", "VARCHAR", "page path, emails and tokens redacted"),
    col(
        "url",
        "VARCHAR",
        "page url, query reduced to utm_*/gclid/fbclid/msclkid/ref",
    ),
    col(
        "referrer",
        "VARCHAR",
        "document.referrer (page views), same scrubbing",
    ),
    col("title", "VARCHAR", "document title"),
    col(
        "nav",
        "VARCHAR",
        "navigate | reload | back_forward | forward | push | replace | pop | hash",
    ),
    col("screen", "VARCHAR", "data-ct-screen shown at the time"),
    col("selector", "VARCHAR", "clicked element"),
    col("text", "VARCHAR", "clicked element text, <= 64 chars"),
    col("href", "VARCHAR", "clicked link target, scrubbed"),
    col("x", "INTEGER", "click position"),
    col("y", "INTEGER", "click position"),
    col("form", "VARCHAR", "form of a field event"),
    col("field", "VARCHAR", "field of a field event"),
    col("field_type", "VARCHAR", "input type of the field"),
    col(
        "duration_ms",
        "BIGINT",
        "focus time (blur) or time on page (leave)",
    ),
    col(
        "empty",
        "BOOLEAN",
        "field left blank (blur/change); never the value",
    ),
    col("name", "VARCHAR", "custom event name"),
    col("props", "VARCHAR", "custom event properties, JSON"),
    col(
        "user_id",
        "VARCHAR",
        "identify(), keyed hash unless the site keeps ids",
    ),
    col("browser", "VARCHAR", "from the user agent"),
    col("os", "VARCHAR", "from the user agent"),
    col(
        "device",
        "VARCHAR",
        "desktop | mobile | tablet | bot | other",
    ),
    added(
        "status",
        "INTEGER",
        "HTTP status of the document (page views)",
    ),
    added(
        "ad",
        "VARCHAR",
        "CAMPAIGN:VARIANT (ad views, clicks inside an ad)",
    ),
    added(
        "message",
        "VARCHAR",
        "JavaScript error message (errors), <= 256 chars",
    ),
    added("source", "VARCHAR", "script URL of an error, scrubbed"),
    added("line", "INTEGER", "line of an error"),
    added(
        "session_key",
        "UBIGINT",
        "64-bit id of (site, session_id), see session_key(): a session's rows are stored together",
    ),
    added(
        "ancestry",
        "VARCHAR",
        "clicked element and the elements it is in, innermost first: tag#id.class ... (clicks)",
    ),
];

/// The SQL expression that gives a row its `session_key`: the low 64 bits of the
/// MD5 of `site`, a zero byte, `session_id` ([`session_key`] in Rust). Used where
/// rows were written without one (files of older collectors).
pub const SESSION_KEY_SQL: &str = "md5_number_lower(site || chr(0) || session_id)";

/// The `session_key` of a session: the last 8 bytes (little-endian) of
/// MD5(site, 0, `session_id`), as DuckDB's [`SESSION_KEY_SQL`] computes it. Two
/// sessions share a key with a chance of about n²/2⁶⁵ (3·10⁻⁶ for 10 million
/// sessions).
pub fn session_key(site: &str, session_id: &str) -> u64 {
    let mut ctx = md5::Context::new();
    ctx.consume(site.as_bytes());
    ctx.consume([0u8]);
    ctx.consume(session_id.as_bytes());
    let digest = ctx.compute();
    u64::from_le_bytes(digest.0[8..].try_into().expect("8 bytes"))
}

/// The column list of the tables and views, joined by `, `.
pub fn column_list() -> String {
    COLUMNS
        .iter()
        .map(|c| c.name)
        .collect::<Vec<_>>()
        .join(", ")
}

fn table_ddl(name: &str, columns: &[Column], typed: bool) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {name} (\n");
    for (i, c) in columns.iter().enumerate() {
        let ty = c.ty_in(typed);
        let null = if c.not_null { " NOT NULL" } else { "" };
        let comma = if i + 1 < columns.len() { "," } else { "" };
        let _ = writeln!(sql, "    {} {ty}{null}{comma} -- {}", c.name, c.doc);
    }
    sql.push_str(");\n");
    sql
}

/// `CREATE TABLE events_recent`: the append table, in the writer's order.
pub fn create_recent() -> String {
    table_ddl("events_recent", &COLUMNS, false)
}

/// `CREATE TABLE events_sorted`: the typed, sorted layout.
pub fn create_sorted() -> String {
    let columns = COLUMNS.map(|c| Column {
        not_null: c.not_null || c.name == "session_key",
        ..c
    });
    table_ddl("events_sorted", &columns, true)
}

/// `CREATE TYPE event_kind AS ENUM (...)`.
fn create_kind_type() -> String {
    let values = KINDS
        .iter()
        .map(|k| format!("'{k}'"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("CREATE TYPE {KIND_TYPE} AS ENUM ({values});")
}

/// The SELECT list that turns a row of `events_recent` into the typed layout.
pub fn typed_select() -> String {
    COLUMNS
        .iter()
        .map(|c| match c.typed {
            Some(ty) => format!("CAST({0} AS {ty}) AS {0}", c.name),
            None => c.name.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The order of `events_sorted`: each session's events together, in (ts, seq) order.
pub const SORT_ORDER: &str = "site, session_key, ts, seq, event_id";

/// Which copy of an event is kept: the first received (then the first recorded).
pub const DEDUPE: &str =
    "QUALIFY row_number() OVER (PARTITION BY session_key, event_id ORDER BY received_at, seq) = 1";

/// The three read views (see the module docs).
pub fn create_views() -> String {
    let cols = column_list();
    format!(
        "CREATE OR REPLACE VIEW events_pending AS SELECT {typed} FROM events_recent;
CREATE OR REPLACE VIEW events_overlap AS
    SELECT {cols} FROM (
        SELECT {cols} FROM events_sorted
        WHERE session_key IN (SELECT session_key FROM events_pending)
        UNION ALL
        SELECT {cols} FROM events_pending
    ) {DEDUPE};
CREATE OR REPLACE VIEW events AS
    SELECT {cols} FROM events_sorted
    WHERE session_key NOT IN (SELECT session_key FROM events_pending)
    UNION ALL
    SELECT {cols} FROM events_overlap;
",
        typed = typed_select(),
    )
}

/// Whether the file's events are still in the layout of the first releases: one
/// `events` base table that every batch was appended to, which
/// [`create_or_migrate`] brings up to date.
pub fn is_old(conn: &Connection) -> Result<bool, duckdb::Error> {
    any_row(
        conn,
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'events' AND NOT temporary",
    )
}

/// Whether the count `sql` asks for is above 0.
fn any_row(conn: &Connection, sql: &str) -> Result<bool, duckdb::Error> {
    let n: i64 = conn.query_row(sql, [], |r| r.get(0))?;
    Ok(n > 0)
}

/// Whether a file in this layout has every column added since its layout came
/// (else [`create_or_migrate`] adds them).
pub fn has_added_columns(conn: &Connection) -> Result<bool, duckdb::Error> {
    let added: Vec<&str> = COLUMNS.iter().filter(|c| c.added).map(|c| c.name).collect();
    let list = added
        .iter()
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let n: i64 = conn.query_row(
        &format!(
            "SELECT count(*) FROM duckdb_columns() WHERE table_name IN ('events_recent', 'events_sorted') \
             AND database_name = current_database() AND schema_name = current_schema() \
             AND column_name IN ({list})"
        ),
        [],
        |r| r.get(0),
    )?;
    Ok(usize::try_from(n).is_ok_and(|n| n == 2 * added.len()))
}

/// Whether a file holds clicktrail events in this layout.
pub fn is_current(conn: &Connection) -> Result<bool, duckdb::Error> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('events_recent', 'events_sorted')",
        [],
        |r| r.get(0),
    )?;
    Ok(n == 2 && !is_old(conn)?)
}

/// Creates the events tables, type and views, or brings a file written by an older
/// collector up to date, in one transaction:
///
/// - an `events` table of the first releases becomes `events_recent` (its columns are
///   the append table's, plus the ones added since), so nothing is copied and nothing
///   lost; the next [`crate::compact`] moves it into the sorted layout, dropping the
///   duplicates older collectors kept;
/// - columns added since are added.
///
/// Safe to run on every open.
pub fn create_or_migrate(conn: &Connection) -> Result<(), duckdb::Error> {
    crate::transaction(conn, || {
        if is_old(conn)? {
            conn.execute_batch("ALTER TABLE events RENAME TO events_recent")?;
        }
        let kind_type: i64 = conn.query_row(
            "SELECT count(*) FROM duckdb_types() WHERE type_name = ? AND NOT internal",
            [KIND_TYPE],
            |r| r.get(0),
        )?;
        if kind_type == 0 {
            conn.execute_batch(&create_kind_type())?;
        }
        conn.execute_batch(&create_recent())?;
        add_columns(
            conn,
            "events_recent",
            false,
            COLUMNS.iter().filter(|c| c.added),
        )?;
        conn.execute_batch(&format!(
            "UPDATE events_recent SET session_key = {SESSION_KEY_SQL} WHERE session_key IS NULL"
        ))?;
        conn.execute_batch(&create_sorted())?;
        // Columns added since the sorted layout came (a file of an earlier
        // collector of this layout), empty in the rows it holds.
        add_columns(
            conn,
            "events_sorted",
            true,
            COLUMNS
                .iter()
                .filter(|c| c.added && c.name != "session_key"),
        )?;
        conn.execute_batch(&create_views())
    })
}

/// A file of an earlier collector of this layout that cannot be written (a
/// read-only copy, or one another reader holds): read as the current layout,
/// the columns added since empty, through temporary views of the same names
/// over its tables (`temp` comes first in `DuckDB`'s search path). The file is
/// not changed; the views last as long as `conn`.
pub fn read_as_current(conn: &Connection) -> Result<(), duckdb::Error> {
    let db: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
    let db = db.replace('"', "\"\"");
    let mut columns_of = conn.prepare(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = current_database() \
         AND schema_name = 'main' AND table_name = ?",
    )?;
    for (table, typed) in [("events_recent", false), ("events_sorted", true)] {
        let have: Vec<String> = columns_of
            .query_map([table], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let select = COLUMNS
            .iter()
            .map(|c| {
                if have.iter().any(|h| h == c.name) {
                    c.name.to_owned()
                } else if c.name == "session_key" {
                    // What `create_or_migrate` fills it with.
                    format!("{SESSION_KEY_SQL} AS session_key")
                } else {
                    format!("CAST(NULL AS {}) AS {}", c.ty_in(typed), c.name)
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP VIEW {table} AS SELECT {select} FROM \"{db}\".main.{table}"
        ))?;
    }
    conn.execute_batch(
        &create_views().replace("CREATE OR REPLACE VIEW", "CREATE OR REPLACE TEMP VIEW"),
    )
}

/// Whether `conn` reads a file through [`read_as_current`]'s views.
pub fn reads_as_current(conn: &Connection) -> Result<bool, duckdb::Error> {
    any_row(
        conn,
        "SELECT count(*) FROM duckdb_views() WHERE temporary AND view_name = 'events'",
    )
}

/// Adds to `table` those of `columns` it lacks, with their `typed` type if it
/// has the typed layout.
fn add_columns<'a>(
    conn: &Connection,
    table: &str,
    typed: bool,
    columns: impl Iterator<Item = &'a Column>,
) -> Result<(), duckdb::Error> {
    for c in columns {
        conn.execute_batch(&format!(
            "ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {} {}",
            c.name,
            c.ty_in(typed)
        ))?;
    }
    Ok(())
}

/// The first release's events table, as it was created: what a file written by an
/// older collector holds (tests migrate it).
pub const CREATE_EVENTS_V1: &str = "
CREATE TABLE IF NOT EXISTS events (
    site VARCHAR NOT NULL, event_id VARCHAR NOT NULL, kind VARCHAR NOT NULL,
    ts TIMESTAMP NOT NULL, received_at TIMESTAMP NOT NULL, seq INTEGER NOT NULL,
    session_id VARCHAR NOT NULL, visitor_id VARCHAR NOT NULL, path VARCHAR NOT NULL,
    url VARCHAR, referrer VARCHAR, title VARCHAR, nav VARCHAR, screen VARCHAR,
    selector VARCHAR, text VARCHAR, href VARCHAR, x INTEGER, y INTEGER, form VARCHAR,
    field VARCHAR, field_type VARCHAR, duration_ms BIGINT, empty BOOLEAN, name VARCHAR,
    props VARCHAR, user_id VARCHAR, browser VARCHAR, os VARCHAR, device VARCHAR
);";

#[cfg(test)]
mod tests {
    use super::*;

    fn columns_of(conn: &Connection, table: &str) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_name = ? ORDER BY ordinal_position",
            )
            .unwrap();
        stmt.query_map([table], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn the_tables_and_views_come_from_the_column_table() {
        let conn = Connection::open_in_memory().unwrap();
        create_or_migrate(&conn).unwrap();
        create_or_migrate(&conn).unwrap(); // idempotent
        let recent = columns_of(&conn, "events_recent");
        assert_eq!(recent.len(), EVENT_COLUMNS);
        for (c, (name, ty)) in COLUMNS.iter().zip(&recent) {
            assert_eq!((c.name, c.ty), (name.as_str(), ty.as_str()));
        }
        for table in [
            "events_sorted",
            "events_pending",
            "events_overlap",
            "events",
        ] {
            let cols = columns_of(&conn, table);
            assert_eq!(cols.len(), EVENT_COLUMNS, "{table}");
            assert_eq!(
                cols[35],
                ("session_key".into(), "UBIGINT".into()),
                "{table}"
            );
            assert_eq!(cols[2].0, "kind");
            assert!(
                cols[2].1.starts_with("ENUM") || cols[2].1 == KIND_TYPE,
                "{cols:?}"
            );
        }
        assert!(is_current(&conn).unwrap());
        assert!(!is_old(&conn).unwrap());
    }

    /// `conn` as the collector before the `ancestry` column left its file: its
    /// tables without it, its views over its columns, one event stored.
    fn as_before_ancestry(conn: &Connection) {
        create_or_migrate(conn).unwrap();
        conn.execute_batch(
            "DROP VIEW events; DROP VIEW events_overlap; DROP VIEW events_pending;
             ALTER TABLE events_recent DROP COLUMN ancestry;
             ALTER TABLE events_sorted DROP COLUMN ancestry;
             INSERT INTO events_sorted (site, event_id, kind, ts, received_at, seq, session_id,
                 visitor_id, path, browser, os, device, session_key)
             VALUES ('shop', 'e1', 'click', now(), now(), 0, 's', 'v', '/', 'b', 'o', 'd', 1);",
        )
        .unwrap();
        let old_views = create_views().replace(", ancestry", "");
        assert!(!old_views.contains("ancestry"));
        conn.execute_batch(&old_views).unwrap();
    }

    /// A file of an earlier collector of this layout, without the columns added
    /// since: opening it adds them to both tables, and its rows stay.
    #[test]
    fn a_file_without_the_latest_columns_gets_them() {
        let conn = Connection::open_in_memory().unwrap();
        as_before_ancestry(&conn);
        assert!(is_current(&conn).unwrap());
        assert!(!has_added_columns(&conn).unwrap());
        create_or_migrate(&conn).unwrap();
        assert!(has_added_columns(&conn).unwrap());
        let (n, none): (i64, i64) = conn
            .query_row(
                "SELECT count(*), count(*) FILTER (WHERE ancestry IS NULL) FROM events",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((n, none), (1, 1));
    }

    /// The same file, read-only (a copy that cannot be written): read as it is,
    /// the column added since empty, and left unchanged.
    #[test]
    fn a_read_only_file_without_the_latest_columns_reads_them_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.duckdb");
        {
            let conn = Connection::open(&path).unwrap();
            as_before_ancestry(&conn);
            conn.execute_batch(
                "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id,
                     visitor_id, path, browser, os, device, session_key)
                 VALUES ('shop', 'e2', 'click', now(), now(), 1, 's2', 'v', '/a', 'b', 'o', 'd',
                     md5_number_lower('shop' || chr(0) || 's2'));",
            )
            .unwrap();
        }
        let read_only = || {
            let config = duckdb::Config::default()
                .access_mode(duckdb::AccessMode::ReadOnly)
                .unwrap();
            Connection::open_with_flags(&path, config).unwrap()
        };
        let conn = read_only();
        assert!(is_current(&conn).unwrap());
        assert!(!has_added_columns(&conn).unwrap());
        assert!(conn.execute_batch("SELECT ancestry FROM events").is_err());
        read_as_current(&conn).unwrap();
        let row = |sql: &str| -> (i64, i64, String) {
            conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .unwrap()
        };
        assert_eq!(
            row(
                "SELECT count(*), count(*) FILTER (WHERE ancestry IS NULL), \
                 string_agg(event_id, ',' ORDER BY event_id) FROM events"
            ),
            (2, 2, "e1,e2".to_owned())
        );
        assert_eq!(
            row("SELECT count(*), count(ancestry), string_agg(path, ',') FROM events_pending"),
            (1, 0, "/a".to_owned())
        );
        let mut all = conn.prepare("SELECT * FROM events").unwrap();
        all.execute([]).unwrap();
        assert_eq!(all.column_count(), EVENT_COLUMNS);
        drop(all);
        drop(conn);
        // The file is as it was.
        let conn = read_only();
        assert!(!has_added_columns(&conn).unwrap());
        assert!(conn.execute_batch("SELECT ancestry FROM events").is_err());
    }

    #[test]
    fn every_protocol_kind_is_a_stored_kind() {
        for k in protocol::kind::ALL {
            assert!(KINDS.contains(&k), "{k}");
        }
    }

    #[test]
    fn rust_and_duckdb_give_the_same_session_key() {
        let conn = Connection::open_in_memory().unwrap();
        for (site, sid) in [
            ("shop", "0123456789abcdef0123456789abcdef"),
            ("shop", "s2"),
            ("other", "s2"),
            ("", ""),
            ("ünïcode", "✓ session"),
        ] {
            let sql: u64 = conn
                .query_row(
                    &format!("SELECT {SESSION_KEY_SQL} FROM (SELECT ? AS site, ? AS session_id)"),
                    [site, sid],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(sql, session_key(site, sid), "{site} {sid}");
        }
        assert_ne!(session_key("shop", "s1"), session_key("shop", "s2"));
        assert_ne!(session_key("a", "bc"), session_key("ab", "c"));
    }
}
