//! The statistics of the benchmark's report: medians, ranges, and the sign test that tells a
//! row's split of rounds from the machine's noise.

/// The lowest and highest of `v`.
pub fn min_max(v: &[f64]) -> (f64, f64) {
    v.iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)))
}

/// Two-sided exact sign test: the probability, were each round a fair coin toss between the
/// two servers, of a split at least as uneven as `wins` of `rounds`.
pub fn sign_test_p(wins: usize, rounds: usize) -> f64 {
    debug_assert!(wins <= rounds);
    let fewer = wins.min(rounds - wins);
    // Binomial coefficients as f64: exact for the 50 rounds at most a run has.
    let mut coefficient = 1.0_f64;
    let mut tail = 1.0_f64;
    for i in 1..=fewer {
        coefficient = coefficient * (rounds - i + 1) as f64 / i as f64;
        tail += coefficient;
    }
    (2.0 * tail / 2.0_f64.powi(rounds as i32)).min(1.0)
}

/// The median of the finite values of `v` (NaN if there are none).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

#[cfg(test)]
mod tests {
    use super::sign_test_p;

    #[test]
    fn sign_test_matches_the_binomial_tails() {
        // 1 of 9: 2 * (1 + 9) / 512.
        assert!((sign_test_p(1, 9) - 20.0 / 512.0).abs() < 1e-12);
        assert!((sign_test_p(8, 9) - 20.0 / 512.0).abs() < 1e-12);
        // 0 of 11: 2 / 2048.
        assert!((sign_test_p(0, 11) - 2.0 / 2048.0).abs() < 1e-12);
        // An even split, or one round either way of it, is no evidence at all.
        assert_eq!(sign_test_p(5, 10), 1.0);
        assert_eq!(sign_test_p(6, 11), 1.0);
        assert_eq!(sign_test_p(1, 1), 1.0);
        // 7 of 7 rounds: 2 / 128, below 0.05; 5 of 5: 2 / 32, not.
        assert!((sign_test_p(7, 7) - 2.0 / 128.0).abs() < 1e-12);
        assert!(sign_test_p(5, 5) > 0.05);
        // 50 rounds, the most a run has: 25 of 50 is 1; 0 of 50 is tiny but positive.
        assert_eq!(sign_test_p(25, 50), 1.0);
        assert!(sign_test_p(0, 50) > 0.0 && sign_test_p(0, 50) < 1e-14);
    }
}
