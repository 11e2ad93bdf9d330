//! Latency percentiles of single requests, which criterion (a throughput tool) does not give.

use std::fmt;
use std::time::Duration;

/// The percentiles the server benches print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Requests measured.
    pub count: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// The slowest.
    pub max: Duration,
}

impl Percentiles {
    /// The percentiles of `samples` (nearest rank; all zero when empty).
    #[must_use]
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        let rank = |fraction: f64| {
            let at = (fraction * samples.len() as f64).ceil() as usize;
            samples
                .get(at.saturating_sub(1))
                .copied()
                .unwrap_or_default()
        };
        Self {
            count: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.2?}, p99 {:.2?}, max {:.2?} ({} requests)",
            self.p50, self.p99, self.max, self.count
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = (1..=200).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(samples);
        assert_eq!(p.count, 200);
        assert_eq!(p.p50, Duration::from_millis(100));
        assert_eq!(p.p99, Duration::from_millis(198));
        assert_eq!(p.max, Duration::from_millis(200));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }
}
