//! The `screens` audit: which screens sessions see, how long they stay, where they go
//! next and where they leave.
//!
//! Params: how many next screens to list per screen.
//!
//! [`Screens::stream`] is how it runs: DuckDB sends each event's session key, time
//! and label (null for events that enter no screen) session after session in the
//! sorted table's order ([`crate::load::stream_sessions`]); one pass interns the
//! labels and keeps one session's visits in memory. The [`Audit`] implementation
//! computes the same report in Polars from a loaded frame; the tests check both.
//!
//! 1. Events in (session, ts, seq) order. A `pageview` or `screen` event enters the
//!    screen labelled by its `screen` column, or its `path` when that is null (SPA
//!    route changes are page views too; a `screen` event without one says the marked
//!    element went away: a closed modal, a route with no marked step). Other events
//!    enter nothing.
//!    A page view, or a `screen` event without a screen, followed as the session's
//!    next event (the `link_view` and `ad_view` rows the tracker writes when a view
//!    ends aside) by a `screen` event on the same path within [`SETTLE_MS`] enters
//!    nothing: that is the page rendering its first marked step (an SPA route shows
//!    `/checkout` for a few ms, then "shipping"), putting away the screen of the
//!    route before, or a loading state between two steps.
//! 2. Consecutive entries of the same label in a session collapse into one visit.
//! 3. A visit lasts until the next visit starts; the session's last visit lasts until
//!    the session's last event of any kind (e.g. its `leave`), and has no known
//!    duration when it is itself the session's last event.
//! 4. Per label: sessions that saw it, visits, exits (sessions whose last visit it
//!    is), the median time on screen, and the most common next screens.

use std::collections::HashMap;

use duckdb::Connection;
use duckdb::arrow::array::Array as _;
use duckdb::arrow::datatypes::{UInt8Type, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Audit, Context, FastMap, Names, SessionOrder as _, ratio};
use crate::Error;
use crate::load::{Col, Half, RowIn, SessionCursor, millis, primitive, str_at};
use crate::scope::ResolvedScope;
use crate::table::{Cell, Table};

/// How many next screens a report lists per screen when not told.
pub const DEFAULT_TOP_NEXT: usize = 3;

/// A page view (or a screen that went away) whose `screen` event follows this soon
/// enters no screen of its own.
pub const SETTLE_MS: i64 = 1_000;

/// Kinds of rows as the streamed passes (this audit's and the overview's) tell them
/// apart, from [`row_kind_sql`]; other events are 0.
pub(crate) const PAGEVIEW: u8 = 1;
pub(crate) const SCREEN: u8 = 2;
/// `link_view` and `ad_view`: written by the tracker when a view ends.
pub(crate) const VIEW_ROW: u8 = 3;
/// A `screen` event without a screen: the marked element went away.
pub(crate) const SCREEN_GONE: u8 = 4;

/// The SQL of a row's kind as [`PAGEVIEW`], [`SCREEN`], [`VIEW_ROW`], [`SCREEN_GONE`]
/// or 0, a `UTINYINT`.
pub(crate) fn row_kind_sql() -> String {
    format!(
        "CASE WHEN kind = 'pageview' THEN {PAGEVIEW}
              WHEN kind = 'screen' AND screen IS NULL THEN {SCREEN_GONE}
              WHEN kind = 'screen' THEN {SCREEN}
              WHEN kind IN ('link_view', 'ad_view') THEN {VIEW_ROW}
              ELSE 0 END::UTINYINT"
    )
}

/// Whether a page view or a screen gone, held from `held_at` on the path
/// `held_path`, settles into the row that follows it (of kind `kind`, at `at`, on
/// `path`): a screen on the same path within [`SETTLE_MS`].
pub(crate) fn settles<P: PartialEq>(
    held_at: i64,
    held_path: &P,
    kind: u8,
    at: i64,
    path: Option<&P>,
) -> bool {
    matches!(kind, SCREEN | SCREEN_GONE) && at - held_at <= SETTLE_MS && path == Some(held_path)
}

/// Screens params.
#[derive(Debug, Clone)]
pub struct Screens {
    top_next: usize,
}

/// The screens report: one row per screen, most-seen first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreensReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// Sorted by `sessions` (descending), then `screen`.
    pub screens: Vec<ScreenStats>,
}

