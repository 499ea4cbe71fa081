//! A site's overview in one pass over the store: sessions, page views, sessions per
//! day, the top pages (views and sessions), the top screens and the sources of the
//! sessions. The dashboard's first page; each number follows the rule of the audit
//! it summarises (screens' labels, the ads audit's landing page), and the tests
//! check each against a query of its own.
//!
//! DuckDB sends every event in scope session after session ([`load::stream_sessions`]),
//! each half of the sessions ([`Half`]) on its own connection, side by side:
//! the session key, the day, a kind code, the page of a page view, the label of a
//! view or screen, and a page view's URL when it has a query string. Pages and
//! labels are numbered ([`Names`]); one session is in memory at a time.

use std::collections::HashSet;

use duckdb::Connection;
use duckdb::arrow::array::{Array as _, RecordBatch};
use duckdb::arrow::datatypes::{Int64Type, UInt8Type, UInt64Type};
use serde::Serialize;

use crate::audits::ads::label_sources;
use crate::audits::screens::{PAGEVIEW, SCREEN_GONE, VIEW_ROW, row_kind_sql, settles};
use crate::audits::{FastMap, Names};
use crate::load::{self, Half, RowIn, SessionCursor, primitive, str_at};
use crate::{Error, ResolvedScope};

/// What [`overview`] counts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Overview {
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    pub pageviews: u64,
    /// Sessions with an event on each UTC day (`YYYY-MM-DD`), in day order.
    pub days: Vec<(String, u64)>,
    /// The most viewed pages: (path, views, sessions), by sessions, then views, then path.
    pub pages: Vec<(String, u64, u64)>,
    /// The screens most sessions saw (as the `screens` audit labels them), then by name.
    pub screens: Vec<(String, u64)>,
    /// Sessions per source (as the `ads` audit reads landing pages), most first.
    pub sources: Vec<(String, u64)>,
}

/// The overview of `scope`, each list cut to its `top` rows: the two halves of
/// the sessions ([`Half`]) counted on two connections side by side, then added up.
pub fn overview(conn: &Connection, scope: &ResolvedScope, top: usize) -> Result<Overview, Error> {
    let pass = load::by_halves(
        conn,
        true,
        |conn, half| Pass::over(conn, scope, half),
        Pass::merge,
    )?;
    Ok(pass.into_overview(top))
}

/// Per page or label: (views, sessions, the last session counted).
type Counts = (u64, u64, u64);

#[derive(Default)]
struct Pass {
    names: Names,
    pages: FastMap<u32, Counts>,
    labels: FastMap<u32, Counts>,
    days: FastMap<i64, u64>,
    landings: FastMap<Option<String>, u64>,
    sessions: u64,
    pageviews: u64,
    current: Option<u64>,
    cursor: SessionCursor,
    /// The session at hand: its days (one or two, so a list), whether its first
    /// page view was seen, and
    /// that view's query string (if any).
    session_days: Vec<i64>,
    /// A page view's label, time and path, counted once the session's next
    /// event says it entered a screen (see [`settles`]).
    pending: Option<(u32, i64, u32)>,
    landed: bool,
    landing: Option<String>,
}

impl Pass {
    /// The pass over the sessions of `half`, in one transaction.
    fn over(conn: &Connection, scope: &ResolvedScope, half: Half) -> Result<Self, Error> {
        let (filter, params) = half.scope_filter(scope);
        let kind = row_kind_sql();
        let query = |from: &str, order: &str| {
            format!(
                "SELECT session_key, epoch_ms(ts) // 86400000,
                    {kind},
                    CASE WHEN kind IN ('pageview', 'screen') THEN path END,
                    CASE WHEN kind IN ('pageview', 'screen') THEN coalesce(screen, path) END,
                    CASE WHEN kind = 'pageview' AND contains(url, '?')
                         THEN '?' || split_part(url, '?', 2) END,
                    epoch_ms(ts)
                 FROM {from} WHERE {filter} {order}"
            )
        };
        let mut pass = Pass::default();
        store::transaction(conn, || {
            load::stream_sessions(conn, query, &params, |batch, skip| pass.batch(batch, skip))
        })?;
        pass.end_session();
        Ok(pass)
    }

