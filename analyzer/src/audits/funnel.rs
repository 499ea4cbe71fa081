//! The `funnel` audit: how many sessions get how far through a sequence of steps.
//!
//! Params: step specs ([`crate::matcher`]) and a window (`30m`).
//!
//! [`Funnel::stream`] is how it runs: the step matchers become one SQL expression (a
//! bit per step, [`StepMatcher::sql`]) evaluated by DuckDB with the scope, so only
//! the rows that can be a step leave the store, as Arrow batches of four integer
//! columns (session key, time, step bits, and the selector when a `click:` step needs
//! a second look). The sorted table keeps each session's rows together and in (ts,
//! seq) order ([`store::schema`]), so one pass with one session in memory finds each
//! session's furthest step ([`best_attempt`]); the few sessions that also have rows
//! still waiting for compaction come from the `events_overlap` view, sorted. Memory
//! is one session plus the per-step times, whatever the table's size.
//!
//! The [`Audit`] implementation computes the same report from a loaded frame (Polars
//! sorts by session, ts, seq): the tests check both on every fixture.
//!
//! Semantics (DESIGN.md): the unit is the session. Events are ordered by
//! (timestamp, seq), so equal times keep the order the tracker recorded. Steps must
//! happen in order, as distinct events; other events may come in between. All steps
//! must fall within `window` (inclusive) of the first step's time. Every occurrence of
//! step 1 starts an attempt; an attempt takes, for each next step, the earliest match
//! after the previous step's match (greedy, which maximises how far that attempt gets);
//! a session counts at the furthest step of its best attempt.
//!
//! Times between steps (`median_ms_from_previous`) come from the session's best
//! attempt; when several attempts reach the same furthest step, the earliest of them.

use std::collections::{BTreeSet, HashSet};

use duckdb::Connection;
use duckdb::arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use duckdb::arrow::datatypes::{DataType as ArrowType, UInt64Type};
use duckdb::types::Value;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Audit, Context, SessionOrder as _, kind_in, ratio};
use crate::Error;
use crate::load::{Col, Half, RowIn, SessionCursor, millis, primitive, str_at};
use crate::matcher::{EventRef, SEQUENCE_COLUMNS, SqlTest, StepMatcher};
use crate::scope::{ResolvedScope, format_duration_ms, parse_duration_ms};
use crate::table::{Cell, Table};

/// The window when none is given.
pub const DEFAULT_WINDOW: &str = "30m";

/// The most steps a funnel may have (one bit each in a `u64`).
pub const MAX_STEPS: usize = 64;

/// Validated funnel params.
#[derive(Debug, Clone)]
pub struct Funnel {
    steps: Vec<StepMatcher>,
    window_ms: i64,
}

/// The funnel report: one row per step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// The saved funnel's name; null for steps given with the request.
    #[serde(default)]
    pub name: Option<String>,
    /// All steps within this many ms of the first step.
    pub window_ms: i64,
    pub steps: Vec<FunnelStep>,
}

/// One step of a [`FunnelReport`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunnelStep {
    /// The spec, e.g. `page:/cart`.
    pub step: String,
    /// Sessions that reached at least this step.
    pub entered: u64,
    /// `entered / entered of the previous step`; null for step 1 or a zero denominator.
    pub conversion_from_previous: Option<f64>,
    /// `entered / entered of step 1`; null when nobody entered step 1.
    pub conversion_from_first: Option<f64>,
    /// Entered the previous step but not this one (0 for step 1).
    pub dropped: u64,
    /// Median ms from the previous step to this one, over sessions reaching this step
    /// (their best attempt); null for step 1 or when nobody reached it.
    pub median_ms_from_previous: Option<i64>,
    /// Whether any event in scope matches this step, in any order. False is most
    /// likely a step spelt otherwise than the data (`page:/shop#/cart` where the
    /// shop's routes are `#!/cart`); the table says so.
    #[serde(default = "matches_by_default")]
    pub matches_any_event: bool,
}

fn matches_by_default() -> bool {
    true
}

impl Funnel {
    /// Parses the step specs and the window.
    pub fn new(steps: &[String], window: &str) -> Result<Self, Error> {
        if steps.is_empty() {
            return Err(Error::BadParam {
                name: "steps",
                reason: "a funnel needs at least one step (--step SPEC)".to_owned(),
            });
        }
        if steps.len() > MAX_STEPS {
            return Err(Error::BadParam {
                name: "steps",
                reason: format!("{} steps; a funnel has at most {MAX_STEPS}", steps.len()),
            });
        }
        let steps = steps
            .iter()
            .map(|s| StepMatcher::parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        let window_ms = parse_duration_ms(window)?;
        Ok(Funnel { steps, window_ms })
    }
}

impl Audit for Funnel {
    type Report = FunnelReport;

