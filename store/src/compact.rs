//! Compaction: moves whole sessions from `events_recent` (the append table) into
//! `events_sorted` (the typed layout the audits read), each event once, in blocks
//! sorted by (site, `session_key`, ts, seq, `event_id`).
//!
//! The collector's writer runs it between commits for the sessions idle for longer
//! than the tracker's session timeout, so active sessions are rarely moved twice;
//! `clicktrail import` and the benches run it for everything at the end. A session
//! that gets rows after it was moved (a late resend) is moved again whole: its sorted
//! rows and its new ones are merged, deduplicated and written as one run, so every
//! session stays in one place and in order, which lets a funnel stream the sorted
//! table with one session in memory at a time.
//!
//! Large moves are cut into ranges of `session_key`, each its own transaction, so
//! memory stays bounded and a crash loses no row (a range is either still in
//! `events_recent` or wholly in `events_sorted`).

use duckdb::{Connection, params};

use crate::schema::{DEDUPE, SORT_ORDER, column_list, typed_select};

/// Rows moved per transaction, roughly. Each range scans the append table once, so
/// a backlog is cut into few ranges; DuckDB sorts a range larger than its memory
/// limit on disk.
pub const CHUNK_ROWS: u64 = 16_000_000;

/// What one compaction did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Compacted {
    /// Sessions moved into `events_sorted`.
    pub sessions: u64,
    /// Rows taken out of `events_recent` (duplicates included).
    pub rows: u64,
}

/// Which sessions to move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select {
    /// Every session in `events_recent`.
    All,
    /// Sessions whose last row was received before this time (epoch ms).
    IdleBefore(i64),
}

/// Moves the selected sessions from `events_recent` into `events_sorted`.
pub fn compact(conn: &Connection, select: Select) -> Result<Compacted, duckdb::Error> {
    compact_in_ranges(conn, select, CHUNK_ROWS)
}

