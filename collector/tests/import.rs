//! `clicktrail import`: the real binary loads a real Parquet file into a real DuckDB
//! file; the rows are checked, scrubbed and stored once, and the audits read them.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use duckdb::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use duckdb::arrow::datatypes::{Field, Schema};
use parquet::arrow::ArrowWriter;

/// One row of the test file.
#[derive(Clone, Copy)]
struct R {
    session: &'static str,
    kind: &'static str,
    ts: Option<i64>,
    seq: i32,
    path: &'static str,
    url: Option<&'static str>,
    user: Option<&'static str>,
    name: Option<&'static str>,
    event_id: Option<&'static str>,
}

fn r(session: &'static str, kind: &'static str, ts: i64, seq: i32, path: &'static str) -> R {
    R {
        session,
        kind,
        ts: Some(ts),
        seq,
        path,
        url: None,
        user: None,
        name: None,
        event_id: None,
    }
}

fn write_parquet(path: &Path, rows: &[R]) {
    let text = |f: &dyn Fn(&R) -> Option<&'static str>| -> ArrayRef {
        Arc::new(StringArray::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("site", text(&|_| Some("shop"))),
        ("session_id", text(&|r| Some(r.session))),
        ("kind", text(&|r| Some(r.kind))),
        (
            "ts",
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.ts).collect::<Vec<_>>(),
            )),
        ),
        (
            "seq",
            Arc::new(Int32Array::from(
                rows.iter().map(|r| r.seq).collect::<Vec<_>>(),
            )),
        ),
        ("path", text(&|r| Some(r.path))),
        ("url", text(&|r| r.url)),
        ("user_id", text(&|r| r.user)),
        ("name", text(&|r| r.name)),
        ("event_id", text(&|r| r.event_id)),
        ("campaign_owner", text(&|_| Some("someone"))),
    ];
    write_columns(path, columns);
}

/// A Parquet file of these named columns.
fn write_columns(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap();
    let mut w = ArrowWriter::try_new(std::fs::File::create(path).unwrap(), schema, None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// `clicktrail import --db DB FILE`, the real binary.
fn run_import(db: &Path, file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_clicktrail"))
        .args(["import", "--db"])
        .arg(db)
        .arg(file)
        .output()
        .unwrap()
}

/// An import that must succeed; its summary.
fn import(db: &Path, file: &Path) -> String {
    let out = run_import(db, file);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = duckdb::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

const MIN: i64 = 60_000;
const T0: i64 = 1_767_225_600_000;

#[test]
fn a_parquet_file_is_checked_scrubbed_stored_once_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = (dir.path().join("x.duckdb"), dir.path().join("in.parquet"));
    let mut rows = vec![
        // s1 completes cart -> payment page -> purchase; ties in time keep seq order.
        r("s1", "pageview", T0, 1, "/cart"),
        r("s1", "pageview", T0 + MIN, 2, "/pay"),
        R {
            name: Some("purchase"),
            ..r("s1", "custom", T0 + MIN, 3, "/pay")
        },
        // s2 stops at the payment page; it carries an email in its URL and a user id.
        R {
            url: Some("https://shop.example/cart?email=jane.doe@mail.example"),
            user: Some("jane.doe@mail.example"),
            ..r("s2", "pageview", T0, 1, "/cart")
        },
        r("s2", "pageview", T0 + 2 * MIN, 2, "/pay"),
        // The same event twice (an id from the other tool).
        R {
            event_id: Some("ext-1"),
            ..r("s3", "pageview", T0, 1, "/cart")
        },
        R {
            event_id: Some("ext-1"),
            ..r("s3", "pageview", T0, 1, "/cart")
        },
        // Rows that break a rule.
        r("s4", "teleport", T0, 1, "/cart"),
        r("s4", "pageview", T0, 1, "cart"),
        R {
            ts: None,
            ..r("s4", "pageview", T0, 1, "/cart")
        },
    ];
    rows.push(r(
        "s5",
        "pageview",
        T0,
        1,
        "/user/jane.doe@mail.example/orders",
    ));
    write_parquet(&file, &rows);

    let out = import(&db, &file);
    assert!(out.contains("11 rows read"), "{out}");
    assert!(out.contains("7 events stored"), "{out}");
    assert!(out.contains("1 duplicates dropped"), "{out}");
    // The one-pass insert found the repeated event and was rolled back.
    assert!(out.contains("some events repeat"), "{out}");
    assert!(out.contains("3 rejected"), "{out}");
    assert!(
        out.contains("kind is not an event kind (rows [7])"),
        "{out}"
    );
    assert!(out.contains("path must start with /"), "{out}");
    assert!(out.contains("ts must be ms"), "{out}");
    assert!(
        out.contains("ignored columns (not events columns): campaign_owner"),
        "{out}"
    );

    assert_eq!(count(&db, "SELECT count(*) FROM events"), 7);
    assert_eq!(
        count(&db, "SELECT count(*) FROM events_recent"),
        0,
        "compacted"
    );
    // No email survives anywhere; the identify id is a keyed hash.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE concat_ws('|', COLUMNS(*)) LIKE '%jane%'"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE user_id LIKE 'u\\_%' ESCAPE '\\'"
        ),
        1
    );
    // Importing the same file again stores nothing new.
    let again = import(&db, &file);
    assert!(again.contains("0 events stored"), "{again}");
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 7);

    // The audits read the imported events.
    let conn = analyzer::open_read_only(&db).unwrap();
    let req: analyzer::AuditRequest = serde_json::from_value(serde_json::json!({
        "audit": "funnel", "scope": {"site": "shop"},
        "steps": ["page:/cart", "page:/pay", "event:purchase"], "window": "30m"
    }))
    .unwrap();
    let analyzer::Report::Funnel(f) = analyzer::run(&conn, &req).unwrap() else {
        panic!("a funnel report");
    };
    let entered: Vec<u64> = f.steps.iter().map(|s| s.entered).collect();
    assert_eq!(f.sessions, 4);
    assert_eq!(entered, [3, 2, 1]);
}

