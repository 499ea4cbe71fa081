//! `cargo xtask run`: the product on this machine with nothing to configure. Builds
//! the tracker, then runs the collector on 127.0.0.1:8080 with
//! `./data/clicktrail.duckdb` and the demo shop at `/demo/`. Extra arguments go to
//! the collector (`cargo xtask run -- --listen 0.0.0.0:8080`).

use std::path::Path;

use anyhow::Result;

use crate::{cargo, tracker};

/// Build the tracker and run the collector with the demo shop.
pub(crate) fn run(root: &Path, extra: &[String]) -> Result<()> {
    tracker::build(root)?;
    crate::run(
        cargo(root)
            .args([
                "run",
                "--release",
                "--quiet",
                // No `-p`: the default members' one feature set, so nothing that
                // `cargo xtask test` built is compiled again.
                "--bin",
                "clicktrail",
                "--",
                "--demo",
            ])
            .args(extra),
    )
}
