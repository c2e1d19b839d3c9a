//! Rollup figures of one check over one bucket: counts by raw status and
//! run-duration min, mean, max and 95th percentile.
//!
//! The percentile is the nearest-rank one: the smallest duration such that
//! at least 95 % of the runs took no longer (`sorted[ceil(0.95 n) - 1]`). It
//! is exact — computed from every stored result of the bucket, not from a
//! sketch — which is why raw results are kept at least until their hour is
//! rolled up.

use vitalis_core::Status;

/// Counts and latency figures of a set of runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Figures {
    /// Runs with raw status `pass`.
    pub pass: u64,
    /// Runs with `warn`.
    pub warn: u64,
    /// Runs with `fail`.
    pub fail: u64,
    /// Runs with `unknown`.
    pub unknown: u64,
    /// Shortest duration (ms).
    pub min_ms: f64,
    /// Mean duration (ms).
    pub avg_ms: f64,
    /// Longest duration (ms).
    pub max_ms: f64,
    /// Nearest-rank 95th percentile of durations (ms).
    pub p95_ms: f64,
}

impl Figures {
    /// Figures of `runs` (raw status, duration in ms); `None` when empty.
    /// Sorts `runs` by duration.
    pub fn of(runs: &mut [(Status, f64)]) -> Option<Figures> {
        if runs.is_empty() {
            return None;
        }
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let n = runs.len();
        let mut f = Figures {
            pass: 0,
            warn: 0,
            fail: 0,
            unknown: 0,
            min_ms: runs[0].1,
            avg_ms: runs.iter().map(|r| r.1).sum::<f64>() / n as f64,
            max_ms: runs[n - 1].1,
            p95_ms: runs[nearest_rank(n, 95) - 1].1,
        };
        for (s, _) in runs.iter() {
            match s {
                Status::Pass => f.pass += 1,
                Status::Warn => f.warn += 1,
                Status::Fail => f.fail += 1,
                Status::Unknown => f.unknown += 1,
            }
        }
        Some(f)
    }

    /// How many runs.
    pub fn count(&self) -> u64 {
        self.pass + self.warn + self.fail + self.unknown
    }
}

/// The 1-based nearest rank of percentile `p` among `n` values:
/// `ceil(p / 100 × n)`, at least 1.
pub fn nearest_rank(n: usize, p: usize) -> usize {
    (p * n).div_ceil(100).max(1)
}

/// The start (ms) of the bucket of width `width_ms` holding `t_ms`.
pub fn bucket_start(t_ms: i64, width_ms: i64) -> i64 {
    t_ms.div_euclid(width_ms) * width_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(nearest_rank(1, 95), 1);
        assert_eq!(nearest_rank(20, 95), 19);
        assert_eq!(nearest_rank(21, 95), 20);
        assert_eq!(nearest_rank(100, 95), 95);
        assert_eq!(nearest_rank(101, 95), 96);
    }

    #[test]
    fn figures_of_runs() {
        assert_eq!(Figures::of(&mut []), None);
        // 1..=20 ms in a scrambled order, two failures, one warn.
        let mut runs: Vec<(Status, f64)> = (1..=20)
            .map(|i| ((i * 7) % 20 + 1) as f64)
            .map(|d| (Status::Pass, d))
            .collect();
        runs[3].0 = Status::Fail;
        runs[4].0 = Status::Fail;
        runs[5].0 = Status::Warn;
        let f = Figures::of(&mut runs).unwrap();
        assert_eq!((f.pass, f.warn, f.fail, f.unknown), (17, 1, 2, 0));
        assert_eq!(f.count(), 20);
        assert_eq!((f.min_ms, f.max_ms), (1.0, 20.0));
        assert_eq!(f.avg_ms, 10.5);
        assert_eq!(f.p95_ms, 19.0);
        let one = Figures::of(&mut [(Status::Unknown, 3.5)]).unwrap();
        assert_eq!((one.unknown, one.p95_ms, one.avg_ms), (1, 3.5, 3.5));
    }

    #[test]
    fn buckets_floor_to_their_width() {
        assert_eq!(bucket_start(119_999, 60_000), 60_000);
        assert_eq!(bucket_start(120_000, 60_000), 120_000);
        assert_eq!(bucket_start(-1, 60_000), -60_000);
    }
}