#[test]
fn a_file_without_the_required_columns_is_refused_with_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = (dir.path().join("x.duckdb"), dir.path().join("in.parquet"));
    write_columns(
        &file,
        vec![(
            "site",
            Arc::new(StringArray::from(vec![Some("shop")])) as ArrayRef,
        )],
    );
    let out = run_import(&db, &file);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("lacks the column(s) session_id, kind, ts, seq, path"),
        "{err}"
    );
    // Not a Parquet file at all.
    std::fs::write(&file, b"site,session_id\nshop,s1\n").unwrap();
    let out = run_import(&db, &file);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A file of several read batches (65,536 rows each): each batch is checked while
/// the one before is appended; every valid row is stored once, the rejected rows
/// keep their numbers in the file, and texts repeated across batches are scrubbed
/// the same.
#[test]
fn a_file_of_several_batches_is_stored_whole_with_its_rejects_numbered() {
    let dir = tempfile::tempdir().unwrap();
    let (db, file) = (dir.path().join("x.duckdb"), dir.path().join("big.parquet"));
    let n: usize = 150_000;
    let bad = [3usize, 70_000, 140_001];
    let sessions: Vec<String> = (0..n).map(|i| format!("s{}", i / 10)).collect();
    let kinds: Vec<&str> = (0..n)
        .map(|i| {
            if bad.contains(&i) {
                "teleport"
            } else {
                "pageview"
            }
        })
        .collect();
    let paths: Vec<String> = (0..n)
        .map(|i| {
            if i % 1000 == 7 {
                "/account/jane.doe@mail.example".to_owned()
            } else {
                format!("/p/{}", i % 50)
            }
        })
        .collect();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("site", Arc::new(StringArray::from(vec!["shop"; n]))),
        ("session_id", Arc::new(StringArray::from(sessions))),
        ("kind", Arc::new(StringArray::from(kinds))),
        (
            "ts",
            Arc::new(Int64Array::from(
                (0..n).map(|i| T0 + i as i64).collect::<Vec<_>>(),
            )),
        ),
        (
            "seq",
            Arc::new(Int32Array::from(
                (0..n).map(|i| (i % 10) as i32).collect::<Vec<_>>(),
            )),
        ),
        ("path", Arc::new(StringArray::from(paths))),
    ];
    write_columns(&file, columns);

    let out = import(&db, &file);
    assert!(out.contains("150000 rows read"), "{out}");
    assert!(out.contains("149997 events stored"), "{out}");
    assert!(
        out.contains("kind is not an event kind (rows [3, 70000, 140001])"),
        "{out}"
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 149_997);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT session_id) FROM events"),
        15_000
    );
    assert_eq!(
        count(&db, "SELECT count(*) FROM events WHERE path LIKE '%jane%'"),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM events WHERE path LIKE '/account/%'"
        ),
        150
    );
}

