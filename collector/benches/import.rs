//! Import benchmark: N realistic synthetic events ([`store::synth`]) written to a
//! Parquet file (the columns another tool would export), then loaded by
//! `clicktrail import`'s code into a fresh database: events/s for checking,
//! scrubbing, deduping and writing them in the sorted layout.
//!
//! In the same run, the reference: DuckDB's own load of the same file into the same
//! sorted table of another fresh database (one `INSERT ... SELECT ... ORDER BY ...`
//! over DuckDB's Arrow scan of the same Parquet reader, the same memory limit), with
//! no check, no scrubbing and no dedupe: what the engine underneath costs by itself.
//! The bench prints both, their ratio, and checks that both stored every row.
//!
//! `cargo bench --bench import` (or `cargo xtask bench`). `BENCH_EVENTS` sets N
//! (default 10,000,000).

use std::sync::Arc;
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::datatypes::Schema;
use duckdb::arrow::record_batch::RecordBatchReader as _;
use parquet::arrow::ArrowWriter;

fn main() {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("events.parquet");

    // The file: synthetic events exported with the columns a user's file has.
    let t = Instant::now();
    {
        let src = Connection::open_in_memory().expect("duckdb");
        store::create_or_migrate(&src).expect("schema");
        store::synth::generate(&src, "bench", events).expect("generate");
        let mut stmt = src
            .prepare(
                "SELECT site, session_id, kind, epoch_ms(ts) AS ts, seq, path, url, title, nav,
                        screen, selector, text, href, x, y, form, field, field_type, duration_ms,
                        empty, name, device, status, ad, message, source, line, visitor_id, event_id
                 FROM events_recent",
            )
            .expect("export query");
        let mut batches = stmt.query_arrow([]).expect("export");
        let schema: Arc<Schema> = batches.get_schema();
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&file).expect("parquet file"),
            schema,
            None,
        )
        .expect("writer");
        for batch in &mut batches {
            writer.write(&batch).expect("write");
        }
        writer.close().expect("close");
    }
    let mb = std::fs::metadata(&file).expect("file").len() as f64 / 1e6;
    println!(
        "import: {events} events written to Parquet ({mb:.0} MB) in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let db = dir.path().join("import.duckdb");
    let summary = clicktrail_collector::import::import(&db, &file, [7; 32]).expect("import");
    println!(
        "  import (check, scrub, sort, dedupe, write) {:>6.1} s  {:>10.0} events/s ({} stored, {} rejected, {})",
        summary.seconds,
        summary.read as f64 / summary.seconds,
        summary.stored,
        summary.rejected.values().map(|(n, _)| n).sum::<u64>(),
        summary.path
    );
    std::fs::remove_file(&db).expect("remove the imported database");

    let (seconds, rows) = duckdb_load(&dir.path().join("reference.duckdb"), &file);
    println!(
        "  DuckDB's own sorted load, nothing checked {seconds:>6.1} s  {:>10.0} events/s \
         ({rows} stored); import takes {:.2}x its time",
        rows as f64 / seconds,
        summary.seconds / seconds
    );
    assert_eq!(
        (summary.stored, rows),
        (events, events),
        "both stored every row"
    );
}

/// DuckDB alone: the Parquet file (read by the same Parquet reader the import
/// uses, through DuckDB's Arrow scan) into `events_sorted` of a fresh database `db`,
/// sorted as the store keeps it, every file column as it is (the others NULL, the
/// kind cast to the enum, the session key computed by DuckDB), in one statement
/// under the store's memory limit. Seconds (open to checkpoint) and rows stored.
fn duckdb_load(db: &std::path::Path, file: &std::path::Path) -> (f64, u64) {
    let t = Instant::now();
    let database = clicktrail_collector::import::open_bulk(db).expect("reference database");
    let reader = clicktrail_collector::import::parquet_batches(file).expect("parquet reader");
    let schema = reader.schema();
    let select = store::COLUMNS
        .iter()
        .map(|c| match c.name {
            "ts" => "make_timestamp(ts * 1000)".to_owned(),
            "received_at" => "now()::TIMESTAMP".to_owned(),
            "session_key" => store::schema::SESSION_KEY_SQL.to_owned(),
            name if schema.field_with_name(name).is_ok() => match c.typed {
                Some(ty) => format!("CAST({name} AS {ty})"),
                None => name.to_owned(),
            },
            _ => "NULL".to_owned(),
        })
        .zip(store::COLUMNS.iter())
        .map(|(expr, c)| format!("{expr} AS {}", c.name))
        .collect::<Vec<_>>()
        .join(", ");
    let session = database.session().expect("session");
    let scan = session
        .scan("ct_reference", Box::new(reader))
        .expect("scan");
    let rows = session
        .execute(&format!(
            "INSERT INTO events_sorted ({}) SELECT {select} FROM ct_feeds.ct_reference ORDER BY {}",
            store::schema::column_list(),
            store::schema::SORT_ORDER
        ))
        .expect("DuckDB's load");
    drop(scan);
    session.execute("CHECKPOINT").expect("checkpoint");
    (t.elapsed().as_secs_f64(), rows)
}
