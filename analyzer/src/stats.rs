//! The statistics the audits put next to their rates, so that a reader can tell a
//! real difference from noise: Wilson score intervals for a proportion, the pooled
//! two-proportion z-test, and a chi-square goodness-of-fit test against an equal
//! split (the sample-ratio-mismatch check of an A/B rotation).
//!
//! Counts come in as `u64` (successes, trials) straight from the audits' tallies;
//! the distributions are statrs' [`Normal`] and [`ChiSquared`].

use statrs::distribution::{ChiSquared, ContinuousCDF, Normal};

/// The confidence level of every interval the audits report.
pub const CONFIDENCE: f64 = 0.95;

/// The z of a two-sided interval at `confidence` (1.959964 for 95 %).
pub fn z_two_sided(confidence: f64) -> f64 {
    Normal::standard().inverse_cdf(1.0 - (1.0 - confidence) / 2.0)
}

/// The Wilson score interval of `successes / trials` at [`CONFIDENCE`], as
/// `(low, high)`; `None` without trials. Successes beyond the trials (a link clicked
/// more often than it was seen) are capped at the trials: the interval is of a
/// proportion, 0..1.
pub fn wilson(successes: u64, trials: u64) -> Option<(f64, f64)> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z = z_two_sided(CONFIDENCE);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half = z / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    // At p = 0 (p = 1) the bound is exactly 0 (1); say so rather than 5e-17.
    let low = if successes == 0 {
        0.0
    } else {
        (center - half).max(0.0)
    };
    let high = if successes >= trials {
        1.0
    } else {
        (center + half).min(1.0)
    };
    Some((low, high))
}

/// The result of a two-proportion z-test of B against A.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ZTest {
    /// B's rate minus A's rate.
    pub difference: f64,
    /// The z statistic; positive when B's rate is higher.
    pub z: f64,
    /// Two-sided p-value.
    pub p_value: f64,
}

/// The pooled two-proportion z-test of `x_b / n_b` against `x_a / n_a`, two-sided;
/// `None` when an arm has no trials. Successes are capped at the trials. When the
/// pooled rate is 0 or 1 both rates are equal: z = 0, p = 1.
pub fn two_proportion_z(x_a: u64, n_a: u64, x_b: u64, n_b: u64) -> Option<ZTest> {
    if n_a == 0 || n_b == 0 {
        return None;
    }
    let (x_a, x_b) = (x_a.min(n_a) as f64, x_b.min(n_b) as f64);
    let (n_a, n_b) = (n_a as f64, n_b as f64);
    let (p_a, p_b) = (x_a / n_a, x_b / n_b);
    let pooled = (x_a + x_b) / (n_a + n_b);
    let se = (pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b)).sqrt();
    if se == 0.0 {
        return Some(ZTest {
            difference: p_b - p_a,
            z: 0.0,
            p_value: 1.0,
        });
    }
    let z = (p_b - p_a) / se;
    Some(ZTest {
        difference: p_b - p_a,
        z,
        p_value: (2.0 * Normal::standard().sf(z.abs())).min(1.0),
    })
}

/// The chi-square goodness-of-fit test of `counts` against the split `weights`
/// (positive, any scale: `[90, 10]` = 90 % / 10 %), as `(statistic, p_value)` with
/// `counts.len() - 1` degrees of freedom; `None` for fewer than two groups, no counts,
/// a length mismatch or a weight that is not positive.
pub fn chi_square_split(counts: &[u64], weights: &[f64]) -> Option<(f64, f64)> {
    let total: u64 = counts.iter().sum();
    let weight: f64 = weights.iter().sum();
    if counts.len() < 2
        || total == 0
        || counts.len() != weights.len()
        || weights.iter().any(|w| !(w.is_finite() && *w > 0.0))
    {
        return None;
    }
    let statistic: f64 = counts
        .iter()
        .zip(weights)
        .map(|(&c, w)| {
            let expected = total as f64 * w / weight;
            (c as f64 - expected).powi(2) / expected
        })
        .sum();
    let dist = ChiSquared::new((counts.len() - 1) as f64).ok()?;
    Some((statistic, dist.sf(statistic)))
}

