//! Audits at scale: writes N realistic synthetic events straight into a store
//! ([`store::synth`], then compaction into the sorted layout), then times each audit
//! as a user runs it: the `analyzer` binary from process start to printed JSON, with
//! its peak memory (`/usr/bin/time`). In the same run, DuckDB computes the same funnel
//! with its own SQL (a chain of ASOF joins) on the same file; the bench prints the
//! ratio and fails if the counts differ.
//!
//! `cargo bench --bench audits` (or `cargo xtask bench`, `cargo xtask bench --100m`).
//! `BENCH_EVENTS` sets N (default 10,000,000). `BENCH_DB=PATH` keeps the file there
//! and reuses it on the next run when it already holds N events. `BENCH_FUNNEL_ONLY=1`
//! stops after the funnel.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use duckdb::Connection;

const SITE: &str = "bench";
const STEPS: [&str; 5] = [
    "page:/",
    "page:/product/*",
    "page:/cart",
    "page:/checkout",
    "page:/thanks",
];
const WINDOW: &str = "30m";
const WINDOW_MS: i64 = 30 * 60_000;

/// The same funnel in DuckDB's SQL: each step's rows numbered in (ts, seq) order
/// within the session; every step-1 row starts an attempt; an ASOF join takes the
/// first row of the next step after the previous one; a step counts when it is
/// within the window of the attempt's first step; a session counts at its best
/// attempt.
fn reference_sql() -> String {
    let step = |cond: &str, n: usize| {
        format!("p{n} AS (SELECT s, t, rn FROM e WHERE kind = 'pageview' AND {cond})")
    };
    format!(
        "WITH e AS (
             SELECT session_key AS s, epoch_ms(ts) AS t, kind, path,
                    row_number() OVER (PARTITION BY session_key ORDER BY ts, seq, event_id) AS rn
             FROM events WHERE site = '{SITE}' AND device IS DISTINCT FROM 'bot'),
         {p1}, {p2}, {p3}, {p4}, {p5},
         a2 AS (SELECT p1.s, p1.t AS t1, p1.rn AS r1,
                       CASE WHEN p2.t <= p1.t + {WINDOW_MS} THEN p2.rn END AS r2
                FROM p1 ASOF LEFT JOIN p2 ON p1.s = p2.s AND p1.rn < p2.rn),
         a3 AS (SELECT a2.*, CASE WHEN p3.t <= a2.t1 + {WINDOW_MS} THEN p3.rn END AS r3
                FROM a2 ASOF LEFT JOIN p3 ON a2.s = p3.s AND a2.r2 < p3.rn),
         a4 AS (SELECT a3.*, CASE WHEN p4.t <= a3.t1 + {WINDOW_MS} THEN p4.rn END AS r4
                FROM a3 ASOF LEFT JOIN p4 ON a3.s = p4.s AND a3.r3 < p4.rn),
         a5 AS (SELECT a4.*, CASE WHEN p5.t <= a4.t1 + {WINDOW_MS} THEN p5.rn END AS r5
                FROM a4 ASOF LEFT JOIN p5 ON a4.s = p5.s AND a4.r4 < p5.rn),
         best AS (SELECT s, max(1 + (r2 IS NOT NULL)::INT + (r3 IS NOT NULL)::INT
                                  + (r4 IS NOT NULL)::INT + (r5 IS NOT NULL)::INT) AS depth
                  FROM a5 GROUP BY s)
         SELECT count(*) FILTER (depth >= 1), count(*) FILTER (depth >= 2),
                count(*) FILTER (depth >= 3), count(*) FILTER (depth >= 4),
                count(*) FILTER (depth >= 5)
         FROM best",
        p1 = step("path = '/'", 1),
        p2 = step(
            "path LIKE '/product/%' AND strpos(substr(path, 10), '/') = 0",
            2
        ),
        p3 = step("path = '/cart'", 3),
        p4 = step("path = '/checkout'", 4),
        p5 = step("path = '/thanks'", 5),
    )
}

