//! What the benches make of their rounds: medians, and how far to trust them.

/// The median of `values` (the mean of the middle two for an even count);
/// NaN for none.
///
/// ```
/// assert_eq!(tests::rounds::median(vec![3.0, 1.0, 2.0]), 2.0);
/// assert_eq!(tests::rounds::median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
/// assert!(tests::rounds::median(Vec::new()).is_nan());
/// ```
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    middle(&values)
}

/// The median of values already sorted.
fn middle(sorted: &[f64]) -> f64 {
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => f64::NAN,
        n if n.is_multiple_of(2) => (sorted[mid - 1] + sorted[mid]) / 2.0,
        _ => sorted[mid],
    }
}

/// The median of per-round ratios with a 95 % interval for it: `0.94 [0.89–0.98]`.
///
/// The interval needs no assumption about the noise (a shared machine's is
/// anything but normal): it runs from the `k`-th smallest ratio to the `k`-th
/// largest, `k` the largest rank with at most 2.5 % chance that fewer than `k`
/// rounds fall below the true median (binomial, p = ½). 9 rounds give the 2nd
/// and the 8th (96 %). A target inside the interval is one the run cannot
/// decide. Fewer than 6 rounds give no interval.
///
/// ```
/// let nine = (1..=9).map(|i| f64::from(i) / 100.0).collect();
/// assert_eq!(tests::rounds::median_with_interval(nine), "0.05 [0.02–0.08]");
/// ```
pub fn median_with_interval(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(|a, b| a.total_cmp(b));
    let n = ratios.len();
    let mid = middle(&ratios);
    let k = interval_rank(n);
    if k == 0 {
        return format!("{mid:.2}");
    }
    format!("{mid:.2} [{:.2}–{:.2}]", ratios[k - 1], ratios[n - k])
}

/// The largest `k` with P(B < k) ≤ 2.5 % for B ~ Binomial(n, ½); 0 if none.
fn interval_rank(n: usize) -> usize {
    let mut below = 0.0;
    // ln(C(n, i) / 2^n), from i = 0: in logarithms, as 2^-n underflows past
    // 1,074 rounds.
    let mut ln_term = -(n as f64) * std::f64::consts::LN_2;
    let mut k = 0;
    for i in 0..n {
        let term = ln_term.exp();
        if below + term > 0.025 {
            break;
        }
        below += term;
        k = i + 1;
        ln_term += ((n - i) as f64 / (i + 1) as f64).ln();
    }
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ranks of the usual 95 % interval for a median (tables of the sign test).
    #[test]
    fn the_interval_takes_the_sign_test_ranks() {
        for (n, k) in [(5, 0), (6, 1), (8, 1), (9, 2), (12, 3), (15, 4), (20, 6), (45, 16)] {
            assert_eq!(interval_rank(n), k, "{n} rounds");
        }
    }

    /// Past the normal approximation's reach of `2^-n`: n/2 - 1.96 √n / 2, about 956.
    #[test]
    fn many_rounds_keep_a_sensible_rank() {
        let k = interval_rank(2000);
        assert!((950..=960).contains(&k), "{k}");
    }

    #[test]
    fn few_rounds_give_no_interval() {
        assert_eq!(median_with_interval(Vec::new()), "NaN");
        assert_eq!(median_with_interval(vec![0.9, 1.0, 1.1]), "1.00");
        assert_eq!(median_with_interval(Vec::from([1.0; 6])), "1.00 [1.00–1.00]");
    }
}