    const COLUMNS: &'static [Col] = &SEQUENCE_COLUMNS;

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<FunnelReport, Error> {
        let (sessions, scope) = (ctx.sessions, ctx.scope.clone());
        // Polars: only the kinds a step can match, in (session, ts, seq) order.
        let kinds: BTreeSet<&str> = self
            .steps
            .iter()
            .flat_map(StepMatcher::kinds)
            .copied()
            .collect();
        let candidates = events
            .lazy()
            .filter(kind_in(kinds))
            .in_session_order()
            .collect()?;

        // Rust: one sequential pass per session.
        let (arrivals, any) = self.arrivals(&candidates)?;

        // Polars: per step, how many arrived and the median time from the previous step.
        let per_step = arrivals
            .lazy()
            .group_by([col("step")])
            .agg([
                len().cast(DataType::UInt64).alias("entered"),
                col("from_previous_ms").median().alias("median_ms"),
            ])
            .collect()?;
        let mut entered = vec![0u64; self.steps.len()];
        let mut median = vec![None; self.steps.len()];
        let step_col = per_step.column("step")?.u32()?;
        let entered_col = per_step.column("entered")?.u64()?;
        let median_col = per_step.column("median_ms")?.f64()?;
        for ((step, n), m) in step_col
            .iter()
            .zip(entered_col.iter())
            .zip(median_col.iter())
        {
            if let Some(step) = step {
                entered[step as usize] = n.unwrap_or(0);
                median[step as usize] = m.map(|m| m.round() as i64);
            }
        }
        Ok(self.report(scope, sessions, &entered, &median, any))
    }
}

impl Funnel {
    /// Walks the sorted candidate events session by session and returns one row per
    /// (session, step reached): `step` (0-based, `u32`) and `from_previous_ms`
    /// (null for step 0); and the steps some event matches (bit `k` for step `k`).
    fn arrivals(&self, sorted: &DataFrame) -> Result<(DataFrame, u64), Error> {
        let session = sorted.column("session_id")?.u64()?;
        let ts = sorted.column("ts")?.i64()?;
        let kind = sorted.column("kind")?.str()?;
        let path = sorted.column("path")?.str()?;
        let screen = sorted.column("screen")?.str()?;
        let selector = sorted.column("selector")?.str()?;
        let form = sorted.column("form")?.str()?;
        let name = sorted.column("name")?.str()?;
        let ancestry = sorted.column("ancestry")?.str()?;

        let mut steps: Vec<u32> = Vec::new();
        let mut from_previous: Vec<Option<i64>> = Vec::new();
        let mut emit = |times: &[i64]| {
            for (k, &t) in times.iter().enumerate() {
                steps.push(k as u32);
                from_previous.push(k.checked_sub(1).map(|p| t - times[p]));
            }
        };

        let mut current: Option<u64> = None;
        let mut matched: Vec<(i64, u64)> = Vec::new(); // (ts, bit k set = matches step k)
        let mut any = 0u64;
        let rows = session
            .iter()
            .zip(ts.iter())
            .zip(kind.iter())
            .zip(path.iter())
            .zip(screen.iter())
            .zip(selector.iter())
            .zip(form.iter())
            .zip(name.iter())
            .zip(ancestry.iter());
        for ((((((((sid, t), kind), path), screen), selector), form), name), ancestry) in rows {
            let (Some(sid), Some(t), Some(kind)) = (sid, t, kind) else {
                continue;
            };
            if current != Some(sid) {
                if let Some(times) = best_attempt(&matched, self.steps.len(), self.window_ms) {
                    emit(&times);
                }
                matched.clear();
                current = Some(sid);
            }
            let ev = EventRef {
                kind,
                path,
                screen,
                selector,
                form,
                name,
                ancestry,
            };
            let mask = self
                .steps
                .iter()
                .enumerate()
                .filter(|(_, m)| m.matches(&ev))
                .fold(0u64, |mask, (k, _)| mask | (1 << k));
            if mask != 0 {
                matched.push((t, mask));
                any |= mask;
            }
        }
        if let Some(times) = best_attempt(&matched, self.steps.len(), self.window_ms) {
            emit(&times);
        }

        let arrivals = DataFrame::new(
            steps.len(),
            vec![
                Column::new("step".into(), steps),
                Column::new("from_previous_ms".into(), from_previous),
            ],
        )?;
        Ok((arrivals, any))
    }
}

/// The furthest-reaching attempt of one session: the times of its matched steps
/// (`times[k]` = when step `k` matched), or `None` if step 1 never happens.
///
/// `events` are the session's events in order, as (ts, mask) where bit `k` of the mask
/// says the event matches step `k`. Each event matching step 0 starts an attempt,
/// which takes for each next step the earliest later event matching it, as long as it
/// is within `window_ms` of the attempt's start. Ties between attempts reaching the
/// same step go to the earliest attempt.
pub fn best_attempt(events: &[(i64, u64)], n_steps: usize, window_ms: i64) -> Option<Vec<i64>> {
    let (mut times, mut best) = (Vec::new(), Vec::new());
    best_attempt_into(events, n_steps, window_ms, &mut times, &mut best);
    (!best.is_empty()).then_some(best)
}

/// [`best_attempt`] into `best` (empty when step 1 never happens), with `times` as
/// scratch: no allocation once both have grown to the number of steps.
fn best_attempt_into(
    events: &[(i64, u64)],
    n_steps: usize,
    window_ms: i64,
    times: &mut Vec<i64>,
    best: &mut Vec<i64>,
) {
    best.clear();
    for (start, &(t0, mask)) in events.iter().enumerate() {
        if mask & 1 == 0 {
            continue;
        }
        let deadline = t0.saturating_add(window_ms);
        times.clear();
        times.push(t0);
        let mut next = start + 1;
        while times.len() < n_steps {
            let bit = 1u64 << times.len();
            let found = events[next..]
                .iter()
                .take_while(|(t, _)| *t <= deadline)
                .position(|(_, m)| m & bit != 0);
            let Some(offset) = found else { break };
            next += offset;
            times.push(events[next].0);
            next += 1;
        }
        if times.len() > best.len() {
            best.clone_from(times);
        }
        if best.len() == n_steps {
            break;
        }
    }
}

/// Per step: sessions that reached it, and the ms from the previous step of each.
struct Tally {
    entered: Vec<u64>,
    /// The steps some event matched (bit `k` for step `k`).
    any: u64,
    gaps: Vec<Vec<i64>>,
    /// Scratch for [`best_attempt_into`].
    times: Vec<i64>,
    best: Vec<i64>,
}

impl Tally {
    fn new(steps: usize) -> Self {
        Tally {
            entered: vec![0; steps],
            any: 0,
            gaps: vec![Vec::new(); steps],
            times: Vec::with_capacity(steps),
            best: Vec::with_capacity(steps),
        }
    }