/// One timed run of the analyzer: (seconds, peak MB, stdout).
fn analyzer(db: &Path, args: &[&str]) -> Result<(f64, Option<f64>, String)> {
    let bin = env!("CARGO_BIN_EXE_analyzer");
    let time = Path::new("/usr/bin/time");
    let mut cmd = if time.exists() {
        let mut c = Command::new(time);
        c.args(["-f", "peak_kb=%M", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("--db")
        .arg(db)
        .args(["--site", SITE, "--format", "json"])
        .args(args);
    let started = Instant::now();
    let out = cmd.output().context("run the analyzer")?;
    let secs = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("analyzer {args:?} failed: {stderr}");
    }
    let peak = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("peak_kb="))
        .next_back()
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0);
    Ok((
        secs,
        peak,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    ))
}

fn prepare(db: &Path, events: u64) -> Result<()> {
    if db.exists() {
        let conn = Connection::open(db)?;
        let have: u64 = conn
            .query_row("SELECT count(*) FROM events", [], |r| r.get(0))
            .unwrap_or(0);
        if have == events {
            println!("audits: reusing {} ({have} events)", db.display());
            return Ok(());
        }
        drop(conn);
        std::fs::remove_file(db)?;
        let _ = std::fs::remove_file(format!("{}.wal", db.display()));
    }
    let conn = Connection::open(db)?;
    store::create_or_migrate(&conn)?;
    let t = Instant::now();
    let written = store::synth::generate(&conn, SITE, events)?;
    let gen_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let done = store::compact(&conn, store::Select::All)?;
    conn.execute_batch("CHECKPOINT")?;
    let compact_s = t.elapsed().as_secs_f64();
    drop(conn);
    let mb = std::fs::metadata(db)?.len() as f64 / 1e6;
    println!(
        "audits: {written} events in {} sessions generated in {gen_s:.1} s, compacted in {compact_s:.1} s ({:.0} events/s); file {mb:.0} MB",
        done.sessions,
        written as f64 / compact_s
    );
    Ok(())
}

fn main() -> Result<()> {
    let events: u64 = std::env::var("BENCH_EVENTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir()?;
    let db: PathBuf =
        std::env::var_os("BENCH_DB").map_or_else(|| dir.path().join("bench.duckdb"), PathBuf::from);
    prepare(&db, events)?;

    let mut funnel_args = vec!["funnel", "--window", WINDOW];
    for s in STEPS {
        funnel_args.extend(["--step", s]);
    }
    let mut best = f64::MAX;
    let mut peak = None;
    let mut json = String::new();
    for _ in 0..3 {
        let (s, p, out) = analyzer(&db, &funnel_args)?;
        if s < best {
            (best, peak, json) = (s, p, out);
        }
    }
    let report: serde_json::Value = serde_json::from_str(&json)?;
    let ours: Vec<u64> = report["steps"]
        .as_array()
        .context("funnel steps")?
        .iter()
        .map(|s| s["entered"].as_u64().unwrap_or(0))
        .collect();

    // DuckDB's own SQL on the same file, best of three, in this process.
    let sql = reference_sql();
    let mut reference = f64::MAX;
    let mut theirs = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let conn = Connection::open_with_flags(
            &db,
            duckdb::Config::default().access_mode(duckdb::AccessMode::ReadOnly)?,
        )?;
        let counts: [u64; 5] = conn.query_row(&sql, [], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
        })?;
        reference = reference.min(t.elapsed().as_secs_f64());
        theirs = counts.to_vec();
    }
    let mem = peak.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MB"));
    println!(
        "  funnel        {best:>6.2} s  peak {mem:>8}   DuckDB SQL (ASOF chain) {reference:.2} s: {:.1}x faster",
        reference / best
    );
    println!("    entered per step: ours {ours:?}, DuckDB {theirs:?}");
    if ours != theirs {
        bail!("the funnel differs from DuckDB's SQL: {ours:?} vs {theirs:?}");
    }

    if std::env::var_os("BENCH_FUNNEL_ONLY").is_some() {
        return Ok(());
    }
    let audits: [&[&str]; 7] = [
        &["screens"],
        &["forms"],
        &["links"],
        &["ads", "--goal", "event:purchase"],
        &["frustration"],
        &["errors"],
        &[
            "report",
            "--window",
            WINDOW,
            "--step",
            "page:/",
            "--step",
            "page:/product/*",
            "--step",
            "page:/cart",
            "--step",
            "page:/checkout",
            "--step",
            "page:/thanks",
        ],
    ];
    for args in audits {
        let (s, p, _) = analyzer(&db, args)?;
        let mem = p.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MB"));
        println!("  {:<12} {s:>6.2} s  peak {mem:>8}", args[0]);
    }
    Ok(())
}
