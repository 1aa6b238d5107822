//! Micro benchmark of instantiate and call costs, for `keelson bench admission`
//! and the ignored `bench` test.

use std::fmt;
use std::time::{Duration, Instant};

use crate::admission::{to_wit, AdmissionPlugin, AdmissionRequest};
use crate::{output, Error};

/// Latency percentiles of one phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Slowest sample.
    pub max: Duration,
}

/// Costs of `iterations` `validate` calls, each on a fresh instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BenchReport {
    /// Samples taken.
    pub iterations: usize,
    /// New store (WASI context, limits) plus instantiation from `InstancePre`.
    pub instantiate: Percentiles,
    /// `validate` itself: lowering the request, guest code, lifting and checking the verdict.
    pub call: Percentiles,
    /// Everything, including dropping the store (returning the pool slot).
    pub total: Percentiles,
}

impl AdmissionPlugin {
    /// Calls `validate` `iterations` times (after 10 warm-up calls) and reports
    /// the instantiate, call and total costs. Metrics are not updated.
    pub fn bench(&self, req: &AdmissionRequest, iterations: usize) -> Result<BenchReport, Error> {
        crate::admission::block_on(self.bench_async(req, iterations))
    }

    /// [`bench`](Self::bench) from async code.
    pub async fn bench_async(
        &self,
        req: &AdmissionRequest,
        iterations: usize,
    ) -> Result<BenchReport, Error> {
        let req = to_wit(req);
        let (mut inst, mut call, mut total) = (vec![], vec![], vec![]);
        for i in 0..iterations + 10 {
            let t0 = Instant::now();
            let (mut store, instance) = self.inner.instantiate().await?;
            let t1 = Instant::now();
            let raw = instance
                .call_validate(&mut store, &req)
                .await
                .map_err(|e| self.inner.classify(e, &store))?;
            output::verdict(raw)?;
            let t2 = Instant::now();
            drop(store);
            let t3 = Instant::now();
            if i >= 10 {
                inst.push(t1 - t0);
                call.push(t2 - t1);
                total.push(t3 - t0);
            }
        }
        Ok(BenchReport {
            iterations,
            instantiate: percentiles(inst),
            call: percentiles(call),
            total: percentiles(total),
        })
    }
}

fn percentiles(mut samples: Vec<Duration>) -> Percentiles {
    if samples.is_empty() {
        return Percentiles::default();
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    Percentiles {
        p50: at(0.50),
        p99: at(0.99),
        max: samples[samples.len() - 1],
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, name: &str, p: &Percentiles| {
            writeln!(
                f,
                "{name:<12} p50 {:>9.1?}  p99 {:>9.1?}  max {:>9.1?}",
                p.p50, p.p99, p.max
            )
        };
        writeln!(f, "{} calls", self.iterations)?;
        row(f, "instantiate", &self.instantiate)?;
        row(f, "call", &self.call)?;
        row(f, "total", &self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_ranks() {
        let samples = (1..=100).map(Duration::from_micros).collect();
        let p = percentiles(samples);
        assert_eq!(p.p50, Duration::from_micros(50));
        assert_eq!(p.p99, Duration::from_micros(99));
        assert_eq!(p.max, Duration::from_micros(100));
    }
}
