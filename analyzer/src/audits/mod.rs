//! The audits, one file each, all the same shape: params in, typed report out.
//!
//! A request arrives as an [`AuditRequest`] (built by the CLI from its flags, or
//! deserialized by the collector from `POST /api/audit`). [`run`] resolves its
//! [`Scope`], builds the audit's params struct (which validates them), loads the
//! columns the audit declares through [`crate::load::events`] and hands the frame to
//! [`Audit::compute`], which returns the typed report wrapped in a [`Report`].
//!
//! Adding an audit `foo`:
//! 1. `audits/foo.rs`: `pub struct Foo` (validated params, `Foo::new(...)`),
//!    `pub struct FooReport` (with `scope` and `sessions`), `impl Audit for Foo`, and
//!    `FooReport::table()` for the table/CSV/HTML renderers.
//! 2. Here: a variant in [`AuditRequest`] and in [`Report`], one arm in [`run_at`] and
//!    in the [`Report`] accessors.
//! 3. `main.rs`: a subcommand.

pub mod ads;
pub mod errors;
pub mod forms;
pub mod frustration;
pub mod funnel;
pub mod links;
pub mod screens;

use duckdb::Connection;
use std::collections::HashMap;

use polars::prelude::{DataFrame, Expr, IntoLazy as _, LazyFrame, SortMultipleOptions, col, lit};
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::load::{self, Col};
use crate::saved;
use crate::scope::{self, ResolvedScope, Scope};
use crate::table::Table;

pub use ads::{AdCampaign, AdVariant, Ads, AdsReport, Comparison, InboundStats, Srm};
pub use errors::{CameFrom, ErrorPage, Errors, ErrorsReport, JsError};
pub use forms::{FieldStats, FormStats, Forms, FormsReport};
pub use frustration::{Frustration, FrustrationIssue, FrustrationKind, FrustrationReport};
pub use funnel::{Funnel, FunnelReport, FunnelStep};
pub use links::{BrokenLink, LinkStats, Links, LinksReport};
pub use screens::{NextScreen, ScreenStats, Screens, ScreensReport};

/// What every audit implements.
pub trait Audit {
    /// The typed result.
    type Report;

    /// The columns of the events table this audit reads (pushed into the SQL).
    const COLUMNS: &'static [Col];

    /// The event kinds this audit reads (pushed into the SQL); `None` for all.
    fn kinds(&self) -> Option<Vec<&'static str>> {
        None
    }

    /// Of the events of [`Self::kinds`], the rows this audit reads, as an SQL
    /// condition over the `events` view (pushed into the query); `None` for all.
    fn rows(&self) -> Option<String> {
        None
    }

    /// Computes the report from the events in `ctx.scope` of [`Self::kinds`] and
    /// [`Self::rows`], loaded
    /// with [`Self::COLUMNS`], one row per event, in no particular order. What is
    /// better asked of the store as a whole (counts over every kind) comes from
    /// `ctx.conn`.
    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<Self::Report, Error>;
}

/// What an audit's [`Audit::compute`] gets besides its events.
pub struct Context<'a> {
    /// The store, for what is cheaper to count there (in the same scope).
    pub conn: &'a Connection,
    pub scope: ResolvedScope,
    /// Sessions in scope (of every kind).
    pub sessions: u64,
}

/// Loads what `audit` needs from `conn` and computes its report.
pub fn run_audit<A: Audit>(
    conn: &Connection,
    scope: ResolvedScope,
    audit: &A,
) -> Result<A::Report, Error> {
    let sessions = load::sessions(conn, &scope)?;
    run_audit_counted(conn, scope, audit, sessions)
}