/// One screen of a [`ScreensReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScreenStats {
    /// The `data-ct-screen` name, or the path of a page view without one.
    pub screen: String,
    /// Sessions that saw this screen.
    pub sessions: u64,
    /// Visits (consecutive entries in a session count once).
    pub views: u64,
    /// Sessions whose last screen was this one.
    pub exits: u64,
    /// `exits / sessions`.
    pub exit_rate: Option<f64>,
    /// Median ms from entering this screen to entering the next (or, for the last
    /// screen of a session, to the session's last event); null when no visit has a
    /// known duration.
    pub median_ms_on_screen: Option<i64>,
    /// The most common next screens, by count (descending) then name.
    pub next: Vec<NextScreen>,
}

/// A screen that followed another, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextScreen {
    pub screen: String,
    pub count: u64,
}

impl Screens {
    pub fn new(top_next: usize) -> Self {
        Screens { top_next }
    }
}

impl Default for Screens {
    fn default() -> Self {
        Screens::new(DEFAULT_TOP_NEXT)
    }
}

impl Audit for Screens {
    type Report = ScreensReport;

    const COLUMNS: &'static [Col] = &[
        Col::SessionId,
        Col::Ts,
        Col::Seq,
        Col::Kind,
        Col::Path,
        Col::Screen,
    ];

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<ScreensReport, Error> {
        let (sessions, scope) = (ctx.sessions, ctx.scope.clone());
        let visits = visits(events)?;

        let per_screen = visits
            .clone()
            .lazy()
            .group_by([col("label")])
            .agg([
                col("session_id")
                    .n_unique()
                    .cast(DataType::UInt64)
                    .alias("sessions"),
                len().cast(DataType::UInt64).alias("views"),
                col("is_exit").sum().cast(DataType::UInt64).alias("exits"),
                col("on_screen_ms").median().alias("median_ms"),
            ])
            .sort_by_exprs(
                [col("sessions"), col("label")],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
            .collect()?;

        let transitions = visits
            .lazy()
            .filter(col("next").is_not_null())
            .group_by([col("label"), col("next")])
            .agg([len().cast(DataType::UInt64).alias("count")])
            .sort_by_exprs(
                [col("label"), col("count"), col("next")],
                SortMultipleOptions::default().with_order_descending_multi([false, true, false]),
            )
            .collect()?;
        let mut next: HashMap<&str, Vec<NextScreen>> = HashMap::new();
        let rows = transitions
            .column("label")?
            .str()?
            .iter()
            .zip(transitions.column("next")?.str()?.iter())
            .zip(transitions.column("count")?.u64()?.iter());
        for ((label, to), count) in rows {
            if let (Some(label), Some(to), Some(count)) = (label, to, count) {
                let list = next.entry(label).or_default();
                if list.len() < self.top_next {
                    list.push(NextScreen {
                        screen: to.to_owned(),
                        count,
                    });
                }
            }
        }

        let label = per_screen.column("label")?.str()?;
        let seen = per_screen.column("sessions")?.u64()?;
        let views = per_screen.column("views")?.u64()?;
        let exits = per_screen.column("exits")?.u64()?;
        let median = per_screen.column("median_ms")?.f64()?;
        let screens = (0..per_screen.height())
            .filter_map(|i| {
                let screen = label.get(i)?;
                let (seen, exits) = (seen.get(i).unwrap_or(0), exits.get(i).unwrap_or(0));
                Some(ScreenStats {
                    screen: screen.to_owned(),
                    sessions: seen,
                    views: views.get(i).unwrap_or(0),
                    exits,
                    exit_rate: ratio(exits, seen),
                    median_ms_on_screen: median.get(i).map(|m| m.round() as i64),
                    next: next.remove(screen).unwrap_or_default(),
                })
            })
            .collect();
        Ok(ScreensReport {
            scope,
            sessions,
            screens,
        })
    }
}

