//! The `links` audit: which links are almost never clicked, and which lead nowhere.
//!
//! Params: when a link counts as unused (`min_impressions`, `max_ctr`). The events in
//! scope come from [`crate::load::events`] with [`Links::COLUMNS`].
//!
//! - **Impressions** (Polars): the tracker lists each link that was in the viewport
//!   during a view (a page view, or one `data-ct-screen` screen of it) once per view,
//!   and the collector stores one `link_view` row per listed link. A link is (page
//!   path, selector, href); its impressions are its rows, so a link seen on two
//!   screens of one page view counts twice.
//! - **Clicks** (Polars joins): the tracker records a click anywhere inside a link
//!   (a button or icon in it) as a click on the link, with the selector of its
//!   `link_view` rows. A `click` is credited to the link of the same page, selector
//!   and href; else to the one link of that page with its selector (its href
//!   changed); else to none: a click is never credited to a link it did not touch.
//! - Per session, a click proves the link was seen, and a link counts at most one
//!   click per time it was seen: a visitor's `impressions` of a link are at least 1
//!   when they clicked it, their `clicks` at most their impressions. So CTR never
//!   passes 100 %, however often one visitor clicks a link that does not leave.
//! - **CTR** = clicks / impressions, with a 95 % Wilson score interval
//!   ([`crate::stats::wilson`]). A link is **unused**
//!   when it has at least `min_impressions` impressions and the upper end of that
//!   interval is below `max_ctr`: even the kindest reading of the data says almost
//!   nobody clicks it.
//! - **Broken** (a sequential pass in Rust over clicks and page views in (session,
//!   ts, seq) order): a page view with status >= 400 was reached through a click on
//!   the page before it, namely the last click since the previous page view whose
//!   href's path is the error page's path, else the last click since the previous
//!   page view if it came at most [`BROKEN_WITHIN_MS`] before. Polars groups those
//!   clicks by (page, selector, href, error page, status).
//! - **Error pages**: the `errors` audit's own list ([`super::errors`]), so that the
//!   two reports agree: page views with status >= 400 by (page, status), with their
//!   sessions and where they came from.

use duckdb::Connection;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::errors::{ErrorPage, Errors};
use super::{
    Audit, Context, IN_ERROR_PAGE_SESSIONS, LabelMap, SessionOrder as _, error_page_sessions,
    kind_in, link_key, link_labels, load_rows, ratio,
};
use crate::Error;
use crate::load::{self, Col};
use crate::scope::ResolvedScope;
use crate::stats::wilson;
use crate::table::{Cell, Table};

/// Fewest impressions before a link can be called unused, when not told.
pub const DEFAULT_MIN_IMPRESSIONS: u64 = 30;

/// A link is unused when its CTR's upper 95 % bound is below this, when not told.
pub const DEFAULT_MAX_CTR: f64 = 0.01;

/// A click at most this long before an error page view led there, whatever its href.
pub const BROKEN_WITHIN_MS: i64 = 10_000;

/// The stored kind of one link seen in the viewport.
const LINK_VIEW: &str = "link_view";

/// Validated links params.
#[derive(Debug, Clone)]
pub struct Links {
    min_impressions: u64,
    max_ctr: f64,
}

/// The links report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinksReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// A link needs this many impressions to be called unused.
    pub min_impressions: u64,
    /// A link is unused when the upper end of its CTR's 95 % interval is below this.
    pub max_ctr: f64,
    /// Every link seen in a viewport, by `impressions` (descending), then page,
    /// selector, href.
    pub links: Vec<LinkStats>,
    /// The links that are almost never clicked, in the order of `links`.
    pub unused: Vec<LinkStats>,
    /// Clicks that led to an error page, by `sessions`, then `clicks` (descending).
    pub broken: Vec<BrokenLink>,
    /// Pages served with status >= 400, as in the `errors` audit: by `sessions`, then
    /// `views` (descending).
    pub error_pages: Vec<ErrorPage>,
}

/// One link: where it was, what it was, how often it was seen and clicked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkStats {
    /// Path of the page it is on.
    pub page: String,
    /// The tracker's CSS selector of the link.
    pub selector: String,
    /// What the link reads: its text or accessible name; null when it has none.
    pub label: Option<String>,
    /// Its target (scrubbed like every URL, a hash route kept); null if the
    /// collector dropped it.
    pub href: Option<String>,
    /// Views (page views or screens) during which it was in the viewport, and
    /// at least one per session that clicked it.
    pub impressions: u64,
    /// Clicks credited to it, at most one per impression in each session.
    pub clicks: u64,
    /// `clicks / impressions`, never above 1.
    pub ctr: Option<f64>,
    /// The 95 % Wilson score interval of the CTR.
    pub ctr_low: Option<f64>,
    pub ctr_high: Option<f64>,
}

/// Clicks on one element that led to an error page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokenLink {
    /// Path of the page the click was on.
    pub page: String,
    /// The clicked element; null if the tracker sent none.
    pub selector: Option<String>,
    /// What the element reads: its text or accessible name; null when unknown.
    pub label: Option<String>,
    /// The clicked link's target; null for a click on something that is not a link.
    pub href: Option<String>,
    /// Path of the error page reached.
    pub target: String,
    /// Its HTTP status (>= 400).
    pub status: i32,
    /// Clicks that led there.
    pub clicks: u64,
    /// Sessions with at least one of them.
    pub sessions: u64,
}