/// A request for one audit: the wire format of `POST /api/audit`.
///
/// ```json
/// {"audit": "funnel", "scope": {"site": "shop-1", "since": "7d"},
///  "steps": ["page:/cart", "screen:payment", "event:order_placed"], "window": "30m"}
/// {"audit": "screens", "scope": {"site": "shop-1"}, "top_next": 3}
/// {"audit": "forms", "scope": {"site": "shop-1"}, "form": "checkout"}
/// {"audit": "frustration", "rage_clicks": 3, "rage_ms": 1000, "rage_px": 30,
///  "quick_back_ms": 5000}
/// {"audit": "errors", "top_from": 3}
/// {"audit": "links", "min_impressions": 30, "max_ctr": 0.01}
/// {"audit": "ads", "goal": "event:purchase", "control": "A", "min_sessions": 100,
///  "split": "A:90,B:10"}
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Subcommand)]
#[serde(tag = "audit", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuditRequest {
    /// How many sessions get how far through a sequence of steps
    Funnel {
        /// Site and time range (the CLI's global `--site`, `--since`, `--until`).
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// A step, in order (repeat): `page:/cart`, `page:/product/*`, `screen:payment`,
        /// `click:#pay`, `submit:checkout`, `event:order_placed`. Without steps: a saved
        /// funnel (--name, else the site's first saved one)
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[arg(long = "step", value_name = "SPEC")]
        steps: Vec<String>,
        /// Run this saved funnel (see `analyzer funnels`)
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "NAME", conflicts_with = "steps")]
        name: Option<String>,
        /// All steps within this long of the first: 30m, 2h, 1d [default: the saved
        /// funnel's, else 30m]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
    },
    /// Drop-off by screen: sessions, views, exits, time on screen, next screens
    Screens {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// How many of the most common next screens to list per screen
        #[serde(default = "default_top_next")]
        #[arg(long, value_name = "N", default_value_t = default_top_next())]
        top_next: usize,
    },
    /// Which forms people give up on: started, submitted, abandoned, failed submits,
    /// and per field reach, time, corrections, blanks and the last field before giving up
    Forms {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// Only this form (its name, id or selector as the tracker records it)
        #[serde(default)]
        #[arg(long, value_name = "NAME")]
        form: Option<String>,
    },
    /// Rage clicks, dead clicks, error clicks and quick backs, by page and element
    Frustration {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// A rage click is at least this many clicks on one element...
        #[serde(default = "default_rage_clicks")]
        #[arg(long, value_name = "N", default_value_t = default_rage_clicks())]
        rage_clicks: u32,
        /// ...the last at most this many ms after the first...
        #[serde(default = "default_rage_ms")]
        #[arg(long, value_name = "MS", default_value_t = default_rage_ms())]
        rage_ms: u64,
        /// ...each at most this many px from the first
        #[serde(default = "default_rage_px")]
        #[arg(long, value_name = "PX", default_value_t = default_rage_px())]
        rage_px: u32,
        /// A page left by going back within this many ms is a quick back
        #[serde(default = "default_quick_back_ms")]
        #[arg(long, value_name = "MS", default_value_t = default_quick_back_ms())]
        quick_back_ms: u64,
    },
    /// JavaScript errors by message and page; pages served with HTTP status >= 400
    Errors {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// How many of the pages that led to an error page to list per page
        #[serde(default = "default_top_from")]
        #[arg(long, value_name = "N", default_value_t = default_top_from())]
        top_from: usize,
    },
    /// Links almost never clicked (CTR with a 95% Wilson interval), clicks that lead
    /// to error pages, and the error pages
    Links {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// A link needs this many viewable impressions to be called unused
        #[serde(default = "default_min_impressions")]
        #[arg(long, value_name = "N", default_value_t = default_min_impressions())]
        min_impressions: u64,
        /// ...and the upper end of its CTR's 95% interval below this fraction (0.01 = 1%)
        #[serde(default = "default_max_ctr")]
        #[arg(long, value_name = "FRACTION", default_value_t = default_max_ctr())]
        max_ctr: f64,
    },
    /// Do some ads perform better? On-site variants (data-ct-ad="CAMPAIGN:VARIANT")
    /// compared with a z-test, and inbound campaigns (utm_*, click ids), against a goal
    Ads {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// The goal: `page:/thanks`, `screen:done`, `click:#buy`, `submit:checkout`,
        /// `event:purchase` [default: the last step of the site's first saved funnel,
        /// else `event:purchase`]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "SPEC")]
        goal: Option<String>,
        /// The control variant of each campaign [default: its first variant by name]
        #[serde(default)]
        #[arg(long, value_name = "VARIANT")]
        control: Option<String>,
        /// Fewest exposed sessions in each variant before a verdict
        #[serde(default = "default_min_sessions")]
        #[arg(long, value_name = "N", default_value_t = default_min_sessions())]
        min_sessions: u64,
        /// The intended split of exposures for the sample-ratio check, e.g. A:90,B:10
        /// [default: even]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "VARIANT:WEIGHT,...")]
        split: Option<String>,
    },
    /// Every audit in one report: `--format html --out report.html` for a
    /// self-contained page with charts
    Report {
        #[serde(default)]
        #[arg(skip)]
        scope: Scope,
        /// Funnel steps, in order (repeat) [default: every saved funnel of the site]
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        #[arg(long = "step", value_name = "SPEC")]
        steps: Vec<String>,
        /// All funnel steps within this long of the first [default: the saved
        /// funnel's, else 30m]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "DURATION")]
        window: Option<String>,
        /// Goal for the ads section (a step spec) [default: as for `ads`]
        #[serde(default, skip_serializing_if = "Option::is_none")]
        #[arg(long, value_name = "SPEC")]
        goal: Option<String>,
    },
}

fn default_top_next() -> usize {
    screens::DEFAULT_TOP_NEXT
}

fn default_rage_clicks() -> u32 {
    frustration::DEFAULT_RAGE_CLICKS
}

fn default_rage_ms() -> u64 {
    frustration::DEFAULT_RAGE_MS
}

fn default_rage_px() -> u32 {
    frustration::DEFAULT_RAGE_PX
}

fn default_quick_back_ms() -> u64 {
    frustration::DEFAULT_QUICK_BACK_MS
}

fn default_top_from() -> usize {
    errors::DEFAULT_TOP_FROM
}

fn default_min_impressions() -> u64 {
    links::DEFAULT_MIN_IMPRESSIONS
}

fn default_max_ctr() -> f64 {
    links::DEFAULT_MAX_CTR
}

fn default_min_sessions() -> u64 {
    ads::DEFAULT_MIN_SESSIONS
}

