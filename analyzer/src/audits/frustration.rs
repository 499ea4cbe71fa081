//! The `frustration` audit: where people rage-click, click on things that do nothing
//! or break, and bounce straight back from a page.
//!
//! Params: the rage-click rule (clicks, ms, px) and the quick-back time. The store
//! streams clicks, dead clicks, errors and page views in (session, ts, seq) order
//! ([`Frustration::stream`]); a sequential pass in plain Rust ([`Walk`]) finds the
//! signals of each session and counts occurrences and sessions per (kind, page,
//! selector). The store counts the sessions of each page and the labels.
//!
//! Signals (each reported on the page, `path`, where it happened):
//!
//! - **rage click**: at least `rage_clicks` clicks on the same selector of the same
//!   page, the last within `rage_ms` (inclusive) of the first and each within
//!   `rage_px` (Euclidean, inclusive) of the first, and the clicks between the
//!   first and the last left unanswered (for a pair, the second): the tracker judged
//!   them dead (a `dead_click` row of that selector follows before the session's
//!   next click). The last click's verdict does not count: a slow answer to the
//!   first click can land in its second. Quick clicks that each
//!   did something (a carousel's arrow, a quantity stepper, a toggle) are normal
//!   use, not rage; a slow button whose first click started a request and whose
//!   next clicks did nothing is rage ([`rage_bouts`]). Such windows
//!   that share a click are one occurrence: 4 or 6 clicks in a second are one rage
//!   click; a new occurrence needs a window that shares no click with the previous
//!   one. Clicks on different selectors never combine (a click on `button > span` and
//!   one on `button` are different selectors). Clicks without coordinates match any
//!   position.
//! - **dead click**: a `dead_click` row (the tracker saw no navigation, DOM change or
//!   request within 1 s of the click).
//! - **error click**: a click followed by an `error` of the same session within
//!   [`ERROR_CLICK_MS`] (inclusive), before the session's next click: an error is
//!   blamed on the latest click before it, and a click counts once however many
//!   errors follow. A page loaded in between (`nav` `navigate`, `reload`,
//!   `back_forward`, `forward`) ends the click's chance: a link that led to a page
//!   whose own script fails worked; a single-page app's route (`push`, `hash`,
//!   `pop`, `replace`) drawn by the click does not.
//! - **quick back**: a page view P1 whose next page view P2 in the session came by
//!   going back (`nav` `back_forward` or `pop`; the tracker says `forward` where it
//!   knows the visitor went forward) to the page viewed just before P1 (same path),
//!   at most `quick_back_ms` after P1. Reported on P1's page, no selector.
//!
//! `share` is sessions affected over the page's sessions: sessions with any event on
//! that path. `label` is what a person sees on the element: the text (or accessible
//! name) most often recorded with its clicks on that page.

use std::collections::HashSet;

use duckdb::Connection;
use duckdb::arrow::array::{Array as _, AsArray as _};
use duckdb::arrow::datatypes::{Int32Type, UInt8Type, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{FastMap, FastSet, Names, labels, ratio};
use crate::Error;
use crate::load::{self, Half, RowIn, SessionCursor, millis, primitive, str_at};
use crate::scope::ResolvedScope;
use crate::table::{Cell, Table};

/// Rage click: this many clicks…
pub const DEFAULT_RAGE_CLICKS: u32 = 3;
/// …within this many ms of the first…
pub const DEFAULT_RAGE_MS: u64 = 1_000;
/// …and this many px of the first (the rule of `PostHog`: 3 clicks, 1 s, 30 px).
pub const DEFAULT_RAGE_PX: u32 = 30;
/// A page left by going back within this many ms is a quick back.
pub const DEFAULT_QUICK_BACK_MS: u64 = 5_000;
/// An error at most this many ms after a click makes it an error click.
pub const ERROR_CLICK_MS: i64 = 1_000;

/// Validated frustration params.
#[derive(Debug, Clone)]
pub struct Frustration {
    rage_clicks: u32,
    rage_ms: u64,
    rage_px: u32,
    quick_back_ms: u64,
}

/// The frustration report: one row per (kind, page, selector), most sessions first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrustrationReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// Rage click: at least this many clicks…
    pub rage_clicks: u32,
    /// …the last within this many ms of the first…
    pub rage_ms: u64,
    /// …each within this many px of the first.
    pub rage_px: u32,
    /// A page left by going back within this many ms is a quick back.
    pub quick_back_ms: u64,
    /// Sorted by `sessions`, then `occurrences` (both descending), then page, kind,
    /// selector.
    pub issues: Vec<FrustrationIssue>,
}

/// A kind of frustration signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrustrationKind {
    RageClick,
    DeadClick,
    ErrorClick,
    QuickBack,
}

impl FrustrationKind {
    pub const ALL: [FrustrationKind; 4] = [
        FrustrationKind::RageClick,
        FrustrationKind::DeadClick,
        FrustrationKind::ErrorClick,
        FrustrationKind::QuickBack,
    ];

