//! clicktrail collector: the HTTP ingest server, and the audits behind a login.
//!
//! A batch from the browser tracker travels `POST /collect` → [`ingest`] (rate
//! limits, body limits and timeouts, [`protocol::parse_batch`], the site's
//! registration and domains) → [`enrich`] (user agent and bots, salted visitor hash,
//! every text through [`scrub`]; the raw IP is dropped here) → [`store`] (a queue
//! bounded in batches and bytes, shared fairly between sites, in front of one writer
//! thread that owns the DuckDB file and answers each request only after its rows are
//! committed). [`serve`] builds the router: the tracker files, the demo shop,
//! `/healthz`, `/metrics`, and `/api/*` ([`api`]: the audits, saved funnels,
//! accounts, sites and erasure), each behind the `Host` check and credentials of
//! [`auth`]. [`server`] is the HTTP front: connection caps, timeouts, and a shutdown
//! that never waits on a slow client.
//!
//! # Layout
//! - [`config`]: the one typed configuration (CLI flags with `CLICKTRAIL_*` env overrides).
//! - [`error`]: [`error::ApiError`], the single mapping from failures to status + JSON.
//! - [`server`]: the accept loop: caps per address and in all, head and body timeouts.
//! - [`serve`]: the router, shared state, health, metrics, static files.
//! - [`ingest`]: the `/collect` handler.
//! - [`enrich`]: user agent, bots, visitor id, keyed hash of user ids.
//! - [`scrub`]: the one redaction of every stored text (emails, tokens, cards, phones).
//! - [`ratelimit`]: token buckets per address, site and user.
//! - [`store`]: the writer thread, group commit, fair queue, overload and shutdown.
//! - [`keyfile`]: the daily visitor salts, in a file beside the database, not in it.
//! - [`accounts`]: users, API tokens, registered sites.
//! - [`auth`]: the `Host` check and the caller of `/api/*`.
//! - [`api`]: the `/api/*` handlers.
//! - [`retention`]: retention per site and erasure requests.
//! - [`synth`]: synthetic shop sessions for benchmarks, written through the real path.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod config;
pub mod dashboard;
pub mod enrich;
pub mod error;
pub mod import;
pub mod ingest;
pub mod keyfile;
pub mod ratelimit;
pub mod retention;
pub mod scrub;
pub mod serve;
pub mod server;
pub mod store;
pub mod synth;

pub use config::Config;
pub use serve::{App, router};