impl AuditRequest {
    /// The audit's name, as in `"audit"` of the JSON.
    pub fn audit(&self) -> &'static str {
        match self {
            AuditRequest::Funnel { .. } => "funnel",
            AuditRequest::Screens { .. } => "screens",
            AuditRequest::Forms { .. } => "forms",
            AuditRequest::Frustration { .. } => "frustration",
            AuditRequest::Errors { .. } => "errors",
            AuditRequest::Links { .. } => "links",
            AuditRequest::Ads { .. } => "ads",
            AuditRequest::Report { .. } => "report",
        }
    }

    /// The requested scope.
    pub fn scope(&self) -> &Scope {
        match self {
            AuditRequest::Funnel { scope, .. }
            | AuditRequest::Screens { scope, .. }
            | AuditRequest::Forms { scope, .. }
            | AuditRequest::Frustration { scope, .. }
            | AuditRequest::Errors { scope, .. }
            | AuditRequest::Links { scope, .. }
            | AuditRequest::Ads { scope, .. }
            | AuditRequest::Report { scope, .. } => scope,
        }
    }

    /// The requested scope, to narrow (the collector limits it to the caller's sites).
    pub fn scope_mut(&mut self) -> &mut Scope {
        match self {
            AuditRequest::Funnel { scope, .. }
            | AuditRequest::Screens { scope, .. }
            | AuditRequest::Forms { scope, .. }
            | AuditRequest::Frustration { scope, .. }
            | AuditRequest::Errors { scope, .. }
            | AuditRequest::Links { scope, .. }
            | AuditRequest::Ads { scope, .. }
            | AuditRequest::Report { scope, .. } => scope,
        }
    }
}

/// The result of one audit, tagged like the request: `{"audit": "funnel", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "audit", rename_all = "snake_case")]
pub enum Report {
    Funnel(FunnelReport),
    Screens(ScreensReport),
    Forms(FormsReport),
    Frustration(FrustrationReport),
    Errors(ErrorsReport),
    Links(LinksReport),
    Ads(AdsReport),
    Report(crate::report::FullReport),
}

impl Report {
    /// The audit's name, as in `"audit"` of the JSON.
    pub fn audit(&self) -> &'static str {
        match self {
            Report::Funnel(_) => "funnel",
            Report::Screens(_) => "screens",
            Report::Forms(_) => "forms",
            Report::Frustration(_) => "frustration",
            Report::Errors(_) => "errors",
            Report::Links(_) => "links",
            Report::Ads(_) => "ads",
            Report::Report(_) => "report",
        }
    }

    /// The scope the audit ran on.
    pub fn scope(&self) -> &ResolvedScope {
        match self {
            Report::Funnel(r) => &r.scope,
            Report::Screens(r) => &r.scope,
            Report::Forms(r) => &r.scope,
            Report::Frustration(r) => &r.scope,
            Report::Errors(r) => &r.scope,
            Report::Links(r) => &r.scope,
            Report::Ads(r) => &r.scope,
            Report::Report(r) => &r.scope,
        }
    }

    /// Sessions with at least one event in scope.
    pub fn sessions(&self) -> u64 {
        match self {
            Report::Funnel(r) => r.sessions,
            Report::Screens(r) => r.sessions,
            Report::Forms(r) => r.sessions,
            Report::Frustration(r) => r.sessions,
            Report::Errors(r) => r.sessions,
            Report::Links(r) => r.sessions,
            Report::Ads(r) => r.sessions,
            Report::Report(r) => r.sessions,
        }
    }

    /// The report as rows and columns, for the table, CSV and HTML renderers.
    pub fn table(&self) -> Table {
        match self {
            Report::Funnel(r) => r.table(),
            Report::Screens(r) => r.table(),
            Report::Forms(r) => r.table(),
            Report::Frustration(r) => r.table(),
            Report::Errors(r) => r.table(),
            Report::Links(r) => r.table(),
            Report::Ads(r) => r.table(),
            Report::Report(r) => r.table(),
        }
    }
}

/// Runs one audit on `conn`: the entry point of the CLI and the collector.
/// Relative times (`7d`) count back from now.
pub fn run(conn: &Connection, req: &AuditRequest) -> Result<Report, Error> {
    run_at(conn, req, scope::now_ms())
}

/// [`run`] with an explicit "now" (UTC epoch ms) for relative times.
pub fn run_at(conn: &Connection, req: &AuditRequest, now_ms: i64) -> Result<Report, Error> {
    match req {
        AuditRequest::Funnel {
            scope,
            steps,
            name,
            window,
        } => {
            let (audit, name) = funnel_for(
                conn,
                scope.site.as_deref(),
                steps,
                name.as_deref(),
                window.as_deref(),
            )?;
            let scope = scope.resolve(now_ms)?;
            let mut report = audit.stream(conn, scope, true)?;
            report.name = name;
            Ok(Report::Funnel(report))
        }
        AuditRequest::Screens { scope, top_next } => {
            let audit = Screens::new(*top_next);
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Screens(audit.stream(conn, scope, true)?))
        }
        AuditRequest::Forms { scope, form } => {
            let audit = Forms::new(form.as_deref())?;
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Forms(run_audit(conn, scope, &audit)?))
        }
        AuditRequest::Frustration {
            scope,
            rage_clicks,
            rage_ms,
            rage_px,
            quick_back_ms,
        } => {
            let audit = Frustration::new(*rage_clicks, *rage_ms, *rage_px, *quick_back_ms)?;
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Frustration(audit.stream(conn, scope, true)?))
        }
        AuditRequest::Errors { scope, top_from } => {
            let audit = Errors::new(*top_from);
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Errors(run_audit(conn, scope, &audit)?))
        }
        AuditRequest::Links {
            scope,
            min_impressions,
            max_ctr,
        } => {
            let audit = Links::new(*min_impressions, *max_ctr)?;
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Links(audit.run(conn, scope)?))
        }
        AuditRequest::Ads {
            scope,
            goal,
            control,
            min_sessions,
            split,
        } => {
            let goal = goal_for(conn, scope.site.as_deref(), goal.as_deref())?;
            let audit =
                Ads::new(&goal, control.as_deref(), *min_sessions)?.with_split(split.as_deref())?;
            let scope = scope.resolve(now_ms)?;
            Ok(Report::Ads(audit.stream(conn, scope)?))
        }
        AuditRequest::Report {
            scope,
            steps,
            window,
            goal,
        } => full_report(
            conn,
            scope,
            steps,
            window.as_deref(),
            goal.as_deref(),
            now_ms,
        ),
    }
}

