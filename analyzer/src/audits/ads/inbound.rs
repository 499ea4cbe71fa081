//! Inbound campaigns: where each session came from, read from the URL of its first
//! page view (`utm_source`, `utm_medium`, `utm_campaign`, `utm_content`, and the
//! click ids `gclid`, `fbclid`, `msclkid`), and how many of them reached the goal.
//! The sessions come from the ads audit's one pass ([`super::Ads`]).

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use super::Pass;
use crate::Error;
use crate::audits::ratio;
use crate::stats::wilson;

/// The source of sessions that landed without campaign parameters or click ids.
pub const DIRECT: &str = "(direct / none)";

/// The source of sessions whose landing URL has campaign parameters but no
/// `utm_source` and no click id.
pub const NOT_SET: &str = "(not set)";

/// The source of sessions whose first page view is not in the time range.
pub const NO_LANDING: &str = "(landing page not in range)";

/// Click ids in landing URLs and the ad networks they come from.
const CLICK_IDS: [(&str, &str); 3] = [
    ("gclid", "google ads"),
    ("fbclid", "meta"),
    ("msclkid", "microsoft ads"),
];

/// Sessions that landed from one source (the landing page's URL parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundStats {
    /// `utm_source`, else the ad network of a click id, else [`NOT_SET`] when other
    /// campaign parameters are present, else [`DIRECT`]; [`NO_LANDING`] when the
    /// session's first page view is before the range.
    pub source: String,
    pub medium: Option<String>,
    pub campaign: Option<String>,
    pub content: Option<String>,
    /// The ad network of a click id in the landing URL: `google ads` (gclid), `meta`
    /// (fbclid), `microsoft ads` (msclkid).
    pub click_id: Option<String>,
    pub sessions: u64,
    /// Sessions that reached the goal.
    pub conversions: u64,
    /// `conversions / sessions`, with its 95 % Wilson interval.
    pub conversion_rate: Option<f64>,
    pub conversion_low: Option<f64>,
    pub conversion_high: Option<f64>,
}

/// Where a session came from, read from its landing page's URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub(super) struct Inbound {
    source: String,
    medium: Option<String>,
    campaign: Option<String>,
    content: Option<String>,
    click_id: Option<&'static str>,
}

impl Inbound {
    pub(super) fn source(source: &str) -> Self {
        Inbound {
            source: source.to_owned(),
            ..Inbound::default()
        }
    }

    /// Reads `utm_*` and click ids from the query of `url` (the first of each wins).
    pub(super) fn from_url(url: Option<&str>) -> Self {
        let mut utm_source = None;
        let mut found = Inbound::default();
        let query = url
            .and_then(|u| u.split_once('?'))
            .map_or("", |(_, q)| q.split('#').next().unwrap_or(""));
        // The same decoding as the collector's URL scrubbing (`+` is a space, bad
        // `%` escapes stay as they are).
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let key = key.to_ascii_lowercase();
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            let slot = match key.as_str() {
                "utm_source" => &mut utm_source,
                "utm_medium" => &mut found.medium,
                "utm_campaign" => &mut found.campaign,
                "utm_content" => &mut found.content,
                _ => {
                    if let Some((_, network)) = CLICK_IDS.iter().find(|(id, _)| *id == key) {
                        found.click_id.get_or_insert(network);
                    }
                    continue;
                }
            };
            slot.get_or_insert(value);
        }
        let tagged = found.medium.is_some() || found.campaign.is_some() || found.content.is_some();
        found.source = match (utm_source, found.click_id) {
            (Some(source), _) => source,
            (None, Some(network)) => network.to_owned(),
            (None, None) if tagged => NOT_SET.to_owned(),
            (None, None) => DIRECT.to_owned(),
        };
        found
    }
}

/// Sessions and conversions per inbound source, by sessions (descending).
pub(super) fn inbound_stats(pass: &Pass<'_>) -> Result<Vec<InboundStats>, Error> {
    let n = pass.inbound.len();
    let rows: Vec<(&Inbound, &super::SessionsConverted)> = pass.inbound.iter().collect();
    let strings = |f: fn(&Inbound) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|(i, _)| f(i)).collect()
    };
    let frame = DataFrame::new(
        n,
        vec![
            Column::new("source".into(), strings(|i| Some(i.source.as_str()))),
            Column::new("medium".into(), strings(|i| i.medium.as_deref())),
            Column::new("campaign".into(), strings(|i| i.campaign.as_deref())),
            Column::new("content".into(), strings(|i| i.content.as_deref())),
            Column::new("click_id".into(), strings(|i| i.click_id)),
            Column::new(
                "sessions".into(),
                rows.iter().map(|(_, c)| c.sessions).collect::<Vec<u64>>(),
            ),
            Column::new(
                "conversions".into(),
                rows.iter().map(|(_, c)| c.converted).collect::<Vec<u64>>(),
            ),
        ],
    )?;
    // One row per source already (counted as the sessions ended).
    let grouped = frame
        .lazy()
        .sort_by_exprs(
            [
                col("sessions"),
                col("conversions"),
                col("source"),
                col("medium"),
                col("campaign"),
                col("content"),
                col("click_id"),
            ],
            SortMultipleOptions::default()
                .with_order_descending_multi([true, true, false, false, false, false, false])
                .with_nulls_last(true),
        )
        .collect()?;
    let text = |name: &str| -> Result<Vec<Option<String>>, Error> {
        Ok(grouped
            .column(name)?
            .str()?
            .iter()
            .map(|s| s.map(str::to_owned))
            .collect())
    };
    let (source, medium, campaign, content, click_id) = (
        text("source")?,
        text("medium")?,
        text("campaign")?,
        text("content")?,
        text("click_id")?,
    );
    let sessions = grouped.column("sessions")?.u64()?;
    let conversions = grouped.column("conversions")?.u64()?;
    Ok((0..grouped.height())
        .map(|i| {
            let (n, x) = (
                sessions.get(i).unwrap_or(0),
                conversions.get(i).unwrap_or(0),
            );
            let interval = wilson(x, n);
            InboundStats {
                source: source[i].clone().unwrap_or_default(),
                medium: medium[i].clone(),
                campaign: campaign[i].clone(),
                content: content[i].clone(),
                click_id: click_id[i].clone(),
                sessions: n,
                conversions: x,
                conversion_rate: ratio(x, n),
                conversion_low: interval.map(|(low, _)| low),
                conversion_high: interval.map(|(_, high)| high),
            }
        })
        .collect())
}

