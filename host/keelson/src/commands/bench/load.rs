//! Load generators and latency statistics: a closed loop (fixed concurrency, as fast as the
//! server answers) and an open loop (requests sent on a fixed schedule, latency measured from
//! the scheduled send time so a stalled server cannot hide its stall).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::http::REQUEST_TIMEOUT;

/// What a load run measured.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Latency of each successful operation, sorted ascending once finished.
    pub(crate) latencies: Vec<Duration>,
    /// Failed operations (errors, timeouts, not started before the deadline).
    pub(crate) errors: usize,
    /// The first error's text.
    pub(crate) first_error: Option<String>,
    /// Wall time of the whole run.
    pub(crate) elapsed: Duration,
}

impl Outcome {
    fn record_error(&mut self, e: String) {
        self.errors += 1;
        self.first_error.get_or_insert(e);
    }

    fn merge(&mut self, other: Outcome) {
        self.latencies.extend(other.latencies);
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }

    fn finish(mut self, elapsed: Duration) -> Self {
        self.latencies.sort_unstable();
        self.elapsed = elapsed;
        self
    }

    /// Successful operations per second of wall time.
    pub(crate) fn throughput(&self) -> Option<f64> {
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0 && !self.latencies.is_empty()).then(|| self.latencies.len() as f64 / secs)
    }

    /// The `p`th percentile latency in milliseconds (nearest rank).
    pub(crate) fn percentile_ms(&self, p: f64) -> Option<f64> {
        percentile(&self.latencies, p).map(|d| d.as_secs_f64() * 1e3)
    }

    /// A note about failures, if there were any.
    pub(crate) fn error_note(&self, what: &str) -> Option<String> {
        (self.errors > 0).then(|| {
            format!(
                "{what}: {} of {} failed; first: {}",
                self.errors,
                self.errors + self.latencies.len(),
                self.first_error.as_deref().unwrap_or("?")
            )
        })
    }
}

/// The `p`th percentile (0–100) of sorted samples, nearest rank.
pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Runs `op(worker, index)` for indices `0..total` on `concurrency` workers, each taking the
/// next index as soon as its previous operation finished. Workers start nothing new after
/// `budget`; every operation is bounded by [`REQUEST_TIMEOUT`].
pub(crate) async fn closed_loop<F, Fut>(
    total: usize,
    concurrency: usize,
    budget: Duration,
    op: F,
) -> Outcome
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let deadline = start + budget;
    let mut workers = JoinSet::new();
    for worker in 0..concurrency.max(1) {
        let (op, next) = (op.clone(), next.clone());
        workers.spawn(async move {
            let mut out = Outcome::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    break;
                }
                if Instant::now() >= deadline {
                    out.record_error("run budget exhausted before this operation".into());
                    continue;
                }
                let sent = Instant::now();
                match tokio::time::timeout(REQUEST_TIMEOUT, op(worker, i)).await {
                    Ok(Ok(())) => out.latencies.push(sent.elapsed()),
                    Ok(Err(e)) => out.record_error(e),
                    Err(_) => out.record_error(format!("timed out after {REQUEST_TIMEOUT:?}")),
                }
            }
            out
        });
    }
    let mut total_out = Outcome::default();
    while let Some(joined) = workers.join_next().await {
        match joined {
            Ok(out) => total_out.merge(out),
            Err(e) => total_out.record_error(format!("worker failed: {e}")),
        }
    }
    total_out.finish(start.elapsed())
}

/// Sends `op(index)` for indices `0..count` at `rate` per second on a fixed schedule,
/// regardless of how fast earlier operations finish (open loop). Latency runs from the
/// scheduled send time to completion.
pub(crate) async fn open_loop<F, Fut>(rate: f64, count: usize, op: F) -> Outcome
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut inflight = JoinSet::new();
    for i in 0..count {
        let scheduled = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(scheduled).await;
        let fut = op(i);
        inflight.spawn(async move {
            match tokio::time::timeout_at(scheduled + REQUEST_TIMEOUT, fut).await {
                Ok(Ok(())) => Ok(scheduled.elapsed()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(format!("timed out after {REQUEST_TIMEOUT:?}")),
            }
        });
    }
    let mut out = Outcome::default();
    while let Some(joined) = inflight.join_next().await {
        match joined {
            Ok(Ok(latency)) => out.latencies.push(latency),
            Ok(Err(e)) => out.record_error(e),
            Err(e) => out.record_error(format!("request task failed: {e}")),
        }
    }
    out.finish(start.elapsed())
}

/// Latencies (sorted) and the first error of a set of samples gathered elsewhere.
pub(crate) fn from_samples(latencies: Vec<Duration>, elapsed: Duration) -> Outcome {
    Outcome {
        latencies,
        ..Outcome::default()
    }
    .finish(elapsed)
}