/// The `top` screens of `scope` by sessions that saw them (then by name), counted
/// by the store with the audit's labels: the `sessions` column of [`Screens`]
/// without the rest of the pass. The reference the tests hold the audit and
/// [`crate::overview`] to.
#[cfg(test)]
pub(crate) fn top_screens(
    conn: &Connection,
    scope: &ResolvedScope,
    top: usize,
) -> Result<Vec<(String, u64)>, Error> {
    let (filter, params) = crate::load::scope_filter(scope);
    let mut stmt = conn.prepare(&format!(
        "SELECT label, count(DISTINCT session_key) AS n FROM (
             SELECT session_key, kind, path, ts, screen, coalesce(screen, path) AS label,
                 lead(kind) OVER w AS next_kind, lead(path) OVER w AS next_path,
                 lead(ts) OVER w AS next_ts
             FROM events WHERE {filter} AND kind NOT IN ('link_view', 'ad_view')
             WINDOW w AS (PARTITION BY session_key ORDER BY ts, seq))
         WHERE kind IN ('pageview', 'screen')
             AND NOT coalesce((kind = 'pageview' OR (kind = 'screen' AND screen IS NULL))
                 AND next_kind = 'screen' AND next_path = path
                 AND epoch_ms(next_ts) - epoch_ms(ts) <= {SETTLE_MS}, false)
         GROUP BY label ORDER BY n DESC, label LIMIT {top}"
    ))?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params), |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.unsigned_abs()))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl Screens {
    /// The report straight from the store (see the module docs): what `analyzer
    /// screens`, `/api/audit` and the report run. When `spread`, each [`Half`] of
    /// the sessions streams on its own connection, side by side, and the two
    /// tallies are added up ([`crate::load::by_halves`]).
    pub fn stream(
        &self,
        conn: &Connection,
        scope: ResolvedScope,
        spread: bool,
    ) -> Result<ScreensReport, Error> {
        let tally = crate::load::by_halves(
            conn,
            spread,
            |conn, half| Tally::over(conn, &scope, half),
            Tally::merge,
        )?;
        Ok(self.report(scope, tally))
    }

    /// The sorted report from the streamed tally.
    fn report(&self, scope: ResolvedScope, mut tally: Tally) -> ScreensReport {
        let sessions = tally.ordinal;
        let mut next: Vec<Vec<NextScreen>> = vec![Vec::new(); tally.labels.len()];
        let mut moves: Vec<((u32, u32), u64)> = tally.moves.into_iter().collect();
        let name = |id: u32| -> &str { tally.labels.name(id) };
        moves.sort_unstable_by(|((a, x), n), ((b, y), m)| {
            name(*a)
                .cmp(name(*b))
                .then(m.cmp(n))
                .then_with(|| name(*x).cmp(name(*y)))
        });
        for ((from, to), count) in moves {
            let list = &mut next[from as usize];
            if list.len() < self.top_next {
                list.push(NextScreen {
                    screen: name(to).to_owned(),
                    count,
                });
            }
        }
        let mut screens: Vec<ScreenStats> = (0..tally.labels.len())
            .map(|i| {
                let per = &mut tally.per[i];
                ScreenStats {
                    screen: tally.labels.name(i as u32).to_owned(),
                    sessions: per.sessions,
                    views: per.views,
                    exits: per.exits,
                    exit_rate: ratio(per.exits, per.sessions),
                    median_ms_on_screen: super::median_ms(&mut per.durations),
                    next: std::mem::take(&mut next[i]),
                }
            })
            // A label only page views that settled into a screen had.
            .filter(|s| s.views > 0)
            .collect();
        screens.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then_with(|| a.screen.cmp(&b.screen))
        });
        ScreensReport {
            scope,
            sessions,
            screens,
        }
    }
}

/// What [`Screens::stream`] counts per label.
#[derive(Debug, Default)]
struct PerLabel {
    sessions: u64,
    views: u64,
    exits: u64,
    /// Known visit durations, ms.
    durations: Vec<i64>,
    /// The ordinal of the last session counted in `sessions`.
    last_session: u64,
}

/// The sequential pass of [`Screens::stream`].
#[derive(Debug, Default)]
struct Tally {
    labels: Names,
    per: Vec<PerLabel>,
    moves: FastMap<(u32, u32), u64>,
    /// The session at hand: its key and ordinal (from 1).
    current: Option<u64>,
    ordinal: u64,
    cursor: SessionCursor,
    /// Its visits so far: (label, entry time).
    visits: Vec<(u32, i64)>,
    /// Its last event's time, and whether that event started the last visit.
    end_ts: i64,
    end_starts_visit: bool,
    /// A page view held until the next event says whether it enters a screen.
    pending: Option<Pending>,
}

/// A page view waiting for the session's next event (see [`SETTLE_MS`]).
#[derive(Debug)]
struct Pending {
    label: u32,
    /// DuckDB's `hash` of its path.
    path: u64,
    at: i64,
    /// Rows (`link_view`, `ad_view`) came after it.
    later: bool,
}

impl Tally {
    /// The pass over the sessions of `half`, in one transaction. Every event of
    /// the scope streams, so the pass counts the sessions itself.
    fn over(conn: &Connection, scope: &ResolvedScope, half: Half) -> Result<Self, Error> {
        store::transaction(conn, || {
            let (filter, params) = half.scope_filter(scope);
            let kind = row_kind_sql();
            let query = |from: &str, order: &str| {
                format!(
                    "SELECT session_key, ts,
                        CASE WHEN kind IN ('pageview', 'screen') THEN coalesce(screen, path) END,
                        {kind},
                        CASE WHEN kind IN ('pageview', 'screen') THEN hash(path) END
                     FROM {from} WHERE {filter} {order}"
                )
            };
            let mut tally = Tally::default();
            crate::load::stream_sessions(conn, query, &params, |batch, skip| {
                tally.batch(batch, skip)
            })?;
            tally.flush();
            Ok::<_, Error>(tally)
        })
    }

