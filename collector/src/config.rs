//! The collector's configuration: one typed struct, parsed from CLI flags with
//! `CLICKTRAIL_*` environment overrides. The defaults run the product with nothing
//! to configure: `127.0.0.1:8080`, `./data/clicktrail.duckdb`.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

// The collector's settings (flattened into the `clicktrail` command line; a doc
// comment here would become the help text of the whole command).
#[derive(Debug, Clone, Parser)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "CLICKTRAIL_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,

    /// The DuckDB file the events are committed to (created if missing).
    #[arg(
        long,
        env = "CLICKTRAIL_DB",
        default_value = "data/clicktrail.duckdb",
        global = true
    )]
    pub db: PathBuf,

    /// Folder holding the built tracker (`ct.js`, `ct_wasm.js`, `ct_wasm_bg.wasm`),
    /// as written by `cargo xtask build-tracker`.
    #[arg(long, env = "CLICKTRAIL_TRACKER_DIR", default_value = "dist/tracker")]
    pub tracker_dir: PathBuf,

    /// Serve the demo shop at `/demo/`.
    #[arg(long, env = "CLICKTRAIL_DEMO")]
    pub demo: bool,

    /// Folder of the demo shop (another shop's pages may be served there too; the
    /// demo shop's checkout funnel is saved for the site `demo` only when this is
    /// the demo shop).
    #[arg(long, env = "CLICKTRAIL_DEMO_DIR", default_value = "examples/shop")]
    pub demo_dir: PathBuf,

    /// Accept events for exactly these site ids (comma separated; each is registered
    /// on start). Empty: the sites registered with `clicktrail sites add` or the API.
    #[arg(long, env = "CLICKTRAIL_SITES", value_delimiter = ',')]
    pub sites: Vec<String>,

    /// Host names the API and the pages answer to, besides localhost, 127.0.0.1, `[::1]`
    /// and the listen address (comma separated; a request with another `Host` gets
    /// 421, which defeats DNS rebinding). `/collect` and the tracker answer any host.
    #[arg(long, env = "CLICKTRAIL_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,

    /// Requests per second one client address may send to `/collect` (bursts of ten
    /// times this); beyond it 429 + Retry-After. 0: no limit.
    #[arg(long, env = "CLICKTRAIL_RATE_LIMIT_IP", default_value_t = 20.0)]
    pub rate_limit_ip: f64,

    /// Events per second one site may send (bursts of ten times this); beyond it 429 +
    /// Retry-After. 0: no limit.
    #[arg(long, env = "CLICKTRAIL_RATE_LIMIT_SITE", default_value_t = 2000.0)]
    pub rate_limit_site: f64,

    /// Most open connections (also kept under the process's file descriptor limit).
    #[arg(long, env = "CLICKTRAIL_MAX_CONNECTIONS", default_value_t = 4096)]
    pub max_connections: usize,

    /// Most open connections from one client address.
    #[arg(long, env = "CLICKTRAIL_MAX_CONNECTIONS_PER_IP", default_value_t = 256)]
    pub max_connections_per_ip: usize,

    /// Seconds a client has to send a request's head, and again its body.
    #[arg(long, env = "CLICKTRAIL_REQUEST_TIMEOUT_S", default_value_t = 10)]
    pub request_timeout_s: u64,

    /// Seconds an audit may run before it is stopped (it is also stopped when its
    /// client goes away).
    #[arg(long, env = "CLICKTRAIL_AUDIT_TIMEOUT_S", default_value_t = 120)]
    pub audit_timeout_s: u64,

    /// Audits that may run at once; more get 503 + Retry-After.
    #[arg(long, env = "CLICKTRAIL_MAX_AUDITS", default_value_t = 2)]
    pub max_audits: usize,

    /// `/healthz` says not ok when the database's disk has less free space than this (MiB).
    #[arg(long, env = "CLICKTRAIL_MIN_FREE_MB", default_value_t = 256)]
    pub min_free_mb: u64,

    /// Take the client address from `X-Forwarded-For` (only behind a trusted proxy).
    #[arg(long, env = "CLICKTRAIL_TRUST_PROXY")]
    pub trust_proxy: bool,

    /// Batches that may wait for the writer; beyond this `/collect` answers 503.
    #[arg(long, env = "CLICKTRAIL_QUEUE_CAPACITY", default_value_t = 1024)]
    pub queue_capacity: usize,

    /// MiB of events that may wait for the writer (shared fairly between sites);
    /// beyond this `/collect` answers 503.
    #[arg(long, env = "CLICKTRAIL_QUEUE_MB", default_value_t = 64)]
    pub queue_mb: usize,

    /// Most events in one commit.
    #[arg(long, env = "CLICKTRAIL_COMMIT_MAX_EVENTS", default_value_t = 10_000)]
    pub commit_max_events: usize,

    /// How long the writer waits for more batches to join a commit, in ms.
    #[arg(long, env = "CLICKTRAIL_COMMIT_LINGER_MS", default_value_t = 2)]
    pub commit_linger_ms: u64,
}

impl Config {
    /// The writer's tuning from these flags.
    pub fn writer_options(&self) -> crate::store::WriterOptions {
        crate::store::WriterOptions {
            queue_capacity: self.queue_capacity,
            queue_bytes: self.queue_mb.max(1) << 20,
            commit_max_events: self.commit_max_events,
            linger: std::time::Duration::from_millis(self.commit_linger_ms),
        }
    }
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
