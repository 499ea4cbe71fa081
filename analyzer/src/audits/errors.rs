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

use super::{Audit, Context, IN_ERROR_PAGE_SESSIONS, SessionOrder as _, error_page_sessions};
use crate::Error;
use crate::load::Col;
use crate::scope::{ResolvedScope, format_ms};
use crate::table::{Cell, Table};

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

/// The columns [`Errors::error_pages`] reads.
pub(crate) const ERROR_PAGE_COLUMNS: &[Col] = &[
    Col::SessionId,
    Col::Ts,
    Col::Seq,
    Col::Kind,
    Col::Path,
    Col::Referrer,
    Col::Status,
];

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

    fn kinds(&self) -> Option<Vec<&'static str>> {
        Some(vec!["error", "pageview"])
    }

    /// Every error; page views only of the sessions that reached an error page.
    fn rows(&self) -> Option<String> {
        Some(format!("kind = 'error' OR {IN_ERROR_PAGE_SESSIONS}"))
    }

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<ErrorsReport, Error> {
        let (sessions, scope) = (ctx.sessions, ctx.scope.clone());
        let js_errors = js_errors(events.clone())?;
        let error_pages = self.error_pages(&events)?;
        Ok(ErrorsReport {
            scope,
            sessions,
            js_errors,
            error_pages,
        })
    }
}

