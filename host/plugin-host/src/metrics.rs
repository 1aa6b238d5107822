//! Per-plugin call metrics: counters and a latency histogram, lock-free.
//!
//! The server renders them on `/metrics`; [`MetricsSnapshot`] carries
//! Prometheus-style cumulative buckets so rendering is a loop.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::Error;

/// Upper bounds of the latency buckets, in microseconds (`+Inf` is implied).
pub const LATENCY_BUCKETS_MICROS: [u64; 14] = [
    10, 25, 50, 100, 200, 500, 1_000, 2_500, 5_000, 10_000, 50_000, 100_000, 500_000, 1_000_000,
];

/// Live counters of one plugin version.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    calls: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    traps: AtomicU64,
    memory_limits: AtomicU64,
    bad_outputs: AtomicU64,
    latency_sum_nanos: AtomicU64,
    buckets: [AtomicU64; LATENCY_BUCKETS_MICROS.len() + 1],
}

impl Metrics {
    /// Records one finished call.
    pub(crate) fn record<T>(&self, elapsed: Duration, outcome: &Result<T, Error>) {
        self.calls.fetch_add(1, Relaxed);
        self.latency_sum_nanos
            .fetch_add(elapsed.as_nanos() as u64, Relaxed);
        let micros = elapsed.as_micros() as u64;
        let slot = LATENCY_BUCKETS_MICROS
            .iter()
            .position(|&bound| micros <= bound)
            .unwrap_or(LATENCY_BUCKETS_MICROS.len());
        self.buckets[slot].fetch_add(1, Relaxed);
        if let Err(err) = outcome {
            self.errors.fetch_add(1, Relaxed);
            let counter = match err {
                Error::Deadline(_) => &self.timeouts,
                Error::MemoryLimit(_) => &self.memory_limits,
                Error::BadOutput(_) => &self.bad_outputs,
                _ => &self.traps,
            };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// A consistent-enough copy for rendering.
    pub(crate) fn snapshot(&self) -> MetricsSnapshot {
        let mut cumulative = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, count)| {
                cumulative += count.load(Relaxed);
                let bound = LATENCY_BUCKETS_MICROS
                    .get(i)
                    .map_or(f64::INFINITY, |&us| us as f64 / 1e6);
                (bound, cumulative)
            })
            .collect();
        MetricsSnapshot {
            calls: self.calls.load(Relaxed),
            errors: self.errors.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            traps: self.traps.load(Relaxed),
            memory_limits: self.memory_limits.load(Relaxed),
            bad_outputs: self.bad_outputs.load(Relaxed),
            latency_sum_seconds: self.latency_sum_nanos.load(Relaxed) as f64 / 1e9,
            buckets,
        }
    }
}

/// Counters and latency histogram of one plugin version, since it was loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricsSnapshot {
    /// Calls made (validate and mutate), successful or not.
    pub calls: u64,
    /// Calls that returned an error (sum of the four counters below).
    pub errors: u64,
    /// Calls that hit their deadline or ran out of fuel.
    pub timeouts: u64,
    /// Calls that trapped (or failed to instantiate).
    pub traps: u64,
    /// Calls that hit the memory cap.
    pub memory_limits: u64,
    /// Calls whose output the host refused.
    pub bad_outputs: u64,
    /// Sum of call latencies, in seconds (Prometheus `_sum`).
    pub latency_sum_seconds: f64,
    /// Cumulative latency buckets: (upper bound in seconds, calls at or below
    /// it); the last bound is `+Inf` and its count equals `calls`.
    pub buckets: Vec<(f64, u64)>,
}

impl MetricsSnapshot {
    /// Estimated latency quantile `q` (0–1) in seconds: the upper bound of the
    /// bucket holding it; `None` with no calls.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * total as f64).ceil().max(1.0) as u64;
        self.buckets
            .iter()
            .find(|(_, count)| *count >= rank)
            .map(|(bound, _)| *bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_errors_counted() {
        let m = Metrics::default();
        m.record::<()>(Duration::from_micros(5), &Ok(()));
        m.record::<()>(
            Duration::from_micros(150),
            &Err(Error::Deadline(Duration::ZERO)),
        );
        m.record::<()>(Duration::from_secs(3), &Err(Error::Trap("x".into())));
        let s = m.snapshot();
        assert_eq!((s.calls, s.errors, s.timeouts, s.traps), (3, 2, 1, 1));
        assert_eq!(s.buckets[0], (10e-6, 1));
        assert_eq!(s.buckets.last().unwrap().1, 3);
        assert_eq!(s.quantile(0.5), Some(200e-6));
        assert_eq!(s.quantile(1.0), Some(f64::INFINITY));
    }
}