    /// Counts one session from its matched events, in order.
    fn session(&mut self, matched: &[(i64, u64)], window_ms: i64) {
        self.any |= matched.iter().fold(0, |any, &(_, mask)| any | mask);
        best_attempt_into(
            matched,
            self.entered.len(),
            window_ms,
            &mut self.times,
            &mut self.best,
        );
        for (k, &t) in self.best.iter().enumerate() {
            self.entered[k] += 1;
            if k > 0 {
                self.gaps[k].push(t - self.best[k - 1]);
            }
        }
    }

    /// Adds the tally of other sessions (the other [`Half`]).
    fn add(&mut self, other: Tally) {
        self.any |= other.any;
        for (k, (n, gaps)) in other.entered.into_iter().zip(other.gaps).enumerate() {
            self.entered[k] += n;
            self.gaps[k].extend(gaps);
        }
    }

    /// The median of each step's gaps (the mean of the two middle ones for an even
    /// count, rounded), as Polars' `median` gives it.
    fn medians(&mut self) -> Vec<Option<i64>> {
        self.gaps.iter_mut().map(|g| super::median_ms(g)).collect()
    }
}

impl Funnel {
    /// The funnel straight from the store (see the module docs): what `analyzer
    /// funnel`, `/api/audit` and the report run. When `spread`, each [`Half`] of
    /// the sessions streams on its own connection, side by side, and the two
    /// tallies are added up ([`crate::load::by_halves`]).
    pub fn stream(
        &self,
        conn: &Connection,
        scope: ResolvedScope,
        spread: bool,
    ) -> Result<FunnelReport, Error> {
        let (sessions, mut tally) = crate::load::by_halves(
            conn,
            spread,
            // One snapshot for a half's count and rows.
            |conn, half| {
                store::transaction(conn, || self.stream_in_transaction(conn, &scope, half))
            },
            |(sessions, tally), (more, other)| {
                *sessions += more;
                tally.add(other);
            },
        )?;
        let medians = tally.medians();
        Ok(self.report(scope, sessions, &tally.entered, &medians, tally.any))
    }

    /// The sessions in scope, counted once (with the lower half, or all), and the
    /// tally of the sessions of `half`.
    fn stream_in_transaction(
        &self,
        conn: &Connection,
        scope: &ResolvedScope,
        half: Half,
    ) -> Result<(u64, Tally), Error> {
        let (filter, scope_params) = half.scope_filter(scope);

        let sessions = match half {
            Half::Upper => 0,
            Half::Lower | Half::All => crate::load::sessions(conn, scope)?,
        };

        let plan = Plan::new(&self.steps);
        let mut params = plan.params.clone();
        params.extend(scope_params);
        let query = |from: &str, order: &str| {
            format!(
                "SELECT session_key, ts{code}{selector}{tests} FROM {from}
                 WHERE {filter} AND {kinds} {order}",
                code = if plan.mixed_kinds {
                    ", enum_code(kind)"
                } else {
                    ""
                },
                selector = if plan.recheck == 0 {
                    ""
                } else {
                    ", selector, ancestry"
                },
                tests = plan.columns.iter().fold(String::new(), |mut out, c| {
                    out.push_str(", ");
                    out.push_str(c);
                    out
                }),
                kinds = crate::matcher::kind_sql(&plan.kinds),
            )
        };

        let mut pass = Pass {
            funnel: self,
            plan: &plan,
            tally: Tally::new(self.steps.len()),
            current: None,
            cursor: SessionCursor::default(),
            matched: Vec::new(),
            masks: Vec::new(),
        };
        crate::load::stream_sessions(conn, query, &params, |batch, skip| pass.batch(batch, skip))?;
        pass.flush();
        Ok((sessions, pass.tally))
    }

    /// The report from the sessions that entered each step and the median time from
    /// the previous one (both paths end here).
    fn report(
        &self,
        scope: ResolvedScope,
        sessions: u64,
        entered: &[u64],
        median: &[Option<i64>],
        any: u64,
    ) -> FunnelReport {
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(k, matcher)| {
                let previous = k.checked_sub(1).map(|p| entered[p]);
                FunnelStep {
                    step: matcher.spec().to_owned(),
                    entered: entered[k],
                    conversion_from_previous: previous.and_then(|p| ratio(entered[k], p)),
                    conversion_from_first: ratio(entered[k], entered[0]),
                    dropped: previous.map_or(0, |p| p.saturating_sub(entered[k])),
                    median_ms_from_previous: if k == 0 { None } else { median[k] },
                    matches_any_event: any & (1 << k) != 0,
                }
            })
            .collect();
        FunnelReport {
            scope,
            sessions,
            name: None,
            window_ms: self.window_ms,
            steps,
        }
    }
}