/// The funnel a request means: its own `steps`, or a saved funnel (`name`, else the
/// site's main one), with its name.
fn funnel_for(
    conn: &Connection,
    site: Option<&str>,
    steps: &[String],
    name: Option<&str>,
    window: Option<&str>,
) -> Result<(Funnel, Option<String>), Error> {
    if !steps.is_empty() {
        if name.is_some() {
            return Err(Error::BadParam {
                name: "name",
                reason: "give steps or the name of a saved funnel, not both".to_owned(),
            });
        }
        let audit = Funnel::new(steps, window.unwrap_or(funnel::DEFAULT_WINDOW))?;
        return Ok((audit, None));
    }
    match saved::find(conn, site, name)? {
        Some(f) => Ok((f.audit(window)?, Some(f.name))),
        None => Err(Error::BadParam {
            name: "steps",
            reason: "no steps given and no funnel saved for this site: give --step SPEC \
                     (repeat it), or save one with: analyzer funnels save NAME --step SPEC …"
                .to_owned(),
        }),
    }
}

/// The goal a request means: its own, else the last step of the site's main saved
/// funnel, else [`ads::DEFAULT_GOAL`].
fn goal_for(conn: &Connection, site: Option<&str>, goal: Option<&str>) -> Result<String, Error> {
    if let Some(goal) = goal {
        return Ok(goal.to_owned());
    }
    Ok(saved::main_goal(conn, site)?.unwrap_or_else(|| ads::DEFAULT_GOAL.to_owned()))
}

/// Runs `audit` on its own columns of a frame loaded for several audits.
/// [`run_audit`] with the sessions in scope already counted.
fn run_audit_counted<A: Audit>(
    conn: &Connection,
    scope: ResolvedScope,
    audit: &A,
    sessions: u64,
) -> Result<A::Report, Error> {
    let events = load_rows(conn, &scope, audit)?;
    audit.compute(
        events,
        &Context {
            conn,
            scope,
            sessions,
        },
    )
}

/// The rows `audit` computes on: its columns, kinds and rows in `scope`.
fn load_rows<A: Audit>(
    conn: &Connection,
    scope: &ResolvedScope,
    audit: &A,
) -> Result<DataFrame, Error> {
    load::events_of(
        conn,
        scope,
        A::COLUMNS,
        audit.kinds().as_deref(),
        audit.rows().as_deref(),
    )
}

/// The `report` audit: every audit with its defaults, each on its own load of the
/// events (its columns and kinds), in reading order. The funnels are the request's
/// steps, or every saved funnel of the site. Sections run side by side, one per
/// core ([`run_jobs`]): the peak memory is that of the few running at once.
fn full_report(
    conn: &Connection,
    scope: &Scope,
    steps: &[String],
    window: Option<&str>,
    goal: Option<&str>,
    now_ms: i64,
) -> Result<Report, Error> {
    let site = scope.site.as_deref();
    let resolved = scope.resolve(now_ms)?;
    let funnels = if steps.is_empty() {
        saved::list(conn, site)?
            .into_iter()
            .map(|f| Ok((f.audit(window)?, Some(f.name))))
            .collect::<Result<Vec<_>, Error>>()?
    } else {
        vec![funnel_for(conn, site, steps, None, window)?]
    };
    let screens = Screens::new(screens::DEFAULT_TOP_NEXT);
    let forms = Forms::new(None)?;
    let links = Links::new(links::DEFAULT_MIN_IMPRESSIONS, links::DEFAULT_MAX_CTR)?;
    let frustration = Frustration::new(
        frustration::DEFAULT_RAGE_CLICKS,
        frustration::DEFAULT_RAGE_MS,
        frustration::DEFAULT_RAGE_PX,
        frustration::DEFAULT_QUICK_BACK_MS,
    )?;
    let ads = Ads::new(
        &goal_for(conn, site, goal)?,
        None,
        ads::DEFAULT_MIN_SESSIONS,
    )?;
    let errors = Errors::default();

    let sessions = load::sessions(conn, &resolved)?;

    let mut jobs: Vec<Section> = funnels
        .into_iter()
        .map(|(funnel, name)| Section::Funnel(funnel, name))
        .collect();
    jobs.extend([
        Section::Screens(screens),
        Section::Forms(forms),
        Section::Links(links),
        Section::Frustration(frustration),
        Section::Ads(ads),
        Section::Errors(errors),
    ]);
    let sections = run_sections(conn, &resolved, sessions, jobs)?;
    Ok(Report::Report(crate::report::FullReport {
        sessions,
        scope: resolved,
        sections,
    }))
}