    /// Adds a tally of other sessions (the other [`Half`]).
    fn merge(&mut self, other: Tally) {
        let number: Vec<u32> = (0..other.labels.len())
            .map(|i| self.intern(other.labels.name(i as u32)))
            .collect();
        for (i, theirs) in other.per.into_iter().enumerate() {
            let mine = &mut self.per[number[i] as usize];
            mine.sessions += theirs.sessions;
            mine.views += theirs.views;
            mine.exits += theirs.exits;
            mine.durations.extend(theirs.durations);
        }
        for ((from, to), n) in other.moves {
            *self
                .moves
                .entry((number[from as usize], number[to as usize]))
                .or_default() += n;
        }
        self.ordinal += other.ordinal;
    }

    fn intern(&mut self, label: &str) -> u32 {
        let id = self.labels.id(label);
        if id as usize == self.per.len() {
            self.per.push(PerLabel::default());
        }
        id
    }

    fn batch(
        &mut self,
        batch: &RecordBatch,
        skip: &std::collections::HashSet<u64>,
    ) -> Result<(), Error> {
        let keys = primitive::<UInt64Type>(batch.column(0), "session_key")?;
        let ts = millis(batch.column(1))?;
        let labels = batch.column(2);
        let kinds = primitive::<UInt8Type>(batch.column(3), "kind")?;
        let paths = primitive::<UInt64Type>(batch.column(4), "path")?;
        for (i, &key) in keys.values().iter().enumerate() {
            match self.cursor.at(key, skip) {
                RowIn::Skipped => continue,
                RowIn::Next => {
                    self.flush();
                    self.current = Some(key);
                    self.ordinal += 1;
                }
                RowIn::Same => {}
            }
            let at = ts.value(i);
            let kind = kinds.value(i);
            self.end_ts = at;
            self.end_starts_visit = false;
            if kind == VIEW_ROW {
                if let Some(p) = &mut self.pending {
                    p.later = true;
                }
                continue;
            }
            let path = paths.is_valid(i).then(|| paths.value(i));
            if let Some(p) = self.pending.take()
                && !settles(p.at, &p.path, kind, at, path.as_ref())
            {
                self.enter(p.label, p.at);
            }
            let Some(label) = str_at(labels, i) else {
                continue;
            };
            let label = self.intern(label);
            if kind == PAGEVIEW || kind == SCREEN_GONE {
                self.pending = Some(Pending {
                    label,
                    path: path.unwrap_or_default(),
                    at,
                    later: false,
                });
            } else {
                self.end_starts_visit = self.enter(label, at);
            }
        }
        Ok(())
    }

    /// Enter the label numbered `label` at `at`: a new visit unless it is the
    /// label of the last one. Whether it was new.
    fn enter(&mut self, label: u32, at: i64) -> bool {
        let same = self.visits.last().is_some_and(|&(prev, _)| prev == label);
        if !same {
            self.visits.push((label, at));
        }
        !same
    }

    /// Counts the session at hand.
    fn flush(&mut self) {
        if self.current.take().is_none() {
            return;
        }
        if let Some(p) = self.pending.take() {
            let new = self.enter(p.label, p.at);
            // The page view was the session's last event: its visit's length is
            // unknown.
            if !p.later {
                self.end_starts_visit = new;
            }
        }
        let visits = std::mem::take(&mut self.visits);
        for (k, &(label, at)) in visits.iter().enumerate() {
            let following = visits.get(k + 1);
            let per = &mut self.per[label as usize];
            per.views += 1;
            if per.last_session != self.ordinal {
                per.last_session = self.ordinal;
                per.sessions += 1;
            }
            if let Some(&(to, next_at)) = following {
                per.durations.push(next_at - at);
                *self.moves.entry((label, to)).or_default() += 1;
            } else {
                per.exits += 1;
                if !self.end_starts_visit {
                    per.durations.push(self.end_ts - at);
                }
            }
        }
        self.visits = visits;
        self.visits.clear();
    }
}

