//! The `ads` audit: do some ads, variants and inbound campaigns perform better
//! against a goal?
//!
//! Params: the goal (a step spec, [`crate::matcher`]; by default the last step of the
//! site's main saved funnel, else `event:purchase`), the control variant, and the
//! fewest exposed sessions per variant before a verdict.
//! The events in scope come from [`crate::load::events`] with [`Ads::COLUMNS`].
//!
//! **On-site placements** (`data-ct-ad="CAMPAIGN:VARIANT"`, split at the first `:`).
//! Polars counts per ad the viewable impressions (`ad_view` rows: the tracker sends
//! one per page view once the ad was half in view for a second, so shorter glances
//! never appear) and the clicks (`click` rows whose `ad` is the ad). A click proves
//! the ad was seen, as in the links audit: per session, an ad clicked has at least
//! one impression, and counts at most one click per impression, so CTR never
//! passes 100 % (a visitor who clicks a banner the moment it appears, before the
//! second in view, clicked what they saw). A sequential
//! pass in Rust over each session's page views, ad views, ad clicks and goal
//! candidates in (ts, seq) order finds the sessions exposed to each ad (by a view
//! or by a click; a goal reached by the very click that exposes a session, a
//! click on the ad that is itself the goal, does not convert for it) and whether
//! they reached the
//! goal *after* their first exposure (a goal reached before the ad was seen does not
//! count for it), and the sessions exposed to more than one variant of a campaign.
//!
//! **Inbound campaigns**: the same pass reads the URL of the session's first page
//! view: `utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, and the click ids
//! `gclid` (Google Ads), `fbclid` (Meta), `msclkid` (Microsoft Ads). Polars groups
//! the sessions by them and counts those that reached the goal.
//!
//! **Comparing variants** within a campaign: the control is `--control` when the
//! campaign has it, else its first variant by name. Every other variant is compared
//! with the control by a pooled two-proportion z-test, two-sided
//! ([`crate::stats::two_proportion_z`]), on conversion (converted / exposed
//! sessions) and on CTR (clicks / impressions). The exposed sessions per variant are
//! checked against the intended split (`--split A:90,B:10`, else even; chi-square
//! goodness of fit): p < 0.001 flags a sample ratio mismatch, which usually means the
//! rotation or the tracking is broken and no comparison can be trusted. With several variants against one control, the
//! conversion p-values are adjusted by Holm's method ([`crate::stats::holm`]) so the
//! chance of any false "better" stays at alpha. Each variant gets a plain-words
//! `verdict` from the adjusted p.
//! Rates carry 95 % Wilson score intervals.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use duckdb::Connection;
use duckdb::arrow::array::AsArray as _;
use duckdb::arrow::datatypes::{UInt8Type, UInt64Type};
use duckdb::arrow::record_batch::RecordBatch;
use duckdb::types::Value;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Audit, Context, Names, SessionOrder as _, kind_in};

mod campaigns;
mod inbound;

use campaigns::{format_p, split_ad};

use crate::Error;
use crate::load::{Col, RowIn, SessionCursor, primitive, str_at};
use crate::matcher::{EventRef, SEQUENCE_COLUMNS, StepMatcher, concat};
use crate::scope::ResolvedScope;
use crate::stats::ZTest;
use crate::table::{Cell, Table};
use inbound::Inbound;
use inbound::inbound_stats;
pub(crate) use inbound::label_sources;
#[cfg(test)]
pub(crate) use inbound::sources;
pub use inbound::{DIRECT, InboundStats, NO_LANDING, NOT_SET};

/// The goal when none is given.
pub const DEFAULT_GOAL: &str = "event:purchase";

/// Fewest exposed sessions in each arm before a verdict, when not told.
pub const DEFAULT_MIN_SESSIONS: u64 = 100;

/// Fewest conversions in each arm before a verdict.
pub const MIN_CONVERSIONS: u64 = 5;

/// Significance level of the variant comparisons.
pub const ALPHA: f64 = 0.05;

/// A sample ratio mismatch is flagged below this p-value.
pub const SRM_ALPHA: f64 = 0.001;

/// How variants are compared, as the report names it.
pub const METHOD: &str = "two-proportion z-test (pooled), two-sided";

/// How rates are bracketed, as the report names it.
pub const INTERVAL: &str = "Wilson score interval, 95%";

/// The variant of an ad marked without one (`data-ct-ad="winter"`).
pub const NO_VARIANT: &str = "(none)";

/// Added to every verdict of a campaign with a sample ratio mismatch.
pub const SRM_WARNING: &str = "sample ratio mismatch: check the ad rotation before trusting this";

/// Validated ads params.
#[derive(Debug, Clone)]
pub struct Ads {
    goal: StepMatcher,
    control: Option<String>,
    min_sessions: u64,
    /// Intended weight per variant name (`--split A:90,B:10`); empty = even.
    split: BTreeMap<String, f64>,
}

/// The ads report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdsReport {
    pub scope: ResolvedScope,
    /// Sessions with at least one event in scope.
    pub sessions: u64,
    /// The goal's step spec.
    pub goal: String,
    /// How variants are compared: [`METHOD`].
    pub method: String,
    /// How rates are bracketed: [`INTERVAL`].
    pub interval: String,
    /// Significance level of the comparisons.
    pub alpha: f64,
    /// Fewest exposed sessions per arm before a verdict.
    pub min_sessions: u64,
    /// On-site placements, by campaign name.
    pub campaigns: Vec<AdCampaign>,
    /// Sessions by where they came from, by `sessions` (descending).
    pub inbound: Vec<InboundStats>,
}

/// One on-site campaign and its variants.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdCampaign {
    pub campaign: String,
    /// The variant the others are compared with.
    pub control: String,
    /// By variant name.
    pub variants: Vec<AdVariant>,
    /// Sessions exposed to more than one variant of this campaign (they count in
    /// each, which blurs the comparison).
    pub mixed_sessions: u64,
    /// Exposed sessions against the expected split; null with a single variant.
    pub srm: Option<Srm>,
    /// The expected share of each variant, in the order of `variants`: from
    /// `--split` when it names every variant of the campaign, else equal.
    #[serde(default)]
    pub expected_split: Vec<f64>,
    /// Variants of `--split` never shown in this campaign (counted with 0 exposures
    /// in the check).
    #[serde(default)]
    pub missing_variants: Vec<String>,
    /// Every variant but the control against the control.
    pub comparisons: Vec<Comparison>,
}