/// One section of the full report: an audit with its parameters.
enum Section {
    Funnel(Funnel, Option<String>),
    Screens(Screens),
    Forms(Forms),
    Links(Links),
    Frustration(Frustration),
    Ads(Ads),
    Errors(Errors),
}

/// Work [`run_jobs`] schedules.
trait Job: Send {
    /// About how long it takes, to start the longest first.
    fn weight(&self) -> u8;
    /// Whether it holds its rows in memory whole: two such never run at once.
    fn loads_whole(&self) -> bool;
}

impl Job for Section {
    fn weight(&self) -> u8 {
        match self {
            Section::Links(_) | Section::Frustration(_) => 3,
            Section::Screens(_) | Section::Ads(_) | Section::Errors(_) => 2,
            Section::Funnel(..) | Section::Forms(_) => 1,
        }
    }

    /// The Polars audits load their rows whole; the others stream one session at
    /// a time. So the report's peak is one whole load plus streams.
    fn loads_whole(&self) -> bool {
        matches!(
            self,
            Section::Forms(_) | Section::Links(_) | Section::Errors(_)
        )
    }
}

impl Section {
    /// Its report over `scope`, of `sessions` sessions.
    fn run(self, conn: &Connection, scope: ResolvedScope, sessions: u64) -> Result<Report, Error> {
        Ok(match self {
            Section::Funnel(funnel, name) => {
                let mut report = funnel.stream(conn, scope, false)?;
                report.name = name;
                Report::Funnel(report)
            }
            Section::Screens(a) => Report::Screens(a.stream(conn, scope, false)?),
            Section::Forms(a) => Report::Forms(run_audit_counted(conn, scope, &a, sessions)?),
            // One connection each: the report's sections already fill the cores.
            Section::Links(a) => Report::Links(run_audit_counted(conn, scope, &a, sessions)?),
            Section::Frustration(a) => Report::Frustration(a.stream(conn, scope, false)?),
            Section::Ads(a) => Report::Ads(a.stream(conn, scope)?),
            Section::Errors(a) => Report::Errors(run_audit_counted(conn, scope, &a, sessions)?),
        })
    }
}

/// How many sections of a report run at once: one per core, at most this many
/// (each holds its own audit's memory while it runs).
const MAX_WORKERS: usize = 3;

/// The report's sections, run by [`run_jobs`].
fn run_sections(
    conn: &Connection,
    scope: &ResolvedScope,
    sessions: u64,
    sections: Vec<Section>,
) -> Result<Vec<Report>, Error> {
    run_jobs(conn, sections, |s, conn| {
        s.run(conn, scope.clone(), sessions)
    })?
    .into_iter()
    .collect()
}

/// Runs the `jobs` on up to one worker per core, the longest first, each worker
/// with its own connection to the same database (DuckDB's memory limit is the
/// database's, shared by them), and returns what `run` made of them in the jobs'
/// order. An audit is mostly one thread's pass over what DuckDB sends, so two run
/// in about the time of one. At most one job that loads its rows whole runs at a
/// time ([`Job::loads_whole`]), and they go first: a free worker takes the next
/// of them when none runs, else the next streamed job, else waits.
fn run_jobs<J: Job, T: Send>(
    conn: &Connection,
    jobs: Vec<J>,
    run: impl Fn(J, &Connection) -> T + Sync,
) -> Result<Vec<T>, Error> {
    use std::sync::{Condvar, Mutex, PoisonError};

    // Frees the whole-load slot when a job ends, even by a panic, so that no
    // worker waits for ever.
    struct Release<'a, Q>(&'a Mutex<(Q, bool)>, &'a Condvar, bool);
    impl<Q> Drop for Release<'_, Q> {
        fn drop(&mut self) {
            if self.2 {
                self.0.lock().unwrap_or_else(PoisonError::into_inner).1 = false;
                self.1.notify_all();
            }
        }
    }

    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .clamp(1, MAX_WORKERS)
        .min(jobs.len());
    if workers <= 1 {
        return Ok(jobs.into_iter().map(|j| run(j, conn)).collect());
    }
    let mut queue: Vec<(usize, J)> = jobs.into_iter().enumerate().collect();
    // Taken from the end: the heaviest last, in the given order among equals.
    queue.sort_by_key(|(i, j)| (j.weight(), std::cmp::Reverse(*i)));
    let conns = (0..workers)
        .map(|_| load::clone(conn))
        .collect::<Result<Vec<_>, _>>()?;
    // The jobs left, and whether a whole load is running.
    let state = Mutex::new((queue, false));
    let freed = Condvar::new();
    let done = Mutex::new(Vec::new());
    std::thread::scope(|threads| {
        for conn in conns {
            let (state, freed, done, run) = (&state, &freed, &done, &run);
            threads.spawn(move || {
                loop {
                    let mut guard = state.lock().unwrap_or_else(PoisonError::into_inner);
                    let (i, job) = loop {
                        let (queue, loading) = &mut *guard;
                        if queue.is_empty() {
                            return;
                        }
                        // The whole loads one after the other from the start, the
                        // streamed jobs beside them: the longest first of each.
                        let at = if *loading {
                            queue.iter().rposition(|(_, j)| !j.loads_whole())
                        } else {
                            queue
                                .iter()
                                .rposition(|(_, j)| j.loads_whole())
                                .or(queue.len().checked_sub(1))
                        };
                        if let Some(at) = at {
                            let next = queue.remove(at);
                            *loading |= next.1.loads_whole();
                            break next;
                        }
                        guard = freed.wait(guard).unwrap_or_else(PoisonError::into_inner);
                    };
                    drop(guard);
                    let _release = Release(state, freed, job.loads_whole());
                    let out = run(job, &conn);
                    done.lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push((i, out));
                }
            });
        }
    });
    let mut done = done.into_inner().unwrap_or_else(PoisonError::into_inner);
    done.sort_by_key(|(i, _)| *i);
    Ok(done.into_iter().map(|(_, out)| out).collect())
}