/// Holm's step-down adjustment of `p_values` (in their order): the family-wise error
/// of several comparisons stays at alpha when each adjusted p is compared with it.
/// Sorted ascending, the i-th of m (from 1) becomes `(m - i + 1) * p`, kept monotone
/// and capped at 1.
pub fn holm(p_values: &[f64]) -> Vec<f64> {
    let m = p_values.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| p_values[a].total_cmp(&p_values[b]));
    let mut adjusted = vec![0.0; m];
    let mut running = 0.0_f64;
    for (rank, &i) in order.iter().enumerate() {
        running = running.max(((m - rank) as f64 * p_values[i]).min(1.0));
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance
    }

    #[test]
    fn z_of_a_95_percent_interval() {
        assert!(close(z_two_sided(0.95), 1.959_964, 1e-6));
    }

    #[test]
    fn wilson_intervals_by_hand() {
        // 1 of 10: p = 0.1, z² = 3.841459.
        // centre = (0.1 + 3.841459/20) / (1 + 3.841459/10) = 0.292073 / 1.384146 = 0.211013
        // half = 1.959964 / 1.384146 · √(0.1·0.9/10 + 3.841459/400)
        //      = 1.416009 · √0.018604 = 0.193137 → (0.017876, 0.404150)
        let (low, high) = wilson(1, 10).unwrap();
        assert!(close(low, 0.017_876, 1e-6), "{low}");
        assert!(close(high, 0.404_150, 1e-6), "{high}");
        // 0 of n: low 0, high = z² / (n + z²).
        assert_eq!(wilson(0, 30).map(|(low, _)| low), Some(0.0));
        let (_, high) = wilson(0, 30).unwrap();
        assert!(close(high, 3.841_459 / 33.841_459, 1e-6), "{high}");
        // n of n mirrors 0 of n.
        let (low, _) = wilson(30, 30).unwrap();
        assert!(close(low, 30.0 / 33.841_459, 1e-6));
        assert_eq!(wilson(30, 30).map(|(_, high)| high), Some(1.0));
        // More successes than trials are capped.
        assert_eq!(wilson(40, 30), wilson(30, 30));
        assert_eq!(wilson(0, 0), None);
    }

    #[test]
    fn two_proportion_z_by_hand() {
        // A 20/200 = 0.10, B 40/200 = 0.20; pooled 60/400 = 0.15;
        // se = √(0.15·0.85·(1/200 + 1/200)) = √0.001275 = 0.0357071;
        // z = 0.10 / 0.0357071 = 2.80056; p = 2·(1 − Φ(2.80056)) = 0.005101.
        let t = two_proportion_z(20, 200, 40, 200).unwrap();
        assert!(close(t.difference, 0.1, 1e-12));
        assert!(close(t.z, 2.800_56, 1e-4), "{}", t.z);
        assert!(close(t.p_value, 0.005_101, 1e-5), "{}", t.p_value);
        // Swapped: same p, negative z.
        let s = two_proportion_z(40, 200, 20, 200).unwrap();
        assert!(close(s.z, -t.z, 1e-12) && close(s.p_value, t.p_value, 1e-12));
        // Nothing converts anywhere: equal, p = 1.
        assert_eq!(
            two_proportion_z(0, 50, 0, 80),
            Some(ZTest {
                difference: 0.0,
                z: 0.0,
                p_value: 1.0
            })
        );
        assert_eq!(two_proportion_z(1, 0, 1, 10), None);
    }

    #[test]
    fn chi_square_against_an_uneven_split_by_hand() {
        // 880 / 120 against 90 % / 10 %: expected 900 / 100;
        // (20² / 900) + (20² / 100) = 0.444444 + 4 = 4.444444, 1 df: p = 0.035015.
        let (chi, p) = chi_square_split(&[880, 120], &[90.0, 10.0]).unwrap();
        assert!((chi - 4.444_444).abs() < 1e-5, "{chi}");
        assert!((p - 0.035_015).abs() < 1e-5, "{p}");
        // The same counts against an even split are far off.
        assert!(chi_square_split(&[880, 120], &[1.0, 1.0]).unwrap().1 < 1e-100);
        assert_eq!(chi_square_split(&[1, 2], &[1.0]), None);
        assert_eq!(chi_square_split(&[1, 2], &[1.0, 0.0]), None);
    }

    #[test]
    fn holm_by_hand() {
        // Sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, kept at 0.06.
        let adjusted = holm(&[0.01, 0.04, 0.03]);
        let want = [0.03, 0.06, 0.06];
        for (got, want) in adjusted.iter().zip(want) {
            assert!((got - want).abs() < 1e-12, "{adjusted:?}");
        }
        assert_eq!(holm(&[0.2]), [0.2]);
        assert_eq!(holm(&[0.6, 0.7]), [1.0, 1.0]);
        assert!(holm(&[]).is_empty());
    }

    #[test]
    fn chi_square_against_an_even_split_by_hand() {
        // 200 vs 120, expected 160 each: (40² + 40²) / 160 = 20; df 1 → p = 7.74e-6.
        let (chi, p) = chi_square_split(&[200, 120], &[1.0, 1.0]).unwrap();
        assert!(close(chi, 20.0, 1e-12));
        assert!(close(p, 7.744e-6, 1e-8), "{p}");
        // 100, 100, 100: a perfect split.
        let (chi, p) = chi_square_split(&[100, 100, 100], &[1.0; 3]).unwrap();
        assert!(close(chi, 0.0, 1e-12) && close(p, 1.0, 1e-12));
        assert_eq!(chi_square_split(&[10], &[1.0]), None);
        assert_eq!(chi_square_split(&[0, 0], &[1.0, 1.0]), None);
    }
}
