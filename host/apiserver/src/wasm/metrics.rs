//! Per-plugin metrics on `/metrics`: calls, errors by kind, and the latency histogram, read from
//! each running plugin version at scrape time.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;

use keelson_admission::plugins::wasm::WasmPlugins;

/// The collector registered on the server's registry.
pub(crate) struct PluginMetrics(pub(crate) Arc<WasmPlugins>);

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics").finish_non_exhaustive()
    }
}

/// A counter family: name, help, and how to read it from a snapshot.
type CounterFamily = (
    &'static str,
    &'static str,
    fn(&keelson_plugin_host::MetricsSnapshot) -> u64,
);

impl Collector for PluginMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let snapshots: Vec<_> = self
            .0
            .running()
            .into_iter()
            .map(|p| (p.name, p.metrics))
            .collect();
        let counters: [CounterFamily; 3] = [
            (
                "keelson_wasm_plugin_calls",
                "Calls into a Wasm plugin",
                |m| m.calls,
            ),
            (
                "keelson_wasm_plugin_errors",
                "Calls that failed (trap, deadline, memory limit, bad output)",
                |m| m.errors,
            ),
            (
                "keelson_wasm_plugin_timeouts",
                "Calls that hit their deadline",
                |m| m.timeouts,
            ),
        ];
        for (name, help, value) in counters {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (plugin, m) in &snapshots {
                ConstCounter::new(value(m))
                    .encode(family.encode_family(&[("plugin", plugin.as_str())])?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "keelson_wasm_plugin_call_duration_seconds",
            "Latency of calls into a Wasm plugin",
            None,
            MetricType::Histogram,
        )?;
        for (plugin, m) in &snapshots {
            // The snapshot's buckets are cumulative; the encoder wants per-bucket counts.
            let mut previous = 0;
            let buckets: Vec<(f64, u64)> = m
                .buckets
                .iter()
                .map(|(bound, cumulative)| {
                    let count = cumulative - previous;
                    previous = *cumulative;
                    (*bound, count)
                })
                .collect();
            family
                .encode_family(&[("plugin", plugin.as_str())])?
                .encode_histogram::<Vec<(String, String)>>(
                    m.latency_sum_seconds,
                    m.calls,
                    &buckets,
                    None,
                )?;
        }
        Ok(())
    }
}