/// `kind` is one of `kinds` (false for none): the event kinds a pass reads.
pub(crate) fn kind_in<'a>(kinds: impl IntoIterator<Item = &'a str>) -> Expr {
    kinds
        .into_iter()
        .map(|k| col("kind").eq(lit(k)))
        .reduce(Expr::or)
        .unwrap_or_else(|| lit(false))
}

/// The order every sequential pass reads events in.
pub(crate) trait SessionOrder {
    /// By session, then (ts, seq); equal keys keep their order.
    fn in_session_order(self) -> Self;
}

impl SessionOrder for LazyFrame {
    fn in_session_order(self) -> Self {
        self.sort_by_exprs(
            [col("session_id"), col("ts"), col("seq")],
            SortMultipleOptions::default().with_maintain_order(true),
        )
    }
}

/// The median of `values` rounded to a whole ms (the mean of the middle two for an
/// even count), as Polars' `median` gives it; `None` for no values.
pub(crate) fn median_ms(values: &mut [i64]) -> Option<i64> {
    let n = values.len();
    if n == 0 {
        return None;
    }
    let (_, &mut upper, _) = values.select_nth_unstable(n / 2);
    if n % 2 == 1 {
        return Some(upper);
    }
    let lower = *values[..n / 2].iter().max().expect("n >= 2");
    Some(f64::midpoint(lower as f64, upper as f64).round() as i64)
}

/// A hash map for the streamed passes' hot loops, keyed by numbers from [`Names`]
/// and session keys: a fast fixed hash instead of the standard keyed one (the keys
/// are ours, not a visitor's choice of collisions: a name is numbered before it is
/// a key).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;
/// The set of [`FastMap`].
pub(crate) type FastSet<K> = std::collections::HashSet<K, foldhash::fast::FixedState>;

/// Strings seen in a streamed pass, each kept once and known by its number, so a
/// pass compares and hashes integers.
#[derive(Debug, Default)]
pub(crate) struct Names {
    strings: Vec<Box<str>>,
    /// Keyed by visitors' strings, so with a seeded hash.
    ids: HashMap<Box<str>, u32, foldhash::fast::RandomState>,
    /// The last name asked for: rows of a session repeat their page.
    last: Option<u32>,
}

impl Names {
    /// The number of `name`, given on first sight.
    pub(crate) fn id(&mut self, name: &str) -> u32 {
        if let Some(last) = self.last
            && *self.strings[last as usize] == *name
        {
            return last;
        }
        let id = if let Some(&id) = self.ids.get(name) {
            id
        } else {
            let id = u32::try_from(self.strings.len()).expect("fewer than 2^32 names");
            self.strings.push(name.into());
            self.ids.insert(name.into(), id);
            id
        };
        self.last = Some(id);
        id
    }

    /// The name numbered `id`.
    pub(crate) fn name(&self, id: u32) -> &str {
        &self.strings[id as usize]
    }

    pub(crate) fn len(&self) -> usize {
        self.strings.len()
    }
}

/// `numerator / denominator`, or `None` when the denominator is 0.
pub(crate) fn ratio(numerator: u64, denominator: u64) -> Option<f64> {
    (denominator > 0).then(|| numerator as f64 / denominator as f64)
}

/// The most frequent text recorded with the events of `kinds` of each (page,
/// selector) (the least text on a tie), counted by the store: what a person sees on
/// an element, for the reports. Clicks carry the text (or accessible name) of what
/// was clicked, `link_view` rows that of the link.
pub(crate) fn labels(
    conn: &Connection,
    scope: &ResolvedScope,
    kinds: &[&str],
) -> Result<LabelMap, Error> {
    labels_of(conn, scope, kinds, "selector")
}

/// [`labels`] keyed by (page, [`link_key`]): links with one selector and
/// different targets (two variants of an ad in one slot) keep their own texts.
pub(crate) fn link_labels(
    conn: &Connection,
    scope: &ResolvedScope,
    kinds: &[&str],
) -> Result<LabelMap, Error> {
    labels_of(
        conn,
        scope,
        kinds,
        "selector || chr(1) || coalesce(href, '')",
    )
}

/// The key of a link's label: its selector and href.
pub(crate) fn link_key(selector: &str, href: Option<&str>) -> String {
    format!("{selector}\u{1}{}", href.unwrap_or_default())
}

fn labels_of(
    conn: &Connection,
    scope: &ResolvedScope,
    kinds: &[&str],
    key: &str,
) -> Result<LabelMap, Error> {
    let (filter, params) = load::scope_filter(scope);
    let mut stmt = conn.prepare(&format!(
        "SELECT path, {key}, text, count(*) FROM events
         WHERE {filter} AND {kinds} AND path IS NOT NULL AND selector IS NOT NULL
           AND text IS NOT NULL
         GROUP BY ALL",
        kinds = crate::matcher::kind_sql(kinds),
    ))?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params), |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let counts = rows
        .iter()
        .map(|(p, s, t, n)| ((p.as_str(), s.as_str(), t.as_str()), n.unsigned_abs()))
        .collect();
    Ok(best_labels(counts))
}