/// How [`Funnel::stream`] asks DuckDB about the steps: after the session key, the
/// time, the kind's enum code and the selector, one `list_position` column per
/// column that steps compare to a value (`path`, `screen`, `form`, `name`), then one
/// boolean column per other step (globs, clicks). The kind is tested in Rust.
struct Plan {
    /// The step columns of the query, in order.
    columns: Vec<String>,
    params: Vec<Value>,
    /// Per column of `columns`: the steps it answers.
    probes: Vec<Probe>,
    /// Per enum code of `kind`: the steps an event of that kind can be.
    kind_bits: Vec<u64>,
    /// The kinds any step can match: the only rows read.
    kinds: Vec<&'static str>,
    /// Whether steps differ in the kinds they match (then the kind is read).
    mixed_kinds: bool,
    /// Step bits the SQL only narrowed (`click:`): checked again on the selector.
    recheck: u64,
}

enum Probe {
    /// `list_position`: position `p` (1-based) is the steps `bits[p]`.
    Position(Vec<u64>),
    /// A boolean column: these steps.
    Flag(u64),
}

impl Plan {
    fn new(steps: &[StepMatcher]) -> Self {
        let mut kinds = BTreeSet::new();
        let mut kind_bits = vec![0u64; store::schema::KINDS.len()];
        let mut lists: Vec<(&'static str, Vec<String>, Vec<u64>)> = Vec::new();
        let mut flags: Vec<(String, Vec<String>, u64)> = Vec::new();
        let mut recheck = 0;
        for (k, m) in steps.iter().enumerate() {
            let bit = 1u64 << k;
            for kind in m.kinds() {
                kinds.insert(*kind);
                if let Some(code) = store::schema::KINDS.iter().position(|x| x == kind) {
                    kind_bits[code] |= bit;
                }
            }
            if !m.exact_in_sql() {
                recheck |= bit;
            }
            match m.sql_test() {
                SqlTest::Equals { column, value } => {
                    let list = if let Some(i) = lists.iter_mut().position(|l| l.0 == column) {
                        &mut lists[i]
                    } else {
                        lists.push((column, Vec::new(), vec![0]));
                        lists.last_mut().expect("just pushed")
                    };
                    if let Some(p) = list.1.iter().position(|v| *v == value) {
                        list.2[p + 1] |= bit;
                    } else {
                        list.1.push(value);
                        list.2.push(bit);
                    }
                }
                SqlTest::Condition(cond, params) => flags.push((cond, params, bit)),
            }
        }
        let mut columns = Vec::new();
        let mut params = Vec::new();
        let mut probes = Vec::new();
        for (column, values, bits) in lists {
            let marks = vec!["?"; values.len()].join(", ");
            columns.push(format!("list_position([{marks}], {column})"));
            params.extend(values.into_iter().map(Value::Text));
            probes.push(Probe::Position(bits));
        }
        for (cond, p, bit) in flags {
            columns.push(cond);
            params.extend(p.into_iter().map(Value::Text));
            probes.push(Probe::Flag(bit));
        }
        let kinds: Vec<&'static str> = kinds.into_iter().collect();
        let mixed_kinds = steps.iter().any(|m| m.kinds() != kinds.as_slice());
        Plan {
            columns,
            params,
            probes,
            kind_bits,
            kinds,
            mixed_kinds,
            recheck,
        }
    }

    /// The step bits of every row of `batch` (columns as in [`Funnel::stream`]'s
    /// query), into `masks`.
    fn masks(
        &self,
        batch: &duckdb::arrow::record_batch::RecordBatch,
        masks: &mut Vec<u64>,
    ) -> Result<(), Error> {
        let n = batch.num_rows();
        masks.clear();
        masks.resize(n, 0);
        for (c, probe) in self.probes.iter().enumerate() {
            let column = batch.column(self.first_probe() + c);
            match probe {
                Probe::Position(bits) => {
                    let positions = integers(column, "step")?;
                    let valid = positions.nulls();
                    for (i, (mask, &p)) in masks.iter_mut().zip(positions.values()).enumerate() {
                        // 0 and NULL are no step.
                        if valid.is_none_or(|v| v.is_valid(i))
                            && let Some(b) = usize::try_from(p).ok().and_then(|p| bits.get(p))
                        {
                            *mask |= b;
                        }
                    }
                }
                Probe::Flag(bit) => {
                    let flags = column.as_boolean_opt().ok_or_else(|| Error::ColumnType {
                        column: "step",
                        found: column.data_type().to_string(),
                        expected: "BOOLEAN",
                    })?;
                    let set = match flags.nulls() {
                        Some(valid) => flags.values() & valid.inner(),
                        None => flags.values().clone(),
                    };
                    for i in set.set_indices() {
                        masks[i] |= bit;
                    }
                }
            }
        }
        if self.mixed_kinds {
            // `kind` is NOT NULL.
            let codes = integers(batch.column(2), "kind")?;
            for (mask, &code) in masks.iter_mut().zip(codes.values()) {
                let allowed = usize::try_from(code)
                    .ok()
                    .and_then(|c| self.kind_bits.get(c))
                    .copied()
                    .unwrap_or(0);
                *mask &= allowed;
            }
        }
        Ok(())
    }
}

impl Plan {
    /// The query's column of the selector, when a step needs it.
    fn selector_column(&self) -> Option<usize> {
        (self.recheck != 0).then_some(2 + usize::from(self.mixed_kinds))
    }