    /// As in the JSON: `rage_click`, …
    pub fn as_str(self) -> &'static str {
        match self {
            FrustrationKind::RageClick => "rage_click",
            FrustrationKind::DeadClick => "dead_click",
            FrustrationKind::ErrorClick => "error_click",
            FrustrationKind::QuickBack => "quick_back",
        }
    }

    /// For people: `rage click`, …
    pub fn label(self) -> &'static str {
        match self {
            FrustrationKind::RageClick => "rage click",
            FrustrationKind::DeadClick => "dead click",
            FrustrationKind::ErrorClick => "error click",
            FrustrationKind::QuickBack => "quick back",
        }
    }
}

/// One row of a [`FrustrationReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrustrationIssue {
    pub kind: FrustrationKind,
    /// The page (path) it happened on.
    pub page: String,
    /// The clicked element; null for quick backs.
    pub selector: Option<String>,
    /// What the element reads: its text or accessible name, as most often
    /// recorded with its clicks on this page; null when unknown.
    pub label: Option<String>,
    /// How many times (rage clicks: bursts, not clicks).
    pub occurrences: u64,
    /// Sessions with at least one occurrence.
    pub sessions: u64,
    /// Sessions with any event on the page.
    pub page_sessions: u64,
    /// `sessions / page_sessions`.
    pub share: Option<f64>,
}

impl Frustration {
    /// Checks the rage-click rule and the quick-back time.
    pub fn new(
        rage_clicks: u32,
        rage_ms: u64,
        rage_px: u32,
        quick_back_ms: u64,
    ) -> Result<Self, Error> {
        if !(2..=100).contains(&rage_clicks) {
            return Err(Error::BadParam {
                name: "rage_clicks",
                reason: format!("{rage_clicks}; a rage click is 2 to 100 clicks"),
            });
        }
        for (name, ms) in [("rage_ms", rage_ms), ("quick_back_ms", quick_back_ms)] {
            if ms == 0 || ms > 3_600_000 {
                return Err(Error::BadParam {
                    name,
                    reason: format!("{ms} ms; use 1 to 3600000"),
                });
            }
        }
        Ok(Frustration {
            rage_clicks,
            rage_ms,
            rage_px,
            quick_back_ms,
        })
    }
}

impl Default for Frustration {
    fn default() -> Self {
        Frustration {
            rage_clicks: DEFAULT_RAGE_CLICKS,
            rage_ms: DEFAULT_RAGE_MS,
            rage_px: DEFAULT_RAGE_PX,
            quick_back_ms: DEFAULT_QUICK_BACK_MS,
        }
    }
}

impl Frustration {
    /// The streamed pass over the signal events of the sessions in `half`, in one
    /// transaction.
    fn walk(
        &self,
        conn: &Connection,
        scope: &ResolvedScope,
        half: Half,
    ) -> Result<Walk<'_>, Error> {
        store::transaction(conn, || {
            let (filter, params) = half.scope_filter(scope);
            let query = |from: &str, order: &str| {
                format!(
                    "SELECT session_key, ts,
                        CASE kind WHEN 'click' THEN {CLICK} WHEN 'dead_click' THEN {DEAD}
                                  WHEN 'error' THEN {ERROR} WHEN 'pageview' THEN {VIEW}
                                  ELSE {OTHER} END::UTINYINT,
                        path, coalesce(kind = 'pageview' AND nav IN ('back_forward', 'pop'), false),
                        CASE WHEN kind IN ('click', 'dead_click') THEN selector END,
                        CASE WHEN kind = 'click' THEN x END, CASE WHEN kind = 'click' THEN y END,
                        coalesce(kind = 'pageview'
                                 AND nav IN ('navigate', 'reload', 'back_forward', 'forward'), false)
                     FROM {from}
                     WHERE {filter} AND path IS NOT NULL {order}"
                )
            };
            let mut walk = Walk::new(self);
            load::stream_sessions(conn, query, &params, |batch, skip| walk.batch(batch, skip))?;
            walk.end_session();
            Ok::<_, Error>(walk)
        })
    }

    /// The report straight from the store: what `analyzer frustration`,
    /// `/api/audit` and the report run. DuckDB sends the signal events (clicks, dead
    /// clicks, errors, page views) session after session in (ts, seq) order
    /// ([`load::stream_sessions`]); [`Walk`] finds each session's signals with one
    /// session in memory. When `spread`, each [`Half`] of the sessions is walked on
    /// its own connection and the walks are merged ([`load::by_halves`]), while the
    /// store counts the sessions in scope and the labels on a third.
    pub fn stream(
        &self,
        conn: &Connection,
        scope: ResolvedScope,
        spread: bool,
    ) -> Result<FrustrationReport, Error> {
        let counts = |side: &Connection| {
            store::transaction(side, || {
                Ok::<_, Error>((
                    load::sessions(side, &scope)?,
                    labels(side, &scope, &["click"])?,
                ))
            })
        };
        let walk = || {
            load::by_halves(
                conn,
                spread,
                |conn, half| self.walk(conn, &scope, half),
                Walk::merge,
            )
        };
        let (sessions, walk, labels) = if spread {
            let side = load::clone(conn)?;
            std::thread::scope(|s| {
                let counted = s.spawn(move || counts(&side));
                let walk = walk();
                let (sessions, labels) = counted.join().expect("the counts do not panic")?;
                Ok::<_, Error>((sessions, walk?, labels))
            })?
        } else {
            let (sessions, labels) = counts(conn)?;
            (sessions, walk()?, labels)
        };

        let mut issues: Vec<FrustrationIssue> = walk
            .issues
            .iter()
            .map(|(&(kind, page_id, sel), &(occurrences, affected))| {
                let on_page = walk.pages.get(&page_id).map_or(0, |&(n, _)| n);
                let page = walk.names.name(page_id);
                let sel = sel.map(|s| walk.names.name(s));
                FrustrationIssue {
                    kind,
                    page: page.to_owned(),
                    selector: sel.map(str::to_owned),
                    label: sel.and_then(|s| labels.get(&(page.to_owned(), s.to_owned())).cloned()),
                    occurrences,
                    sessions: affected,
                    page_sessions: on_page,
                    share: ratio(affected, on_page),
                }
            })
            .collect();
        issues.sort_by(|a, b| {
            b.sessions
                .cmp(&a.sessions)
                .then(b.occurrences.cmp(&a.occurrences))
                .then_with(|| a.page.cmp(&b.page))
                .then(a.kind.cmp(&b.kind))
                .then_with(|| a.selector.cmp(&b.selector))
        });
        Ok(FrustrationReport {
            scope,
            sessions,
            rage_clicks: self.rage_clicks,
            rage_ms: self.rage_ms,
            rage_px: self.rage_px,
            quick_back_ms: self.quick_back_ms,
            issues,
        })
    }
}