/// One variant of an on-site campaign.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdVariant {
    pub variant: String,
    /// Viewable impressions (`ad_view` rows; per session at least one when the
    /// session clicked the ad).
    pub impressions: u64,
    /// Sessions with at least one viewable impression (or a click on the ad).
    pub sessions: u64,
    /// Clicks inside the ad, per session at most one per impression.
    pub clicks: u64,
    /// `clicks / impressions`, with its 95 % Wilson interval.
    pub ctr: Option<f64>,
    pub ctr_low: Option<f64>,
    pub ctr_high: Option<f64>,
    /// Exposed sessions that reached the goal after their first exposure.
    pub conversions: u64,
    /// `conversions / sessions`, with its 95 % Wilson interval.
    pub conversion_rate: Option<f64>,
    pub conversion_low: Option<f64>,
    pub conversion_high: Option<f64>,
}

/// The sample-ratio-mismatch check of a campaign.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Srm {
    /// Chi-square statistic of the exposed sessions against the expected split.
    pub chi_square: f64,
    pub p_value: f64,
    /// `p_value < 0.001`.
    pub flagged: bool,
}

/// One variant against the control.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub variant: String,
    pub control: String,
    /// On conversion rate; null when an arm has no exposed sessions.
    pub conversion: Option<ZTest>,
    /// The conversion p-value adjusted by Holm's method over the campaign's
    /// comparisons (several variants against one control); the verdict uses it. Equal
    /// to `conversion.p_value` when there is one comparison; null with `conversion`.
    #[serde(default)]
    pub conversion_p_holm: Option<f64>,
    /// On CTR; null when an arm has no impressions.
    pub ctr: Option<ZTest>,
    /// In plain words, e.g. `B converts better than A (p = 0.005)`.
    pub verdict: String,
}

impl Ads {
    /// Parses the goal; `control` names the control variant of every campaign that
    /// has one.
    pub fn new(goal: &str, control: Option<&str>, min_sessions: u64) -> Result<Self, Error> {
        let goal = StepMatcher::parse(goal)?;
        let control = match control.map(str::trim) {
            Some("") => {
                return Err(Error::BadParam {
                    name: "control",
                    reason: "an empty variant name".to_owned(),
                });
            }
            other => other.map(str::to_owned),
        };
        Ok(Ads {
            goal,
            control,
            min_sessions,
            split: BTreeMap::new(),
        })
    }

    /// The intended split of exposures, `VARIANT:WEIGHT,...` (`A:90,B:10`, any scale),
    /// for the sample-ratio-mismatch check: a campaign whose variants all have a
    /// weight is checked against it, any other against an even split.
    pub fn with_split(mut self, spec: Option<&str>) -> Result<Self, Error> {
        let Some(spec) = spec.map(str::trim).filter(|s| !s.is_empty()) else {
            return Ok(self);
        };
        for part in spec.split(',') {
            let bad = || Error::BadParam {
                name: "split",
                reason: format!(
                    "`{}`: give VARIANT:WEIGHT pairs with positive weights, e.g. A:90,B:10",
                    part.trim()
                ),
            };
            let (variant, weight) = part.trim().rsplit_once(':').ok_or_else(bad)?;
            let weight: f64 = weight.trim().parse().map_err(|_| bad())?;
            if variant.trim().is_empty() || !(weight.is_finite() && weight > 0.0) {
                return Err(bad());
            }
            if self
                .split
                .insert(variant.trim().to_owned(), weight)
                .is_some()
            {
                return Err(Error::BadParam {
                    name: "split",
                    reason: format!("variant `{}` is given twice", variant.trim()),
                });
            }
        }
        Ok(self)
    }
}

/// Per-ad counts.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    impressions: u64,
    sessions: u64,
    clicks: u64,
    conversions: u64,
}

/// What the per-session pass found.
#[derive(Default)]
struct Pass<'a> {
    /// Per ad: the sessions exposed to it, and of those the ones that reached the
    /// goal after their first exposure.
    exposed: HashMap<&'a str, SessionsConverted>,
    /// Per campaign, sessions exposed to more than one of its variants.
    mixed: HashMap<&'a str, u64>,
    /// Per inbound source: its sessions, and of those the ones that reached the goal
    /// (counted as they end, so memory holds sources, not sessions).
    inbound: HashMap<Inbound, SessionsConverted>,
}

/// Sessions, and of those the ones that converted.
#[derive(Debug, Default, Clone, Copy)]
struct SessionsConverted {
    sessions: u64,
    converted: u64,
}

impl SessionsConverted {
    fn add(&mut self, converted: bool) {
        self.sessions += 1;
        self.converted += u64::from(converted);
    }
}

impl Pass<'_> {
    /// Sessions counted by inbound source: every session that ended in the pass.
    fn sessions(&self) -> u64 {
        self.inbound.values().map(|c| c.sessions).sum()
    }
}

/// One session's state in the pass.
#[derive(Default)]
struct Session<'a> {
    /// Whether the session's first page view was seen, and its URL.
    landed: bool,
    landing_url: Option<&'a str>,
    converted: bool,
    /// Ads seen so far, and whether the goal came after the first sight.
    exposed: Vec<(&'a str, bool)>,
}

impl<'a> Session<'a> {
    fn finish(self, out: &mut Pass<'a>) {
        let mut variants: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for (ad, converted) in self.exposed {
            out.exposed.entry(ad).or_default().add(converted);
            let (campaign, variant) = split_ad(ad);
            variants.entry(campaign).or_default().insert(variant);
        }
        for (campaign, seen) in variants {
            if seen.len() > 1 {
                *out.mixed.entry(campaign).or_default() += 1;
            }
        }
        let inbound = if self.landed {
            Inbound::from_url(self.landing_url)
        } else {
            Inbound::source(NO_LANDING)
        };
        out.inbound.entry(inbound).or_default().add(self.converted);
    }
}

impl Audit for Ads {
    type Report = AdsReport;

    /// A matcher pass's columns, plus the ad and the landing URL (campaigns).
    const COLUMNS: &'static [Col] = &concat::<10, 2, 12>(SEQUENCE_COLUMNS, [Col::Ad, Col::Url]);