/// `row` with its `event_id`.
fn e(id: &'static str, row: R) -> R {
    R {
        event_id: Some(id),
        ..row
    }
}

/// (`session_id`, `event_id`) of the sorted rows, in storage order.
fn stored_order(db: &Path) -> Vec<(String, String)> {
    let conn = duckdb::Connection::open(db).unwrap();
    let mut stmt = conn
        .prepare("SELECT session_id, event_id FROM events_sorted")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// A file of new sessions goes into the sorted layout in one pass; a later file that
/// continues a stored session (and repeats one of its events) is merged with it: the
/// session stays in one place, in order, each event once.
#[test]
fn a_file_continuing_stored_sessions_is_merged_with_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.duckdb");
    let (a, b) = (dir.path().join("a.parquet"), dir.path().join("b.parquet"));
    write_parquet(
        &a,
        &[
            e("e2", r("s1", "pageview", T0 + MIN, 2, "/pay")),
            e("e1", r("s1", "pageview", T0, 1, "/cart")),
            e("f1", r("s2", "pageview", T0, 1, "/cart")),
        ],
    );
    let out = import(&db, &a);
    assert!(out.contains("3 events stored"), "{out}");
    assert!(out.contains("written sorted in one pass"), "{out}");

    write_parquet(
        &b,
        &[
            e("e2", r("s1", "pageview", T0 + MIN, 2, "/pay")),
            e("e3", r("s1", "custom", T0 + 2 * MIN, 3, "/pay")),
            e("g1", r("s3", "pageview", T0, 1, "/cart")),
        ],
    );
    let out = import(&db, &b);
    assert!(out.contains("2 events stored"), "{out}");
    assert!(out.contains("1 duplicates dropped"), "{out}");
    assert!(out.contains("its first sessions are stored"), "{out}");
    assert_eq!(count(&db, "SELECT count(*) FROM events"), 5);
    assert_eq!(count(&db, "SELECT count(*) FROM events_recent"), 0);

    // Storage order: s1's three events in one run, in time order.
    let order = stored_order(&db);
    let s1: Vec<usize> = (0..order.len()).filter(|&i| order[i].0 == "s1").collect();
    assert_eq!(s1.len(), 3, "{order:?}");
    assert_eq!(s1[2] - s1[0], 2, "s1 in one run: {order:?}");
    let ids: Vec<&str> = s1.iter().map(|&i| order[i].1.as_str()).collect();
    assert_eq!(ids, ["e1", "e2", "e3"]);
}

/// A file of more rows than one sort may take goes through the append table and
/// compaction by key ranges (16M rows in the command; 2 here): every event stored
/// once, each session in one run in time order, nothing left in the append table.
#[test]
fn a_file_too_large_for_one_sort_is_appended_then_sorted_by_key_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("x.duckdb");
    let file = dir.path().join("big.parquet");
    write_parquet(
        &file,
        &[
            e("b2", r("s2", "click", T0 + MIN, 2, "/cart")),
            e("a1", r("s1", "pageview", T0, 1, "/")),
            e("b1", r("s2", "pageview", T0, 1, "/")),
            e("a2", r("s1", "pageview", T0 + MIN, 2, "/cart")),
            e("a2", r("s1", "pageview", T0 + MIN, 2, "/cart")),
        ],
    );
    let summary =
        clicktrail_collector::import::import_sorting_at_most(&db, &file, [7; 32], 2).unwrap();
    assert_eq!(
        summary.path,
        "too many rows for one sort: appended, then sorted by key ranges"
    );
    assert_eq!(
        (summary.read, summary.stored, summary.duplicates()),
        (5, 4, 1)
    );
    assert_eq!(count(&db, "SELECT count(*) FROM events_recent"), 0);
    let order = stored_order(&db);
    let ids: Vec<&str> = order.iter().map(|(_, id)| id.as_str()).collect();
    assert!(
        ids == ["a1", "a2", "b1", "b2"] || ids == ["b1", "b2", "a1", "a2"],
        "each session in one run, in time order: {order:?}"
    );
}