/// One row per screen visit: `session_id`, `label`, `ts` (entry), `next` (the next
/// visit's label, null for the session's last), `is_exit`, `on_screen_ms`.
fn visits(events: DataFrame) -> Result<DataFrame, Error> {
    let session = || [col("session_id")];
    let null_str = || lit(NULL).cast(DataType::String);
    let label = when(
        col("kind")
            .eq(lit("pageview"))
            .or(col("kind").eq(lit("screen"))),
    )
    .then(
        when(col("screen").is_not_null())
            .then(col("screen"))
            .otherwise(col("path")),
    )
    .otherwise(null_str());
    let on_screen = when(col("next_ts").is_not_null())
        .then(col("next_ts") - col("ts"))
        .when(col("row").neq(col("session_end_row")))
        .then(col("session_end_ts") - col("ts"))
        .otherwise(lit(NULL).cast(DataType::Int64));
    // A page view or a screen gone whose next event (view rows aside) is a
    // `screen` event on its path within SETTLE_MS enters nothing.
    let settles = col("kind")
        .eq(lit("pageview"))
        .or(col("kind").eq(lit("screen")).and(col("screen").is_null()))
        .and(col("next_kind").eq(lit("screen")))
        .and(col("next_path").eq(col("path")))
        .and((col("next_event_ts") - col("ts")).lt_eq(lit(SETTLE_MS)));
    Ok(events
        .lazy()
        .in_session_order()
        .with_row_index("row", None)
        .with_columns([
            col("ts").last().over(session())?.alias("session_end_ts"),
            col("row").last().over(session())?.alias("session_end_row"),
            label.alias("label"),
        ])
        .filter(
            col("kind")
                .neq(lit("link_view"))
                .and(col("kind").neq(lit("ad_view"))),
        )
        .with_columns([
            col("kind")
                .shift(lit(-1))
                .over(session())?
                .alias("next_kind"),
            col("path")
                .shift(lit(-1))
                .over(session())?
                .alias("next_path"),
            col("ts")
                .shift(lit(-1))
                .over(session())?
                .alias("next_event_ts"),
        ])
        .with_columns([when(settles.fill_null(lit(false)))
            .then(null_str())
            .otherwise(col("label"))
            .alias("label")])
        .filter(col("label").is_not_null())
        // A visit starts where the label differs from the previous entry's.
        .filter(col("label").neq_missing(col("label").shift(lit(1)).over(session())?))
        .with_columns([
            col("label").shift(lit(-1)).over(session())?.alias("next"),
            col("ts").shift(lit(-1)).over(session())?.alias("next_ts"),
        ])
        .with_columns([
            col("next").is_null().alias("is_exit"),
            on_screen.alias("on_screen_ms"),
        ])
        .select([
            col("session_id"),
            col("label"),
            col("ts"),
            col("next"),
            col("is_exit"),
            col("on_screen_ms"),
        ])
        .collect()?)
}