    /// Adds the counts of a pass over other sessions (the other [`Half`]).
    fn merge(&mut self, other: Pass) {
        let names = &other.names;
        for (mine, theirs) in [
            (&mut self.pages, other.pages),
            (&mut self.labels, other.labels),
        ] {
            for (id, (views, sessions, _)) in theirs {
                let c = mine.entry(self.names.id(names.name(id))).or_default();
                c.0 += views;
                c.1 += sessions;
            }
        }
        for (day, n) in other.days {
            *self.days.entry(day).or_default() += n;
        }
        for (landing, n) in other.landings {
            *self.landings.entry(landing).or_default() += n;
        }
        self.sessions += other.sessions;
        self.pageviews += other.pageviews;
    }

    fn count(map: &mut FastMap<u32, Counts>, id: u32, session: u64, view: bool) {
        let c = map.entry(id).or_insert((0, 0, 0));
        c.0 += u64::from(view);
        if c.2 != session {
            c.2 = session;
            c.1 += 1;
        }
    }

    fn batch(&mut self, batch: &RecordBatch, skip: &HashSet<u64>) -> Result<(), Error> {
        let keys = primitive::<UInt64Type>(batch.column(0), "session_key")?;
        let days = primitive::<Int64Type>(batch.column(1), "day")?;
        let kinds = primitive::<UInt8Type>(batch.column(2), "kind")?;
        let (paths, labels, urls) = (batch.column(3), batch.column(4), batch.column(5));
        let times = primitive::<Int64Type>(batch.column(6), "ts")?;
        for (i, &key) in keys.values().iter().enumerate() {
            match self.cursor.at(key, skip) {
                RowIn::Skipped => continue,
                RowIn::Next => {
                    self.end_session();
                    self.current = Some(key);
                    self.sessions += 1;
                }
                RowIn::Same => {}
            }
            if days.is_valid(i) {
                let day = days.value(i);
                if !self.session_days.contains(&day) {
                    self.session_days.push(day);
                }
            }
            let kind = kinds.value(i);
            if kind == VIEW_ROW {
                continue; // link and ad rows: written when a view ends
            }
            let (at, path) = (times.value(i), str_at(paths, i).map(|p| self.names.id(p)));
            // A page view (or a screen gone) followed at once by a screen on its
            // path entered no screen of its own, as the screens audit counts them.
            if let Some((label, t, p)) = self.pending.take()
                && !settles(t, &p, kind, at, path.as_ref())
            {
                Self::count(&mut self.labels, label, self.sessions, false);
            }
            if kind == PAGEVIEW {
                self.pageviews += 1;
                if !self.landed {
                    self.landed = true;
                    self.landing = str_at(urls, i).map(str::to_owned);
                }
                if let Some(id) = path {
                    Self::count(&mut self.pages, id, self.sessions, true);
                }
            }
            if let Some(label) = str_at(labels, i) {
                let id = self.names.id(label);
                if matches!(kind, PAGEVIEW | SCREEN_GONE) {
                    self.pending = Some((id, at, path.unwrap_or(id)));
                } else {
                    Self::count(&mut self.labels, id, self.sessions, false);
                }
            }
        }
        Ok(())
    }

    fn end_session(&mut self) {
        if self.current.take().is_none() {
            return;
        }
        if let Some((label, _, _)) = self.pending.take() {
            Self::count(&mut self.labels, label, self.sessions, false);
        }
        for day in self.session_days.drain(..) {
            *self.days.entry(day).or_default() += 1;
        }
        if std::mem::take(&mut self.landed) {
            *self.landings.entry(self.landing.take()).or_default() += 1;
        }
    }

