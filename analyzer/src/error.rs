//! The one error type of the analyzer library.
//!
//! Every fallible step returns [`Error`]: parsing a request ([`crate::scope`],
//! [`crate::matcher`]), opening and reading the DuckDB file ([`crate::load`]), the
//! Polars computations ([`crate::audits`]), rendering ([`crate::render`]) and asking a
//! running collector ([`crate::remote`]). Messages are one line and say what to do;
//! [`Error::code`] gives a stable machine code for HTTP answers.

use std::path::PathBuf;

/// Everything that can go wrong while running an audit.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the DuckDB file (DuckDB allows one writer, or many readers).
    #[error(
        "the DuckDB file {} is locked by another process, probably a running collector; \
         ask the collector instead: analyzer --collector http://127.0.0.1:8080 … ({detail})",
        path.display()
    )]
    Locked { path: PathBuf, detail: String },

    /// The DuckDB file does not exist.
    #[error(
        "no DuckDB file at {} (the collector creates it when it first starts; pass --db PATH \
         for another file)",
        path.display()
    )]
    NoSuchFile { path: PathBuf },

    /// The file opened, but it has no `events` table.
    #[error("{} has no events table; is it a clicktrail database?", path.display())]
    NoEventsTable { path: PathBuf },

    /// Any other DuckDB failure.
    #[error("DuckDB: {0}")]
    Db(#[from] duckdb::Error),

    /// A Polars computation failed.
    #[error("Polars: {0}")]
    Polars(#[from] polars::error::PolarsError),

    /// DuckDB returned a column type the loader does not expect (schema drift).
    #[error("column {column} of the events table has type {found}, expected {expected}")]
    ColumnType {
        column: &'static str,
        found: String,
        expected: &'static str,
    },

    /// A step spec such as `page:/cart` could not be parsed.
    #[error("bad step `{spec}`: {reason}")]
    BadStep { spec: String, reason: String },

    /// A `since` / `until` value could not be parsed, or the range is empty.
    #[error(
        "bad time `{input}`: {reason} (use RFC 3339 like 2026-11-24T10:00:00Z, a date like \
         2026-11-24, or a duration back from now like 90m, 24h, 7d)"
    )]
    BadTime { input: String, reason: String },

    /// `since` is not before `until`.
    #[error("empty time range: since ({since}) is not before until ({until})")]
    EmptyRange { since: String, until: String },

    /// A duration such as a funnel window could not be parsed.
    #[error(
        "bad duration `{input}`: {reason} (use a whole number and a unit: 90s, 30m, 2h, 7d, 1w)"
    )]
    BadDuration { input: String, reason: String },

    /// Another audit parameter is out of range.
    #[error("bad parameter {name}: {reason}")]
    BadParam { name: &'static str, reason: String },

    /// No saved funnel has this name (for this site).
    #[error("no saved funnel `{name}`{}", if known.is_empty() {
        " (none is saved; save one with: analyzer funnels save NAME --step SPEC …)".to_owned()
    } else {
        format!("; saved: {}", known.join(", "))
    })]
    UnknownFunnel { name: String, known: Vec<String> },

    /// The collector could not be reached or sent something that is not a report.
    #[error("cannot get a report from the collector at {url}: {detail}")]
    Unreachable { url: String, detail: String },

    /// The collector answered 401: its `/api/*` wants an API token, and none was sent
    /// (or it did not accept the one sent). The token itself is never shown.
    #[error("{}", if *token_sent {
        "the collector did not accept the API token (wrong, expired or revoked?): pass a \
         valid one with --token or CLICKTRAIL_TOKEN (create one with `clicktrail tokens \
         create --user NAME`)"
    } else {
        "the collector needs an API token: pass --token or set CLICKTRAIL_TOKEN (create \
         one with `clicktrail tokens create --user NAME`)"
    })]
    Unauthorized { token_sent: bool },

    /// The collector answered with an error (`{"error": CODE, "message": …}`).
    #[error("the collector answered {status} {code}: {message}")]
    Remote {
        status: u16,
        code: String,
        message: String,
    },

    /// Writing JSON failed.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),

    /// Drawing a chart or filling the HTML template failed.
    #[error("could not render the report: {0}")]
    Render(String),
}

impl Error {
    /// A stable `snake_case` code for this kind of error, for `{"error": CODE}` bodies.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Locked { .. } => "locked",
            Error::NoSuchFile { .. } => "no_such_file",
            Error::NoEventsTable { .. } => "no_events_table",
            Error::Db(_) => "db",
            Error::Polars(_) => "compute",
            Error::ColumnType { .. } => "column_type",
            Error::BadStep { .. } => "bad_step",
            Error::BadTime { .. } | Error::EmptyRange { .. } => "bad_time",
            Error::BadDuration { .. } => "bad_duration",
            Error::BadParam { .. } => "bad_param",
            Error::UnknownFunnel { .. } => "unknown_funnel",
            Error::Unreachable { .. } => "unreachable",
            Error::Unauthorized { .. } => "unauthorized",
            Error::Remote { .. } => "remote",
            Error::Json(_) => "json",
            Error::Render(_) => "render",
        }
    }

    /// Whether the request itself was wrong (an HTTP server answers 400), rather than
    /// the data store or the computation (500).
    pub fn is_bad_request(&self) -> bool {
        matches!(
            self,
            Error::BadStep { .. }
                | Error::BadTime { .. }
                | Error::EmptyRange { .. }
                | Error::BadDuration { .. }
                | Error::BadParam { .. }
                | Error::UnknownFunnel { .. }
        )
    }
}