/// The kinds [`Frustration::stream`] reads, as the codes its query sends.
const CLICK: u8 = 0;
const DEAD: u8 = 1;
const ERROR: u8 = 2;
const VIEW: u8 = 3;
/// Any other event: it only counts for its page's sessions.
const OTHER: u8 = 4;

/// A click, for [`rage_bouts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClickAt {
    pub ts: i64,
    /// Where, for a pointer click.
    pub at: Option<(i32, i32)>,
    /// Nothing answered it: the tracker judged it dead.
    pub unanswered: bool,
}

/// How many rage clicks (bursts) a run of clicks on one selector holds.
///
/// `clicks` are in time order. A window of `n` consecutive clicks qualifies when the
/// last is at most `max_ms` after the first, every click is at most `max_px` from
/// the first (clicks without a position are near anything), and the clicks between
/// the first and the last were left unanswered (for a pair: the second). The last
/// click may have caught the late answer to the first (a slow server), so its
/// verdict does not count. Qualifying windows that share a click belong to one
/// burst.
pub fn rage_bouts(clicks: &[ClickAt], n: usize, max_ms: i64, max_px: u32) -> u64 {
    let n = n.max(1);
    if clicks.len() < n {
        return 0;
    }
    let near = |a: Option<(i32, i32)>, b: Option<(i32, i32)>| match (a, b) {
        (Some((ax, ay)), Some((bx, by))) => {
            let (dx, dy) = (i64::from(ax) - i64::from(bx), i64::from(ay) - i64::from(by));
            dx * dx + dy * dy <= i64::from(max_px) * i64::from(max_px)
        }
        _ => true,
    };
    let mut bouts = 0;
    let mut covered_until: Option<usize> = None;
    for start in 0..=clicks.len() - n {
        let end = start + n - 1;
        let first = clicks[start];
        // The clicks between the first and the last went unanswered (for a pair,
        // the second did). The last may have seen the first click's late answer.
        let inner = if n > 2 { start + 1..end } else { end..end + 1 };
        let qualifies = clicks[end].ts - first.ts <= max_ms
            && clicks[start + 1..=end].iter().all(|c| near(first.at, c.at))
            && clicks[inner].iter().all(|c| c.unanswered);
        if qualifies {
            if covered_until.is_none_or(|c| start > c) {
                bouts += 1;
            }
            covered_until = Some(end);
        }
    }
    bouts
}

/// An issue: (kind, page, selector), the strings by their [`Names`] number.
type IssueKey = (FrustrationKind, u32, Option<u32>);

/// What the walk remembers of one session (strings by their [`Names`] number).
#[derive(Debug, Default)]
struct SessionState {
    /// Clicks per (page, selector), for rage clicks.
    clicks: FastMap<(u32, u32), Vec<ClickAt>>,
    /// The latest click: (ts, page, selector, already an error click).
    last_click: Option<(i64, u32, Option<u32>, bool)>,
    /// The page view before the latest one: its path.
    before_previous_view: Option<u32>,
    /// The latest page view: (ts, path).
    previous_view: Option<(i64, u32)>,
}

