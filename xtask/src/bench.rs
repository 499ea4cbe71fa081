//! `cargo xtask bench`: the numbers the README quotes. Builds the tracker (its
//! shipped size, raw and gzipped), then runs the collector's benches: ingest over
//! HTTP (events/s, latency percentiles, acknowledged = stored) and the audits on
//! synthetic events written through the real storage path (`BENCH_EVENTS`, default
//! 1,000,000).

use std::path::Path;

use anyhow::Result;

use crate::{cargo, tracker};

/// Run every benchmark.
pub(crate) fn bench(root: &Path) -> Result<()> {
    crate::step("tracker size", || tracker::build(root))?;
    crate::step("ingest", || {
        crate::run(cargo(root).args(["bench", "--bench", "ingest"]))
    })?;
    crate::step("audits", || {
        crate::run(cargo(root).args(["bench", "--bench", "audits"]))
    })
}
