//! Scheduler filter plugin: dedicated nodes per tenant. A pod labelled
//! `tenant: <t>` may only run on nodes labelled `keelson.dev/tenant: <t>`; a pod
//! without the label stays off every node dedicated to a tenant. Both label
//! keys are configurable: `{"podLabel": "team", "nodeLabel": "example.com/team"}`.
//! Refusals are unresolvable (evicting pods would not change a node's labels).

use keelson_plugin_sdk::scheduler::{export_scheduler, FilterResult, NodeInfo, PodInfo, Scheduler};
use serde::Deserialize;

/// The plugin's `spec.config`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Config {
    /// The pod label naming its tenant.
    pod_label: String,
    /// The node label naming the tenant a node is dedicated to.
    node_label: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            pod_label: "tenant".into(),
            node_label: "keelson.dev/tenant".into(),
        }
    }
}

struct TenantNodes;

impl Scheduler for TenantNodes {
    fn filter(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<FilterResult> {
        let config: Config = match pod.config() {
            Ok(c) => c,
            // A broken config refuses every node, so the mistake shows in the pod's event.
            Err(e) => {
                return nodes
                    .iter()
                    .map(|_| FilterResult::unresolvable(&e))
                    .collect()
            }
        };
        let tenant = pod.label(&config.pod_label);
        nodes
            .iter()
            .map(|n| match (tenant, n.label(&config.node_label)) {
                (Some(t), Some(owner)) if t == owner => FilterResult::success(),
                (Some(t), _) => {
                    FilterResult::unresolvable(format!("node(s) not dedicated to tenant {t:?}"))
                }
                (None, Some(_)) => {
                    FilterResult::unresolvable("node(s) dedicated to another tenant")
                }
                (None, None) => FilterResult::success(),
            })
            .collect()
    }
}

export_scheduler!(TenantNodes);