/// The sequential pass of [`Frustration::stream`]: rows arrive session after
/// session, each session's in (ts, seq) order.
struct Walk<'f> {
    rule: &'f Frustration,
    names: Names,
    current: Option<u64>,
    cursor: SessionCursor,
    state: SessionState,
    /// Per issue: (occurrences, sessions).
    issues: FastMap<IssueKey, (u64, u64)>,
    /// Per page: (sessions with any event on it, the last session counted).
    pages: FastMap<u32, (u64, u64)>,
    /// The session at hand's ordinal (from 1).
    ordinal: u64,
    /// The issues of the session at hand, so that each counts it once.
    this_session: FastSet<IssueKey>,
}

impl<'f> Walk<'f> {
    fn new(rule: &'f Frustration) -> Self {
        Walk {
            rule,
            names: Names::default(),
            current: None,
            cursor: SessionCursor::default(),
            state: SessionState::default(),
            issues: FastMap::default(),
            pages: FastMap::default(),
            ordinal: 0,
            this_session: FastSet::default(),
        }
    }

    fn signal(&mut self, kind: FrustrationKind, page: u32, selector: Option<u32>, n: u64) {
        let key = (kind, page, selector);
        let entry = self.issues.entry(key).or_default();
        entry.0 += n;
        if self.this_session.insert(key) {
            entry.1 += 1;
        }
    }

    /// Ends the session at hand: its rage clicks, then a fresh state.
    fn end_session(&mut self) {
        if self.current.take().is_some() {
            let clicks = std::mem::take(&mut self.state.clicks);
            for ((page, sel), clicks) in clicks {
                let n = rage_bouts(
                    &clicks,
                    self.rule.rage_clicks as usize,
                    self.rule.rage_ms as i64,
                    self.rule.rage_px,
                );
                if n > 0 {
                    self.signal(FrustrationKind::RageClick, page, Some(sel), n);
                }
            }
        }
        self.state = SessionState::default();
        self.this_session.clear();
    }

    /// Adds the counts of a walk over other sessions (the other [`Half`]).
    fn merge(&mut self, other: Walk<'f>) {
        let names = &other.names;
        for ((kind, page, sel), (occurrences, sessions)) in other.issues {
            let key = (
                kind,
                self.names.id(names.name(page)),
                sel.map(|s| self.names.id(names.name(s))),
            );
            let entry = self.issues.entry(key).or_default();
            entry.0 += occurrences;
            entry.1 += sessions;
        }
        for (page, (sessions, _)) in other.pages {
            let page = self.names.id(names.name(page));
            self.pages.entry(page).or_default().0 += sessions;
        }
    }