/// Sessions per inbound source in `scope`, most first (then by label): each
/// session's landing page view read like the `ads` audit reads it, its label as
/// [`InboundStats::label`]; sessions whose first page view is not in the range count
/// as [`NO_LANDING`]. The store groups the landing URLs' query strings (few distinct
/// ones: the collector keeps only campaign parameters), so this is one query.
/// The reference the tests hold the audit and [`crate::overview`] to.
#[cfg(test)]
pub(crate) fn sources(
    conn: &duckdb::Connection,
    scope: &crate::ResolvedScope,
) -> Result<Vec<(String, u64)>, Error> {
    let (filter, params) = crate::load::scope_filter(scope);
    let sessions = crate::load::sessions(conn, scope)?;
    let mut stmt = conn.prepare(&format!(
        "SELECT CASE WHEN contains(landing, '?') THEN '?' || split_part(landing, '?', 2) END,
                count(*)
         FROM (SELECT arg_min(url, (ts, seq, event_id)) AS landing FROM events
               WHERE {filter} AND kind = 'pageview' GROUP BY session_key)
         GROUP BY 1"
    ))?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params), |r| {
            Ok((r.get::<_, Option<String>>(0)?, r.get::<_, i64>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(label_sources(
        rows.into_iter().map(|(q, n)| (q, n.unsigned_abs())),
        sessions,
    ))
}

/// Sessions per source label from sessions per landing query string (`?…`, or
/// none), with the `sessions` in scope that had no landing page view counted as
/// [`NO_LANDING`]; most first, then by label.
pub(crate) fn label_sources(
    landings: impl IntoIterator<Item = (Option<String>, u64)>,
    sessions: u64,
) -> Vec<(String, u64)> {
    let mut by_label: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let mut landed = 0;
    for (query, n) in landings {
        landed += n;
        let found = Inbound::from_url(query.as_deref());
        *by_label.entry(found.stats(n).label()).or_default() += n;
    }
    if sessions > landed {
        *by_label.entry(NO_LANDING.to_owned()).or_default() += sessions - landed;
    }
    let mut out: Vec<(String, u64)> = by_label.into_iter().collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

impl Inbound {
    /// Its [`InboundStats`] with `sessions` and no conversions (for the label).
    fn stats(&self, sessions: u64) -> InboundStats {
        InboundStats {
            source: self.source.clone(),
            medium: self.medium.clone(),
            campaign: self.campaign.clone(),
            content: self.content.clone(),
            click_id: self.click_id.map(str::to_owned),
            sessions,
            conversions: 0,
            conversion_rate: None,
            conversion_low: None,
            conversion_high: None,
        }
    }
}

impl InboundStats {
    /// `google / cpc / winter / banner [google ads]`: the non-empty parts, and the
    /// click id's network when the source is not already it.
    pub fn label(&self) -> String {
        let mut label = [
            Some(&self.source),
            self.medium.as_ref(),
            self.campaign.as_ref(),
            self.content.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" / ");
        if let Some(network) = self.click_id.as_ref().filter(|n| **n != self.source) {
            label = format!("{label} [{network}]");
        }
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landing_urls_are_decoded_like_form_data() {
        let parse = |url: &str| Inbound::from_url(Some(url));
        let i = parse("https://s.example/?UTM_Source=a+b%21&utm_source=second&utm_content=%zz#x");
        assert_eq!(i.source, "a b!");
        assert_eq!(i.content.as_deref(), Some("%zz"));
        let signed = parse("https://s.example/?utm_source=a%+1");
        assert_eq!(signed.source, "a%+1".replace('+', " "));
        assert_eq!(parse("https://s.example/?utm_source=&x=1").source, DIRECT);
        assert_eq!(
            parse("https://s.example/?utm_medium=%4").medium.as_deref(),
            Some("%4")
        );
        assert_eq!(Inbound::from_url(None).source, DIRECT);
        let both = parse("https://s.example/?fbclid=1&gclid=2");
        assert_eq!(
            (both.source.as_str(), both.click_id),
            ("meta", Some("meta"))
        );
    }
}
