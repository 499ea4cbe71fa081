//! The `errors` audit: website failures visitors run into: JavaScript errors, and
//! pages served with an HTTP error status.
//!
//! Params: how many of the pages that led to an error page to list. The events in
//! scope come from [`crate::load::events`] with [`Errors::COLUMNS`]; everything is
//! computed in Polars:
//!
//! - **JavaScript errors** (`error` events) grouped by (message, page): occurrences,
//!   sessions, first and last time seen, and a sample `source:line` (the most frequent
//!   one of the group; the earliest seen on a tie). A null message groups as
//!   `(no message)`.
//! - **Error pages**: page views whose document status is 400 or more, grouped by
//!   (page, status): views, sessions, first and last seen, and where they came from:
//!   the path of the session's previous page view, else the page view's referrer,
//!   else `(direct)`; the `top_from` most common, by views.
//!
//! Both lists are sorted by sessions, then occurrences (views), descending.

use std::collections::HashMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Audit, count_sessions};
use crate::Error;
use crate::load::Col;
use crate::render::{Cell, Table};
use crate::scope::{ResolvedScope, format_ms};

/// How many previous pages a report lists per error page when not told.
pub const DEFAULT_TOP_FROM: usize = 3;

/// What a JavaScript error without a message is grouped as.
pub const NO_MESSAGE: &str = "(no message)";

/// What an error page reached with no previous page view and no referrer came from.
pub const DIRECT: &str = "(direct)";

/// Errors params.
#[derive(Debug, Clone)]
pub struct Errors {
    top_from: usize,
}

/// The errors report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorsReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// Sorted by `sessions`, then `occurrences` (both descending), then message, page.
    pub js_errors: Vec<JsError>,
    /// Sorted by `sessions`, then `views` (both descending), then page, status.
    pub error_pages: Vec<ErrorPage>,
}

/// A JavaScript error message on one page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsError {
    pub message: String,
    /// The page (path) it happened on.
    pub page: String,
    pub occurrences: u64,
    /// Sessions that hit it at least once.
    pub sessions: u64,
    /// UTC epoch ms.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// The script of the most frequent (source, line) of this error; null if unknown.
    pub source: Option<String>,
    pub line: Option<i32>,
}

/// A page served with an HTTP error status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorPage {
    /// The page (path) requested.
    pub page: String,
    /// The HTTP status of the document, >= 400.
    pub status: i32,
    pub views: u64,
    pub sessions: u64,
    /// UTC epoch ms.
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    /// Where the views came from, most common first.
    pub came_from: Vec<CameFrom>,
}

/// A previous page (or referrer) that led to an [`ErrorPage`], and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameFrom {
    /// The session's previous page (a path), else the referrer (a URL), else
    /// `(direct)`.
    pub from: String,
    pub views: u64,
}

impl Errors {
    pub fn new(top_from: usize) -> Self {
        Errors { top_from }
    }
}

impl Default for Errors {
    fn default() -> Self {
        Errors::new(DEFAULT_TOP_FROM)
    }
}

impl Audit for Errors {
    type Report = ErrorsReport;

    const COLUMNS: &'static [Col] = &[
        Col::SessionId,
        Col::Ts,
        Col::Seq,
        Col::Kind,
        Col::Path,
        Col::Referrer,
        Col::Status,
        Col::Message,
        Col::Source,
        Col::Line,
    ];

    fn compute(&self, events: DataFrame, scope: ResolvedScope) -> Result<ErrorsReport, Error> {
        let sessions = count_sessions(&events)?;
        let js_errors = js_errors(events.clone())?;
        let error_pages = self.error_pages(events)?;
        Ok(ErrorsReport {
            scope,
            sessions,
            js_errors,
            error_pages,
        })
    }
}