    fn batch(&mut self, batch: &RecordBatch, skip: &HashSet<u64>) -> Result<(), Error> {
        let keys = primitive::<UInt64Type>(batch.column(0), "session_key")?;
        let ts = millis(batch.column(1))?;
        let kinds = primitive::<UInt8Type>(batch.column(2), "kind")?;
        let (paths, back) = (batch.column(3), batch.column(4).as_boolean());
        let selectors = batch.column(5);
        let x = primitive::<Int32Type>(batch.column(6), "x")?;
        let y = primitive::<Int32Type>(batch.column(7), "y")?;
        let load = batch.column(8).as_boolean();
        for (i, &key) in keys.values().iter().enumerate() {
            match self.cursor.at(key, skip) {
                RowIn::Skipped => continue,
                RowIn::Next => {
                    self.end_session();
                    self.current = Some(key);
                    self.ordinal += 1;
                }
                RowIn::Same => {}
            }
            let Some(page) = str_at(paths, i) else {
                continue;
            };
            let page = self.names.id(page);
            let seen = self.pages.entry(page).or_insert((0, 0));
            if seen.1 != self.ordinal {
                *seen = (seen.0 + 1, self.ordinal);
            }
            let sel = str_at(selectors, i).map(|s| self.names.id(s));
            let t = ts.value(i);
            match kinds.value(i) {
                CLICK => {
                    if let Some(sel) = sel {
                        let at = (x.is_valid(i) && y.is_valid(i)).then(|| (x.value(i), y.value(i)));
                        self.state
                            .clicks
                            .entry((page, sel))
                            .or_default()
                            .push(ClickAt {
                                ts: t,
                                at,
                                unanswered: false,
                            });
                    }
                    self.state.last_click = Some((t, page, sel, false));
                }
                DEAD => {
                    // The verdict on the latest click: it went unanswered.
                    if let (Some((_, cpage, Some(csel), _)), Some(sel)) =
                        (self.state.last_click, sel)
                        && (cpage, csel) == (page, sel)
                        && let Some(c) = self
                            .state
                            .clicks
                            .get_mut(&(page, sel))
                            .and_then(|v| v.last_mut())
                    {
                        c.unanswered = true;
                    }
                    self.signal(FrustrationKind::DeadClick, page, sel, 1);
                }
                ERROR => {
                    if let Some((ct, cpage, csel, blamed)) = &mut self.state.last_click
                        && !*blamed
                        && t - *ct <= ERROR_CLICK_MS
                    {
                        *blamed = true;
                        let (cpage, csel) = (*cpage, *csel);
                        self.signal(FrustrationKind::ErrorClick, cpage, csel, 1);
                    }
                }
                VIEW => {
                    // A document loaded (or shown again from the back/forward
                    // cache, or by the browser's buttons): an error on it is its
                    // own, not the last click's on the page before, which worked.
                    if load.value(i) {
                        self.state.last_click = None;
                    }
                    // A page view: was the one before it left by going straight back?
                    if let (Some(before), Some((pt, ppage))) =
                        (self.state.before_previous_view, self.state.previous_view)
                        && back.value(i)
                        && before == page
                        && t - pt <= self.rule.quick_back_ms as i64
                    {
                        self.signal(FrustrationKind::QuickBack, ppage, None, 1);
                    }
                    self.state.before_previous_view = self.state.previous_view.map(|(_, p)| p);
                    self.state.previous_view = Some((t, page));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

impl FrustrationReport {
    /// The report as rows for the table, CSV and HTML renderers.
    pub fn table(&self) -> Table {
        Table {
            audit: "frustration",
            facts: vec![
                self.scope.describe(),
                format!("{} sessions", self.sessions),
                format!(
                    "rage = {} clicks in {} ms within {} px",
                    self.rage_clicks, self.rage_ms, self.rage_px
                ),
                format!("quick back within {} ms", self.quick_back_ms),
            ],
            columns: vec![
                ("kind", "kind"),
                ("page", "page"),
                ("selector", "element"),
                ("label", "label"),
                ("occurrences", "occurrences"),
                ("sessions", "sessions"),
                ("page_sessions", "page sessions"),
                ("share", "share of page sessions"),
            ],
            rows: self
                .issues
                .iter()
                .map(|r| {
                    vec![
                        Cell::Text(r.kind.as_str().to_owned()),
                        Cell::Text(r.page.clone()),
                        Cell::Text(r.selector.clone().unwrap_or_default()),
                        Cell::Text(r.label.clone().unwrap_or_default()),
                        Cell::Count(r.occurrences),
                        Cell::Count(r.sessions),
                        Cell::Count(r.page_sessions),
                        Cell::Ratio(r.share),
                    ]
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audits::{AuditRequest, run_at};
    use crate::testing::{Db, Ev, ev};

    const S: i64 = 1_000;

    fn frustration(db: &Db, audit: &Frustration) -> FrustrationReport {
        audit
            .stream(&db.conn(), ResolvedScope::default(), true)
            .unwrap()
    }

    /// A click on /cart; the clicks on [`PAY`] read "Pay now".
    fn click(id: &str, session: &str, ts: i64, sel: &str, x: i32, y: i32) -> Ev {
        let e = ev(id, session, ts, (ts / 10) as i32, "click")
            .path("/cart")
            .selector(sel)
            .xy(x, y);
        if sel == PAY { e.text("Pay now") } else { e }
    }

    fn page(id: &str, session: &str, ts: i64, path: &str, nav: &str) -> Ev {
        ev(id, session, ts, 1, "pageview").path(path).nav(nav)
    }

    /// `(kind, page, selector, occurrences, sessions, page_sessions)`
    type Row<'a> = (&'a str, &'a str, Option<&'a str>, u64, u64, u64);

    /// A [`Row`] per issue.
    fn rows(r: &FrustrationReport) -> Vec<Row<'_>> {
        r.issues
            .iter()
            .map(|i| {
                (
                    i.kind.as_str(),
                    i.page.as_str(),
                    i.selector.as_deref(),
                    i.occurrences,
                    i.sessions,
                    i.page_sessions,
                )
            })
            .collect()
    }

    const PAY: &str = "button#pay";

    /// A click the tracker judged dead: the click, then its `dead_click` row.
    fn unanswered(id: &str, session: &str, ts: i64, sel: &str, x: i32, y: i32) -> [Ev; 2] {
        [
            click(id, session, ts, sel, x, y),
            ev(
                &format!("{id}-dead"),
                session,
                ts + 50,
                (ts / 10) as i32,
                "dead_click",
            )
            .path("/cart")
            .selector(sel)
            .xy(x, y),
        ]
    }

    fn rage_fixture() -> Vec<Ev> {
        let dead = |id: &str, s: &str, ts: i64, sel: &str, x: i32, y: i32| {
            unanswered(id, s, ts, sel, x, y).to_vec()
        };
        let mut events: Vec<Ev> = [
            // s1: 3 clicks in exactly 1 s, within 30 px of the first: a rage click.
            dead("a1", "s1", 0, PAY, 100, 100),
            dead("a2", "s1", 500, PAY, 110, 100),
            dead("a3", "s1", 1_000, PAY, 100, 120),
            // s2: 3 clicks spread over 1.1 s: not with the default 1 s.
            dead("b1", "s2", 0, PAY, 100, 100),
            dead("b2", "s2", 550, PAY, 100, 100),
            dead("b3", "s2", 1_100, PAY, 100, 100),
            // s3: 4 fast clicks: one rage click.
            dead("c1", "s3", 0, PAY, 100, 100),
            dead("c2", "s3", 100, PAY, 100, 100),
            dead("c3", "s3", 200, PAY, 100, 100),
            dead("c4", "s3", 300, PAY, 100, 100),
            // s5: 3 fast clicks, but on two selectors (the button and its label).
            dead("e1", "s5", 0, PAY, 100, 100),
            dead("e2", "s5", 100, "button#pay > span", 100, 100),
            dead("e3", "s5", 200, PAY, 100, 100),
            // s6: 3 fast clicks on one selector, but 100 px apart.
            dead("f1", "s6", 0, PAY, 0, 0),
            dead("f2", "s6", 100, PAY, 100, 0),
            dead("f3", "s6", 200, PAY, 200, 0),
            // s7: 4 fast clicks that each did something (a carousel's arrow, a
            // stepper): no dead verdict, no rage.
            vec![
                click("g1", "s7", 0, PAY, 100, 100),
                click("g2", "s7", 100, PAY, 100, 100),
                click("g3", "s7", 200, PAY, 100, 100),
                click("g4", "s7", 300, PAY, 100, 100),
            ],
            // s8: a slow button: the first click started a request, the second did
            // nothing, the answer to the first came in the third's second: rage.
            vec![click("h1", "s8", 0, PAY, 100, 100)],
            dead("h2", "s8", 300, PAY, 100, 100),
            vec![click("h3", "s8", 600, PAY, 100, 100)],
            // s9: 3 fast clicks, the middle one answered: no rage.
            dead("i1", "s9", 0, PAY, 100, 100),
            vec![click("i2", "s9", 200, PAY, 100, 100)],
            dead("i3", "s9", 400, PAY, 100, 100),
        ]
        .concat();
        // s4: a burst of 6 in 0.5 s (one rage click), then 3 more 5 s later (another).
        for (i, t) in [0, 100, 200, 300, 400, 500, 5_000, 5_100, 5_200]
            .into_iter()
            .enumerate()
        {
            events.extend(unanswered(&format!("d{i}"), "s4", t, PAY, 100, 100));
        }
        events
    }

    /// The rage-click rows of a report.
    fn rage(r: &FrustrationReport) -> Vec<Row<'_>> {
        rows(r)
            .into_iter()
            .filter(|r| r.0 == "rage_click")
            .collect()
    }

    #[test]
    fn rage_clicks_need_enough_fast_near_unanswered_clicks_on_one_selector() {
        let db = Db::new();
        db.insert(&rage_fixture());
        let r = frustration(&db, &Frustration::default());
        assert_eq!(r.sessions, 9);
        // s1 (1) + s3 (1) + s4 (2) + s8 (1); all 9 sessions were on /cart.
        assert_eq!(rage(&r), [("rage_click", "/cart", Some(PAY), 5, 4, 9)]);
        assert_eq!(
            (r.rage_clicks, r.rage_ms, r.rage_px, r.quick_back_ms),
            (3, 1_000, 30, 5_000)
        );

        // With 1.1 s, s2 rage-clicks too.
        let r = frustration(&db, &Frustration::new(3, 1_100, 30, 5_000).unwrap());
        assert_eq!(rage(&r), [("rage_click", "/cart", Some(PAY), 6, 5, 9)]);
        // With 2 clicks, s5's two clicks on the button 200 ms apart count, and s9's
        // last two (the second click of a pair must be unanswered).
        let r = frustration(&db, &Frustration::new(2, 1_000, 30, 5_000).unwrap());
        assert_eq!(rage(&r)[0].4, 7, "all but s6 and s7");
        // With 300 px, s6 counts.
        let r = frustration(&db, &Frustration::new(3, 1_000, 300, 5_000).unwrap());
        assert_eq!(rage(&r), [("rage_click", "/cart", Some(PAY), 6, 5, 9)]);
    }

    #[test]
    fn rage_bouts_merge_windows_that_share_a_click() {
        let c = |ts: i64, at: Option<(i32, i32)>| ClickAt {
            ts,
            at,
            unanswered: true,
        };
        let at = |ts: &[i64]| ts.iter().map(|&t| c(t, Some((0, 0)))).collect::<Vec<_>>();
        assert_eq!(rage_bouts(&[], 3, 1_000, 30), 0);
        assert_eq!(rage_bouts(&at(&[0, 500]), 3, 1_000, 30), 0);
        assert_eq!(rage_bouts(&at(&[0, 500, 1_000]), 3, 1_000, 30), 1);
        assert_eq!(rage_bouts(&at(&[0, 500, 1_001]), 3, 1_000, 30), 0);
        // 6 in a burst: one; a steady 2.5 clicks/s for 2 s: one.
        assert_eq!(rage_bouts(&at(&[0, 1, 2, 3, 4, 5]), 3, 1_000, 30), 1);
        assert_eq!(
            rage_bouts(&at(&[0, 400, 800, 1_200, 1_600, 2_000]), 3, 1_000, 30),
            1
        );
        // Not only windows starting at the first click: 950, 1100, 1150.
        assert_eq!(rage_bouts(&at(&[0, 950, 1_100, 1_150]), 3, 1_000, 30), 1);
        // Two bursts with a pause: two.
        assert_eq!(
            rage_bouts(&at(&[0, 10, 20, 3_000, 3_010, 3_020]), 3, 1_000, 30),
            2
        );
        // Distance from the window's first click, inclusive; unknown positions match.
        let clicks = [
            c(0, Some((0, 0))),
            c(1, Some((30, 0))),
            c(2, Some((18, 24))),
        ];
        assert_eq!(rage_bouts(&clicks, 3, 1_000, 30), 1);
        let clicks = [c(0, Some((0, 0))), c(1, Some((31, 0))), c(2, Some((0, 0)))];
        assert_eq!(rage_bouts(&clicks, 3, 1_000, 30), 0);
        let clicks = [c(0, None), c(1, Some((500, 0))), c(2, None)];
        assert_eq!(rage_bouts(&clicks, 3, 1_000, 30), 1);
        // The first click may have been answered, and the last (a slow answer to
        // the first landing in its second); the one between may not.
        let mut clicks = at(&[0, 10, 20]);
        clicks[0].unanswered = false;
        clicks[2].unanswered = false;
        assert_eq!(rage_bouts(&clicks, 3, 1_000, 30), 1);
        clicks[1].unanswered = false;
        assert_eq!(rage_bouts(&clicks, 3, 1_000, 30), 0);
        // A pair: the second must be unanswered.
        let mut pair = at(&[0, 10]);
        assert_eq!(rage_bouts(&pair, 2, 1_000, 30), 1);
        pair[1].unanswered = false;
        assert_eq!(rage_bouts(&pair, 2, 1_000, 30), 0);
    }

    #[test]
    fn dead_clicks_error_clicks_and_quick_backs() {
        let db = Db::new();
        db.insert(&[
            // s1: / → /product/1 → back to / after 2 s: a quick back on /product/1.
            page("a1", "s1", 0, "/", "navigate"),
            page("a2", "s1", 10 * S, "/product/1", "navigate"),
            page("a3", "s1", 12 * S, "/", "back_forward"),
            // s2: back after 6 s: not quick.
            page("b1", "s2", 0, "/", "navigate"),
            page("b2", "s2", 10 * S, "/product/1", "navigate"),
            page("b3", "s2", 16 * S, "/", "back_forward"),
            // s3: back_forward, but to another page than the one before.
            page("c1", "s3", 0, "/", "navigate"),
            page("c2", "s3", 10 * S, "/product/1", "navigate"),
            page("c3", "s3", 11 * S, "/cart", "back_forward"),
            // s4: an SPA route left by popstate after 2 s.
            page("d1", "s4", 0, "/", "navigate"),
            page("d2", "s4", S, "/product/2", "push"),
            page("d3", "s4", 3 * S, "/", "pop"),
            // s5: back after exactly 5 s: quick (inclusive).
            page("e1", "s5", 0, "/", "navigate"),
            page("e2", "s5", 10 * S, "/product/1", "navigate"),
            page("e3", "s5", 15 * S, "/", "back_forward"),
            // s6: two dead clicks; a click with an error 800 ms later (an error click),
            // one with an error 1001 ms later (not).
            page("f1", "s6", 0, "/cart", "navigate"),
            ev("f2", "s6", S, 2, "dead_click")
                .path("/cart")
                .selector("img.hero")
                .xy(5, 5),
            ev("f3", "s6", 3 * S, 3, "dead_click")
                .path("/cart")
                .selector("img.hero")
                .xy(5, 5),
            click("f4", "s6", 100 * S, "button#buy", 0, 0),
            ev("f5", "s6", 100 * S + 800, 99_999, "error")
                .path("/cart")
                .message("boom"),
            click("f6", "s6", 110 * S, "button#buy", 0, 0),
            ev("f7", "s6", 111 * S + 1, 99_999, "error")
                .path("/cart")
                .message("boom"),
            // s7: a dead click; two clicks then two errors: the latest click is blamed,
            // once; an error with no click before it blames nothing.
            ev("g0", "s7", 0, 1, "error").path("/cart").message("early"),
            ev("g1", "s7", S, 2, "dead_click")
                .path("/cart")
                .selector("img.hero"),
            click("g2", "s7", 10 * S, "a#x", 0, 0),
            click("g3", "s7", 10 * S + 300, "button#buy", 0, 0),
            ev("g4", "s7", 10 * S + 900, 99_998, "error")
                .path("/cart")
                .message("boom"),
            ev("g5", "s7", 10 * S + 950, 99_999, "error")
                .path("/cart")
                .message("boom"),
            // s8: only a field focus on /cart and a leave on /product/2: no signal,
            // but those pages' sessions count it.
            ev("h1", "s8", 0, 1, "focus").path("/cart").field("email"),
            ev("h2", "s8", S, 2, "leave").path("/product/2"),
            // s9: a link to a page whose own script fails 400 ms after it loaded:
            // the link worked, no error click.
            page("i1", "s9", 0, "/list", "navigate"),
            click("i2", "s9", S, "a#item", 0, 0).path("/list"),
            page("i3", "s9", S + 300, "/item", "navigate"),
            ev("i4", "s9", S + 700, 99_999, "error")
                .path("/item")
                .message("widget"),
            // s10: a single-page app's button draws a route that fails: the
            // button's error click, on the page it was clicked on.
            page("j1", "s10", 0, "/spa", "navigate"),
            click("j2", "s10", S, "button#go", 0, 0).path("/spa"),
            page("j3", "s10", S + 200, "/spa/route", "push"),
            ev("j4", "s10", S + 500, 99_999, "error")
                .path("/spa/route")
                .message("render"),
        ]);
        let r = frustration(&db, &Frustration::default());
        assert_eq!(r.sessions, 10);
        assert_eq!(
            rows(&r),
            [
                // /cart was seen by s3 (its back_forward), s6, s7 and s8.
                ("dead_click", "/cart", Some("img.hero"), 3, 2, 4),
                // Ties on sessions and occurrences: by page.
                ("error_click", "/cart", Some("button#buy"), 2, 2, 4),
                // /product/1 was seen by s1, s2, s3 and s5.
                ("quick_back", "/product/1", None, 2, 2, 4),
                ("quick_back", "/product/2", None, 1, 1, 2),
                ("error_click", "/spa", Some("button#go"), 1, 1, 1),
            ]
        );
        assert_eq!(r.issues[2].share, Some(0.5));
    }

    /// The two halves of the sessions are walked apart: their counts add up, and a
    /// page or element seen in both is one row.
    #[test]
    fn sessions_of_both_halves_add_up() {
        let sessions = crate::testing::sessions_in_both_halves(40);
        let db = Db::new();
        let events: Vec<Ev> = sessions
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                let mut e = vec![
                    page(&format!("{s}-a"), s, 0, "/cart", "navigate"),
                    ev(&format!("{s}-b"), s, S, 2, "dead_click")
                        .path("/cart")
                        .selector("img.hero"),
                ];
                // Every fourth also goes to /product/1 and quickly back.
                if i % 4 == 0 {
                    e.push(page(&format!("{s}-c"), s, 2 * S, "/product/1", "navigate"));
                    e.push(page(&format!("{s}-d"), s, 3 * S, "/cart", "back_forward"));
                }
                e
            })
            .collect();
        db.insert(&events);
        let r = frustration(&db, &Frustration::default());
        assert_eq!(r.sessions, 40);
        assert_eq!(
            rows(&r),
            [
                ("dead_click", "/cart", Some("img.hero"), 40, 40, 40),
                ("quick_back", "/product/1", None, 10, 10, 10),
            ]
        );
        // The same in one walk (the report's).
        let one = Frustration::default()
            .stream(&db.conn(), ResolvedScope::default(), false)
            .unwrap();
        assert_eq!(rows(&one), rows(&r));
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = frustration(&db, &Frustration::default());
        assert_eq!(r.sessions, 0);
        assert!(r.issues.is_empty());

        db.insert(&[page("a1", "s1", 0, "/", "navigate")]);
        let r = frustration(&db, &Frustration::default());
        assert_eq!(r.sessions, 1);
        assert!(r.issues.is_empty());
    }

    #[test]
    fn requests_default_to_posthogs_rule_and_bad_params_are_rejected() {
        let req: AuditRequest = serde_json::from_str(r#"{"audit":"frustration"}"#).unwrap();
        assert_eq!(
            req,
            AuditRequest::Frustration {
                scope: crate::Scope::default(),
                rage_clicks: 3,
                rage_ms: 1_000,
                rage_px: 30,
                quick_back_ms: 5_000,
            }
        );
        assert!(
            serde_json::from_str::<AuditRequest>(r#"{"audit":"frustration","rage":3}"#).is_err()
        );
        assert!(Frustration::new(1, 1_000, 30, 5_000).is_err());
        assert!(Frustration::new(3, 0, 30, 5_000).is_err());
        assert!(Frustration::new(3, 1_000, 30, 0).is_err());
        assert!(Frustration::new(3, 1_000, 0, 5_000).is_ok());

        let db = Db::new();
        let bad = AuditRequest::Frustration {
            scope: crate::Scope::default(),
            rage_clicks: 1,
            rage_ms: 1_000,
            rage_px: 30,
            quick_back_ms: 5_000,
        };
        let err = run_at(&db.conn(), &bad, 0).unwrap_err();
        assert_eq!(err.code(), "bad_param");
    }

    #[test]
    fn table_lists_kind_page_and_element() {
        let db = Db::new();
        db.insert(&rage_fixture());
        let r = frustration(&db, &Frustration::default());
        let out = crate::render(&crate::Report::Frustration(r), crate::Format::Csv).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..2],
            [
                "kind,page,selector,label,occurrences,sessions,page_sessions,share",
                "dead_click,/cart,button#pay,Pay now,27,8,9,0.8888888888888888",
            ]
        );
        assert!(lines.contains(&"rage_click,/cart,button#pay,Pay now,5,4,9,0.4444444444444444"));
    }
}
