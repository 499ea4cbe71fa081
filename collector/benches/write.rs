//! Write benchmark: N synthetic events (realistic shop sessions, as the tracker sends
//! them) through the real storage path (enrich → store → DuckDB append table), then
//! their compaction into the sorted layout. The audits at scale are the analyzer's
//! `audits` bench.
//!
//! `cargo bench --bench write` (or `cargo xtask bench`).
//! `BENCH_EVENTS` sets N (default 1,000,000).

use std::time::Instant;

use clicktrail_collector::{
    enrich::{self, Context},
    store::{Store, WriterOptions},
    synth,
};

fn main() {
    let target: usize = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.duckdb");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (store, writer) = Store::open(&db, WriterOptions::default()).expect("open store");
    let mut rng = synth::Rng::new(7);
    let start_ms = 1_767_225_600_000; // 2026-01-01
    let salt = [9u8; 32];
    let (mut written, mut sessions) = (0usize, 0u64);
    let t0 = Instant::now();
    let mut pending = Vec::new();
    while written < target {
        let begin = start_ms + sessions as i64 * 20_000;
        for b in synth::session(&mut rng, "bench", begin) {
            let ctx = Context {
                ip: synth::client_ip(sessions),
                user_agent: "Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0".into(),
                received_ms: b.sent,
                uid_key: [0; 32],
                clear_ids: false,
            };
            let rows = enrich::enrich(b, &ctx, &salt);
            written += rows.len();
            pending.extend(rows);
        }
        sessions += 1;
        if pending.len() >= 5_000 {
            rt.block_on(store.commit(std::mem::take(&mut pending)))
                .expect("commit");
        }
    }
    if !pending.is_empty() {
        rt.block_on(store.commit(pending)).expect("commit");
    }
    let write_s = t0.elapsed().as_secs_f64();
    println!(
        "audits: {written} events in {sessions} sessions written through enrich+store in {write_s:.1} s ({:.0} events/s)",
        written as f64 / write_s
    );
    let t = Instant::now();
    let done = rt
        .block_on(store.write(|conn| ::store::compact(conn, ::store::Select::All)))
        .expect("writer")
        .expect("compact");
    let compact_s = t.elapsed().as_secs_f64();
    println!(
        "  compaction of {} sessions into the sorted layout: {compact_s:.1} s ({:.0} events/s)",
        done.sessions,
        done.rows as f64 / compact_s
    );
    store.close();
    drop(store);
    writer.join();
}