    fn kinds(&self) -> Option<Vec<&'static str>> {
        let mut kinds = vec!["pageview", "ad_view", "click"];
        for k in self.goal.kinds() {
            if !kinds.contains(k) {
                kinds.push(k);
            }
        }
        Some(kinds)
    }

    fn compute(&self, events: DataFrame, ctx: &Context<'_>) -> Result<AdsReport, Error> {
        let (sessions, scope) = (ctx.sessions, ctx.scope.clone());
        // Polars: impressions and clicks per ad, per session first: a click proves
        // the ad was seen, and counts at most once per time it was seen.
        let count = |kind: &str| col("kind").eq(lit(kind)).cast(DataType::UInt64).sum();
        let per_ad = events
            .clone()
            .lazy()
            .filter(
                col("ad").is_not_null().and(
                    col("kind")
                        .eq(lit("ad_view"))
                        .or(col("kind").eq(lit("click"))),
                ),
            )
            .group_by([col("ad"), col("session_id")])
            .agg([count("ad_view").alias("v"), count("click").alias("c")])
            .with_column(
                when(col("v").eq(lit(0u64)).and(col("c").gt(lit(0u64))))
                    .then(lit(1u64))
                    .otherwise(col("v"))
                    .alias("imp"),
            )
            .with_column(
                when(col("c").gt(col("imp")))
                    .then(col("imp"))
                    .otherwise(col("c"))
                    .alias("clk"),
            )
            .group_by([col("ad")])
            .agg([
                col("imp").sum().cast(DataType::UInt64),
                col("clk").sum().cast(DataType::UInt64),
            ])
            .collect()?;
        let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
        for (ad, n) in ad_counts(&per_ad, "imp")? {
            counts.entry(ad).or_default().impressions = n;
        }
        for (ad, n) in ad_counts(&per_ad, "clk")? {
            counts.entry(ad).or_default().clicks = n;
        }

        // Polars: the events the pass reads, in (session, ts, seq) order.
        let kinds: BTreeSet<&str> = ["pageview", "ad_view"]
            .into_iter()
            .chain(self.goal.kinds().iter().copied())
            .collect();
        let sorted = events
            .lazy()
            .filter(kind_in(kinds).or(col("kind").eq(lit("click")).and(col("ad").is_not_null())))
            .in_session_order()
            .collect()?;

        // Rust: one sequential pass per session.
        let pass = self.pass(&sorted)?;
        self.report(scope, sessions, counts, pass)
    }
}

impl Ads {
    /// The report from the per-ad counts and the per-session pass (both paths end
    /// here).
    fn report(
        &self,
        scope: ResolvedScope,
        sessions: u64,
        mut counts: BTreeMap<String, Counts>,
        mut pass: Pass<'_>,
    ) -> Result<AdsReport, Error> {
        let unseen = sessions.saturating_sub(pass.sessions());
        if unseen > 0 {
            pass.inbound
                .entry(Inbound::source(NO_LANDING))
                .or_default()
                .sessions += unseen;
        }

        // Exposed sessions and conversions per ad.
        for (ad, n) in &pass.exposed {
            let c = counts.entry((*ad).to_owned()).or_default();
            c.sessions = n.sessions;
            c.conversions = n.converted;
        }

        let campaigns = self.campaigns(&counts, &pass.mixed);
        let inbound = inbound_stats(&pass)?;
        Ok(AdsReport {
            scope,
            sessions,
            goal: self.goal.spec().to_owned(),
            method: METHOD.to_owned(),
            interval: INTERVAL.to_owned(),
            alpha: ALPHA,
            min_sessions: self.min_sessions,
            campaigns,
            inbound,
        })
    }

    /// The report straight from the store: what `analyzer ads`, `/api/audit` and
    /// the report run. DuckDB counts impressions and clicks per ad, and sends page
    /// views, ad views, ad clicks and goal candidates session after session in (ts, seq) order
    /// with the goal tested in SQL ([`StepMatcher::sql_with_kind`]); [`Streamed`]
    /// walks them with one session in memory.
    pub fn stream(&self, conn: &Connection, scope: ResolvedScope) -> Result<AdsReport, Error> {
        let (sessions, counts, streamed) = store::transaction(conn, || {
            let sessions = crate::load::sessions(conn, &scope)?;
            let (filter, scope_params) = crate::load::scope_filter(&scope);
            let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
            // Per session first: a click proves the ad was seen, and counts at
            // most once per time it was seen.
            let mut stmt = conn.prepare(&format!(
                "SELECT ad, sum(imp)::UBIGINT, sum(least(c, imp))::UBIGINT FROM (
                     SELECT ad, c, greatest(v, least(c, 1)) AS imp FROM (
                         SELECT ad, count(*) FILTER (WHERE kind = 'ad_view') AS v,
                                count(*) FILTER (WHERE kind = 'click') AS c
                         FROM events
                         WHERE {filter} AND kind IN ('ad_view', 'click') AND ad IS NOT NULL
                         GROUP BY ad, session_key))
                 GROUP BY ad"
            ))?;
            let rows = stmt.query_map(duckdb::params_from_iter(scope_params.clone()), |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, u64>(1)?,
                    r.get::<_, u64>(2)?,
                ))
            })?;
            for row in rows {
                let (ad, impressions, clicks) = row?;
                let c = counts.entry(ad).or_default();
                c.impressions = impressions;
                c.clicks = clicks;
            }

            let (goal, goal_params) = self.goal.sql_with_kind();
            let recheck = !self.goal.exact_in_sql();
            let kinds: BTreeSet<&str> = ["pageview", "ad_view"]
                .into_iter()
                .chain(self.goal.kinds().iter().copied())
                .collect();
            let kinds: Vec<&str> = kinds.into_iter().collect();
            let query = |from: &str, order: &str| {
                format!(
                    "SELECT session_key,
                        CASE WHEN kind = 'pageview' THEN {VIEW}
                             WHEN kind IN ('ad_view', 'click') AND ad IS NOT NULL THEN {AD_VIEW}
                             ELSE {OTHER} END::UTINYINT,
                        coalesce({goal}, false),
                        CASE WHEN kind IN ('ad_view', 'click') THEN ad END,
                        CASE WHEN kind = 'pageview' AND contains(url, '?') THEN url END
                        {selector}
                     FROM {from}
                     WHERE {filter} AND ({kinds} OR (kind = 'click' AND ad IS NOT NULL)) {order}",
                    selector = if recheck { ", selector, ancestry" } else { "" },
                    kinds = crate::matcher::kind_sql(&kinds),
                )
            };
            let params: Vec<Value> = goal_params
                .into_iter()
                .map(Value::Text)
                .chain(scope_params)
                .collect();
            let mut streamed = Streamed::default();
            crate::load::stream_sessions(conn, query, &params, |batch, skip| {
                streamed.batch(self, recheck, batch, skip)
            })?;
            streamed.end_session();
            Ok::<_, Error>((sessions, counts, streamed))
        })?;
        let (sessions, counts, mut streamed) = (sessions, counts, streamed);
        self.report(scope, sessions, counts, streamed.pass())
    }
}

/// The kinds [`Ads::stream`] reads, as the codes its query sends.
const VIEW: u8 = 0;
const AD_VIEW: u8 = 1;
const OTHER: u8 = 2;

/// The sequential pass of [`Ads::stream`], with the ads by their [`Names`] number.
#[derive(Default)]
struct Streamed {
    ads: Names,
    current: Option<u64>,
    cursor: SessionCursor,
    /// The session at hand: whether its first page view was seen, where it came
    /// from, whether it reached the goal, and the ads it saw (with whether the
    /// goal came after the first sight).
    landed: bool,
    landing: Option<Inbound>,
    converted: bool,
    exposed: Vec<(u32, bool)>,
    /// Per ad (its number): sessions exposed, and of those converted after.
    exposures: HashMap<u32, SessionsConverted>,
    /// Per campaign, sessions exposed to more than one of its variants.
    mixed: HashMap<String, u64>,
    /// Per inbound source: sessions, and of those converted.
    inbound: HashMap<Inbound, SessionsConverted>,
}