impl Links {
    /// `max_ctr` must be a fraction in (0, 1].
    pub fn new(min_impressions: u64, max_ctr: f64) -> Result<Self, Error> {
        if !(max_ctr > 0.0 && max_ctr <= 1.0) {
            return Err(Error::BadParam {
                name: "max_ctr",
                reason: format!("{max_ctr} is not a fraction in (0, 1]; 0.01 means 1 %"),
            });
        }
        Ok(Links {
            min_impressions,
            max_ctr,
        })
    }

    fn is_unused(&self, link: &LinkStats) -> bool {
        link.impressions >= self.min_impressions
            && link.ctr_high.is_some_and(|high| high < self.max_ctr)
    }
}

impl Default for Links {
    fn default() -> Self {
        Links {
            min_impressions: DEFAULT_MIN_IMPRESSIONS,
            max_ctr: DEFAULT_MAX_CTR,
        }
    }
}

impl Audit for Links {
    type Report = LinksReport;

    /// Ours, plus what the error pages need (`errors::ERROR_PAGE_COLUMNS`).
    const COLUMNS: &'static [Col] = &[
        Col::SessionId,
        Col::Ts,
        Col::Seq,
        Col::Kind,
        Col::Path,
        Col::Selector,
        Col::Href,
        Col::Referrer,
        Col::Status,
    ];

    fn kinds(&self) -> Option<Vec<&'static str>> {
        Some(vec!["click", "pageview"])
    }

    /// The clicks and page views of the sessions that reached an error page (the
    /// broken links' and error pages' passes); the link counts and labels are
    /// asked of the store ([`link_stats`], [`labels`]).
    fn rows(&self) -> Option<String> {
        Some(IN_ERROR_PAGE_SESSIONS.to_owned())
    }

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<LinksReport, Error> {
        let labels = link_labels(ctx.conn, &ctx.scope, &["click", LINK_VIEW])?;
        let links = link_stats(ctx.conn, &ctx.scope, &labels)?;
        let passes = error_passes(&events)?;
        Ok(self.finish(ctx.scope.clone(), ctx.sessions, links, passes, &labels))
    }
}

impl Links {
    /// The report straight from the store: what `analyzer links` and `/api/audit`
    /// run (the report, whose sections already fill the cores, computes it on one
    /// connection). The link counts and labels (store queries, most of the
    /// work) are asked on a second connection while this one counts the sessions,
    /// loads the rows of the broken-link and error-page passes and runs them: on
    /// two cores less than the time of the two one after the other.
    pub fn run(&self, conn: &Connection, scope: ResolvedScope) -> Result<LinksReport, Error> {
        let side = load::clone(conn)?;
        let counts = |side: Connection| {
            store::transaction(&side, || {
                let labels = link_labels(&side, &scope, &["click", LINK_VIEW])?;
                let links = link_stats(&side, &scope, &labels)?;
                Ok::<_, Error>((labels, links))
            })
        };
        let ((labels, links), (sessions, passes)) = std::thread::scope(|s| {
            let counted = s.spawn(|| counts(side));
            let passed = store::transaction(conn, || {
                let sessions = load::sessions(conn, &scope)?;
                Ok::<_, Error>((sessions, load_rows(conn, &scope, self)?))
            })
            .and_then(|(sessions, events)| Ok((sessions, error_passes(&events)?)));
            let counted = counted.join().expect("the link counts do not panic")?;
            Ok::<_, Error>((counted, passed?))
        })?;
        Ok(self.finish(scope, sessions, links, passes, &labels))
    }

    /// The report from the link counts and the passes over the error-page
    /// sessions; the broken links get their labels here.
    fn finish(
        &self,
        scope: ResolvedScope,
        sessions: u64,
        links: Vec<LinkStats>,
        (mut broken, error_pages): (Vec<BrokenLink>, Vec<ErrorPage>),
        labels: &LabelMap,
    ) -> LinksReport {
        let unused = links
            .iter()
            .filter(|l| self.is_unused(l))
            .cloned()
            .collect();
        for b in &mut broken {
            b.label = b.selector.as_ref().and_then(|s| {
                let key = link_key(s, b.href.as_deref());
                labels.get(&(b.page.clone(), key)).cloned()
            });
        }
        LinksReport {
            scope,
            sessions,
            min_impressions: self.min_impressions,
            max_ctr: self.max_ctr,
            links,
            unused,
            broken,
            error_pages,
        }
    }
}

/// The passes over the rows of the error-page sessions: the broken links
/// (without their labels yet) and the error pages.
fn error_passes(events: &DataFrame) -> Result<(Vec<BrokenLink>, Vec<ErrorPage>), Error> {
    Ok((
        broken_links(events)?,
        Errors::default().error_pages(events)?,
    ))
}