/// The labels of counted (page, selector, text) triples: per (page, selector)
/// the most frequent text, the first in order on a tie. The one rule of
/// [`labels`] and of the audits that count texts in their own pass.
pub(crate) fn best_labels(counts: HashMap<(&str, &str, &str), u64>) -> LabelMap {
    let mut best: HashMap<(&str, &str), (u64, &str)> = HashMap::new();
    for ((p, s, t), n) in counts {
        let e = best.entry((p, s)).or_insert((n, t));
        if n > e.0 || (n == e.0 && t < e.1) {
            *e = (n, t);
        }
    }
    best.into_iter()
        .map(|((p, s), (_, t))| ((p.to_owned(), s.to_owned()), t.to_owned()))
        .collect()
}

/// The sessions that viewed a page served with an HTTP error status (>= 400), as an
/// SQL condition: the page views that the error-page passes need are theirs only
/// (few sessions of the many). Not scoped: [`error_page_sessions`] keeps the
/// sessions whose error page is in scope.
///
/// The few keys are materialized first: a plain `IN (SELECT …)` lets DuckDB guess
/// the many events to be the smaller side and build its hash table from them
/// (10M events: 0.5-0.8 s for the load, against 0.1 s this way).
pub(crate) const IN_ERROR_PAGE_SESSIONS: &str = "session_key IN (WITH hit AS MATERIALIZED (\
     SELECT session_key FROM events WHERE kind = 'pageview' AND status >= 400) FROM hit)";

/// The events of the sessions that viewed a page served with an HTTP error status
/// (>= 400): all that the error-page passes need (few sessions of the many).
pub(crate) fn error_page_sessions(events: &DataFrame) -> LazyFrame {
    let hit = events
        .clone()
        .lazy()
        .filter(
            col("kind")
                .eq(lit("pageview"))
                .and(col("status").gt_eq(lit(400))),
        )
        .select([col("session_id")])
        .unique(None, polars::prelude::UniqueKeepStrategy::Any);
    events.clone().lazy().join(
        hit,
        [col("session_id")],
        [col("session_id")],
        polars::prelude::JoinArgs::new(polars::prelude::JoinType::Semi),
    )
}

