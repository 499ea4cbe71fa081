//! `cargo xtask bench [--100m]`: the numbers the README quotes. Builds the tracker
//! (its shipped size, raw and gzipped) and measures its main-thread cost per load of
//! a heavy page in Chromium, then runs the benches: ingest over HTTP
//! (events/s, latency percentiles, acknowledged = stored), the write path (enrich →
//! store → compaction, 1,000,000 events), and the audits on 10,000,000 synthetic
//! events (and on 100,000,000 with `--100m`) with DuckDB's own SQL funnel
//! timed in the same run on the same file, and the dashboard's pages on that file.

use std::path::Path;

use anyhow::Result;

use crate::{cargo, tracker};

/// Run every benchmark.
pub(crate) fn bench(root: &Path, args: &[String]) -> Result<()> {
    let big = args.iter().any(|a| a == "--100m");
    crate::step("tracker size", || tracker::build(root))?;
    crate::step("tracker cost per page load", || {
        crate::run(cargo(root).args(["bench", "-p", "clicktrail-e2e", "--bench", "tracker_cost"]))
    })?;
    crate::step("ingest", || {
        crate::run(cargo(root).args(["bench", "--bench", "ingest"]))
    })?;
    crate::step("write", || {
        crate::run(cargo(root).args(["bench", "--bench", "write"]))
    })?;
    // One 10M-event file for the audits and the dashboard, kept between runs.
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    std::fs::create_dir_all(&target)?;
    let db = target.join("bench-10m.duckdb");
    crate::step("audits on 10M events", || {
        crate::run(
            cargo(root)
                .args(["bench", "--bench", "audits"])
                .env("BENCH_EVENTS", "10000000")
                .env("BENCH_DB", &db),
        )
    })?;
    crate::step("dashboard pages on 10M events", || {
        crate::run(
            cargo(root)
                .args([
                    "bench",
                    "-p",
                    "clicktrail-collector",
                    "--bench",
                    "dashboard",
                ])
                .env("BENCH_EVENTS", "10000000")
                .env("BENCH_DB", &db),
        )
    })?;
    if big {
        // About 7 GB, written in about 11 minutes: kept for the next run too.
        let db = target.join("bench-100m.duckdb");
        crate::step("audits on 100M events", || {
            crate::run(
                cargo(root)
                    .args(["bench", "--bench", "audits"])
                    .env("BENCH_EVENTS", "100000000")
                    .env("BENCH_DB", &db),
            )
        })?;
    }
    Ok(())
}
