//! Scheduler plugin. Filter: refuses nodes labelled `keelson.dev/no-wasm`
//! (any value), unresolvably. Score: a node carrying the configured label
//! (`{"preferLabel": {"key": "disk", "value": "ssd"}}`; an empty value
//! matches any) scores 100; other nodes score by their free memory, 0 to
//! `otherMax` (default 50) in proportion to the freest node's.

use keelson_plugin_sdk::scheduler::{export_scheduler, FilterResult, NodeInfo, PodInfo, Scheduler};
use serde::Deserialize;

/// The label that keeps every pod off a node.
const NO_WASM: &str = "keelson.dev/no-wasm";

/// The plugin's `spec.config`.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Config {
    /// Nodes with this label score highest.
    prefer_label: Option<PreferLabel>,
    /// Highest score of a node without the label.
    other_max: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PreferLabel {
    key: String,
    value: String,
}

struct PreferNodes;

impl Scheduler for PreferNodes {
    fn filter(_pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<FilterResult> {
        nodes
            .iter()
            .map(|n| match n.label(NO_WASM) {
                Some(_) => FilterResult::unresolvable(format!("node(s) had label {NO_WASM}")),
                None => FilterResult::success(),
            })
            .collect()
    }

    fn score(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<u32> {
        let config: Config = pod.config().unwrap_or_default();
        let other_max = config.other_max.unwrap_or(50).min(100) as u64;
        let free = |n: &NodeInfo| {
            n.allocatable
                .memory_bytes
                .saturating_sub(n.requested.memory_bytes)
        };
        let most_free = nodes.iter().map(free).max().unwrap_or(0).max(1);
        nodes
            .iter()
            .map(|n| {
                let preferred = config.prefer_label.as_ref().is_some_and(|p| {
                    n.label(&p.key)
                        .is_some_and(|v| p.value.is_empty() || v == p.value)
                });
                if preferred {
                    100
                } else {
                    (free(n) * other_max / most_free) as u32
                }
            })
            .collect()
    }
}

export_scheduler!(PreferNodes);