impl Streamed {
    fn batch(
        &mut self,
        ads: &Ads,
        recheck: bool,
        batch: &RecordBatch,
        skip: &HashSet<u64>,
    ) -> Result<(), Error> {
        let keys = primitive::<UInt64Type>(batch.column(0), "session_key")?;
        let kinds = primitive::<UInt8Type>(batch.column(1), "kind")?;
        let goal = batch.column(2).as_boolean();
        let (ad, url) = (batch.column(3), batch.column(4));
        let selector = recheck.then(|| (batch.column(5), batch.column(6)));
        for (i, &key) in keys.values().iter().enumerate() {
            match self.cursor.at(key, skip) {
                RowIn::Skipped => continue,
                RowIn::Next => {
                    self.end_session();
                    self.current = Some(key);
                }
                RowIn::Same => {}
            }
            let kind = kinds.value(i);
            let reached = goal.value(i)
                && selector.is_none_or(|(s, a)| {
                    ads.goal
                        .matches(&EventRef::click(str_at(s, i), str_at(a, i)))
                });
            if reached {
                self.converted = true;
                for exposure in &mut self.exposed {
                    exposure.1 = true;
                }
            }
            if kind == VIEW && !self.landed {
                self.landed = true;
                self.landing = Some(Inbound::from_url(str_at(url, i)));
            }
            if kind == AD_VIEW
                && let Some(ad) = str_at(ad, i)
            {
                let id = self.ads.id(ad);
                if !self.exposed.iter().any(|(seen, _)| *seen == id) {
                    self.exposed.push((id, false));
                }
            }
        }
        Ok(())
    }

    /// Counts the session at hand.
    fn end_session(&mut self) {
        if self.current.take().is_none() {
            return;
        }
        let mut variants: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
        for &(ad, converted) in &self.exposed {
            self.exposures.entry(ad).or_default().add(converted);
            let (campaign, variant) = split_ad(self.ads.name(ad));
            variants.entry(campaign).or_default().insert(variant);
        }
        for (campaign, seen) in variants {
            if seen.len() > 1 {
                *self.mixed.entry(campaign.to_owned()).or_default() += 1;
            }
        }
        let inbound = match self.landing.take() {
            Some(inbound) if self.landed => inbound,
            _ => Inbound::source(NO_LANDING),
        };
        self.inbound.entry(inbound).or_default().add(self.converted);
        self.landed = false;
        self.converted = false;
        self.exposed.clear();
    }

    /// What the pass found, as the framed pass gives it.
    fn pass(&mut self) -> Pass<'_> {
        let mut exposed: HashMap<&str, SessionsConverted> = HashMap::new();
        for (ad, n) in &self.exposures {
            let e = exposed.entry(self.ads.name(*ad)).or_default();
            e.sessions += n.sessions;
            e.converted += n.converted;
        }
        Pass {
            exposed,
            mixed: self.mixed.iter().map(|(c, &n)| (c.as_str(), n)).collect(),
            inbound: std::mem::take(&mut self.inbound),
        }
    }
}

/// `(ad, count)` pairs of a frame with an `ad` column and a `UInt64` count column.
fn ad_counts(frame: &DataFrame, count: &str) -> Result<Vec<(String, u64)>, Error> {
    let ads = frame.column("ad")?.str()?;
    let counts = frame.column(count)?.u64()?;
    Ok(ads
        .iter()
        .zip(counts.iter())
        .filter_map(|(ad, n)| Some((ad?.to_owned(), n.unwrap_or(0))))
        .collect())
}

impl Ads {
    /// Walks the sorted events session by session.
    fn pass<'a>(&self, sorted: &'a DataFrame) -> Result<Pass<'a>, Error> {
        let session = sorted.column("session_id")?.u64()?;
        let kind = sorted.column("kind")?.str()?;
        let path = sorted.column("path")?.str()?;
        let screen = sorted.column("screen")?.str()?;
        let selector = sorted.column("selector")?.str()?;
        let form = sorted.column("form")?.str()?;
        let name = sorted.column("name")?.str()?;
        let ad = sorted.column("ad")?.str()?;
        let url = sorted.column("url")?.str()?;
        let ancestry = sorted.column("ancestry")?.str()?;

        let mut out = Pass::default();
        let mut current: Option<u64> = None;
        let mut state = Session::default();
        let rows = session
            .iter()
            .zip(kind.iter())
            .zip(path.iter())
            .zip(screen.iter())
            .zip(selector.iter())
            .zip(form.iter())
            .zip(name.iter())
            .zip(ad.iter())
            .zip(url.iter())
            .zip(ancestry.iter());
        for (((((((((sid, kind), path), screen), selector), form), name), ad), url), ancestry) in
            rows
        {
            let (Some(sid), Some(kind)) = (sid, kind) else {
                continue;
            };
            if current != Some(sid) {
                if current.is_some() {
                    std::mem::take(&mut state).finish(&mut out);
                }
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
            if self.goal.matches(&ev) {
                state.converted = true;
                for exposure in &mut state.exposed {
                    exposure.1 = true;
                }
            }
            if kind == "pageview" && !state.landed {
                state.landed = true;
                state.landing_url = url;
            }
            if (kind == "ad_view" || kind == "click")
                && let Some(ad) = ad
                && !state.exposed.iter().any(|(seen, _)| *seen == ad)
            {
                state.exposed.push((ad, false));
            }
        }
        if current.is_some() {
            state.finish(&mut out);
        }
        Ok(out)
    }
}