/// Impressions and credited clicks per link, counted by the store, sorted as
/// [`LinksReport::links`]. A missing href equals a missing href (a link whose
/// target the collector dropped is still one link).
fn link_stats(
    conn: &Connection,
    scope: &ResolvedScope,
    labels: &LabelMap,
) -> Result<Vec<LinkStats>, Error> {
    let (filter, params) = load::scope_filter(scope);
    let same = "e.path = l.path AND e.selector = l.selector AND e.href IS NOT DISTINCT FROM l.href";
    // `ev` is read once (MATERIALIZED): the passes below use it four times.
    let sql = format!(
        "WITH ev AS MATERIALIZED (
            SELECT kind, session_key, path, selector, href FROM events
            WHERE {filter} AND kind IN ('{LINK_VIEW}', 'click')
              AND selector IS NOT NULL AND path IS NOT NULL),
        -- Each link once, (page, selector, href), numbered: from here on the passes
        -- group and join on (session, link number), not on three strings.
        links AS (
            SELECT row_number() OVER () AS id, path, selector, href
            FROM (SELECT DISTINCT path, selector, href FROM ev WHERE kind = '{LINK_VIEW}')),
        only_link AS (
            SELECT path, selector, any_value(id) AS id FROM links
            GROUP BY path, selector HAVING count(*) = 1),
        -- Which link each distinct click key is credited to: the link of the same
        -- (page, selector, href), else the one link of that page with that selector
        -- (its href changed); never a link the click did not touch.
        keys AS (SELECT DISTINCT path, selector, href FROM ev WHERE kind = 'click'),
        key_link AS (
            SELECT e.path, e.selector, e.href, coalesce(l.id, o.id) AS id
            FROM keys e LEFT JOIN links l ON {same}
            LEFT JOIN only_link o ON e.path = o.path AND e.selector = o.selector
            WHERE coalesce(l.id, o.id) IS NOT NULL),
        views AS (
            SELECT e.session_key, l.id, count(*) AS v
            FROM ev e JOIN links l ON {same} WHERE e.kind = '{LINK_VIEW}' GROUP BY ALL),
        credited AS (
            SELECT e.session_key, l.id, count(*) AS c
            FROM ev e JOIN key_link l ON {same} WHERE e.kind = 'click' GROUP BY ALL),
        -- Per session: a click proves the link was seen once at least, and a link is
        -- clicked at most once per time it was seen, so CTR never passes 100 %.
        per_session AS (
            SELECT coalesce(v.id, c.id) AS id,
                   greatest(coalesce(v.v, 0), CASE WHEN c.c > 0 THEN 1 ELSE 0 END) AS v,
                   coalesce(c.c, 0) AS c
            FROM views v FULL JOIN credited c ON v.session_key = c.session_key AND v.id = c.id),
        totals AS (SELECT id, sum(v) AS v, sum(least(c, v)) AS c FROM per_session GROUP BY id)
        SELECT l.path, l.selector, l.href, t.v::UBIGINT, t.c::UBIGINT
        FROM totals t JOIN links l USING (id)",
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut links = stmt
        .query_map(duckdb::params_from_iter(params), |r| {
            let (page, selector): (String, String) = (r.get(0)?, r.get(1)?);
            let (seen, clicked): (u64, u64) = (r.get(3)?, r.get(4)?);
            let interval = wilson(clicked, seen);
            Ok(LinkStats {
                label: labels
                    .get(&(
                        page.clone(),
                        link_key(&selector, r.get::<_, Option<String>>(2)?.as_deref()),
                    ))
                    .cloned(),
                page,
                selector,
                href: r.get(2)?,
                impressions: seen,
                clicks: clicked,
                ctr: ratio(clicked, seen),
                ctr_low: interval.map(|(low, _)| low),
                ctr_high: interval.map(|(_, high)| high),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // Most impressions first, then by page, selector and href (a missing one last).
    links.sort_unstable_by(|a, b| {
        b.impressions
            .cmp(&a.impressions)
            .then_with(|| a.page.cmp(&b.page))
            .then_with(|| a.selector.cmp(&b.selector))
            .then_with(|| match (&a.href, &b.href) {
                (Some(x), Some(y)) => x.cmp(y),
                (x, y) => x.is_none().cmp(&y.is_none()),
            })
    });
    Ok(links)
}

/// Clicks that led to a page view with status >= 400, grouped as [`BrokenLink`]s
/// (labelled by [`Links::finish`]).
fn broken_links(events: &DataFrame) -> Result<Vec<BrokenLink>, Error> {
    // Only sessions that reached an error page can hold a broken link.
    let sorted = error_page_sessions(events)
        .filter(kind_in(["click", "pageview"]))
        .in_session_order()
        .collect()?;
    let strings = |name: &str| -> Result<Vec<Option<&str>>, Error> {
        Ok(sorted.column(name)?.str()?.iter().collect())
    };
    let session: Vec<Option<u64>> = sorted.column("session_id")?.u64()?.iter().collect();
    let kind = strings("kind")?;
    let path = strings("path")?;
    let selector = strings("selector")?;
    let href = strings("href")?;
    let ts: Vec<Option<i64>> = sorted.column("ts")?.i64()?.iter().collect();
    let status: Vec<Option<i32>> = sorted.column("status")?.i32()?.iter().collect();

    // One row per click that led to an error page.
    let mut hit = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut hit_session = Vec::new();
    let mut current: Option<u64> = None;
    let mut pending: Vec<usize> = Vec::new(); // clicks since the session's last page view
    for i in 0..sorted.height() {
        let (Some(sid), Some(t), Some(k)) = (session[i], ts[i], kind[i]) else {
            continue;
        };
        if current != Some(sid) {
            pending.clear();
            current = Some(sid);
        }
        if k == "click" {
            pending.push(i);
            continue;
        }
        if let (Some(st), Some(target)) = (status[i], path[i])
            && st >= 400
        {
            let by_href = pending
                .iter()
                .rev()
                .find(|&&c| href[c].is_some_and(|h| href_path(h) == target));
            let just_before = pending
                .last()
                .filter(|&&c| ts[c].is_some_and(|tc| t - tc <= BROKEN_WITHIN_MS));
            if let Some(&c) = by_href.or(just_before) {
                hit.0.push(path[c]);
                hit.1.push(selector[c]);
                hit.2.push(href[c]);
                hit.3.push(target);
                hit.4.push(st);
                hit_session.push(sid);
            }
        }
        pending.clear();
    }

    let hits = DataFrame::new(
        hit_session.len(),
        vec![
            Column::new("page".into(), hit.0),
            Column::new("selector".into(), hit.1),
            Column::new("href".into(), hit.2),
            Column::new("target".into(), hit.3),
            Column::new("status".into(), hit.4),
            Column::new("session_id".into(), hit_session),
        ],
    )?;
    let grouped = hits
        .lazy()
        .group_by([
            col("page"),
            col("selector"),
            col("href"),
            col("target"),
            col("status"),
        ])
        .agg([
            len().cast(DataType::UInt64).alias("clicks"),
            col("session_id")
                .n_unique()
                .cast(DataType::UInt64)
                .alias("sessions"),
        ])
        .sort_by_exprs(
            [
                col("sessions"),
                col("clicks"),
                col("page"),
                col("selector"),
                col("href"),
                col("target"),
            ],
            SortMultipleOptions::default()
                .with_order_descending_multi([true, true, false, false, false, false])
                .with_nulls_last(true),
        )
        .collect()?;

    let page = grouped.column("page")?.str()?;
    let selector = grouped.column("selector")?.str()?;
    let href = grouped.column("href")?.str()?;
    let target = grouped.column("target")?.str()?;
    let status = grouped.column("status")?.i32()?;
    let clicks = grouped.column("clicks")?.u64()?;
    let sessions = grouped.column("sessions")?.u64()?;
    Ok((0..grouped.height())
        .filter_map(|i| {
            let (page, sel) = (page.get(i).unwrap_or_default(), selector.get(i));
            Some(BrokenLink {
                page: page.to_owned(),
                selector: sel.map(str::to_owned),
                label: None,
                href: href.get(i).map(str::to_owned),
                target: target.get(i)?.to_owned(),
                status: status.get(i)?,
                clicks: clicks.get(i).unwrap_or(0),
                sessions: sessions.get(i).unwrap_or(0),
            })
        })
        .collect())
}

/// The path a link target points to: `https://shop.example/cart?utm_source=x` and
/// `/cart#top` → `/cart`; a bare host → `/`.
fn href_path(href: &str) -> &str {
    let after_host = |rest: &'_ str| -> usize { rest.find(['/', '?', '#']).unwrap_or(rest.len()) };
    let rest = if let Some(i) = href.find("://") {
        let rest = &href[i + 3..];
        &rest[after_host(rest)..]
    } else if let Some(rest) = href.strip_prefix("//") {
        &rest[after_host(rest)..]
    } else {
        href
    };
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    if path.is_empty() { "/" } else { path }
}

/// `1 link`, `2 links`.
fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

impl LinksReport {
    /// The report as rows for the table, CSV and HTML renderers, one `section` after
    /// the other: `unused` links, `broken` clicks (`detail` = the error page reached),
    /// `error_page`s (`clicks` = views, `detail` = where they came from), then every
    /// `link`. Numbers that do not apply to a section are empty.
    pub fn table(&self) -> Table {
        // A number column without a value (shown as `–`, empty in CSV).
        let none = || Cell::Ratio(None);
        let text = |s: Option<&String>| Cell::Text(s.cloned().unwrap_or_default());
        let link_row = |section: &str, l: &LinkStats| {
            vec![
                Cell::Text(section.to_owned()),
                Cell::Text(l.page.clone()),
                Cell::Text(l.selector.clone()),
                text(l.label.as_ref()),
                text(l.href.as_ref()),
                Cell::Count(l.impressions),
                Cell::Count(l.clicks),
                Cell::Ratio(l.ctr),
                Cell::Ratio(l.ctr_low),
                Cell::Ratio(l.ctr_high),
                none(),
                none(),
                Cell::Text(String::new()),
            ]
        };
        let unused = self.unused.iter().map(|l| link_row("unused", l));
        let broken = self.broken.iter().map(|b| {
            vec![
                Cell::Text("broken".to_owned()),
                Cell::Text(b.page.clone()),
                text(b.selector.as_ref()),
                text(b.label.as_ref()),
                text(b.href.as_ref()),
                none(),
                Cell::Count(b.clicks),
                none(),
                none(),
                none(),
                Cell::Count(u64::try_from(b.status).unwrap_or(0)),
                Cell::Count(b.sessions),
                Cell::Text(b.target.clone()),
            ]
        });
        let error_pages = self.error_pages.iter().map(|p| {
            let from = p
                .came_from
                .iter()
                .map(|c| format!("{} ({})", c.from, c.views))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                Cell::Text("error_page".to_owned()),
                Cell::Text(p.page.clone()),
                Cell::Text(String::new()),
                Cell::Text(String::new()),
                Cell::Text(String::new()),
                none(),
                Cell::Count(p.views),
                none(),
                none(),
                none(),
                Cell::Count(u64::try_from(p.status).unwrap_or(0)),
                Cell::Count(p.sessions),
                Cell::Text(from),
            ]
        });
        let all = self.links.iter().map(|l| link_row("link", l));
        Table {
            audit: "links",
            facts: vec![
                self.scope.describe(),
                format!("{} sessions", self.sessions),
                plural(self.links.len(), "link"),
                format!(
                    "{} unused (≥ {} impressions, 95% upper bound of CTR < {:.1}%)",
                    self.unused.len(),
                    self.min_impressions,
                    self.max_ctr * 100.0
                ),
                format!("{} broken", self.broken.len()),
                plural(self.error_pages.len(), "error page"),
            ],
            columns: vec![
                ("section", "section"),
                ("page", "page"),
                ("selector", "selector"),
                ("label", "label"),
                ("href", "href"),
                ("impressions", "impressions"),
                ("clicks", "clicks / views"),
                ("ctr", "CTR"),
                ("ctr_low", "CTR low"),
                ("ctr_high", "CTR high"),
                ("status", "status"),
                ("sessions", "sessions"),
                ("detail", "leads to / came from"),
            ],
            rows: unused.chain(broken).chain(error_pages).chain(all).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::run_audit;
    use crate::testing::{Db, Ev, ev, link_seen as seen, page_200 as page};

    const S: i64 = 1_000;
    const HOST: &str = "https://shop.example";

    /// `(page, status, views, sessions, [(came from, views)])` of an error page.
    type PageRow<'a> = (&'a str, i32, u64, u64, Vec<(&'a str, u64)>);

    fn links(db: &Db, params: &Links) -> LinksReport {
        run_audit(&db.conn(), ResolvedScope::default(), params).unwrap()
    }

    fn click(id: &str, session: &str, ts: i64, path: &str, selector: &str, href: &str) -> Ev {
        ev(id, session, ts, 3, "click")
            .path(path)
            .selector(selector)
            .href(href)
    }

    fn url(path: &str) -> String {
        format!("{HOST}{path}")
    }

    /// `(page, selector, impressions, clicks)` per link, in report order.
    fn counts(r: &LinksReport) -> Vec<(&str, &str, u64, u64)> {
        r.links
            .iter()
            .map(|l| {
                (
                    l.page.as_str(),
                    l.selector.as_str(),
                    l.impressions,
                    l.clicks,
                )
            })
            .collect()
    }

    #[test]
    fn a_link_seen_on_two_screens_of_one_page_counts_twice() {
        let db = Db::new();
        let help = url("/help");
        db.insert(&[
            // One page view of /checkout with two screens; the help link is in view on
            // both, the terms link on the second only; the help link is clicked once.
            page("a1", "s1", 0, "/checkout").screen("shipping"),
            seen("a2", "s1", 10 * S, "/checkout", "a#help", &help).screen("shipping"),
            ev("a3", "s1", 11 * S, 3, "screen")
                .path("/checkout")
                .screen("payment"),
            seen("a4", "s1", 20 * S, "/checkout", "a#help", &help).screen("payment"),
            seen("a5", "s1", 20 * S, "/checkout", "a#terms", &url("/terms")).screen("payment"),
            click("a6", "s1", 21 * S, "/checkout", "a#help", &help).screen("payment"),
        ]);
        let r = links(&db, &Links::default());
        assert_eq!(r.sessions, 1);
        assert_eq!(
            counts(&r),
            [
                ("/checkout", "a#help", 2, 1),
                ("/checkout", "a#terms", 1, 0)
            ]
        );
        let h = &r.links[0];
        assert_eq!(h.href.as_deref(), Some(help.as_str()));
        assert_eq!(h.ctr, Some(0.5));
        // Wilson 95 % for 1 of 2: (0.094531, 0.905469).
        assert!((h.ctr_low.unwrap() - 0.094_531).abs() < 1e-6);
        assert!((h.ctr_high.unwrap() - 0.905_469).abs() < 1e-6);
        let t = &r.links[1];
        assert_eq!((t.ctr, t.ctr_low), (Some(0.0), Some(0.0)));
        // Wilson upper bound of 0 of 1: z² / (1 + z²) = 3.841459 / 4.841459.
        assert!((t.ctr_high.unwrap() - 0.793_451).abs() < 1e-6);
    }

    #[test]
    fn clicks_go_only_to_the_link_they_touched() {
        let db = Db::new();
        let (p1, p2, p3, home) = (url("/p/1"), url("/p/2"), url("/p/3"), url("/"));
        db.insert(&[
            page("a1", "s1", 0, "/"),
            // Two product tiles share a selector; two links go home.
            seen("a2", "s1", S, "/", "a.tile", &p1),
            seen("a3", "s1", S, "/", "a.tile", &p2),
            seen("a4", "s1", S, "/", "a#logo", &home),
            seen("a5", "s1", S, "/", "a#home", &home),
            seen("a6", "s1", S, "/", "a#cart", &url("/cart")),
            // Selector and href fit /p/2's tile only.
            click("a7", "s1", 2 * S, "/", "a.tile", &p2),
            // Selector fits both tiles, no href does: which one is unknown, so none.
            click("a8", "s1", 3 * S, "/", "a.tile", &p3),
            // Only the href fits: not a link the click touched.
            click("a9", "s1", 4 * S, "/", "span.icon", &home),
            click("a10", "s1", 5 * S, "/", "a#cart > img", &url("/cart")),
            // The logo's href with a parameter added on click: the one a#logo.
            click(
                "a11",
                "s1",
                6 * S,
                "/",
                "a#logo",
                &format!("{home}?ref=logo"),
            ),
            // The same selector and href on another page: not this page's link.
            page("b1", "s2", 0, "/about"),
            click("b2", "s2", S, "/about", "a#cart", &url("/cart")),
        ]);
        let r = links(&db, &Links::default());
        assert_eq!(r.sessions, 2);
        assert_eq!(
            counts(&r),
            [
                // All seen once: by page, selector, href.
                ("/", "a#cart", 1, 0),
                ("/", "a#home", 1, 0),
                ("/", "a#logo", 1, 1),
                ("/", "a.tile", 1, 0), // /p/1
                ("/", "a.tile", 1, 1), // /p/2: its own click
            ]
        );
        assert_eq!(r.links[3].href.as_deref(), Some(p1.as_str()));
        assert_eq!(r.links[2].ctr, Some(1.0));
        assert!(r.broken.is_empty() && r.error_pages.is_empty());
    }

    #[test]
    fn ctr_never_passes_one() {
        let db = Db::new();
        let tab = url("/#/reviews");
        db.insert(&[
            // s1 sees the tab link once and clicks it three times (it does not
            // leave the page): one click of one view.
            page("a1", "s1", 0, "/"),
            seen("a2", "s1", S, "/", "a#tab", &tab),
            click("a3", "s1", 2 * S, "/", "a#tab", &tab),
            click("a4", "s1", 3 * S, "/", "a#tab", &tab),
            click("a5", "s1", 4 * S, "/", "a#tab", &tab),
            // s2 clicks it without a recorded view (less than half of it was in
            // view): the click proves one view.
            page("b1", "s2", 0, "/"),
            click("b2", "s2", S, "/", "a#tab", &tab),
            // s3 sees it twice and clicks once.
            page("c1", "s3", 0, "/"),
            seen("c2", "s3", S, "/", "a#tab", &tab),
            seen("c3", "s3", 2 * S, "/", "a#tab", &tab),
            click("c4", "s3", 3 * S, "/", "a#tab", &tab),
        ]);
        let r = links(&db, &Links::default());
        assert_eq!(counts(&r), [("/", "a#tab", 4, 3)]);
        assert_eq!(r.links[0].ctr, Some(0.75));
        assert_eq!(r.links[0].href.as_deref(), Some(tab.as_str()));
    }

    #[test]
    fn a_link_whose_href_was_dropped_is_still_one_link() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, "/"),
            ev("a2", "s1", S, 2, "link_view").path("/").selector("a#js"),
            ev("a3", "s1", 2 * S, 3, "click").path("/").selector("a#js"),
            page("b1", "s2", 0, "/"),
            ev("b2", "s2", S, 2, "link_view").path("/").selector("a#js"),
        ]);
        let r = links(&db, &Links::default());
        assert_eq!(counts(&r), [("/", "a#js", 2, 1)]);
        assert_eq!(r.links[0].href, None);
    }

    #[test]
    fn links_are_labelled_with_their_text() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, "/"),
            seen("a2", "s1", S, "/", "a#sale", "/sale").text("Winter sale"),
            seen("a3", "s1", S, "/", "a#x", "/x"),
            click("a4", "s1", 2 * S, "/", "a#x", "/x").text("Size guide"),
            // Two variants of an ad in one slot: one selector, two targets.
            seen("a5", "s1", S, "/", "a.ad", "/runners").text("Runners 20% off"),
            page("b1", "s2", 0, "/"),
            seen("b2", "s2", S, "/", "a.ad", "/shoes").text("All shoes"),
        ]);
        let r = links(&db, &Links::default());
        let labels: Vec<_> = r
            .links
            .iter()
            .map(|l| {
                (
                    l.selector.as_str(),
                    l.href.as_deref().unwrap_or_default(),
                    l.label.as_deref(),
                )
            })
            .collect();
        assert!(
            labels.contains(&("a#sale", "/sale", Some("Winter sale"))),
            "{labels:?}"
        );
        assert!(
            labels.contains(&("a#x", "/x", Some("Size guide"))),
            "{labels:?}"
        );
        assert!(
            labels.contains(&("a.ad", "/runners", Some("Runners 20% off"))),
            "{labels:?}"
        );
        assert!(
            labels.contains(&("a.ad", "/shoes", Some("All shoes"))),
            "{labels:?}"
        );
    }

    #[test]
    fn unused_links_need_enough_impressions_and_a_low_upper_bound() {
        let db = Db::new();
        let mut events = vec![page("p", "s1", 0, "/")];
        let mut view = |n: usize, selector: &str| {
            for i in 0..n {
                events.push(seen(
                    &format!("{selector}-{i}"),
                    "s1",
                    S,
                    "/",
                    selector,
                    "/x",
                ));
            }
        };
        view(30, "a#never");
        view(30, "a#once");
        view(29, "a#few");
        events.push(click("c", "s1", 2 * S, "/", "a#once", "/y"));
        db.insert(&events);

        // With max_ctr 15 %: upper bounds (Wilson 95 %) are 0/30 → 0.113513,
        // 1/30 → 0.166704, 0/29 → 0.116970.
        let r = links(&db, &Links::new(30, 0.15).unwrap());
        let unused: Vec<&str> = r.unused.iter().map(|l| l.selector.as_str()).collect();
        // a#once's bound is above 15 %; a#few is below it, but has only 29 impressions.
        assert_eq!(unused, ["a#never"]);
        assert!((r.unused[0].ctr_high.unwrap() - 0.113_513).abs() < 1e-6);
        assert!((r.links[1].ctr_high.unwrap() - 0.166_704).abs() < 1e-6);
        assert_eq!(r.links[1].selector, "a#once");
        assert!(links(&db, &Links::new(29, 0.15).unwrap()).unused.len() == 2);
        // With the defaults (30, 1 %) none is: 0 clicks in 30 views is not yet proof.
        assert!(links(&db, &Links::default()).unused.is_empty());
    }

    #[test]
    fn with_the_defaults_a_never_clicked_link_needs_about_381_impressions() {
        // Upper bound of 0/n is z² / (n + z²): 380 → 0.0100079 (not < 1 %),
        // 400 → 0.0095123 (unused).
        let db = Db::new();
        let mut events = vec![page("p", "s1", 0, "/")];
        for (n, selector) in [(380, "a#almost"), (400, "a#unused")] {
            for i in 0..n {
                events.push(seen(
                    &format!("{selector}-{i}"),
                    "s1",
                    S,
                    "/",
                    selector,
                    "/x",
                ));
            }
        }
        db.insert(&events);
        let r = links(&db, &Links::default());
        assert_eq!(
            counts(&r),
            [("/", "a#unused", 400, 0), ("/", "a#almost", 380, 0)]
        );
        assert_eq!(r.unused.len(), 1);
        assert_eq!(r.unused[0].selector, "a#unused");
        assert!((r.unused[0].ctr_high.unwrap() - 0.009_512).abs() < 1e-6);
        assert!((r.links[1].ctr_high.unwrap() - 0.010_008).abs() < 1e-6);
    }

    #[test]
    fn broken_links_and_the_error_pages_they_lead_to() {
        let db = Db::new();
        let (sale, google) = (url("/old-sale"), "https://google.example/");
        db.insert(&[
            // s1: a#sale → /old-sale, 404 (href matches).
            page("a1", "s1", 0, "/"),
            click("a2", "s1", 5 * S, "/", "a#sale", &sale),
            page("a3", "s1", 6 * S, "/old-sale").status(404),
            // s2: the same, but the 404 page takes a minute (the href still matches).
            page("b1", "s2", 0, "/"),
            click("b2", "s2", 5 * S, "/", "a#sale", &sale),
            page("b3", "s2", 65 * S, "/old-sale").status(404),
            // s3: two clicks, then the 404 of the first one's href: the first one.
            page("c1", "s3", 0, "/"),
            click(
                "c2",
                "s3",
                S,
                "/",
                "a#sale",
                &format!("{sale}?utm_source=x"),
            ),
            click("c3", "s3", 2 * S, "/", "a#other", &url("/other")),
            page("c4", "s3", 3 * S, "/old-sale").status(404),
            // s4: a button (no href) and a 500 page 2 s later: the button.
            page("d1", "s4", 0, "/"),
            ev("d2", "s4", S, 2, "click")
                .path("/")
                .selector("button#buy"),
            page("d3", "s4", 3 * S, "/cart").status(500),
            // s5: a fine link; later a click on a#x, and 20 s after it a 404 of another
            // path: not a#x's doing (nor a#faq's, which led to a fine page).
            page("e1", "s5", 0, "/"),
            click("e2", "s5", S, "/", "a#faq", &url("/faq")),
            page("e3", "s5", 2 * S, "/faq"),
            click("e4", "s5", 20 * S, "/faq", "a#x", &url("/x")),
            page("e5", "s5", 40 * S, "/gone").status(404),
            // s6: lands on the 404 from a search engine.
            page("f1", "s6", 0, "/gone").status(404).referrer(google),
        ]);
        let r = links(&db, &Links::default());
        assert_eq!(r.sessions, 6);
        assert_eq!(
            r.broken,
            [
                BrokenLink {
                    page: "/".into(),
                    selector: Some("a#sale".into()),
                    label: None,
                    href: Some(sale.clone()),
                    target: "/old-sale".into(),
                    status: 404,
                    clicks: 2,
                    sessions: 2,
                },
                BrokenLink {
                    page: "/".into(),
                    selector: Some("a#sale".into()),
                    label: None,
                    href: Some(format!("{sale}?utm_source=x")),
                    target: "/old-sale".into(),
                    status: 404,
                    clicks: 1,
                    sessions: 1,
                },
                BrokenLink {
                    page: "/".into(),
                    selector: Some("button#buy".into()),
                    label: None,
                    href: None,
                    target: "/cart".into(),
                    status: 500,
                    clicks: 1,
                    sessions: 1,
                },
            ]
        );
        // Error pages by sessions: /old-sale (3), /gone (2), /cart (1); where from.
        let pages: Vec<PageRow<'_>> = r
            .error_pages
            .iter()
            .map(|p| {
                let from = p.came_from.iter().map(|c| (c.from.as_str(), c.views));
                (
                    p.page.as_str(),
                    p.status,
                    p.views,
                    p.sessions,
                    from.collect(),
                )
            })
            .collect();
        assert_eq!(
            pages,
            [
                ("/old-sale", 404, 3, 3, vec![("/", 3)]),
                ("/gone", 404, 2, 2, vec![("/faq", 1), (google, 1)]),
                ("/cart", 500, 1, 1, vec![("/", 1)]),
            ]
        );
        // Clicks that led to errors are still clicks of their links (none seen here).
        assert!(r.links.is_empty());
    }

    #[test]
    fn a_click_on_an_earlier_page_does_not_explain_a_later_error() {
        let db = Db::new();
        db.insert(&[
            // a#sale leads to a fine page; the 404 comes two page views later.
            page("a1", "s1", 0, "/"),
            click("a2", "s1", S, "/", "a#sale", &url("/sale")),
            page("a3", "s1", 2 * S, "/sale"),
            page("a4", "s1", 3 * S, "/sale").status(404),
            // Another session's click does not explain s2's 404.
            page("b1", "s2", 0, "/"),
            click("b2", "s2", 3 * S, "/", "a#gone", &url("/gone")),
            page("c1", "s3", 4 * S, "/gone").status(404),
        ]);
        let r = links(&db, &Links::default());
        assert!(r.broken.is_empty(), "{:?}", r.broken);
        assert_eq!(r.error_pages.len(), 2);
    }

    #[test]
    fn href_paths() {
        assert_eq!(href_path("https://shop.example/cart?utm_source=x"), "/cart");
        assert_eq!(href_path("https://shop.example"), "/");
        assert_eq!(href_path("https://shop.example?x=1"), "/");
        assert_eq!(href_path("http://shop.example/a/b#top"), "/a/b");
        assert_eq!(href_path("//cdn.example/x.js"), "/x.js");
        assert_eq!(href_path("/cart#top"), "/cart");
        assert_eq!(href_path(""), "/");
    }

    #[test]
    fn bad_params_are_rejected() {
        for bad in [0.0, -0.1, 1.5, f64::NAN] {
            assert!(
                matches!(
                    Links::new(30, bad),
                    Err(Error::BadParam {
                        name: "max_ctr",
                        ..
                    })
                ),
                "{bad}"
            );
        }
        assert!(Links::new(0, 1.0).is_ok());
    }

    #[test]
    fn the_error_pages_columns_are_loaded() {
        use crate::audits::errors::ERROR_PAGE_COLUMNS;
        for col in ERROR_PAGE_COLUMNS {
            assert!(Links::COLUMNS.contains(col), "{col:?}");
            assert!(Errors::COLUMNS.contains(col), "{col:?}");
        }
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = links(&db, &Links::default());
        assert_eq!(r.sessions, 0);
        assert!(r.links.is_empty() && r.unused.is_empty());
        assert!(r.broken.is_empty() && r.error_pages.is_empty());
    }

    #[test]
    fn request_defaults_and_the_table() {
        let req: crate::AuditRequest = serde_json::from_str(r#"{"audit":"links"}"#).unwrap();
        assert_eq!(
            req,
            crate::AuditRequest::Links {
                scope: crate::Scope::default(),
                min_impressions: 30,
                max_ctr: 0.01,
            }
        );
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, "/"),
            seen("a2", "s1", S, "/", "a#sale", &url("/sale")),
            click("a3", "s1", 2 * S, "/", "a#sale", &url("/sale")),
            page("a4", "s1", 3 * S, "/sale").status(404),
        ]);
        let report = crate::run(&db.conn(), &req).unwrap();
        let table = report.table();
        let sections: Vec<String> = table
            .rows
            .iter()
            .map(|r| r[0].raw() + " " + &r[1].raw())
            .collect();
        assert_eq!(sections, ["broken /", "error_page /sale", "link /"]);
        let csv = crate::render(&report, crate::Format::Csv).unwrap();
        assert!(csv.starts_with(
            "section,page,selector,label,href,impressions,clicks,ctr,ctr_low,ctr_high,status,sessions,detail\n"
        ));
        assert!(csv.contains("\nbroken,/,a#sale,,https://shop.example/sale,,1,,,,404,1,/sale\n"));
        let json = crate::render(&report, crate::Format::Json).unwrap();
        let crate::Report::Links(back) = serde_json::from_str(&json).unwrap() else {
            panic!("not a links report: {json}");
        };
        assert_eq!(back.broken[0].status, 404);
    }
}
