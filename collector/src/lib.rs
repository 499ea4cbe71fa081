//! clicktrail collector: the HTTP ingest server.
//!
//! A batch from the browser tracker travels `POST /collect` → [`ingest`] (body limits,
//! content type, [`protocol::parse_batch`]) → [`enrich`] (user agent, salted visitor
//! hash, URL scrubbing; the raw IP is dropped here) → [`store`] (a bounded queue in
//! front of one writer thread that owns the DuckDB connection and answers each
//! request only after its rows are committed). [`serve`] builds the router: the
//! tracker files, the demo shop, `/healthz`, and the audits over HTTP (`/api/audit`,
//! the analyzer library linked in, because the collector owns the DuckDB file while
//! it runs).
//!
//! # Layout
//! - [`config`]: the one typed configuration (CLI flags with `CLICKTRAIL_*` env overrides).
//! - [`error`]: [`error::ApiError`], the single mapping from failures to status + JSON.
//! - [`ingest`]: the `/collect` handler.
//! - [`enrich`]: user agent, visitor id, privacy scrubbing.
//! - [`store`]: the writer thread, group commit, overload and shutdown.
//! - [`serve`]: the router, static files, health, audits API, graceful shutdown.
//! - [`synth`]: synthetic shop sessions for benchmarks, written through the real path.

pub mod config;
pub mod enrich;
pub mod error;
pub mod ingest;
pub mod serve;
pub mod store;
pub mod synth;

pub use config::Config;
pub use serve::{App, router};