    /// The query's column of the first step test.
    fn first_probe(&self) -> usize {
        2 + usize::from(self.mixed_kinds) + 2 * usize::from(self.recheck != 0)
    }
}

/// An integer column of any width as `Int64`.
fn integers(array: &ArrayRef, column: &'static str) -> Result<Int64Array, Error> {
    let cast =
        duckdb::arrow::compute::cast(array, &ArrowType::Int64).map_err(|_| Error::ColumnType {
            column,
            found: array.data_type().to_string(),
            expected: "an integer",
        })?;
    Ok(cast
        .as_primitive::<duckdb::arrow::datatypes::Int64Type>()
        .clone())
}

/// The sequential pass of [`Funnel::stream`]: rows arrive session after session.
struct Pass<'a> {
    funnel: &'a Funnel,
    plan: &'a Plan,
    tally: Tally,
    current: Option<u64>,
    cursor: SessionCursor,
    /// The current session's step events: (ts, step bits).
    matched: Vec<(i64, u64)>,
    /// The step bits of the rows of the batch at hand.
    masks: Vec<u64>,
}

impl Pass<'_> {
    fn flush(&mut self) {
        if self.current.take().is_some() {
            self.tally.session(&self.matched, self.funnel.window_ms);
        }
        self.matched.clear();
    }

    fn batch(
        &mut self,
        batch: &duckdb::arrow::record_batch::RecordBatch,
        skip: &HashSet<u64>,
    ) -> Result<(), Error> {
        let keys = primitive::<UInt64Type>(batch.column(0), "session_key")?;
        let ts = millis(batch.column(1))?;
        let selectors = self
            .plan
            .selector_column()
            .map(|c| (batch.column(c), batch.column(c + 1)));
        let mut masks = std::mem::take(&mut self.masks);
        self.plan.masks(batch, &mut masks)?;
        for (i, (&key, &mask)) in keys.values().iter().zip(&masks).enumerate() {
            match self.cursor.at(key, skip) {
                RowIn::Skipped => continue,
                RowIn::Next => {
                    self.flush();
                    self.current = Some(key);
                }
                RowIn::Same => {}
            }
            if mask == 0 {
                continue;
            }
            let mask = if mask & self.plan.recheck == 0 {
                mask
            } else {
                self.recheck_clicks(
                    mask,
                    selectors.and_then(|(s, _)| str_at(s, i)),
                    selectors.and_then(|(_, a)| str_at(a, i)),
                )
            };
            if mask != 0 {
                self.matched.push((ts.value(i), mask));
            }
        }
        self.masks = masks;
        Ok(())
    }

    /// Clears the bits of `click:` steps the click does not really match.
    fn recheck_clicks(&self, mask: u64, selector: Option<&str>, ancestry: Option<&str>) -> u64 {
        let ev = EventRef::click(selector, ancestry);
        self.funnel
            .steps
            .iter()
            .enumerate()
            .filter(|(k, _)| self.plan.recheck & (1 << k) != 0 && mask & (1 << k) != 0)
            .filter(|(_, m)| !m.matches(&ev))
            .fold(mask, |mask, (k, _)| mask & !(1 << k))
    }
}

