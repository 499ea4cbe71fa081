//! Comparing the variants of each on-site campaign (`data-ct-ad="CAMPAIGN:VARIANT"`):
//! per variant its impressions, exposed sessions, clicks and conversions with Wilson
//! intervals; each variant against the control by a pooled two-proportion z-test
//! (Holm-adjusted when a campaign has several); the exposed sessions checked against
//! the intended split (chi-square); a verdict in plain words.

use std::collections::{BTreeMap, HashMap};

use super::{ALPHA, MIN_CONVERSIONS, SRM_ALPHA, SRM_WARNING};
use super::{AdCampaign, AdVariant, Ads, Comparison, Counts, NO_VARIANT, Srm};
use crate::audits::ratio;
use crate::stats::{ZTest, chi_square_split, holm, two_proportion_z, wilson};

impl Ads {
    /// Campaigns with their variants, SRM check and comparisons.
    pub(super) fn campaigns(
        &self,
        counts: &BTreeMap<String, Counts>,
        mixed: &HashMap<&str, u64>,
    ) -> Vec<AdCampaign> {
        let mut by_campaign: BTreeMap<&str, BTreeMap<&str, Counts>> = BTreeMap::new();
        for (ad, c) in counts {
            let (campaign, variant) = split_ad(ad);
            let sum = by_campaign
                .entry(campaign)
                .or_default()
                .entry(variant)
                .or_default();
            sum.impressions += c.impressions;
            sum.sessions += c.sessions;
            sum.clicks += c.clicks;
            sum.conversions += c.conversions;
        }
        by_campaign
            .into_iter()
            .map(|(campaign, variants)| {
                let control = self
                    .control
                    .as_deref()
                    .filter(|c| variants.contains_key(c))
                    .or_else(|| variants.keys().next().copied())
                    .unwrap_or(NO_VARIANT)
                    .to_owned();
                let mut exposed: Vec<u64> = variants.values().map(|c| c.sessions).collect();
                let weighted = variants.keys().all(|v| self.split.contains_key(*v));
                let mut weights: Vec<f64> = if weighted {
                    variants.keys().map(|v| self.split[*v]).collect()
                } else {
                    vec![1.0; variants.len()]
                };
                // A variant of the split never shown here was meant to get its share:
                // it counts with 0 exposures, so a broken rotation is flagged.
                let missing: Vec<String> = if weighted {
                    self.split
                        .iter()
                        .filter(|(v, _)| !variants.contains_key(v.as_str()))
                        .map(|(v, w)| {
                            exposed.push(0);
                            weights.push(*w);
                            v.clone()
                        })
                        .collect()
                } else {
                    Vec::new()
                };
                let total: f64 = weights.iter().sum();
                let expected_split = weights
                    .iter()
                    .take(variants.len())
                    .map(|w| w / total)
                    .collect();
                let srm = chi_square_split(&exposed, &weights).map(|(chi_square, p_value)| Srm {
                    chi_square,
                    p_value,
                    flagged: p_value < SRM_ALPHA,
                });
                let a = variants.get(control.as_str()).copied().unwrap_or_default();
                let tests: Vec<(&str, &Counts, Option<ZTest>)> = variants
                    .iter()
                    .filter(|(v, _)| **v != control)
                    .map(|(variant, b)| {
                        let test =
                            two_proportion_z(a.conversions, a.sessions, b.conversions, b.sessions);
                        (*variant, b, test)
                    })
                    .collect();
                // Holm over the comparisons that have a test.
                let tested: Vec<f64> = tests
                    .iter()
                    .filter_map(|t| t.2.map(|z| z.p_value))
                    .collect();
                let mut holm = holm(&tested).into_iter();
                let comparisons = tests
                    .iter()
                    .map(|&(variant, b, conversion)| {
                        let adjusted = conversion.and_then(|_| holm.next());
                        Comparison {
                            variant: variant.to_owned(),
                            control: control.clone(),
                            conversion,
                            conversion_p_holm: adjusted,
                            ctr: two_proportion_z(a.clicks, a.impressions, b.clicks, b.impressions),
                            verdict: self.verdict(
                                (&control, &a),
                                (variant, b),
                                conversion.zip(adjusted).map(|(t, p)| (t, p, tested.len())),
                                srm.is_some_and(|s| s.flagged),
                            ),
                        }
                    })
                    .collect();
                AdCampaign {
                    campaign: campaign.to_owned(),
                    control,
                    variants: variants
                        .iter()
                        .map(|(variant, c)| variant_stats(variant, c))
                        .collect(),
                    mixed_sessions: mixed.get(campaign).copied().unwrap_or(0),
                    srm,
                    expected_split,
                    missing_variants: missing,
                    comparisons,
                }
            })
            .collect()
    }

    /// The verdict on variant `b` against control `a`, from the test, its
    /// Holm-adjusted p-value and the number of comparisons in the campaign.
    fn verdict(
        &self,
        (a_name, a): (&str, &Counts),
        (b_name, b): (&str, &Counts),
        test: Option<(ZTest, f64, usize)>,
        srm: bool,
    ) -> String {
        let enough = a.sessions >= self.min_sessions
            && b.sessions >= self.min_sessions
            && a.conversions >= MIN_CONVERSIONS
            && b.conversions >= MIN_CONVERSIONS;
        let p_text = |p: f64, comparisons: usize| {
            if comparisons > 1 {
                format!("{}, Holm-adjusted for {comparisons} variants", format_p(p))
            } else {
                format_p(p)
            }
        };
        let plain = match test {
            Some((z_test, p_holm, comparisons)) if enough && p_holm < ALPHA => {
                let how = if z_test.difference > 0.0 {
                    "better"
                } else {
                    "worse"
                };
                format!(
                    "{b_name} converts {how} than {a_name} ({})",
                    p_text(p_holm, comparisons)
                )
            }
            Some((_, p_holm, comparisons)) if enough => format!(
                "no significant difference ({})",
                p_text(p_holm, comparisons)
            ),
            _ => "not enough data yet".to_owned(),
        };
        if srm {
            format!("{plain}; {SRM_WARNING}")
        } else {
            plain
        }
    }
}

/// `p < 0.001`, `p = 0.003`, `p = 0.41`.
pub(super) fn format_p(p: f64) -> String {
    if p < 0.001 {
        "p < 0.001".to_owned()
    } else if p < 0.1 {
        format!("p = {p:.3}")
    } else {
        format!("p = {p:.2}")
    }
}

fn variant_stats(variant: &str, c: &Counts) -> AdVariant {
    let ctr = wilson(c.clicks, c.impressions);
    let conversion = wilson(c.conversions, c.sessions);
    AdVariant {
        variant: variant.to_owned(),
        impressions: c.impressions,
        sessions: c.sessions,
        clicks: c.clicks,
        ctr: ratio(c.clicks, c.impressions),
        ctr_low: ctr.map(|(low, _)| low),
        ctr_high: ctr.map(|(_, high)| high),
        conversions: c.conversions,
        conversion_rate: ratio(c.conversions, c.sessions),
        conversion_low: conversion.map(|(low, _)| low),
        conversion_high: conversion.map(|(_, high)| high),
    }
}

/// `winter:B` → (`winter`, `B`); `spring:x:y` → (`spring`, `x:y`); `summer` and
/// `summer:` → (`summer`, [`NO_VARIANT`]).
pub(super) fn split_ad(ad: &str) -> (&str, &str) {
    match ad.split_once(':') {
        Some((campaign, variant)) if !variant.is_empty() => (campaign, variant),
        Some((campaign, _)) => (campaign, NO_VARIANT),
        None => (ad, NO_VARIANT),
    }
}