/// (page, selector) → label.
pub(crate) type LabelMap = HashMap<(String, String), String>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Db, ev};

    /// Each audit's parameters are stated once: the CLI's flags and the JSON API's
    /// fields are the same, with the same defaults.
    #[test]
    fn the_cli_and_the_json_api_have_the_same_params_and_defaults() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(subcommand)]
            request: AuditRequest,
        }
        use clap::Parser as _;
        let cli = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("analyzer").chain(args.iter().copied()))
                .unwrap()
                .request
        };
        let json = |v: serde_json::Value| serde_json::from_value::<AuditRequest>(v).unwrap();
        for audit in [
            "funnel",
            "screens",
            "forms",
            "frustration",
            "errors",
            "links",
            "ads",
            "report",
        ] {
            assert_eq!(
                cli(&[audit]),
                json(serde_json::json!({ "audit": audit })),
                "{audit}"
            );
        }
        assert_eq!(
            cli(&["links", "--min-impressions", "5", "--max-ctr", "0.2"]),
            json(serde_json::json!({"audit": "links", "min_impressions": 5, "max_ctr": 0.2}))
        );
        assert_eq!(
            cli(&[
                "funnel",
                "--step",
                "page:/",
                "--step",
                "page:/cart",
                "--window",
                "1h"
            ]),
            json(
                serde_json::json!({"audit": "funnel", "steps": ["page:/", "page:/cart"], "window": "1h"})
            )
        );
    }

    #[test]
    fn requests_parse_with_defaults_and_reject_unknown_fields() {
        let req: AuditRequest =
            serde_json::from_str(r#"{"audit":"funnel","steps":["page:/cart"]}"#).unwrap();
        assert_eq!(
            req,
            AuditRequest::Funnel {
                scope: Scope::default(),
                steps: vec!["page:/cart".into()],
                name: None,
                window: None,
            }
        );
        let req: AuditRequest =
            serde_json::from_str(r#"{"audit":"screens","scope":{"site":"shop","since":"7d"}}"#)
                .unwrap();
        assert_eq!(req.audit(), "screens");
        assert_eq!(req.scope().since.as_deref(), Some("7d"));
        assert!(matches!(req, AuditRequest::Screens { top_next: 3, .. }));

        for bad in [
            r#"{"audit":"funnel","stepz":["page:/cart"]}"#,
            r#"{"audit":"screens","scope":{"sight":"x"}}"#,
            r#"{"audit":"heatmap"}"#,
            r#"{"steps":[]}"#,
        ] {
            assert!(serde_json::from_str::<AuditRequest>(bad).is_err(), "{bad}");
        }
        let round = serde_json::to_string(&req).unwrap();
        assert_eq!(serde_json::from_str::<AuditRequest>(&round).unwrap(), req);
    }

    #[test]
    fn run_resolves_relative_scopes_and_validates_params() {
        let db = Db::new();
        db.insert(&[
            ev("a", "s1", 1_000, 1, "pageview").path("/"),
            ev("b", "s2", 7_200_000, 1, "pageview").path("/"),
        ]);
        let conn = db.conn();
        let req = AuditRequest::Screens {
            scope: Scope {
                since: Some("1h".into()),
                ..Scope::default()
            },
            top_next: 3,
        };
        let report = run_at(&conn, &req, 7_300_000).unwrap();
        assert_eq!(report.sessions(), 1);
        assert_eq!(report.scope().since_ms, Some(7_300_000 - 3_600_000));
        assert_eq!(report.audit(), "screens");

        let bad = AuditRequest::Funnel {
            scope: Scope::default(),
            steps: vec!["page:/".into(), "nope".into()],
            name: None,
            window: None,
        };
        let err = run_at(&conn, &bad, 0).unwrap_err();
        assert!(err.is_bad_request());
        assert_eq!(err.code(), "bad_step");
    }

    /// Jobs that load their rows whole never run two at once; every job runs once
    /// and the results come back in the jobs' order, whatever the workers.
    #[test]
    fn jobs_run_side_by_side_but_one_whole_load_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct J(usize, bool, u8);
        impl Job for J {
            fn weight(&self) -> u8 {
                self.2
            }
            fn loads_whole(&self) -> bool {
                self.1
            }
        }
        let conn = Connection::open_in_memory().unwrap();
        let (running, whole, most, most_whole) = (
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
            AtomicUsize::new(0),
        );
        let jobs: Vec<J> = (0..12).map(|i| J(i, i % 3 == 0, (i % 4) as u8)).collect();
        let out = run_jobs(&conn, jobs, |j, conn| {
            let n = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(n, Ordering::SeqCst);
            if j.1 {
                let w = whole.fetch_add(1, Ordering::SeqCst) + 1;
                most_whole.fetch_max(w, Ordering::SeqCst);
            }
            // A real query on the worker's own connection, and time to overlap.
            let one: i64 = conn.query_row("SELECT 1", [], |r| r.get(0)).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(30));
            if j.1 {
                whole.fetch_sub(1, Ordering::SeqCst);
            }
            running.fetch_sub(1, Ordering::SeqCst);
            j.0 as i64 * one
        })
        .unwrap();
        assert_eq!(out, (0..12).collect::<Vec<i64>>());
        assert_eq!(most_whole.load(Ordering::SeqCst), 1);
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        if cores > 1 {
            assert!(most.load(Ordering::SeqCst) > 1, "jobs ran one at a time");
        }
    }

    #[test]
    fn bot_sessions_count_only_when_the_scope_includes_bots() {
        let db = Db::new();
        let visit = |session: &str, device: &str| {
            [
                ev(&format!("{session}1"), session, 1_000, 1, "pageview")
                    .path("/cart")
                    .device(device),
                ev(&format!("{session}2"), session, 2_000, 2, "pageview")
                    .path("/checkout")
                    .device(device),
            ]
        };
        let mut events = visit("human", "desktop").to_vec();
        events.extend(visit("crawler", "bot"));
        // A human on a phone who only saw the cart.
        events.push(
            ev("m1", "phone", 1_500, 1, "pageview")
                .path("/cart")
                .device("mobile"),
        );
        db.insert(&events);
        let conn = db.conn();
        let scope = |include_bots| Scope {
            include_bots,
            ..Scope::default()
        };
        let funnel = |include_bots| {
            let req = AuditRequest::Funnel {
                scope: scope(include_bots),
                steps: vec!["page:/cart".into(), "page:/checkout".into()],
                name: None,
                window: None,
            };
            let Report::Funnel(r) = run_at(&conn, &req, 0).unwrap() else {
                panic!("not a funnel")
            };
            assert_eq!(r.scope.include_bots, include_bots);
            (
                r.sessions,
                r.steps.iter().map(|s| s.entered).collect::<Vec<_>>(),
            )
        };
        assert_eq!(funnel(false), (2, vec![2, 1]));
        assert_eq!(funnel(true), (3, vec![3, 2]));

        let screens = |include_bots| {
            let req = AuditRequest::Screens {
                scope: scope(include_bots),
                top_next: 3,
            };
            let Report::Screens(r) = run_at(&conn, &req, 0).unwrap() else {
                panic!("not screens")
            };
            let checkout = r.screens.iter().find(|s| s.screen == "/checkout").unwrap();
            (r.sessions, checkout.sessions)
        };
        assert_eq!(screens(false), (2, 1));
        assert_eq!(screens(true), (3, 2));

        // The full report loads once for all sections, with the same rule, and says so.
        let report = |include_bots| {
            let req = AuditRequest::Report {
                scope: scope(include_bots),
                steps: vec!["page:/cart".into()],
                window: None,
                goal: None,
            };
            run_at(&conn, &req, 0).unwrap()
        };
        let (without, with) = (report(false), report(true));
        assert_eq!((without.sessions(), with.sessions()), (2, 3));
        assert!(!without.scope().include_bots && with.scope().include_bots);
        let Report::Report(full) = &with else {
            panic!("not a report")
        };
        assert!(
            full.sections
                .iter()
                .all(|s| s.scope().include_bots && s.sessions() == 3)
        );
        let json = serde_json::to_value(&without).unwrap();
        assert_eq!(json["scope"]["include_bots"], false);
        assert_eq!(json["sections"][0]["scope"]["include_bots"], false);
    }
}