impl FunnelReport {
    /// The report as rows for the table, CSV and HTML renderers.
    pub fn table(&self) -> Table {
        Table {
            audit: "funnel",
            facts: self
                .name
                .iter()
                .map(|n| format!("saved funnel {n}"))
                .chain([
                    self.scope.describe(),
                    format!("{} sessions", self.sessions),
                    format!("window {}", format_duration_ms(self.window_ms)),
                ])
                .chain(self.steps.iter().filter(|s| !s.matches_any_event).map(|s| {
                    format!(
                        "no event in scope matches step {} (paths are stored as the site \
                         writes them: hash routes as /shop#/cart, /shop#!/cart or /shop#cart)",
                        s.step
                    )
                }))
                .collect(),
            columns: vec![
                ("step", "step"),
                ("entered", "entered"),
                ("conversion_from_previous", "from previous"),
                ("conversion_from_first", "from first"),
                ("dropped", "dropped"),
                ("median_ms_from_previous", "median time from previous"),
            ],
            rows: self
                .steps
                .iter()
                .map(|s| {
                    let step = if s.matches_any_event {
                        s.step.clone()
                    } else {
                        format!("{} (matches no event)", s.step)
                    };
                    vec![
                        Cell::Text(step),
                        Cell::Count(s.entered),
                        Cell::Ratio(s.conversion_from_previous),
                        Cell::Ratio(s.conversion_from_first),
                        Cell::Count(s.dropped),
                        Cell::Ms(s.median_ms_from_previous),
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

    const MIN: i64 = 60_000;

    fn funnel(db: &Db, steps: &[&str], window: &str) -> FunnelReport {
        funnel_in(db, ResolvedScope::default(), steps, window)
    }

    /// The funnel as [`Funnel::stream`] computes it, checked against the Polars path.
    fn funnel_in(db: &Db, scope: ResolvedScope, steps: &[&str], window: &str) -> FunnelReport {
        let steps: Vec<String> = steps.iter().map(|s| (*s).to_owned()).collect();
        let funnel = Funnel::new(&steps, window).unwrap();
        let framed = run_audit(&db.conn(), scope.clone(), &funnel).unwrap();
        let streamed = funnel.stream(&db.conn(), scope.clone(), true).unwrap();
        assert_eq!(streamed, framed, "streamed and Polars funnels differ");
        let one = funnel.stream(&db.conn(), scope, false).unwrap();
        assert_eq!(one, streamed, "the halves and one pass differ");
        streamed
    }

    /// `(entered, dropped, median_ms_from_previous)` per step.
    fn summary(r: &FunnelReport) -> Vec<(u64, u64, Option<i64>)> {
        r.steps
            .iter()
            .map(|s| (s.entered, s.dropped, s.median_ms_from_previous))
            .collect()
    }

    fn page(id: &str, session: &str, ts: i64, seq: i32, path: &str) -> Ev {
        ev(id, session, ts, seq, "pageview").path(path)
    }

    const CHECKOUT: [&str; 3] = ["page:/cart", "screen:payment", "event:order"];

    fn pay(id: &str, session: &str, ts: i64, seq: i32) -> Ev {
        ev(id, session, ts, seq, "screen")
            .path("/checkout")
            .screen("payment")
    }

    fn order(id: &str, session: &str, ts: i64, seq: i32) -> Ev {
        ev(id, session, ts, seq, "custom")
            .path("/checkout")
            .name("order")
    }

    #[test]
    fn counts_each_session_at_its_furthest_step() {
        let db = Db::new();
        db.insert(&[
            // s1: cart → payment (2 min) → order (3 min): complete.
            page("a1", "s1", 0, 1, "/cart"),
            ev("a2", "s1", MIN, 2, "click")
                .path("/cart")
                .selector("#go"),
            pay("a3", "s1", 2 * MIN, 3),
            order("a4", "s1", 5 * MIN, 4),
            // s2: cart → payment (4 min), then leaves.
            page("b1", "s2", 0, 1, "/cart"),
            pay("b2", "s2", 4 * MIN, 2),
            ev("b3", "s2", 5 * MIN, 3, "leave").path("/checkout"),
            // s3: only the cart.
            page("c1", "s3", 0, 1, "/cart"),
            // s4: never in the funnel, but in scope.
            page("d1", "s4", 0, 1, "/"),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(r.sessions, 4);
        assert_eq!(r.window_ms, 30 * MIN);
        assert_eq!(
            summary(&r),
            // payment: median of 2 and 4 min = 3 min; order: only s1, 3 min.
            [(3, 0, None), (2, 1, Some(3 * MIN)), (1, 1, Some(3 * MIN))]
        );
        let s = &r.steps;
        assert_eq!(s[0].conversion_from_previous, None);
        assert_eq!(s[0].conversion_from_first, Some(1.0));
        assert_eq!(s[1].conversion_from_previous, Some(2.0 / 3.0));
        assert_eq!(s[2].conversion_from_previous, Some(0.5));
        assert_eq!(s[2].conversion_from_first, Some(1.0 / 3.0));
        assert_eq!(s[1].step, "screen:payment");
    }

    #[test]
    fn repeated_steps_count_once_and_use_the_earliest_matches() {
        let db = Db::new();
        db.insert(&[
            // cart, cart, payment, payment, order, order: one session, complete. The
            // first cart starts the attempt that completes; it takes the first payment
            // (+3 min) and the first order after it (+2 min).
            page("a1", "s1", 0, 1, "/cart"),
            page("a2", "s1", MIN, 1, "/cart"),
            pay("a3", "s1", 3 * MIN, 2),
            pay("a4", "s1", 4 * MIN, 3),
            order("a5", "s1", 5 * MIN, 4),
            order("a6", "s1", 6 * MIN, 5),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(
            summary(&r),
            [(1, 0, None), (1, 0, Some(3 * MIN)), (1, 0, Some(2 * MIN))]
        );
    }

    #[test]
    fn a_step_no_event_matches_is_told_apart_from_one_nobody_reached() {
        let db = Db::new();
        db.insert(&[
            // Payment before the cart: nobody reaches payment, but events match it.
            pay("a1", "s1", 0, 1),
            page("a2", "s1", MIN, 2, "/cart"),
        ]);
        let r = funnel(
            &db,
            &["page:/cart", "screen:payment", "page:/shop#/thanks"],
            "30m",
        );
        let matching: Vec<(u64, bool)> = r
            .steps
            .iter()
            .map(|s| (s.entered, s.matches_any_event))
            .collect();
        assert_eq!(matching, [(1, true), (0, true), (0, false)]);
        let facts = r.table().facts;
        assert!(
            facts
                .iter()
                .any(|f| f.starts_with("no event in scope matches step page:/shop#/thanks")),
            "{facts:?}"
        );
        assert!(
            !facts.iter().any(|f| f.contains("step screen:payment")),
            "{facts:?}"
        );
        let cells: Vec<String> = r
            .table()
            .rows
            .iter()
            .map(|row| format!("{:?}", row[0]))
            .collect();
        assert!(
            cells[2].contains("page:/shop#/thanks (matches no event)"),
            "{cells:?}"
        );
        assert!(!cells[1].contains("matches no event"), "{cells:?}");
    }

    #[test]
    fn steps_out_of_order_do_not_count() {
        let db = Db::new();
        db.insert(&[
            // s1: order, then payment, then cart: only step 1.
            order("a1", "s1", 0, 1),
            pay("a2", "s1", MIN, 2),
            page("a3", "s1", 2 * MIN, 1, "/cart"),
            // s2: cart, order, payment: steps 1 and 2 (order before payment is ignored).
            page("b1", "s2", 0, 1, "/cart"),
            order("b2", "s2", MIN, 2),
            pay("b3", "s2", 2 * MIN, 3),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(
            summary(&r),
            [(2, 0, None), (1, 1, Some(2 * MIN)), (0, 1, None)]
        );
        assert_eq!(r.steps[2].conversion_from_previous, Some(0.0));
    }

    #[test]
    fn a_step_outside_the_window_does_not_count() {
        let db = Db::new();
        db.insert(&[
            // s1: payment exactly at the window's end counts (inclusive); order 1 ms late.
            page("a1", "s1", 0, 1, "/cart"),
            pay("a2", "s1", 10 * MIN, 2),
            order("a3", "s1", 10 * MIN + 1, 3),
        ]);
        let r = funnel(&db, &CHECKOUT, "10m");
        assert_eq!(
            summary(&r),
            [(1, 0, None), (1, 0, Some(10 * MIN)), (0, 1, None)]
        );
    }

    #[test]
    fn two_sessions_of_one_visitor_count_separately() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, 1, "/cart").visitor("v1"),
            pay("a2", "s1", MIN, 2).visitor("v1"),
            // The same visitor comes back in a new session and orders: the order does
            // not complete the first session's funnel.
            page("b1", "s2", 2 * MIN, 1, "/").visitor("v1"),
            order("b2", "s2", 3 * MIN, 2).visitor("v1"),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(r.sessions, 2);
        assert_eq!(summary(&r), [(1, 0, None), (1, 0, Some(MIN)), (0, 1, None)]);
    }

    #[test]
    fn a_session_can_complete_on_its_second_attempt() {
        let db = Db::new();
        db.insert(&[
            // Attempt 1 (cart at 0): payment at 1 min, order at 40 min — too late.
            // Attempt 2 (cart at 35 min): payment at 37 min, order at 40 min — complete.
            page("a1", "s1", 0, 1, "/cart"),
            pay("a2", "s1", MIN, 2),
            page("a3", "s1", 35 * MIN, 1, "/cart"),
            pay("a4", "s1", 37 * MIN, 2),
            order("a5", "s1", 40 * MIN, 3),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        // Times come from attempt 2: 2 min to payment, 3 min to order.
        assert_eq!(
            summary(&r),
            [(1, 0, None), (1, 0, Some(2 * MIN)), (1, 0, Some(3 * MIN))]
        );
    }

    #[test]
    fn equal_timestamps_keep_the_trackers_seq_order() {
        let db = Db::new();
        db.insert(&[
            // s1: payment (seq 3) then order (seq 4) in the same millisecond: converts.
            page("a1", "s1", 0, 1, "/cart"),
            order("a3", "s1", MIN, 4),
            pay("a2", "s1", MIN, 3),
            // s2: same millisecond, but the order (seq 2) came before payment (seq 3).
            page("b1", "s2", 0, 1, "/cart"),
            pay("b2", "s2", MIN, 3),
            order("b3", "s2", MIN, 2),
        ]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(
            summary(&r),
            [(2, 0, None), (2, 0, Some(MIN)), (1, 1, Some(0))]
        );
    }

    #[test]
    fn site_and_time_range_filter_the_events() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, 1, "/cart"),
            pay("a2", "s1", MIN, 2),
            page("b1", "s2", 0, 1, "/cart").site("other-shop"),
            pay("b2", "s2", MIN, 2).site("other-shop"),
            // s3: cart before `since`, payment inside: the payment alone is no funnel.
            page("c1", "s3", 9 * MIN, 1, "/cart"),
            pay("c2", "s3", 11 * MIN, 2),
            // s4: inside the range, then an order at `until` (exclusive).
            page("d1", "s4", 10 * MIN, 1, "/cart"),
            pay("d2", "s4", 12 * MIN, 2),
            order("d3", "s4", 20 * MIN, 3),
        ]);
        let everything = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(everything.sessions, 4);
        assert_eq!(summary(&everything)[0].0, 4);

        let shop = ResolvedScope {
            site: Some("shop".into()),
            since_ms: None,
            until_ms: None,
            include_bots: false,
        };
        let r = funnel_in(&db, shop.clone(), &CHECKOUT, "30m");
        assert_eq!(r.sessions, 3);
        assert_eq!(r.scope, shop);
        assert_eq!(
            summary(&r),
            [(3, 0, None), (3, 0, Some(2 * MIN)), (1, 2, Some(8 * MIN))]
        );

        let range = ResolvedScope {
            site: Some("shop".into()),
            since_ms: Some(10 * MIN),
            until_ms: Some(20 * MIN),
            include_bots: false,
        };
        let r = funnel_in(&db, range, &CHECKOUT, "30m");
        assert_eq!(r.sessions, 2, "s3 (its payment) and s4");
        assert_eq!(
            summary(&r),
            [(1, 0, None), (1, 0, Some(2 * MIN)), (0, 1, None)]
        );
    }

    #[test]
    fn a_resent_event_counts_once() {
        let db = Db::new();
        db.insert(&[
            page("a1", "s1", 0, 1, "/cart"),
            page("a1", "s1", 0, 1, "/cart"),
            page("b1", "s2", 0, 1, "/cart"),
            // The same step twice in a row would satisfy "cart, cart" if the copy counted.
        ]);
        let r = funnel(&db, &["page:/cart", "page:/cart"], "30m");
        assert_eq!(summary(&r), [(2, 0, None), (0, 2, None)]);
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(r.sessions, 0);
        assert_eq!(r.steps.len(), 3);
        for s in &r.steps {
            assert_eq!(
                (s.entered, s.dropped, s.median_ms_from_previous),
                (0, 0, None)
            );
            assert_eq!(
                (s.conversion_from_previous, s.conversion_from_first),
                (None, None)
            );
        }

        // Events in scope, but none of a funnel kind.
        db.insert(&[ev("a1", "s1", 0, 1, "leave").path("/")]);
        let r = funnel(&db, &CHECKOUT, "30m");
        assert_eq!(r.sessions, 1);
        assert_eq!(r.steps[0].entered, 0);
    }

    #[test]
    fn clicks_and_submits_as_steps() {
        let db = Db::new();
        db.insert(&[
            ev("a1", "s1", 0, 1, "click")
                .path("/")
                .selector("nav > a#shop"),
            ev("a2", "s1", MIN, 2, "submit")
                .path("/")
                .form("newsletter"),
            ev("a3", "s1", 2 * MIN, 3, "submit")
                .path("/")
                .form("checkout"),
            ev("b1", "s2", 0, 1, "click")
                .path("/")
                .selector("#shop > span"),
            ev("b2", "s2", MIN, 2, "submit")
                .path("/")
                .form("newsletter"),
        ]);
        let r = funnel(&db, &["click:#shop", "submit:checkout"], "30m");
        assert_eq!(summary(&r), [(2, 0, None), (1, 1, Some(2 * MIN))]);
    }

    #[test]
    fn the_best_attempt_is_the_furthest_then_the_earliest() {
        let w = 10;
        // Steps: bit 0 = A, bit 1 = B, bit 2 = C.
        assert_eq!(best_attempt(&[], 3, w), None);
        assert_eq!(best_attempt(&[(0, 0b010)], 3, w), None);
        assert_eq!(
            best_attempt(&[(0, 1), (1, 2), (2, 4)], 3, w),
            Some(vec![0, 1, 2])
        );
        // One event matching A and B is one step, not two.
        assert_eq!(best_attempt(&[(0, 0b011)], 3, w), Some(vec![0]));
        assert_eq!(
            best_attempt(&[(0, 0b011), (1, 0b011)], 3, w),
            Some(vec![0, 1])
        );
        // The first attempt reaches B, the second reaches C.
        assert_eq!(
            best_attempt(&[(0, 1), (5, 2), (12, 1), (13, 2), (14, 4)], 3, w),
            Some(vec![12, 13, 14])
        );
        // Two attempts reach B: the earliest one's times.
        assert_eq!(
            best_attempt(&[(0, 1), (8, 1), (9, 2)], 3, w),
            Some(vec![0, 9])
        );
        // A single-step funnel.
        assert_eq!(best_attempt(&[(3, 1), (4, 1)], 1, w), Some(vec![3]));
    }

    #[test]
    fn bad_params_are_rejected() {
        assert!(matches!(
            Funnel::new(&[], "30m"),
            Err(Error::BadParam { name: "steps", .. })
        ));
        let steps = vec!["page:/".to_owned()];
        assert!(matches!(
            Funnel::new(&steps, "soon"),
            Err(Error::BadDuration { .. })
        ));
        let many = vec!["page:/".to_owned(); MAX_STEPS + 1];
        assert!(matches!(
            Funnel::new(&many, "30m"),
            Err(Error::BadParam { .. })
        ));
    }

    /// Sessions spread over the whole insertion order, then compacted into several
    /// row groups, then a few sessions with rows (and resends) still waiting: the
    /// streamed funnel reads the sorted table in session order and the rest from the
    /// overlap, and agrees with the Polars path.
    #[test]
    fn a_large_store_streams_session_by_session() {
        let db = Db::new();
        let fill = |from: i64, to: i64, sessions: i64| {
            let conn = duckdb::Connection::open(db.path()).unwrap();
            conn.execute_batch(&format!(
                "INSERT INTO events_recent (site, event_id, kind, ts, received_at, seq,
                     session_id, visitor_id, path, browser, os, device, session_key)
                 SELECT 'shop', 'e' || (i % {to}), 'pageview',
                        epoch_ms((i // {sessions}) * 20000 + (hash(i) % 30000)::BIGINT),
                        epoch_ms(0), (i // {sessions})::INT, 's' || (i % {sessions}), 'v',
                        ['/', '/product/1', '/cart', '/checkout', '/thanks'][(hash(i * 7) % 5)::BIGINT + 1],
                        'b', 'o', 'desktop', 0
                 FROM range({from}, {to}) t(i);
                 UPDATE events_recent SET session_key = {key} WHERE session_key = 0;",
                key = store::schema::SESSION_KEY_SQL
            ))
            .unwrap();
        };
        fill(0, 300_000, 30_000);
        store::compact(
            &duckdb::Connection::open(db.path()).unwrap(),
            store::Select::All,
        )
        .unwrap();
        // Late rows of 100 sessions, and resends of rows already stored.
        fill(300_000, 301_000, 100);
        fill(299_000, 299_500, 30_000);
        let r = funnel(
            &db,
            &[
                "page:/",
                "page:/product/*",
                "page:/cart",
                "page:/checkout",
                "page:/thanks",
            ],
            "5m",
        );
        assert_eq!(r.sessions, 30_000);
        assert!(r.steps[0].entered > 20_000, "{r:?}");
        assert!(r.steps[4].entered > 100, "{r:?}");
    }
}
