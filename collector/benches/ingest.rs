//! Ingest benchmark: the real router on a real socket over a real DuckDB file, many
//! concurrent clients posting tracker-sized batches. Prints events/s, request
//! latency percentiles and 503s, then checks that every acknowledged event is stored.
//!
//! `cargo bench --bench ingest` (or `cargo xtask bench`).
//! Knobs: `BENCH_CLIENTS` (default 16), `BENCH_BATCHES` per client (default 1000).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use clicktrail_collector::{
    App, Config, router,
    store::{Store, WriterOptions},
    synth,
};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    let clients = env("BENCH_CLIENTS", 16);
    let per_client = env("BENCH_BATCHES", 1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("bench.duckdb");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (store, writer) = Store::open(&db, WriterOptions::default()).expect("open store");
    let config = Config {
        sites: vec!["bench".to_owned()],
        rate_limit_ip: 0.0, // every client is on loopback
        rate_limit_site: 0.0,
        ..Config::default()
    };
    let app = App::new(config, store.clone()).expect("app");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    rt.spawn(async move {
        clicktrail_collector::server::serve(
            listener,
            router(app),
            clicktrail_collector::server::ServerOptions::default(),
            std::future::pending::<()>(),
        )
        .await
    });

    // Pre-build the bodies so the clients measure the collector, not JSON building.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let mut rng = synth::Rng::new(42);
    let mut bodies: Vec<Vec<(String, usize)>> = vec![Vec::new(); clients];
    for (c, list) in bodies.iter_mut().enumerate() {
        while list.len() < per_client {
            for b in synth::session(&mut rng, "bench", now - 3_600_000 + c as i64) {
                let n = b.events.len();
                list.push((synth::to_json(&b), n));
            }
        }
        list.truncate(per_client);
    }
    let bytes: usize = bodies.iter().flatten().map(|(b, _)| b.len()).sum();

    let url = Arc::new(format!("http://{addr}/collect"));
    let start = Instant::now();
    let handles: Vec<_> = bodies
        .into_iter()
        .map(|list| {
            let url = url.clone();
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut lat = Vec::with_capacity(list.len());
                let (mut acked, mut busy) = (0usize, 0usize);
                for (body, n) in list {
                    loop {
                        let t = Instant::now();
                        let resp = http
                            .post(url.as_str())
                            .header("content-type", "text/plain")
                            .body(body.clone())
                            .send();
                        lat.push(t.elapsed());
                        match resp.map(|r| r.status().as_u16()) {
                            Ok(200) => {
                                acked += n;
                                break;
                            }
                            Ok(503) => {
                                busy += 1;
                                std::thread::sleep(Duration::from_millis(20));
                            }
                            other => panic!("unexpected answer {other:?}"),
                        }
                    }
                }
                (lat, acked, busy)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let (mut acked, mut busy) = (0, 0);
    for h in handles {
        let (l, a, b) = h.join().expect("client");
        lat.extend(l);
        acked += a;
        busy += b;
    }
    let elapsed = start.elapsed();
    lat.sort();
    let stored: i64 = store
        .with_reader(|c| c.query_row("SELECT count(*) FROM events", [], |r| r.get(0)))
        .expect("count");
    store.close();
    drop(store);
    writer.join();
    let secs = elapsed.as_secs_f64();
    println!(
        "ingest: {clients} clients x {per_client} batches, {acked} events, {:.1} MB of JSON",
        bytes as f64 / 1e6
    );
    println!(
        "  throughput  {:>10.0} events/s  {:>8.0} requests/s",
        acked as f64 / secs,
        lat.len() as f64 / secs
    );
    println!(
        "  latency ms  p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2}",
        pct(&lat, 0.5),
        pct(&lat, 0.9),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!("  503 answers {busy} (retried)");
    println!("  acknowledged {acked}, stored {stored}");
    assert_eq!(
        stored as usize, acked,
        "every acknowledged event must be stored"
    );
}