/// Where an error was raised: (source, line).
type Place<'a> = (Option<&'a str>, Option<i32>);

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
    let mut sample: HashMap<(&str, &str), Place<'_>> = HashMap::new();
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
    /// Pages served with status >= 400, ranked by sessions, with where visitors came
    /// from. Needs [`ERROR_PAGE_COLUMNS`]; the `links` audit shares it.
    pub(crate) fn error_pages(&self, events: &DataFrame) -> Result<Vec<ErrorPage>, Error> {
        let events = events.select(ERROR_PAGE_COLUMNS.iter().map(|c| c.name()))?;
        let referrer = || col("referrer");
        let from = when(col("previous").is_not_null())
            .then(col("previous"))
            .when(referrer().is_not_null().and(referrer().neq(lit(""))))
            .then(referrer())
            .otherwise(lit(DIRECT));
        // Only the sessions that reached an error page: where they came from is
        // the page view before it in the same session.
        let views = error_page_sessions(&events)
            .filter(col("kind").eq(lit("pageview")))
            .in_session_order()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::{AuditRequest, run_audit};
    use crate::testing::{Db, Ev, ev};

    const S: i64 = 1_000;
    const TYPE_ERROR: &str = "TypeError: cart is undefined";
    const APP: &str = "https://shop.example/app.js";

    fn errors(db: &Db, top_from: usize) -> ErrorsReport {
        run_audit(&db.conn(), ResolvedScope::default(), &Errors::new(top_from)).unwrap()
    }

    fn js(id: &str, session: &str, ts: i64, path: &str, source: &str, line: i32) -> Ev {
        ev(id, session, ts, 2, "error")
            .path(path)
            .message(TYPE_ERROR)
            .source(source)
            .line(line)
    }

    fn view(id: &str, session: &str, ts: i64, path: &str) -> Ev {
        ev(id, session, ts, 1, "pageview").path(path)
    }

    fn from(list: &[(&str, u64)]) -> Vec<CameFrom> {
        list.iter()
            .map(|(f, n)| CameFrom {
                from: (*f).to_owned(),
                views: *n,
            })
            .collect()
    }

    #[test]
    fn javascript_errors_by_message_and_page() {
        let db = Db::new();
        db.insert(&[
            // The same error on /cart: twice in s1, once in s2 (app.js:10), once in s3
            // from another script.
            js("a1", "s1", S, "/cart", APP, 10),
            js("a2", "s1", 2 * S, "/cart", APP, 10),
            js("b1", "s2", 5 * S, "/cart", APP, 10),
            js(
                "c1",
                "s3",
                9 * S,
                "/cart",
                "https://shop.example/vendor.js",
                3,
            ),
            // The same message on another page is another row.
            js("b2", "s2", 6 * S, "/checkout", APP, 99),
            // An error without message, source or line.
            ev("c2", "s3", 100, 1, "error").path("/"),
            // Not errors.
            view("d1", "s4", 0, "/cart"),
        ]);
        let r = errors(&db, 3);
        assert_eq!(r.sessions, 4);
        assert!(r.error_pages.is_empty());
        let expected = [
            JsError {
                message: TYPE_ERROR.into(),
                page: "/cart".into(),
                occurrences: 4,
                sessions: 3,
                first_seen_ms: S,
                last_seen_ms: 9 * S,
                source: Some(APP.into()), // 3 of the 4
                line: Some(10),
            },
            // Ties on sessions and occurrences: by message ("(" sorts before "T").
            JsError {
                message: NO_MESSAGE.into(),
                page: "/".into(),
                occurrences: 1,
                sessions: 1,
                first_seen_ms: 100,
                last_seen_ms: 100,
                source: None,
                line: None,
            },
            JsError {
                message: TYPE_ERROR.into(),
                page: "/checkout".into(),
                occurrences: 1,
                sessions: 1,
                first_seen_ms: 6 * S,
                last_seen_ms: 6 * S,
                source: Some(APP.into()),
                line: Some(99),
            },
        ];
        assert_eq!(r.js_errors, expected);
    }

    #[test]
    fn error_pages_and_where_they_came_from() {
        let db = Db::new();
        db.insert(&[
            // s1: from / to a dead link.
            view("a1", "s1", 0, "/").status(200),
            view("a2", "s1", S, "/old-page").status(404),
            // s2: from a search engine.
            view("b1", "s2", 0, "/old-page")
                .status(404)
                .referrer("https://search.example/?q=shop"),
            // s3: typed in (no referrer), then again from /.
            view("c1", "s3", 0, "/old-page").status(404),
            view("c2", "s3", S, "/").status(200),
            view("c3", "s3", 2 * S, "/old-page").status(404),
            // s4: from the cart; an SPA route without a status is not an error page.
            view("d1", "s4", 0, "/cart").status(200),
            view("d2", "s4", 5 * S, "/old-page").status(404),
            view("d3", "s4", 6 * S, "/gone").nav("push"),
            // s5: a server error with an empty referrer; a 399 is no error.
            view("e1", "s5", 7 * S, "/api-fail")
                .status(500)
                .referrer(""),
            view("e2", "s5", 8 * S, "/odd").status(399),
        ]);
        let r = errors(&db, 3);
        assert_eq!(r.sessions, 5);
        assert!(r.js_errors.is_empty());
        let expected = [
            ErrorPage {
                page: "/old-page".into(),
                status: 404,
                views: 5,
                sessions: 4,
                first_seen_ms: 0,
                last_seen_ms: 5 * S,
                // Ties by name: "(direct)", "/cart", then the search engine (cut off).
                came_from: from(&[("/", 2), (DIRECT, 1), ("/cart", 1)]),
            },
            ErrorPage {
                page: "/api-fail".into(),
                status: 500,
                views: 1,
                sessions: 1,
                first_seen_ms: 7 * S,
                last_seen_ms: 7 * S,
                came_from: from(&[(DIRECT, 1)]),
            },
        ];
        assert_eq!(r.error_pages, expected);

        let r = errors(&db, 4);
        assert_eq!(
            r.error_pages[0].came_from[3].from,
            "https://search.example/?q=shop"
        );
        let r = errors(&db, 1);
        assert_eq!(r.error_pages[0].came_from, from(&[("/", 2)]));
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = errors(&db, 3);
        assert_eq!(r.sessions, 0);
        assert!(r.js_errors.is_empty() && r.error_pages.is_empty());
        assert!(r.table().rows.is_empty());

        db.insert(&[view("a1", "s1", 0, "/").status(200)]);
        let r = errors(&db, 3);
        assert_eq!(r.sessions, 1);
        assert!(r.js_errors.is_empty() && r.error_pages.is_empty());
    }

    #[test]
    fn table_lists_errors_then_error_pages() {
        let db = Db::new();
        db.insert(&[
            js("a1", "s1", 1_795_514_400_000, "/cart", APP, 10),
            view("b1", "s2", 1_795_514_460_000, "/")
                .status(200)
                .referrer("https://other.example/"),
            view("b2", "s2", 1_795_514_470_000, "/old").status(404),
        ]);
        let req: AuditRequest = serde_json::from_str(r#"{"audit":"errors"}"#).unwrap();
        assert_eq!(
            req,
            AuditRequest::Errors {
                scope: crate::Scope::default(),
                top_from: 3
            }
        );
        let report = crate::audits::run_at(&db.conn(), &req, 0).unwrap();
        let out = crate::render(&report, crate::Format::Csv).unwrap();
        assert_eq!(
            out,
            "kind,page,error,count,sessions,first_seen,last_seen,detail\n\
             js_error,/cart,TypeError: cart is undefined,1,1,2026-11-24T10:00:00Z,\
             2026-11-24T10:00:00Z,https://shop.example/app.js:10\n\
             http_status,/old,HTTP 404,1,1,2026-11-24T10:01:10Z,2026-11-24T10:01:10Z,/ (1)\n"
        );
    }
}
