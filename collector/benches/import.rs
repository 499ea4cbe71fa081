//! Import benchmark: N realistic synthetic events ([`store::synth`]) written to a
//! Parquet file (the columns another tool would export), then loaded by
//! `clicktrail import`'s code into a fresh database: events/s for checking,
//! scrubbing and appending, and for the sort and dedupe into the sorted layout.
//!
//! `cargo bench --bench import` (or `cargo xtask bench`). `BENCH_EVENTS` sets N
//! (default 10,000,000).

use std::sync::Arc;
use std::time::Instant;

use duckdb::Connection;
use duckdb::arrow::datatypes::Schema;
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
}