impl AdsReport {
    /// The report as rows for the table, CSV and HTML renderers: one `ad` row per
    /// campaign variant (`p_value` and `verdict` against the control; the control's
    /// verdict says `control`, and notes a sample ratio mismatch or mixed sessions),
    /// then one `inbound` row per source (`name` = source / medium / campaign /
    /// content). Numbers that do not apply are empty.
    pub fn table(&self) -> Table {
        let none = || Cell::Ratio(None);
        let mut rows = Vec::new();
        for c in &self.campaigns {
            for v in &c.variants {
                let comparison = c.comparisons.iter().find(|x| x.variant == v.variant);
                let verdict = if let Some(x) = comparison {
                    x.verdict.clone()
                } else {
                    let mut notes = vec!["control".to_owned()];
                    if c.mixed_sessions > 0 {
                        notes.push(format!(
                            "{} sessions saw several variants",
                            c.mixed_sessions
                        ));
                    }
                    if let Some(srm) = c.srm.filter(|s| s.flagged) {
                        notes.push(format!("sample ratio mismatch ({})", format_p(srm.p_value)));
                    }
                    notes.join("; ")
                };
                rows.push(vec![
                    Cell::Text("ad".to_owned()),
                    Cell::Text(c.campaign.clone()),
                    Cell::Text(v.variant.clone()),
                    Cell::Count(v.impressions),
                    Cell::Count(v.sessions),
                    Cell::Count(v.clicks),
                    Cell::Ratio(v.ctr),
                    Cell::Ratio(v.ctr_low),
                    Cell::Ratio(v.ctr_high),
                    Cell::Count(v.conversions),
                    Cell::Ratio(v.conversion_rate),
                    Cell::Ratio(v.conversion_low),
                    Cell::Ratio(v.conversion_high),
                    Cell::Float(comparison.and_then(|x| x.conversion).map(|t| t.p_value)),
                    Cell::Text(verdict),
                ]);
            }
        }
        for s in &self.inbound {
            rows.push(vec![
                Cell::Text("inbound".to_owned()),
                Cell::Text(s.label()),
                Cell::Text(String::new()),
                none(),
                Cell::Count(s.sessions),
                none(),
                none(),
                none(),
                none(),
                Cell::Count(s.conversions),
                Cell::Ratio(s.conversion_rate),
                Cell::Ratio(s.conversion_low),
                Cell::Ratio(s.conversion_high),
                none(),
                Cell::Text(String::new()),
            ]);
        }
        Table {
            audit: "ads",
            facts: vec![
                self.scope.describe(),
                format!("{} sessions", self.sessions),
                format!("goal {}", self.goal),
                match self.campaigns.len() {
                    1 => "1 campaign".to_owned(),
                    n => format!("{n} campaigns"),
                },
                format!("{}, alpha {}", self.method, self.alpha),
                format!("verdicts from {} sessions per variant", self.min_sessions),
            ],
            columns: vec![
                ("section", "section"),
                ("name", "campaign / source"),
                ("variant", "variant"),
                ("impressions", "impressions"),
                ("sessions", "sessions"),
                ("clicks", "clicks"),
                ("ctr", "CTR"),
                ("ctr_low", "CTR low"),
                ("ctr_high", "CTR high"),
                ("conversions", "conversions"),
                ("conversion_rate", "conversion"),
                ("conversion_low", "conv. low"),
                ("conversion_high", "conv. high"),
                ("p_value", "p (conversion)"),
                ("verdict", "verdict"),
            ],
            rows,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Report;
    use crate::audits::run_audit;
    use crate::testing::{Db, Ev, ev};

    const S: i64 = 1_000;

    fn ads(db: &Db, params: &Ads) -> AdsReport {
        let framed = run_audit(&db.conn(), ResolvedScope::default(), params).unwrap();
        let streamed = params.stream(&db.conn(), ResolvedScope::default()).unwrap();
        assert_eq!(streamed, framed, "streamed and Polars ads differ");
        let mut by_label: BTreeMap<String, u64> = BTreeMap::new();
        for i in &streamed.inbound {
            *by_label.entry(i.label()).or_default() += i.sessions;
        }
        let mut expected: Vec<(String, u64)> = by_label.into_iter().collect();
        expected.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let counted = sources(&db.conn(), &ResolvedScope::default()).unwrap();
        assert_eq!(
            counted, expected,
            "the store's sources differ from the audit's"
        );
        streamed
    }

    fn default_ads() -> Ads {
        Ads::new(DEFAULT_GOAL, None, DEFAULT_MIN_SESSIONS).unwrap()
    }

    fn land(id: &str, session: &str, ts: i64, url: &str) -> Ev {
        ev(id, session, ts, 1, "pageview").path("/").url(url)
    }

    fn ad_view(id: &str, session: &str, ts: i64, seq: i32, ad: &str) -> Ev {
        ev(id, session, ts, seq, "ad_view")
            .path("/")
            .ad(ad)
            .selector("div.banner")
    }

    fn ad_click(id: &str, session: &str, ts: i64, seq: i32, ad: &str) -> Ev {
        ev(id, session, ts, seq, "click")
            .path("/")
            .selector("div.banner > a")
            .ad(ad)
    }

    fn purchase(id: &str, session: &str, ts: i64, seq: i32) -> Ev {
        ev(id, session, ts, seq, "custom")
            .path("/thanks")
            .name("purchase")
    }

    /// `n` sessions exposed to `ad` once each; the first `converting` buy after seeing
    /// it, the first `clicking` click it.
    fn arm(ad: &str, n: usize, converting: usize, clicking: usize) -> Vec<Ev> {
        let mut events = Vec::new();
        for i in 0..n {
            let s = format!("{ad}-{i}");
            events.push(land(&format!("{s}-1"), &s, 0, "https://shop.example/"));
            events.push(ad_view(&format!("{s}-2"), &s, S, 2, ad));
            if i < clicking {
                events.push(ad_click(&format!("{s}-3"), &s, 2 * S, 3, ad));
            }
            if i < converting {
                events.push(purchase(&format!("{s}-4"), &s, 60 * S, 1));
            }
        }
        events
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-6)
    }

    #[test]
    fn an_intended_uneven_split_is_not_a_mismatch() {
        // 180 / 20 exposed: far from even, exactly the intended 90 / 10.
        let db = Db::new();
        let mut events = arm("summer:A", 180, 18, 0);
        events.extend(arm("summer:B", 20, 2, 0));
        db.insert(&events);
        let even = ads(&db, &default_ads());
        let c = &even.campaigns[0];
        assert_eq!(c.expected_split, [0.5, 0.5]);
        assert!(c.srm.unwrap().flagged);
        assert!(
            c.comparisons[0].verdict.contains("sample ratio mismatch"),
            "{}",
            c.comparisons[0].verdict
        );

        let split = default_ads().with_split(Some("A:90, B:10")).unwrap();
        let intended = ads(&db, &split);
        let c = &intended.campaigns[0];
        assert!(close(c.expected_split.first().copied(), 0.9));
        let srm = c.srm.unwrap();
        assert!(srm.chi_square.abs() < 1e-12 && !srm.flagged);
        assert!(!c.comparisons[0].verdict.contains("mismatch"));

        // A split that misses a variant leaves the campaign on an even split.
        let partial = ads(&db, &default_ads().with_split(Some("A:90")).unwrap());
        assert_eq!(partial.campaigns[0].expected_split, [0.5, 0.5]);

        // A variant of the split that never showed is a broken rotation: of 200
        // exposures 90 / 10 / 100 were expected, 180 / 20 / 0 came; chi-square
        // 90 + 10 + 100 = 200 → flagged.
        let third = ads(
            &db,
            &default_ads().with_split(Some("A:45,B:5,C:50")).unwrap(),
        );
        let c = &third.campaigns[0];
        assert_eq!(c.missing_variants, ["C"]);
        assert!(close(c.expected_split.first().copied(), 0.45));
        let srm = c.srm.unwrap();
        assert!((srm.chi_square - 200.0).abs() < 1e-9 && srm.flagged);

        for bad in ["A", "A:0", "A:-1", ":5", "A:x", "A:90,", "A:1,A:2"] {
            let err = default_ads().with_split(Some(bad)).unwrap_err();
            assert_eq!(err.code(), "bad_param", "{bad}");
        }
    }

    #[test]
    fn several_variants_are_held_to_holms_correction() {
        // A 20/200, B 34/200: pooled 54/400 = 0.135, se = √(0.135·0.865·0.01)
        // = 0.0341724, z = 0.07 / 0.0341724 = 2.04844, p = 0.040517: better alone.
        let db = Db::new();
        let mut events = arm("spring:A", 200, 20, 0);
        events.extend(arm("spring:B", 200, 34, 0));
        db.insert(&events);
        let alone = ads(&db, &default_ads());
        let cmp = &alone.campaigns[0].comparisons[0];
        assert!((cmp.conversion.unwrap().p_value - 0.040_517).abs() < 1e-6);
        assert_eq!(cmp.conversion_p_holm, cmp.conversion.map(|t| t.p_value));
        assert_eq!(cmp.verdict, "B converts better than A (p = 0.041)");

        // With C, as A (p = 1), Holm: 0.040517 × 2 = 0.081034; 1 × 1 = 1.
        events = arm("spring:C", 200, 20, 0);
        db.insert(&events);
        let three = ads(&db, &default_ads());
        let c = &three.campaigns[0];
        let (b, cc) = (&c.comparisons[0], &c.comparisons[1]);
        assert_eq!((b.variant.as_str(), cc.variant.as_str()), ("B", "C"));
        assert!(close(b.conversion_p_holm, 0.081_034));
        assert!(close(cc.conversion_p_holm, 1.0));
        assert!((b.conversion.unwrap().p_value - 0.040_517).abs() < 1e-6);
        assert_eq!(
            b.verdict,
            "no significant difference (p = 0.081, Holm-adjusted for 2 variants)"
        );
    }

    #[test]
    fn a_variant_that_converts_better_by_hand() {
        let db = Db::new();
        let mut events = arm("winter:A", 200, 20, 10);
        events.extend(arm("winter:B", 200, 40, 30));
        db.insert(&events);
        let r = ads(&db, &default_ads());
        assert_eq!(r.sessions, 400);
        assert_eq!(r.goal, "event:purchase");
        assert_eq!(r.method, "two-proportion z-test (pooled), two-sided");
        assert_eq!(r.campaigns.len(), 1);
        let c = &r.campaigns[0];
        assert_eq!((c.campaign.as_str(), c.control.as_str()), ("winter", "A"));
        assert_eq!(c.mixed_sessions, 0);

        let counts: Vec<(&str, u64, u64, u64, u64)> = c
            .variants
            .iter()
            .map(|v| {
                (
                    v.variant.as_str(),
                    v.impressions,
                    v.sessions,
                    v.clicks,
                    v.conversions,
                )
            })
            .collect();
        assert_eq!(counts, [("A", 200, 200, 10, 20), ("B", 200, 200, 30, 40)]);
        let (ctl, var) = (&c.variants[0], &c.variants[1]);
        assert_eq!((ctl.ctr, ctl.conversion_rate), (Some(0.05), Some(0.1)));
        assert_eq!((var.ctr, var.conversion_rate), (Some(0.15), Some(0.2)));
        // Wilson 95 %: 20/200 → (0.065670, 0.149406); 40/200 → (0.150452, 0.260855);
        // 10/200 → (0.027383, 0.089578).
        assert!(close(ctl.conversion_low, 0.065_670) && close(ctl.conversion_high, 0.149_406));
        assert!(close(var.conversion_low, 0.150_452) && close(var.conversion_high, 0.260_855));
        assert!(close(ctl.ctr_low, 0.027_383) && close(ctl.ctr_high, 0.089_578));

        // Equal exposure: chi-square 0, p = 1.
        let srm = c.srm.unwrap();
        assert!(srm.chi_square.abs() < 1e-12 && (srm.p_value - 1.0).abs() < 1e-12);
        assert!(!srm.flagged);

        // Conversion: pooled p = 60/400 = 0.15, se = √(0.15·0.85·(2/200)) = 0.0357071,
        // z = (0.20 − 0.10) / 0.0357071 = 2.80056, p = 2·(1 − Φ(2.80056)) = 0.005101.
        // CTR: pooled 40/400 = 0.1, se = √(0.1·0.9·0.01) = 0.03, z = 0.10/0.03 = 3.33333,
        // p = 2·(1 − Φ(3.33333)) = 0.000858.
        let cmp = &c.comparisons[0];
        assert_eq!((cmp.variant.as_str(), cmp.control.as_str()), ("B", "A"));
        let conversion = cmp.conversion.unwrap();
        assert!((conversion.z - 2.800_560).abs() < 1e-5);
        assert!((conversion.p_value - 0.005_101).abs() < 1e-6);
        assert!((conversion.difference - 0.1).abs() < 1e-12);
        let ctr = cmp.ctr.unwrap();
        assert!((ctr.z - 3.333_333).abs() < 1e-5);
        assert!((ctr.p_value - 0.000_858).abs() < 1e-6);
        assert_eq!(cmp.verdict, "B converts better than A (p = 0.005)");

        // B as the control: A converts worse.
        let r = ads(&db, &Ads::new("event:purchase", Some("B"), 100).unwrap());
        let cmp = &r.campaigns[0].comparisons[0];
        assert_eq!((cmp.variant.as_str(), cmp.control.as_str()), ("A", "B"));
        assert_eq!(cmp.verdict, "A converts worse than B (p = 0.005)");
        assert!((cmp.conversion.unwrap().z + 2.800_560).abs() < 1e-5);

        // A control the campaign lacks falls back to the first variant.
        let r = ads(&db, &Ads::new("event:purchase", Some("Z"), 100).unwrap());
        assert_eq!(r.campaigns[0].control, "A");

        // 200 sessions per arm are not enough when 201 are asked for.
        let r = ads(&db, &Ads::new("event:purchase", None, 201).unwrap());
        assert_eq!(r.campaigns[0].comparisons[0].verdict, "not enough data yet");

        // Everyone landed on a plain URL.
        assert_eq!(r.inbound.len(), 1);
        assert_eq!(r.inbound[0].source, DIRECT);
        assert_eq!((r.inbound[0].sessions, r.inbound[0].conversions), (400, 60));
    }

    #[test]
    fn a_sample_ratio_mismatch_is_flagged_in_the_verdict() {
        let db = Db::new();
        // A 200 sessions, B 120, both converting 10 %.
        let mut events = arm("spring:A", 200, 20, 0);
        events.extend(arm("spring:B", 120, 12, 0));
        db.insert(&events);
        let r = ads(&db, &default_ads());
        let c = &r.campaigns[0];
        // Expected 160 each: (40² + 40²) / 160 = 20, df 1 → p = 7.744e-6 < 0.001.
        let srm = c.srm.unwrap();
        assert!((srm.chi_square - 20.0).abs() < 1e-9);
        assert!((srm.p_value - 7.744e-6).abs() < 1e-8);
        assert!(srm.flagged);
        // Equal rates: z = 0, p = 1.
        let x = &c.comparisons[0];
        assert_eq!(x.conversion.map(|t| t.p_value), Some(1.0));
        assert_eq!(
            x.verdict,
            "no significant difference (p = 1.00); sample ratio mismatch: check the ad \
             rotation before trusting this"
        );
        // No clicks at all: CTR 0 on both sides, p = 1.
        assert_eq!(x.ctr.map(|t| t.p_value), Some(1.0));
    }

    #[test]
    fn a_click_proves_the_ad_was_seen_and_ctr_stays_within_100_percent() {
        let db = Db::new();
        let home = "https://shop.example/";
        let click =
            |id: &str, session: &str, ts: i64, seq: i32| ad_click(id, session, ts, seq, "deals:C");
        db.insert(&[
            // s1: clicks the banner the moment it appears (before its second in
            // view: no ad_view), then buys: one impression, one click, converted.
            land("a1", "s1", 0, home),
            click("a2", "s1", S, 2),
            purchase("a3", "s1", 30 * S, 3),
            // s2: the same, and leaves.
            land("b1", "s2", 0, home),
            click("b2", "s2", S, 2),
            // s3: sees it and does not click.
            land("c1", "s3", 0, home),
            ad_view("c2", "s3", 2 * S, 2, "deals:C"),
            // s4: sees it once and clicks it three times (a banner that does not
            // leave the page): one click for the one time it was seen.
            land("d1", "s4", 0, home),
            ad_view("d2", "s4", 2 * S, 2, "deals:C"),
            click("d3", "s4", 3 * S, 3),
            click("d4", "s4", 4 * S, 4),
            click("d5", "s4", 5 * S, 5),
            // s5: buys, then clicks the banner: exposed, not converted by it.
            land("e1", "s5", 0, home),
            purchase("e2", "s5", S, 2),
            click("e3", "s5", 2 * S, 3),
        ]);
        let r = ads(&db, &default_ads());
        let v = &r.campaigns[0].variants[0];
        assert_eq!(
            (v.impressions, v.sessions, v.clicks, v.conversions),
            (5, 5, 4, 1)
        );
        assert!(close(v.ctr, 0.8));
        assert!(v.ctr_low.unwrap() <= 0.8 && v.ctr_high.unwrap() >= 0.8);
    }

    #[test]
    fn the_click_that_exposes_a_session_is_no_goal_after_it() {
        let db = Db::new();
        let home = "https://shop.example/";
        let click =
            |id: &str, session: &str, ts: i64, seq: i32| ad_click(id, session, ts, seq, "deals:C");
        db.insert(&[
            // s1: the click on the ad is its first sight and the goal itself:
            // exposed, not converted.
            land("a1", "s1", 0, home),
            click("a2", "s1", S, 2),
            // s2: seen, then clicked (the goal): converted.
            land("b1", "s2", 0, home),
            ad_view("b2", "s2", S, 2, "deals:C"),
            click("b3", "s2", 2 * S, 3),
        ]);
        let goal = Ads::new("click:div.banner > a", None, DEFAULT_MIN_SESSIONS).unwrap();
        let r = ads(&db, &goal);
        let v = &r.campaigns[0].variants[0];
        assert_eq!((v.sessions, v.clicks, v.conversions), (2, 2, 1));
    }

    #[test]
    fn only_a_goal_after_the_first_exposure_converts() {
        let db = Db::new();
        let home = "https://shop.example/";
        db.insert(&[
            // s1: sees the ad, then buys: converted.
            land("a1", "s1", 0, home),
            ad_view("a2", "s1", 10 * S, 2, "spring:A"),
            purchase("a3", "s1", 20 * S, 1),
            // s2: buys, then sees the ad (twice): not converted for the ad.
            land("b1", "s2", 0, home),
            purchase("b2", "s2", 5 * S, 2),
            ad_view("b3", "s2", 10 * S, 3, "spring:A"),
            ad_view("b4", "s2", 11 * S, 4, "spring:A"),
            // s3: ad view and purchase in the same millisecond, the ad first (seq): yes.
            land("c1", "s3", 0, home),
            purchase("c3", "s3", 10 * S, 3),
            ad_view("c2", "s3", 10 * S, 2, "spring:A"),
            // s4: the same millisecond, the purchase first: no.
            land("d1", "s4", 0, home),
            ad_view("d3", "s4", 10 * S, 3, "spring:A"),
            purchase("d2", "s4", 10 * S, 2),
            // s5: sees both variants, does not buy.
            land("e1", "s5", 0, home),
            ad_view("e2", "s5", S, 2, "spring:A"),
            ad_view("e3", "s5", 2 * S, 3, "spring:B"),
        ]);
        let r = ads(&db, &default_ads());
        let c = &r.campaigns[0];
        let counts: Vec<(&str, u64, u64, u64)> = c
            .variants
            .iter()
            .map(|v| (v.variant.as_str(), v.impressions, v.sessions, v.conversions))
            .collect();
        assert_eq!(counts, [("A", 6, 5, 2), ("B", 1, 1, 0)]);
        assert_eq!(c.mixed_sessions, 1);
        // Exposed 5 vs 1, expected 3 each: (4 + 4) / 3 = 2.6667, df 1 → p = 0.102470.
        let srm = c.srm.unwrap();
        assert!((srm.chi_square - 8.0 / 3.0).abs() < 1e-9);
        assert!((srm.p_value - 0.102_470).abs() < 1e-6);
        assert!(!srm.flagged);
        assert_eq!(c.comparisons[0].verdict, "not enough data yet");
        // The sessions themselves converted: s1 to s4.
        assert_eq!((r.inbound[0].sessions, r.inbound[0].conversions), (5, 4));
    }

    #[test]
    fn any_step_can_be_the_goal() {
        let db = Db::new();
        let home = "https://shop.example/";
        db.insert(&[
            land("a1", "s1", 0, home),
            ad_view("a2", "s1", S, 2, "promo"),
            ev("a3", "s1", 2 * S, 1, "pageview").path("/thanks"),
            land("b1", "s2", 0, home),
            ad_view("b2", "s2", S, 2, "promo"),
            ev("b3", "s2", 2 * S, 3, "submit")
                .path("/")
                .form("newsletter"),
        ]);
        let r = ads(&db, &Ads::new("page:/thanks", None, 100).unwrap());
        let c = &r.campaigns[0];
        assert_eq!(
            (c.campaign.as_str(), c.control.as_str()),
            ("promo", NO_VARIANT)
        );
        assert_eq!(c.variants[0].conversions, 1);
        assert!(c.srm.is_none() && c.comparisons.is_empty());
        let r = ads(&db, &Ads::new("submit:newsletter", None, 100).unwrap());
        assert_eq!(r.campaigns[0].variants[0].conversions, 1);
        assert_eq!(r.goal, "submit:newsletter");
    }

    #[test]
    fn inbound_campaigns_come_from_the_landing_url() {
        let db = Db::new();
        let news = "https://shop.example/?utm_source=newsletter&utm_medium=email\
                    &utm_campaign=winter%20sale";
        db.insert(&[
            land("a1", "s1", 0, news),
            purchase("a2", "s1", S, 2),
            land("b1", "s2", 0, news),
            land("c1", "s3", 0, "https://shop.example/p/1?gclid=abc"),
            purchase("c2", "s3", S, 2),
            land(
                "d1",
                "s4",
                0,
                "https://shop.example/?utm_source=google&utm_medium=cpc&gclid=xyz",
            ),
            land("e1", "s5", 0, "https://shop.example/?fbclid=1"),
            land("f1", "s6", 0, "https://shop.example/?msclkid=2"),
            // A later page view's parameters do not change where s7 came from.
            land("g1", "s7", 0, "https://shop.example/"),
            land("g2", "s7", S, "https://shop.example/?utm_source=late"),
            land("h1", "s8", 0, "https://shop.example/?utm_campaign=x"),
            // s9 and s10 have no page view in scope; s9 buys.
            purchase("i1", "s9", 0, 1),
            ev("j1", "s10", 0, 1, "leave"),
        ]);
        let r = ads(&db, &default_ads());
        assert_eq!(r.sessions, 10);
        assert!(r.campaigns.is_empty());
        let rows: Vec<(String, u64, u64)> = r
            .inbound
            .iter()
            .map(|s| (s.label(), s.sessions, s.conversions))
            .collect();
        let expected = [
            (NO_LANDING, 2, 1),
            ("newsletter / email / winter sale", 2, 1),
            ("google ads", 1, 1),
            (DIRECT, 1, 0),
            ("(not set) / x", 1, 0),
            ("google / cpc [google ads]", 1, 0),
            ("meta", 1, 0),
            ("microsoft ads", 1, 0),
        ];
        let expected: Vec<(String, u64, u64)> = expected
            .iter()
            .map(|(l, n, x)| ((*l).to_owned(), *n, *x))
            .collect();
        assert_eq!(rows, expected);
        let news = &r.inbound[1];
        assert_eq!(
            (
                news.source.as_str(),
                news.medium.as_deref(),
                news.campaign.as_deref()
            ),
            ("newsletter", Some("email"), Some("winter sale"))
        );
        assert_eq!(news.conversion_rate, Some(0.5));
        // Wilson 95 % for 1 of 2: (0.094531, 0.905469).
        assert!(close(news.conversion_low, 0.094_531) && close(news.conversion_high, 0.905_469));
        assert_eq!(r.inbound[2].click_id.as_deref(), Some("google ads"));
        assert_eq!(r.inbound[5].source, "google");
    }

    #[test]
    fn ads_split_at_the_first_colon() {
        assert_eq!(split_ad("winter:B"), ("winter", "B"));
        assert_eq!(split_ad("spring:x:y"), ("spring", "x:y"));
        assert_eq!(split_ad("summer:"), ("summer", NO_VARIANT));
        assert_eq!(split_ad("summer"), ("summer", NO_VARIANT));
    }

    #[test]
    fn p_values_in_words() {
        assert_eq!(format_p(0.000_2), "p < 0.001");
        assert_eq!(format_p(0.003_1), "p = 0.003");
        assert_eq!(format_p(0.046), "p = 0.046");
        assert_eq!(format_p(0.41), "p = 0.41");
    }

    #[test]
    fn bad_params_are_rejected_and_requests_have_defaults() {
        assert!(matches!(
            Ads::new("purchase", None, 100),
            Err(Error::BadStep { .. })
        ));
        assert!(matches!(
            Ads::new("event:purchase", Some(" "), 100),
            Err(Error::BadParam {
                name: "control",
                ..
            })
        ));
        let req: crate::AuditRequest = serde_json::from_str(r#"{"audit":"ads"}"#).unwrap();
        assert_eq!(
            req,
            crate::AuditRequest::Ads {
                scope: crate::Scope::default(),
                goal: None,
                control: None,
                min_sessions: 100,
                split: None,
            }
        );
        let db = Db::new();
        let report = crate::run(&db.conn(), &req).unwrap();
        assert_eq!(report.audit(), "ads");
        let bad: crate::AuditRequest =
            serde_json::from_str(r#"{"audit":"ads","goal":"nope"}"#).unwrap();
        assert_eq!(crate::run(&db.conn(), &bad).unwrap_err().code(), "bad_step");
    }

    #[test]
    fn no_data_gives_an_empty_report() {
        let db = Db::new();
        let r = ads(&db, &default_ads());
        assert_eq!(r.sessions, 0);
        assert!(r.campaigns.is_empty() && r.inbound.is_empty());
    }

    #[test]
    fn the_table_lists_variants_then_sources() {
        let db = Db::new();
        let mut events = arm("winter:A", 3, 1, 1);
        events.extend(arm("winter:B", 2, 0, 0));
        db.insert(&events);
        let report = Report::Ads(ads(&db, &default_ads()));
        let table = report.table();
        let firsts: Vec<String> = table
            .rows
            .iter()
            .map(|r| {
                format!(
                    "{} {} {} {}",
                    r[0].raw(),
                    r[1].raw(),
                    r[2].raw(),
                    r[14].raw()
                )
            })
            .collect();
        assert_eq!(
            firsts,
            [
                "ad winter A control",
                "ad winter B not enough data yet",
                "inbound (direct / none)  ",
            ]
        );
        // The JSON reads back (floats up to serde_json's last-digit rounding).
        let json = crate::render(&report, crate::Format::Json).unwrap();
        let Report::Ads(back) = serde_json::from_str::<Report>(&json).unwrap() else {
            panic!("not an ads report: {json}");
        };
        assert_eq!(
            back.campaigns[0].comparisons[0].verdict,
            "not enough data yet"
        );
        assert_eq!(back.campaigns[0].variants[1].ctr_low, Some(0.0));
    }
}
