//! `cargo xtask test`: every check and test, on a fresh machine too.
//!
//! Finds (or on Debian installs) Chromium and chromedriver, builds the tracker,
//! checks formatting and lints, builds everything in the one release profile, and
//! runs every test, including the browser tests. A missing prerequisite stops with
//! one line saying what is missing; in CI a missing browser is a failure, not a skip.

use std::path::Path;

use anyhow::{Result, bail};

use crate::{cargo, tracker};

const CHROMIUM: [&str; 3] = [
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/bin/google-chrome",
];
const DRIVER: [&str; 2] = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"];

fn found(env: &str, candidates: &[&str]) -> bool {
    std::env::var_os(env).is_some() || candidates.iter().any(|c| Path::new(c).exists())
}

/// Make sure Chromium and chromedriver are there, installing Debian's packages when we can.
pub(crate) fn ensure_browser() -> Result<()> {
    if found("CHROME", &CHROMIUM) && found("CHROMEDRIVER", &DRIVER) {
        return Ok(());
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let has_apt = Path::new("/usr/bin/apt-get").exists();
    if is_root && has_apt {
        eprintln!("xtask: installing Debian's chromium and chromium-driver for the browser tests");
        crate::run(std::process::Command::new("apt-get").args(["update", "-qq"]))?;
        crate::run(
            std::process::Command::new("apt-get")
                .env("DEBIAN_FRONTEND", "noninteractive")
                .args(["install", "-y", "-qq", "chromium", "chromium-driver"]),
        )?;
    }
    if !(found("CHROME", &CHROMIUM) && found("CHROMEDRIVER", &DRIVER)) {
        bail!(
            "missing Chromium/chromedriver for the browser tests: `apt-get install chromium chromium-driver` (or set CHROME and CHROMEDRIVER)"
        );
    }
    Ok(())
}

/// Run every check and test.
pub(crate) fn test(root: &Path) -> Result<()> {
    ensure_browser()?;
    crate::step("format", || {
        crate::run(cargo(root).args(["fmt", "--all", "--", "--check"]))
    })?;
    crate::step("tracker", || tracker::build(root))?;
    // Plain `cargo build/test/clippy --release` use the default members (see the
    // root Cargo.toml): one feature set, so DuckDB and Polars are compiled once.
    crate::step("lints", || {
        let deny = ["--", "-D", "warnings"];
        crate::run(
            cargo(root)
                .args(["clippy", "--release", "--all-targets"])
                .args(deny),
        )?;
        crate::run(
            cargo(root)
                .args(["clippy", "--release", "-p", "xtask"])
                .args(deny),
        )?;
        crate::run(
            cargo(root)
                .args([
                    "clippy",
                    "--release",
                    "-p",
                    "clicktrail-tracker",
                    "--all-targets",
                ])
                .args(deny),
        )?;
        crate::run(
            cargo(root)
                .args([
                    "clippy",
                    "--profile",
                    "wasm",
                    "-p",
                    "clicktrail-tracker",
                    "--target",
                    "wasm32-unknown-unknown",
                ])
                .args(deny),
        )
    })?;
    crate::step("build", || {
        crate::run(cargo(root).args(["build", "--release", "--bins"]))
    })?;
    crate::step("tests", || {
        crate::run(cargo(root).args(["test", "--release", "--no-fail-fast"]))?;
        crate::run(cargo(root).args(["test", "--release", "-p", "clicktrail-tracker"]))
    })
}
