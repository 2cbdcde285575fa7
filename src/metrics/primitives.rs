//! Counters, gauges and histograms as plain atomics.
//!
//! These sit on the per-statement path, so recording is a few relaxed atomic operations: no
//! lock, no allocation, no label lookup (each labelled series is its own field, chosen at
//! compile time). Scrapes read the atomics one by one; a scrape racing a statement may see one
//! of its counters moved and not yet the other, which Prometheus tolerates.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down (open sessions).
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A latency histogram with fixed bucket bounds (in seconds, ascending).
///
/// Buckets are stored non-cumulatively (one increment per observation) and summed at scrape
/// time; the count is the sum of the buckets, so it always agrees with them. The sum is kept
/// in nanoseconds: u64 nanoseconds overflow after 584 years of accumulated latency.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    /// The bounds in nanoseconds, for comparing without floating point on the hot path.
    bounds_ns: Box<[u64]>,
    /// One per bound, then the +Inf bucket.
    buckets: Box<[AtomicU64]>,
    sum_ns: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        debug_assert!(bounds.windows(2).all(|w| w[0] < w[1]), "bounds ascend");
        Histogram {
            bounds,
            bounds_ns: bounds.iter().map(|b| (b * 1e9) as u64).collect(),
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let ns = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = self
            .bounds_ns
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(self.bounds_ns.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// The bucket bounds with their cumulative counts (the +Inf bucket is the count), and the
    /// sum in seconds.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .bounds
            .iter()
            .zip(self.buckets.iter())
            .map(|(&bound, count)| {
                cumulative += count.load(Ordering::Relaxed);
                (bound, cumulative)
            })
            .collect();
        let count = cumulative + self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        HistogramSnapshot {
            buckets,
            count,
            sum_seconds: self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9,
        }
    }
}

pub struct HistogramSnapshot {
    /// (upper bound in seconds, observations at or below it).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_bounds_inclusive() {
        let histogram = Histogram::new(&[0.001, 0.01]);
        histogram.observe(Duration::from_micros(500));
        histogram.observe(Duration::from_millis(1));
        histogram.observe(Duration::from_millis(5));
        histogram.observe(Duration::from_secs(2));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, [(0.001, 2), (0.01, 3)]);
        assert_eq!(snapshot.count, 4);
        assert!((snapshot.sum_seconds - 2.0065).abs() < 1e-9);
    }

    #[test]
    fn gauges_go_both_ways() {
        let gauge = Gauge::default();
        gauge.inc();
        gauge.inc();
        gauge.dec();
        assert_eq!(gauge.get(), 1);
    }
}