/// [`compact`], about `chunk_rows` rows per key range and transaction.
fn compact_in_ranges(
    conn: &Connection,
    select: Select,
    chunk_rows: u64,
) -> Result<Compacted, duckdb::Error> {
    let having = match select {
        Select::All => String::new(),
        Select::IdleBefore(ms) => format!("HAVING max(received_at) < epoch_ms({ms}::BIGINT)"),
    };
    conn.execute_batch(&format!(
        "CREATE OR REPLACE TEMP TABLE ct_keys AS
         SELECT session_key, count(*) AS n FROM events_recent
         GROUP BY session_key {having}"
    ))?;
    let (sessions, rows): (u64, Option<u64>) =
        conn.query_row("SELECT count(*), sum(n)::UBIGINT FROM ct_keys", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?;
    let rows = rows.unwrap_or(0);
    if sessions > 0 {
        // Keys are uniform (MD5), so equal key ranges hold about equal rows.
        let chunks = rows.div_ceil(chunk_rows.max(1)).max(1);
        let width = u64::MAX / chunks;
        for i in 0..chunks {
            let lo = i * width;
            let hi = if i + 1 == chunks {
                u64::MAX
            } else {
                (i + 1) * width - 1
            };
            move_range(conn, lo, hi, select == Select::All)?;
        }
    }
    conn.execute_batch("DROP TABLE IF EXISTS ct_keys; DROP TABLE IF EXISTS ct_moved; DROP TABLE IF EXISTS ct_chunk")?;
    Ok(Compacted { sessions, rows })
}

/// Moves the sessions of `ct_keys` with a key in `lo..=hi`, in one transaction.
fn move_range(conn: &Connection, lo: u64, hi: u64, all: bool) -> Result<(), duckdb::Error> {
    let cols = column_list();
    let typed = typed_select();
    // A range test first: DuckDB prunes row groups by it (sorted blocks hold narrow
    // key ranges) and checks it cheaply; the list of moving keys only when not every
    // session of the range moves.
    let range = format!("session_key BETWEEN {lo} AND {hi}");
    let moving = if all {
        range.clone()
    } else {
        format!("{range} AND session_key IN (SELECT session_key FROM ct_chunk)")
    };
    crate::transaction(conn, || {
        conn.execute(
            "CREATE OR REPLACE TEMP TABLE ct_chunk AS
             SELECT session_key FROM ct_keys WHERE session_key BETWEEN ? AND ?",
            params![lo, hi],
        )?;
        // The stored rows of the moving sessions, merged with their new ones.
        conn.execute_batch(&format!(
            "CREATE OR REPLACE TEMP TABLE ct_moved AS
             SELECT {cols} FROM events_sorted
             WHERE {range} AND session_key IN (SELECT session_key FROM ct_chunk)"
        ))?;
        let moved: i64 = conn.query_row("SELECT count(*) FROM ct_moved", [], |r| r.get(0))?;
        if moved > 0 {
            conn.execute_batch(&format!(
                "DELETE FROM events_sorted
                 WHERE {range} AND session_key IN (SELECT session_key FROM ct_chunk)"
            ))?;
        }
        // The dedupe is a second sort; most moves have nothing to drop.
        let twice: i64 = conn.query_row(
            &format!(
                "SELECT count(*) - count(DISTINCT (session_key, event_id)) FROM (
                     SELECT session_key, event_id FROM ct_moved
                     UNION ALL
                     SELECT session_key, event_id FROM events_recent WHERE {moving})"
            ),
            [],
            |r| r.get(0),
        )?;
        let dedupe = if twice > 0 { DEDUPE } else { "" };
        conn.execute_batch(&format!(
            "INSERT INTO events_sorted ({cols})
             SELECT {cols} FROM (
                 SELECT {cols} FROM ct_moved
                 UNION ALL
                 SELECT {typed} FROM events_recent WHERE {moving}
             ) {dedupe}
             ORDER BY {SORT_ORDER};
             DELETE FROM events_recent WHERE {moving};"
        ))
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::schema::{CREATE_EVENTS_V1, create_or_migrate, session_key};

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        create_or_migrate(&conn).unwrap();
        conn
    }

    /// Appends one row to `events_recent`, as the writer does.
    fn append(conn: &Connection, id: &str, session: &str, ts: i64, seq: i32, received: i64) {
        conn.execute(
            "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id,
                 visitor_id, path, browser, os, device, session_key)
             VALUES ('shop', ?, 'pageview', epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ?, ?,
                 'v', '/', 'b', 'o', 'desktop', ?)",
            params![id, ts, received, seq, session, session_key("shop", session)],
        )
        .unwrap();
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// (`session_id`, `event_id`) of `events_sorted` in storage order.
    pub(crate) fn sorted(conn: &Connection) -> Vec<(String, String)> {
        let mut stmt = conn
            .prepare("SELECT session_id, event_id FROM events_sorted")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    #[test]
    fn moves_idle_sessions_whole_sorted_and_once() {
        let conn = db();
        append(&conn, "a2", "s1", 2_000, 2, 10_000);
        append(&conn, "a1", "s1", 1_000, 1, 10_000);
        append(&conn, "a1", "s1", 1_000, 1, 11_000); // resent
        append(&conn, "b1", "s2", 1_500, 1, 50_000); // still active
        // Before compaction the view already shows each event once.
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 3);

        let done = compact(&conn, Select::IdleBefore(20_000)).unwrap();
        assert_eq!(
            done,
            Compacted {
                sessions: 1,
                rows: 3
            }
        );
        assert_eq!(
            sorted(&conn),
            [("s1".into(), "a1".into()), ("s1".into(), "a2".into())]
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM events_recent"), 1);
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 3);

        // A late resend of s1 and a new event of s1: s1 is merged and moved again whole.
        append(&conn, "a2", "s1", 2_000, 2, 60_000);
        append(&conn, "a0", "s1", 500, 0, 60_000);
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 4);
        assert_eq!(count(&conn, "SELECT count(*) FROM events_overlap"), 4);
        compact(&conn, Select::All).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM events_recent"), 0);
        let rows = sorted(&conn);
        let s1: Vec<&str> = rows
            .iter()
            .filter(|(s, _)| s == "s1")
            .map(|(_, e)| e.as_str())
            .collect();
        assert_eq!(s1, ["a0", "a1", "a2"]);
        // Each session is one contiguous run.
        let runs = rows.windows(2).filter(|w| w[0].0 != w[1].0).count() + 1;
        assert_eq!(runs, 2, "{rows:?}");
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 4);
        // The kind is the enum in the sorted layout.
        assert_eq!(
            count(&conn, "SELECT count(*) FROM events WHERE kind = 'pageview'"),
            4
        );
    }

    #[test]
    fn a_file_of_an_older_collector_is_migrated_with_nothing_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.duckdb");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(CREATE_EVENTS_V1).unwrap();
            conn.execute_batch(
                "ALTER TABLE events ADD COLUMN status INTEGER; ALTER TABLE events ADD COLUMN ad VARCHAR;",
            )
            .unwrap();
            for (i, kind) in ["pageview", "click", "custom", "link_view"]
                .iter()
                .enumerate()
            {
                for copy in 0..2 {
                    conn.execute(
                        "INSERT INTO events (site, event_id, kind, ts, received_at, seq, session_id,
                             visitor_id, path, browser, os, device, status)
                         VALUES ('shop', ?, ?, epoch_ms(?::BIGINT), epoch_ms(?::BIGINT), ?, ?,
                             'v', '/p', 'b', 'o', 'desktop', 200)",
                        params![
                            format!("e{i}"),
                            kind,
                            1_000 * i as i64,
                            5_000 + copy,
                            i as i32,
                            format!("s{}", i % 2)
                        ],
                    )
                    .unwrap();
                }
            }
        }
        let conn = Connection::open(&path).unwrap();
        assert!(crate::schema::is_old(&conn).unwrap());
        create_or_migrate(&conn).unwrap();
        assert!(crate::schema::is_current(&conn).unwrap());
        // Before compaction: the old rows, each event once, through the view.
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 4);
        compact(&conn, Select::All).unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM events_sorted"), 4);
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM events WHERE status = 200 AND line IS NULL"
            ),
            4
        );
        let keys: i64 = count(
            &conn,
            &format!(
                "SELECT count(*) FROM events WHERE session_key = {}",
                session_key("shop", "s1")
            ),
        );
        assert_eq!(keys, 2);
    }

    #[test]
    fn large_moves_are_cut_into_key_ranges_and_stay_sorted() {
        let conn = db();
        conn.execute_batch(
            "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq, session_id,
                 visitor_id, path, browser, os, device, session_key)
             SELECT 'shop', 'e' || i, 'pageview', epoch_ms(1000 * (i % 7)), epoch_ms(0), (i % 3)::INT,
                 's' || (i % 1000), 'v', '/', 'b', 'o', 'desktop', 0
             FROM range(20000) t(i);
             UPDATE events_recent SET session_key = md5_number_lower(site || chr(0) || session_id);",
        )
        .unwrap();
        // About 3,000 rows a range: seven ranges, each its own transaction.
        let done = compact_in_ranges(&conn, Select::All, 3_000).unwrap();
        assert_eq!(
            done,
            Compacted {
                sessions: 1_000,
                rows: 20_000
            }
        );
        assert_eq!(count(&conn, "SELECT count(*) FROM events_sorted"), 20_000);
        assert_eq!(count(&conn, "SELECT count(*) FROM events_recent"), 0);
        // Storage order is (session_key, ts, seq) within the one block.
        let mut stmt = conn
            .prepare("SELECT session_key, epoch_ms(ts), seq FROM events_sorted")
            .unwrap();
        let rows: Vec<(u64, i64, i32)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(rows.len(), 20_000);
        assert!(rows.windows(2).all(|w| w[0] <= w[1]));
    }
}
