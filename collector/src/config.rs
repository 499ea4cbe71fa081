//! The collector's configuration: one typed struct, parsed from CLI flags with
//! `CLICKTRAIL_*` environment overrides. The defaults run the product with nothing
//! to configure: `127.0.0.1:8080`, `./data/clicktrail.duckdb`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

/// clicktrail collector: receives tracker batches and commits them to DuckDB.
#[derive(Debug, Clone, Parser)]
#[command(name = "clicktrail", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLICKTRAIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The DuckDB file the events are committed to (created if missing).
    #[arg(long, env = "CLICKTRAIL_DB", default_value = "data/clicktrail.duckdb")]
    pub db: PathBuf,

    /// Folder holding the built tracker (`ct.js`, `ct_wasm.js`, `ct_wasm_bg.wasm`),
    /// as written by `cargo xtask build-tracker`.
    #[arg(long, env = "CLICKTRAIL_TRACKER_DIR", default_value = "dist/tracker")]
    pub tracker_dir: PathBuf,

    /// Serve the demo shop at `/demo/`.
    #[arg(long, env = "CLICKTRAIL_DEMO")]
    pub demo: bool,

    /// Folder of the demo shop.
    #[arg(long, env = "CLICKTRAIL_DEMO_DIR", default_value = "examples/shop")]
    pub demo_dir: PathBuf,

    /// Only accept these site ids (comma separated). Empty: accept any site.
    #[arg(long, env = "CLICKTRAIL_SITES", value_delimiter = ',')]
    pub sites: Vec<String>,

    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "CLICKTRAIL_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Batches that may wait for the writer; beyond this `/collect` answers 503.
    #[arg(long, env = "CLICKTRAIL_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,

    /// Most events in one commit.
    #[arg(long, env = "CLICKTRAIL_COMMIT_MAX_EVENTS", default_value_t = 10_000)]
    pub commit_max_events: usize,

    /// How long the writer waits for more batches to join a commit, in ms.
    #[arg(long, env = "CLICKTRAIL_COMMIT_LINGER_MS", default_value_t = 2)]
    pub commit_linger_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["clicktrail"])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_need_no_configuration() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.db, PathBuf::from("data/clicktrail.duckdb"));
        assert!(!c.demo);
        assert!(c.sites.is_empty());
    }

    #[test]
    fn flags_parse() {
        let c = Config::parse_from([
            "clicktrail",
            "--listen",
            "0.0.0.0:9000",
            "--demo",
            "--sites",
            "a,b",
        ]);
        assert_eq!(c.listen.port(), 9000);
        assert!(c.demo);
        assert_eq!(c.sites, vec!["a", "b"]);
    }
}
