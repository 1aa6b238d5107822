//! The built-in plugins, one file each, and the Kubernetes 1.33 default profile that orders the
//! filters and weights the scores.

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

/// Kubernetes 1.33's default profile: filters in its order (NodeUnschedulable, NodeName,
/// TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit, PodTopologySpread,
/// InterPodAffinity) and scores with its weights (TaintToleration 3, NodeAffinity 2,
/// NodeResourcesFit 1, PodTopologySpread 2, InterPodAffinity 2,
/// NodeResourcesBalancedAllocation 1, ImageLocality 1). Volume plugins are not built in.
pub fn default_profile(scheduler_name: &str, percentage_of_nodes_to_score: u32) -> Profile {
    let filters: Vec<Box<dyn FilterPlugin>> = vec![
        Box::new(node_unschedulable::NodeUnschedulable),
        Box::new(node_name::NodeName),
        Box::new(taint_toleration::TaintToleration),
        Box::new(node_affinity::NodeAffinity),
        Box::new(node_ports::NodePorts),
        Box::new(node_resources_fit::NodeResourcesFit),
        Box::new(pod_topology_spread::PodTopologySpread),
        Box::new(inter_pod_affinity::InterPodAffinity),
    ];
    let scores: Vec<(Box<dyn ScorePlugin>, i64)> = vec![
        (Box::new(taint_toleration::TaintToleration), 3),
        (Box::new(node_affinity::NodeAffinity), 2),
        (Box::new(node_resources_fit::NodeResourcesFit), 1),
        (Box::new(pod_topology_spread::PodTopologySpread), 2),
        (Box::new(inter_pod_affinity::InterPodAffinity), 2),
        (Box::new(balanced_allocation::BalancedAllocation), 1),
        (Box::new(image_locality::ImageLocality), 1),
    ];
    Profile {
        scheduler_name: scheduler_name.to_string(),
        filters,
        scores,
        percentage_of_nodes_to_score,
    }
}
