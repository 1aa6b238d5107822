//! The built-in plugins, one file each, the registry that finds them by their Kubernetes names,
//! and the Kubernetes 1.33 default profile that orders the filters and weights the scores.

pub mod balanced_allocation;
pub mod image_locality;
pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources_fit;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod taint_toleration;

use crate::framework::{FilterPlugin, Profile, ScorePlugin};

/// The scheduler name of the default profile.
pub const DEFAULT_SCHEDULER_NAME: &str = "default-scheduler";

/// Kubernetes 1.33's default filters, in order (volume plugins are not built in).
pub const DEFAULT_FILTERS: [&str; 8] = [
    "NodeUnschedulable",
    "NodeName",
    "TaintToleration",
    "NodeAffinity",
    "NodePorts",
    "NodeResourcesFit",
    "PodTopologySpread",
    "InterPodAffinity",
];

/// Kubernetes 1.33's default scores with their weights.
pub const DEFAULT_SCORES: [(&str, i64); 7] = [
    ("TaintToleration", 3),
    ("NodeAffinity", 2),
    ("NodeResourcesFit", 1),
    ("PodTopologySpread", 2),
    ("InterPodAffinity", 2),
    ("NodeResourcesBalancedAllocation", 1),
    ("ImageLocality", 1),
];

/// The built-in filter plugin of that name.
pub fn filter_plugin(name: &str) -> Option<Box<dyn FilterPlugin>> {
    Some(match name {
        "NodeUnschedulable" => Box::new(node_unschedulable::NodeUnschedulable),
        "NodeName" => Box::new(node_name::NodeName),
        "TaintToleration" => Box::new(taint_toleration::TaintToleration),
        "NodeAffinity" => Box::new(node_affinity::NodeAffinity),
        "NodePorts" => Box::new(node_ports::NodePorts),
        "NodeResourcesFit" => Box::new(node_resources_fit::NodeResourcesFit),
        "PodTopologySpread" => Box::new(pod_topology_spread::PodTopologySpread),
        "InterPodAffinity" => Box::new(inter_pod_affinity::InterPodAffinity),
        _ => return None,
    })
}

/// The built-in score plugin of that name.
pub fn score_plugin(name: &str) -> Option<Box<dyn ScorePlugin>> {
    Some(match name {
        "TaintToleration" => Box::new(taint_toleration::TaintToleration),
        "NodeAffinity" => Box::new(node_affinity::NodeAffinity),
        "NodeResourcesFit" => Box::new(node_resources_fit::NodeResourcesFit),
        "PodTopologySpread" => Box::new(pod_topology_spread::PodTopologySpread),
        "InterPodAffinity" => Box::new(inter_pod_affinity::InterPodAffinity),
        "NodeResourcesBalancedAllocation" => Box::new(balanced_allocation::BalancedAllocation),
        "ImageLocality" => Box::new(image_locality::ImageLocality),
        _ => return None,
    })
}

/// Kubernetes 1.33's default profile under `scheduler_name`.
pub fn default_profile(scheduler_name: &str, percentage_of_nodes_to_score: u32) -> Profile {
    Profile {
        scheduler_name: scheduler_name.to_string(),
        filters: DEFAULT_FILTERS
            .iter()
            .filter_map(|n| filter_plugin(n))
            .collect(),
        scores: DEFAULT_SCORES
            .iter()
            .filter_map(|(n, w)| score_plugin(n).map(|p| (p, *w)))
            .collect(),
        percentage_of_nodes_to_score,
    }
}
