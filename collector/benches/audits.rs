//! Audit benchmark: writes N synthetic events (realistic shop sessions) through the
//! real storage path (enrich → store → DuckDB), then times each audit on them.
//!
//! `cargo bench --bench audits` (or `cargo xtask bench`).
//! `BENCH_EVENTS` sets N (default 1,000,000; the README also quotes 10,000,000).

use std::time::Instant;

use analyzer::{AuditRequest, Scope};
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
    let scope = serde_json::json!({"site": "bench"});
    let steps = [
        "page:/",
        "page:/product/*",
        "page:/cart",
        "screen:shipping",
        "screen:payment",
        "event:purchase",
    ]
    .map(String::from)
    .to_vec();
    let mut requests = vec![AuditRequest::Funnel {
        scope: serde_json::from_value::<Scope>(scope.clone()).expect("scope"),
        steps: steps.clone(),
        name: None,
        window: Some("2h".into()),
    }];
    for audit in ["screens", "forms", "links", "ads", "frustration", "errors"] {
        requests.push(
            serde_json::from_value(serde_json::json!({"audit": audit, "scope": scope}))
                .expect("request"),
        );
    }
    requests.push(AuditRequest::Report {
        scope: serde_json::from_value::<Scope>(scope.clone()).expect("scope"),
        steps,
        window: Some("2h".into()),
        goal: None,
    });
    for req in &requests {
        let t = Instant::now();
        let report = store.with_reader(|c| analyzer::run(c, req)).expect("audit");
        let s = t.elapsed().as_secs_f64();
        println!(
            "  {:<12} {:>7.2} s  {:>12.0} events/s  ({} sessions)",
            req.audit(),
            s,
            written as f64 / s,
            report.sessions()
        );
    }
    store.close();
    drop(store);
    writer.join();
}