    fn into_overview(self, top: usize) -> Overview {
        let names = &self.names;
        let mut days: Vec<(i64, u64)> = self.days.into_iter().collect();
        days.sort_unstable();
        let mut pages: Vec<(String, u64, u64)> = self
            .pages
            .iter()
            .map(|(&id, &(views, sessions, _))| (names.name(id).to_owned(), views, sessions))
            .collect();
        pages.sort_by(|a, b| {
            b.2.cmp(&a.2)
                .then(b.1.cmp(&a.1))
                .then_with(|| a.0.cmp(&b.0))
        });
        pages.truncate(top);
        let mut screens: Vec<(String, u64)> = self
            .labels
            .iter()
            .map(|(&id, &(_, sessions, _))| (names.name(id).to_owned(), sessions))
            .collect();
        screens.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        screens.truncate(top);
        let mut sources = label_sources(self.landings, self.sessions);
        sources.truncate(top);
        Overview {
            sessions: self.sessions,
            pageviews: self.pageviews,
            days: days
                .into_iter()
                .map(|(day, n)| {
                    (
                        crate::scope::format_ms(day * 86_400_000)[..10].to_owned(),
                        n,
                    )
                })
                .collect(),
            pages,
            screens,
            sources,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::ads::sources;
    use crate::audits::screens::top_screens;
    use crate::testing::{Db, ev};

    const DAY: i64 = 86_400_000;

    #[test]
    fn one_pass_gives_what_each_query_gives() {
        let db = Db::new();
        let page = |id: &str, s: &str, ts: i64, seq: i32, path: &str| {
            ev(id, s, ts, seq, "pageview").path(path)
        };
        db.insert(&[
            page("a1", "a", 0, 1, "/").url("https://shop.example/?utm_source=news&utm_campaign=x"),
            page("a2", "a", 1_000, 2, "/cart"),
            ev("a3", "a", 2_000, 3, "screen")
                .path("/cart")
                .screen("payment"),
            page("a4", "a", DAY + 5, 4, "/"),
            page("b1", "b", 10, 1, "/").url("https://shop.example/"),
            ev("b2", "b", 20, 2, "click").path("/").selector("a#x"),
            ev("c1", "c", 30, 1, "click").path("/help"),
        ]);
        db.append(&[page("b3", "b", 40, 3, "/cart")]);
        let conn = db.conn();
        let scope = ResolvedScope::default();
        let o = overview(&conn, &scope, 10).unwrap();
        assert_eq!(o.sessions, crate::load::sessions(&conn, &scope).unwrap());
        assert_eq!(o.sessions, 3);
        assert_eq!(o.pageviews, 5);
        assert_eq!(
            o.days,
            [("1970-01-01".to_owned(), 3), ("1970-01-02".to_owned(), 1)]
        );
        assert_eq!(
            o.pages,
            [("/".to_owned(), 3, 2), ("/cart".to_owned(), 2, 2)]
        );
        assert_eq!(o.screens, top_screens(&conn, &scope, 10).unwrap());
        assert_eq!(o.sources, sources(&conn, &scope).unwrap());
        assert_eq!(o.sources[0].1, 1);
    }

    /// Sessions of both halves of the key space ([`Half`]) add up, and a page,
    /// screen, day or source seen in both is one row.
    #[test]
    fn sessions_of_both_halves_add_up() {
        let sessions = crate::testing::sessions_in_both_halves(40);
        let db = Db::new();
        let events: Vec<_> = sessions
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let landing = if i % 2 == 0 { "/?utm_source=news" } else { "/" };
                [
                    ev(&format!("{s}-a"), s, 0, 1, "pageview")
                        .path("/")
                        .url(&format!("https://shop.example{landing}")),
                    ev(&format!("{s}-b"), s, 1_000, 2, "pageview").path("/cart"),
                ]
            })
            .collect();
        db.insert(&events);
        let conn = db.conn();
        let scope = ResolvedScope::default();
        let o = overview(&conn, &scope, 10).unwrap();
        assert_eq!(o.sessions, 40);
        assert_eq!(o.pageviews, 80);
        assert_eq!(o.days, [("1970-01-01".to_owned(), 40)]);
        assert_eq!(
            o.pages,
            [("/".to_owned(), 40, 40), ("/cart".to_owned(), 40, 40)]
        );
        assert_eq!(o.screens, top_screens(&conn, &scope, 10).unwrap());
        assert_eq!(o.sources, sources(&conn, &scope).unwrap());
        assert_eq!(o.sources.iter().map(|s| s.1).sum::<u64>(), 40);
    }
}
