//! clicktrail's usability audits over the events table: DuckDB in, Polars compute,
//! typed reports out.
//!
//! The `analyzer` CLI and the collector's `POST /api/audit` both call one function:
//!
//! ```no_run
//! use analyzer::{AuditRequest, Format, Scope};
//!
//! let conn = analyzer::open_read_only("data/clicktrail.duckdb".as_ref())?;
//! let req = AuditRequest::Funnel {
//!     scope: Scope { site: Some("shop-1".into()), since: Some("7d".into()), ..Scope::default() },
//!     steps: vec!["page:/cart".into(), "screen:payment".into(), "event:order".into()],
//!     name: None,
//!     window: Some("30m".into()),
//! };
//! let report = analyzer::run(&conn, &req)?;
//! print!("{}", analyzer::render(&report, Format::Table)?);
//! # Ok::<(), analyzer::Error>(())
//! ```
//!
//! # Layout
//!
//! Data flows top to bottom:
//!
//! - [`schema`]: the events table DDL, shared with the collector (which appends to it).
//! - [`scope`]: [`Scope`] (site, since, until as text) → [`ResolvedScope`] (UTC ms);
//!   time and duration parsing.
//! - [`matcher`]: step specs (`page:/cart`, `click:#pay`, …) for funnels and goals.
//! - [`load`]: the only reader of the events table: [`open_read_only`] for `--db`, and
//!   `load::events`, which pushes scope and columns into SQL, drops resent duplicates
//!   and converts DuckDB's Arrow batches into a Polars `DataFrame`.
//! - [`audits`]: one file per audit, all the same shape ([`audits::Audit`]: params in,
//!   typed report out); [`AuditRequest`] and [`Report`], the wire types; [`run`], the
//!   entry point.
//! - [`saved`]: saved funnels (the `funnels` table): the default steps of `funnel`
//!   and `report`, and the default goal of `ads`.
//! - [`stats`]: Wilson intervals, the two-proportion z-test and the chi-square
//!   split check that the `links` and `ads` audits put next to their rates.
//! - [`render`]: a [`Report`] as an aligned table, JSON, CSV or HTML.
//! - [`report`]: every audit in one self-contained HTML page with SVG charts.
//! - [`remote`]: the same request through a running collector ([`Remote`]:
//!   `--collector URL`, with `--token`), for when the collector holds the DuckDB file.
//! - [`error`]: [`Error`], one enum for all of the above.
//! - `testing` (tests only): a temp DuckDB file and hand-made events for the audits'
//!   unit tests.
//! - `main.rs`: the `analyzer` CLI (flags → [`AuditRequest`] → [`run`] or
//!   [`Remote::run`] → [`render`]).
//! - `examples/demo_db.rs`: writes a small hand-made shop dataset (and optionally
//!   many synthetic sessions) into a DuckDB file to try the CLI on.

pub mod audits;
pub mod error;
pub mod load;
pub mod matcher;
pub mod overview;
pub mod remote;
pub mod render;
pub mod report;
pub mod saved;
pub mod scope;
pub mod stats;
pub mod table;

#[cfg(test)]
mod testing;

pub use audits::{
    AdCampaign, AdVariant, AdsReport, BrokenLink, Comparison, InboundStats, LinkStats, LinksReport,
    Srm,
};
pub use audits::{
    AuditRequest, FunnelReport, FunnelStep, NextScreen, Report, ScreenStats, ScreensReport, run,
    run_at,
};
pub use audits::{
    CameFrom, ErrorPage, ErrorsReport, FieldStats, FormStats, FormsReport, FrustrationIssue,
    FrustrationKind, FrustrationReport, JsError,
};
pub use error::Error;
pub use load::open_read_only;
pub use remote::{Remote, run_remote, saved_funnels_remote};
pub use render::{Format, render, render_funnels};
pub use saved::SavedFunnel;
pub use scope::{ResolvedScope, Scope};
/// The events schema, owned by the store crate.
pub use store::schema;