impl ScreensReport {
    /// The report as rows for the table, CSV and HTML renderers.
    pub fn table(&self) -> Table {
        Table {
            audit: "screens",
            facts: vec![self.scope.describe(), format!("{} sessions", self.sessions)],
            columns: vec![
                ("screen", "screen"),
                ("sessions", "sessions"),
                ("views", "views"),
                ("exits", "exits"),
                ("exit_rate", "exit rate"),
                ("median_ms_on_screen", "median time on screen"),
                ("next", "next screens"),
            ],
            rows: self
                .screens
                .iter()
                .map(|s| {
                    let next = s
                        .next
                        .iter()
                        .map(|n| format!("{} ({})", n.screen, n.count))
                        .collect::<Vec<_>>()
                        .join(", ");
                    vec![
                        Cell::Text(s.screen.clone()),
                        Cell::Count(s.sessions),
                        Cell::Count(s.views),
                        Cell::Count(s.exits),
                        Cell::Ratio(s.exit_rate),
                        Cell::Ms(s.median_ms_on_screen),
                        Cell::Text(next),
                    ]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::run_audit;
    use crate::testing::{Db, Ev, ev};

    const S: i64 = 1_000;

    /// The screens as [`Screens::stream`] computes them, checked against the Polars
    /// path.
    fn screens(db: &Db, top_next: usize) -> ScreensReport {
        let audit = Screens::new(top_next);
        let framed = run_audit(&db.conn(), ResolvedScope::default(), &audit).unwrap();
        let streamed = audit
            .stream(&db.conn(), ResolvedScope::default(), true)
            .unwrap();
        assert_eq!(streamed, framed, "streamed and Polars screens differ");
        let top: Vec<(String, u64)> = streamed
            .screens
            .iter()
            .map(|s| (s.screen.clone(), s.sessions))
            .collect();
        let counted = top_screens(&db.conn(), &ResolvedScope::default(), 1000).unwrap();
        assert_eq!(
            counted, top,
            "the store's top screens differ from the audit's"
        );
        streamed
    }

    fn page(id: &str, session: &str, ts: i64, seq: i32, path: &str) -> Ev {
        ev(id, session, ts, seq, "pageview").path(path)
    }

    fn find<'a>(r: &'a ScreensReport, screen: &str) -> &'a ScreenStats {
        r.screens.iter().find(|s| s.screen == screen).unwrap()
    }

    fn next(list: &[(&str, u64)]) -> Vec<NextScreen> {
        list.iter()
            .map(|(s, c)| NextScreen {
                screen: (*s).to_owned(),
                count: *c,
            })
            .collect()
    }

    /// `(sessions, views, exits, median_ms_on_screen)`
    fn counts(s: &ScreenStats) -> (u64, u64, u64, Option<i64>) {
        (s.sessions, s.views, s.exits, s.median_ms_on_screen)
    }

    #[test]
    fn spa_routes_and_marked_screens() {
        let db = Db::new();
        db.insert(&[
            // s1: / (10 s) → /cart (SPA push, 20 s) → checkout page marked "shipping"
            // (30 s) → screen "payment" inside the same URL (until leave at +40 s).
            page("a1", "s1", 0, 1, "/"),
            ev("a2", "s1", 5 * S, 2, "click")
                .path("/")
                .selector("a#cart"),
            page("a3", "s1", 10 * S, 3, "/cart").nav("push"),
            page("a4", "s1", 30 * S, 1, "/checkout").screen("shipping"),
            ev("a5", "s1", 60 * S, 2, "screen")
                .path("/checkout")
                .screen("payment"),
            ev("a6", "s1", 100 * S, 3, "leave")
                .path("/checkout")
                .screen("payment"),
            // s2: / (4 s) → /cart, whose page view is the session's last event.
            page("b1", "s2", 0, 1, "/"),
            page("b2", "s2", 4 * S, 2, "/cart"),
        ]);
        let r = screens(&db, 3);
        assert_eq!(r.sessions, 2);
        let order: Vec<&str> = r.screens.iter().map(|s| s.screen.as_str()).collect();
        assert_eq!(order, ["/", "/cart", "payment", "shipping"]);

        let home = find(&r, "/");
        assert_eq!(counts(home), (2, 2, 0, Some(7 * S))); // median of 10 s and 4 s
        assert_eq!(home.exit_rate, Some(0.0));
        assert_eq!(home.next, next(&[("/cart", 2)]));

        let cart = find(&r, "/cart");
        // s1: 20 s; s2: unknown (last screen, nothing after it).
        assert_eq!(counts(cart), (2, 2, 1, Some(20 * S)));
        assert_eq!(cart.exit_rate, Some(0.5));
        assert_eq!(cart.next, next(&[("shipping", 1)]));

        assert_eq!(counts(find(&r, "shipping")), (1, 1, 0, Some(30 * S)));
        let payment = find(&r, "payment");
        assert_eq!(counts(payment), (1, 1, 1, Some(40 * S)));
        assert_eq!(payment.exit_rate, Some(1.0));
        assert!(payment.next.is_empty());
    }

    #[test]
    fn a_screen_that_goes_away_returns_to_the_page() {
        let db = Db::new();
        db.insert(&[
            // s1: a modal marked "size-guide" opens at 5 s and closes at 8 s; leave
            // at 20 s.
            page("a1", "s1", 0, 1, "/p"),
            ev("a2", "s1", 5 * S, 2, "screen")
                .path("/p")
                .screen("size-guide"),
            ev("a3", "s1", 8 * S, 3, "screen").path("/p"),
            ev("a4", "s1", 20 * S, 4, "leave").path("/p"),
            // s2: the step "review", then "Place order" routes to /thanks (pushState)
            // before the app renders it: the page view still carries "review"; the
            // screen event without a screen follows once /thanks shows.
            page("b1", "s2", 0, 1, "/checkout").screen("review"),
            page("b2", "s2", 6 * S, 2, "/thanks")
                .screen("review")
                .nav("push"),
            ev("b3", "s2", 6 * S + 80, 3, "screen").path("/thanks"),
            ev("b4", "s2", 16 * S, 4, "leave").path("/thanks"),
        ]);
        let r = screens(&db, 3);
        assert_eq!(counts(find(&r, "/p")), (1, 2, 1, Some(8_500)));
        assert_eq!(find(&r, "/p").next, next(&[("size-guide", 1)]));
        let guide = find(&r, "size-guide");
        assert_eq!(counts(guide), (1, 1, 0, Some(3 * S)));
        assert_eq!(guide.next, next(&[("/p", 1)]));
        let review = find(&r, "review");
        assert_eq!(counts(review), (1, 1, 0, Some(6 * S + 80)));
        assert_eq!(review.next, next(&[("/thanks", 1)]));
        assert_eq!(counts(find(&r, "/thanks")), (1, 1, 1, Some(10 * S - 80)));
    }

    #[test]
    fn a_route_that_renders_its_first_step_is_that_step() {
        let db = Db::new();
        db.insert(&[
            // s1: /cart, then the SPA route /checkout, whose "shipping" step shows
            // 40 ms later (links seen in between); leave at 40 s.
            page("a1", "s1", 0, 1, "/cart"),
            page("a2", "s1", 10 * S, 2, "/checkout").nav("push"),
            ev("a3", "s1", 10 * S + 20, 3, "link_view").path("/checkout"),
            ev("a4", "s1", 10 * S + 40, 4, "screen")
                .path("/checkout")
                .screen("shipping"),
            ev("a5", "s1", 40 * S, 5, "leave")
                .path("/checkout")
                .screen("shipping"),
            // s2: the same route, but the visitor clicked before the step showed,
            // and s3: the step showed only after 2 s; both stayed on /checkout.
            page("b1", "s2", 0, 1, "/cart"),
            page("b2", "s2", 10 * S, 2, "/checkout").nav("push"),
            ev("b3", "s2", 10 * S + 20, 3, "click")
                .path("/checkout")
                .selector("a.x"),
            ev("b4", "s2", 10 * S + 40, 4, "screen")
                .path("/checkout")
                .screen("shipping"),
            page("c1", "s3", 0, 1, "/cart"),
            page("c2", "s3", 10 * S, 2, "/checkout").nav("push"),
            ev("c3", "s3", 12 * S, 3, "screen")
                .path("/checkout")
                .screen("shipping"),
            // s4: a page view whose last rows are the links seen on it.
            page("d1", "s4", 0, 1, "/cart"),
            ev("d2", "s4", 5 * S, 2, "link_view").path("/cart"),
        ]);
        let r = screens(&db, 3);
        let order: Vec<&str> = r.screens.iter().map(|s| s.screen.as_str()).collect();
        assert_eq!(order, ["/cart", "shipping", "/checkout"]);
        let cart = find(&r, "/cart");
        // s1 10.04 s, s2 and s3 10 s, s4 5 s (its link rows came after).
        assert_eq!(counts(cart), (4, 4, 1, Some(10 * S)));
        assert_eq!(cart.next, next(&[("/checkout", 2), ("shipping", 1)]));
        let checkout = find(&r, "/checkout");
        assert_eq!(counts(checkout), (2, 2, 0, Some(1_020)));
        assert_eq!(checkout.next, next(&[("shipping", 2)]));
        assert_eq!(counts(find(&r, "shipping")), (3, 3, 3, Some(29_960)));
    }

    #[test]
    fn a_loading_state_between_steps_is_no_screen() {
        let db = Db::new();
        db.insert(&[
            // "shipping", then 300 ms of a loading state with no marked step, then
            // "payment"; leave at 20 s.
            page("a1", "s1", 0, 1, "/checkout").screen("shipping"),
            ev("a2", "s1", 5 * S, 2, "screen").path("/checkout"),
            ev("a3", "s1", 5 * S + 300, 3, "screen")
                .path("/checkout")
                .screen("payment"),
            ev("a4", "s1", 20 * S, 4, "leave").path("/checkout"),
        ]);
        let r = screens(&db, 3);
        let order: Vec<&str> = r.screens.iter().map(|s| s.screen.as_str()).collect();
        assert_eq!(order, ["payment", "shipping"]);
        assert_eq!(counts(find(&r, "shipping")), (1, 1, 0, Some(5_300)));
        assert_eq!(find(&r, "shipping").next, next(&[("payment", 1)]));
    }

    #[test]
    fn repeated_entries_collapse_but_returns_are_new_visits() {
        let db = Db::new();
        db.insert(&[
            // / → /p (click, reload: same screen, one visit) → / again → /p again, leave.
            page("a1", "s1", 0, 1, "/"),
            page("a2", "s1", 10 * S, 1, "/p"),
            ev("a2b", "s1", 12 * S, 2, "click")
                .path("/p")
                .selector("a.x"),
            page("a3", "s1", 15 * S, 1, "/p").nav("reload"),
            page("a4", "s1", 30 * S, 1, "/"),
            page("a5", "s1", 32 * S, 1, "/p"),
            ev("a6", "s1", 40 * S, 2, "leave").path("/p"),
        ]);
        let r = screens(&db, 3);
        // "/": visits of 10 s and 2 s → median 6 s. "/p": 20 s and 8 s → 14 s.
        assert_eq!(counts(find(&r, "/")), (1, 2, 0, Some(6 * S)));
        assert_eq!(counts(find(&r, "/p")), (1, 2, 1, Some(14 * S)));
        assert_eq!(find(&r, "/").next, next(&[("/p", 2)]));
        assert_eq!(find(&r, "/p").next, next(&[("/", 1)]));
    }

    #[test]
    fn a_single_page_session_exits_where_it_entered() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, 1, "/landing"),
            ev("a2", "s1", 3 * S, 2, "click")
                .path("/landing")
                .selector("a.x"),
            ev("a3", "s1", 9 * S, 3, "leave").path("/landing"),
            // A bounce with nothing after the page view: exit, no duration.
            page("b1", "s2", 0, 1, "/landing"),
            // A session with no screen at all still counts in scope.
            ev("c1", "s3", 0, 1, "custom").path("/").name("ping"),
        ]);
        let r = screens(&db, 3);
        assert_eq!(r.sessions, 3);
        assert_eq!(r.screens.len(), 1);
        let landing = &r.screens[0];
        assert_eq!(counts(landing), (2, 2, 2, Some(9 * S)));
        assert_eq!(landing.exit_rate, Some(1.0));
        assert!(landing.next.is_empty());
    }

    #[test]
    fn next_screens_are_the_top_n_by_count_then_name() {
        let db = Db::new();
        let mut events = Vec::new();
        // From "/": to /b three times, /a twice, /c twice, /d once.
        for (i, to) in ["/b", "/b", "/b", "/a", "/a", "/c", "/c", "/d"]
            .iter()
            .enumerate()
        {
            let s = format!("s{i}");
            events.push(page(&format!("{s}-1"), &s, 0, 1, "/"));
            events.push(page(&format!("{s}-2"), &s, S, 2, to));
        }
        db.insert(&events);
        let r = screens(&db, 3);
        assert_eq!(find(&r, "/").next, next(&[("/b", 3), ("/a", 2), ("/c", 2)]));
        // Sorted by sessions, then name.
        let order: Vec<&str> = r.screens.iter().map(|s| s.screen.as_str()).collect();
        assert_eq!(order, ["/", "/b", "/a", "/c", "/d"]);
        assert!(screens(&db, 0).screens.iter().all(|s| s.next.is_empty()));
    }

    /// The two halves of the sessions are tallied apart and added up: the same
    /// report as the Polars path and as one pass.
    #[test]
    fn sessions_of_both_halves_add_up() {
        let db = Db::new();
        let events: Vec<Ev> = crate::testing::sessions_in_both_halves(40)
            .iter()
            .flat_map(|s| {
                [
                    page(&format!("{s}-a"), s, 0, 1, "/"),
                    page(&format!("{s}-b"), s, 10 * S, 2, "/cart"),
                    ev(&format!("{s}-c"), s, 12 * S, 3, "leave").path("/cart"),
                ]
            })
            .collect();
        db.insert(&events);
        let r = screens(&db, 3);
        assert_eq!(r.sessions, 40);
        assert_eq!(counts(find(&r, "/")), (40, 40, 0, Some(10 * S)));
        assert_eq!(counts(find(&r, "/cart")), (40, 40, 40, Some(2 * S)));
        assert_eq!(find(&r, "/").next, next(&[("/cart", 40)]));
        let one = Screens::new(3)
            .stream(&db.conn(), ResolvedScope::default(), false)
            .unwrap();
        assert_eq!(one, r);
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = screens(&db, 3);
        assert_eq!(r.sessions, 0);
        assert!(r.screens.is_empty());
    }

    /// A session whose later rows still wait for compaction is read whole from the
    /// overlap view, once, and its visit spans both parts.
    #[test]
    fn a_session_half_compacted_is_one_session() {
        let db = Db::new();
        db.insert(&[
            page("a1", "a", 0, 1, "/"),
            page("a2", "a", 10 * S, 2, "/shop"),
            page("b1", "b", 0, 1, "/"),
        ]);
        db.append(&[
            page("a2", "a", 10 * S, 2, "/shop"),
            page("a3", "a", 30 * S, 3, "/cart"),
            ev("a4", "a", 35 * S, 4, "leave").path("/cart"),
        ]);
        let r = screens(&db, 3);
        assert_eq!(r.sessions, 2);
        let shop = find(&r, "/shop");
        assert_eq!(counts(shop), (1, 1, 0, Some(20 * S)));
        assert_eq!(shop.next, next(&[("/cart", 1)]));
        assert_eq!(counts(find(&r, "/cart")), (1, 1, 1, Some(5 * S)));
        assert_eq!(counts(find(&r, "/")), (2, 2, 1, Some(10 * S)));
    }
}