/// `error` events grouped by (message, page), with a sample source and line.
fn js_errors(events: DataFrame) -> Result<Vec<JsError>, Error> {
    let errors = events
        .lazy()
        .filter(col("kind").eq(lit("error")))
        .with_column(col("message").fill_null(lit(NO_MESSAGE)));
    let per_error = errors
        .clone()
        .group_by([col("message"), col("path")])
        .agg([
            len().cast(DataType::UInt64).alias("occurrences"),
            col("session_id")
                .n_unique()
                .cast(DataType::UInt64)
                .alias("sessions"),
            col("ts").min().alias("first"),
            col("ts").max().alias("last"),
        ])
        .collect()?;
    let places = errors
        .group_by([col("message"), col("path"), col("source"), col("line")])
        .agg([
            len().cast(DataType::UInt64).alias("count"),
            col("ts").min().alias("first"),
        ])
        .sort_by_exprs(
            [col("count"), col("first")],
            SortMultipleOptions::default().with_order_descending_multi([true, false]),
        )
        .collect()?;
    // The first row of each (message, page) is its most frequent place.
    let mut sample: HashMap<(&str, &str), (Option<&str>, Option<i32>)> = HashMap::new();
    let rows = places
        .column("message")?
        .str()?
        .iter()
        .zip(places.column("path")?.str()?.iter())
        .zip(places.column("source")?.str()?.iter())
        .zip(places.column("line")?.i32()?.iter());
    for (((message, page), source), line) in rows {
        if let (Some(message), Some(page)) = (message, page) {
            sample.entry((message, page)).or_insert((source, line));
        }
    }

    let message = per_error.column("message")?.str()?;
    let page = per_error.column("path")?.str()?;
    let occurrences = per_error.column("occurrences")?.u64()?;
    let affected = per_error.column("sessions")?.u64()?;
    let first = per_error.column("first")?.i64()?;
    let last = per_error.column("last")?.i64()?;
    let mut out: Vec<JsError> = (0..per_error.height())
        .filter_map(|i| {
            let (message, page) = (message.get(i)?, page.get(i)?);
            let (source, line) = sample.get(&(message, page)).copied().unwrap_or_default();
            Some(JsError {
                message: message.to_owned(),
                page: page.to_owned(),
                occurrences: occurrences.get(i).unwrap_or(0),
                sessions: affected.get(i).unwrap_or(0),
                first_seen_ms: first.get(i)?,
                last_seen_ms: last.get(i)?,
                source: source.map(str::to_owned),
                line,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then(b.occurrences.cmp(&a.occurrences))
            .then_with(|| a.message.cmp(&b.message))
            .then_with(|| a.page.cmp(&b.page))
    });
    Ok(out)
}

impl Errors {
    /// Page views with status >= 400, grouped by (page, status), with where they came from.
    fn error_pages(&self, events: DataFrame) -> Result<Vec<ErrorPage>, Error> {
        let referrer = || col("referrer");
        let from = when(col("previous").is_not_null())
            .then(col("previous"))
            .when(referrer().is_not_null().and(referrer().neq(lit(""))))
            .then(referrer())
            .otherwise(lit(DIRECT));
        let views = events
            .lazy()
            .filter(col("kind").eq(lit("pageview")))
            .sort_by_exprs(
                [col("session_id"), col("ts"), col("seq")],
                SortMultipleOptions::default().with_maintain_order(true),
            )
            .with_column(
                col("path")
                    .shift(lit(1))
                    .over([col("session_id")])?
                    .alias("previous"),
            )
            .filter(col("status").gt_eq(lit(400)))
            .with_column(from.alias("from"));
        let per_page = views
            .clone()
            .group_by([col("path"), col("status")])
            .agg([
                len().cast(DataType::UInt64).alias("views"),
                col("session_id")
                    .n_unique()
                    .cast(DataType::UInt64)
                    .alias("sessions"),
                col("ts").min().alias("first"),
                col("ts").max().alias("last"),
            ])
            .collect()?;
        let sources = views
            .group_by([col("path"), col("status"), col("from")])
            .agg([len().cast(DataType::UInt64).alias("views")])
            .sort_by_exprs(
                [col("views"), col("from")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;
        let mut came_from: HashMap<(&str, i32), Vec<CameFrom>> = HashMap::new();
        let rows = sources
            .column("path")?
            .str()?
            .iter()
            .zip(sources.column("status")?.i32()?.iter())
            .zip(sources.column("from")?.str()?.iter())
            .zip(sources.column("views")?.u64()?.iter());
        for (((page, status), from), n) in rows {
            if let (Some(page), Some(status), Some(from), Some(n)) = (page, status, from, n) {
                let list = came_from.entry((page, status)).or_default();
                if list.len() < self.top_from {
                    list.push(CameFrom {
                        from: from.to_owned(),
                        views: n,
                    });
                }
            }
        }

        let page = per_page.column("path")?.str()?;
        let status = per_page.column("status")?.i32()?;
        let views = per_page.column("views")?.u64()?;
        let affected = per_page.column("sessions")?.u64()?;
        let first = per_page.column("first")?.i64()?;
        let last = per_page.column("last")?.i64()?;
        let mut out: Vec<ErrorPage> = (0..per_page.height())
            .filter_map(|i| {
                let (page, status) = (page.get(i)?, status.get(i)?);
                Some(ErrorPage {
                    page: page.to_owned(),
                    status,
                    views: views.get(i).unwrap_or(0),
                    sessions: affected.get(i).unwrap_or(0),
                    first_seen_ms: first.get(i)?,
                    last_seen_ms: last.get(i)?,
                    came_from: came_from.remove(&(page, status)).unwrap_or_default(),
                })
            })
            .collect();
        out.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then(b.views.cmp(&a.views))
                .then_with(|| a.page.cmp(&b.page))
                .then(a.status.cmp(&b.status))
        });
        Ok(out)
    }
}

impl ErrorsReport {
    /// The report as rows for the table, CSV and HTML renderers: the JavaScript errors
    /// (`kind` `js_error`, `error` = the message, `detail` = a sample `source:line`),
    /// then the error pages (`kind` `http_status`, `error` = `HTTP 404`, `detail` =
    /// where they came from, `count` = views).
    pub fn table(&self) -> Table {
        let js = self.js_errors.iter().map(|e| {
            let detail = match (&e.source, e.line) {
                (Some(s), Some(l)) => format!("{s}:{l}"),
                (Some(s), None) => s.clone(),
                (None, Some(l)) => format!("line {l}"),
                (None, None) => String::new(),
            };
            vec![
                Cell::Text("js_error".to_owned()),
                Cell::Text(e.page.clone()),
                Cell::Text(e.message.clone()),
                Cell::Count(e.occurrences),
                Cell::Count(e.sessions),
                Cell::Text(format_ms(e.first_seen_ms)),
                Cell::Text(format_ms(e.last_seen_ms)),
                Cell::Text(detail),
            ]
        });
        let pages = self.error_pages.iter().map(|p| {
            let from = p
                .came_from
                .iter()
                .map(|c| format!("{} ({})", c.from, c.views))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                Cell::Text("http_status".to_owned()),
                Cell::Text(p.page.clone()),
                Cell::Text(format!("HTTP {}", p.status)),
                Cell::Count(p.views),
                Cell::Count(p.sessions),
                Cell::Text(format_ms(p.first_seen_ms)),
                Cell::Text(format_ms(p.last_seen_ms)),
                Cell::Text(from),
            ]
        });
        Table {
            audit: "errors",
            facts: vec![
                self.scope.describe(),
                format!("{} sessions", self.sessions),
                format!("{} JavaScript errors", self.js_errors.len()),
                format!("{} error pages", self.error_pages.len()),
            ],
            columns: vec![
                ("kind", "kind"),
                ("page", "page"),
                ("error", "error"),
                ("count", "count"),
                ("sessions", "sessions"),
                ("first_seen", "first seen"),
                ("last_seen", "last seen"),
                ("detail", "source / came from"),
            ],
            rows: js.chain(pages).collect(),
        }
    }
}
