//! `cargo xtask …`: the project's own build, run and test tasks, in Rust.
//!
//! One module per subcommand: `tracker.rs` (`build-tracker`), `run.rs` (`run`),
//! `test.rs` (`test`), `bench.rs` (`bench`). What they share lives here: the workspace root, `cargo`,
//! running a command, a named step. To add a subcommand, add its module, a match
//! arm in [`main`] and a line to [`USAGE`].

mod bench;
mod run;
mod test;
mod tracker;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  build-tracker   build the browser tracker into dist/tracker/ (wasm-bindgen, wasm-opt, size report)
  run [-- ARGS]   build the tracker and run the collector with the demo shop (ARGS go to the collector)
  test            every check and test, including the browser tests
  bench [--100m]  tracker size, ingest throughput and latency, audit times on 10M
                  events (and 100M) against DuckDB's SQL
  fuzz [N]        the batch parser and enrich over N generated inputs (default 10,000,000)";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("build-tracker") => tracker::build(&root),
        Some("run") => {
            let extra = args.get(1..).unwrap_or_default();
            run::run(
                &root,
                extra.strip_prefix(&["--".to_string()]).unwrap_or(extra),
            )
        }
        Some("test") => test::test(&root),
        Some("bench") => bench::bench(&root, args.get(1..).unwrap_or_default()),
        Some("fuzz") => {
            let n = args.get(1).map_or("10000000", String::as_str);
            step("fuzz", || {
                run(cargo(&root)
                    .args(["test", "--release", "--test", "fuzz", "--", "--nocapture"])
                    .env("CLICKTRAIL_FUZZ_ITERS", n))
            })
        }
        Some("help" | "-h" | "--help") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => {
            eprintln!("unknown command `{other}`\n\n{USAGE}");
            std::process::exit(2);
        }
        None => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// The workspace root (the folder holding the root `Cargo.toml`).
fn workspace_root() -> PathBuf {
    // Read at run time (`cargo run` and `cargo test` set it for the process): a
    // compile-time `env!` bakes in the path of whichever checkout built the binary,
    // and checkouts that share a target dir reuse each other's up-to-date builds.
    let xtask = std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from("xtask"), PathBuf::from);
    xtask
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `cargo` as invoked by `cargo xtask` (`$CARGO`, else from `PATH`), in `root`.
fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root);
    cmd
}

/// Cargo's target directory as `cargo metadata` reports it (honours
/// `CARGO_TARGET_DIR` and `.cargo/config.toml`).
fn target_dir(root: &Path) -> Result<PathBuf> {
    let out = cargo(root)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .output()
        .context("running `cargo metadata`")?;
    if !out.status.success() {
        bail!(
            "`cargo metadata` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let meta: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing `cargo metadata` output")?;
    meta["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("`cargo metadata` output has no target_directory")
}

/// Run `cmd` with inherited output; fail with its command line if it fails.
fn run(cmd: &mut Command) -> Result<()> {
    let what = format!("{cmd:?}");
    let status = cmd.status().with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// Run one named step, saying when it starts, how long it took, and which one failed.
fn step(name: &str, f: impl FnOnce() -> Result<()>) -> Result<()> {
    eprintln!("xtask: {name} …");
    let start = Instant::now();
    f().with_context(|| format!("step `{name}` failed"))?;
    eprintln!("xtask: {name} ok ({:.1}s)", start.elapsed().as_secs_f64());
    Ok(())
}
