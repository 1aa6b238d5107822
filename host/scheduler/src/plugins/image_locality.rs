//! ImageLocality: prefers nodes that already hold the pod's images, weighting each image's size
//! by the fraction of nodes that have it (so a ubiquitous image does not pull every pod to one
//! node), clamped between 23 MiB and 1000 MiB per container, scaled to 0–100.

use crate::framework::{CycleState, Pre, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::{normalized_image_name, NodeInfo, PodInfo, Snapshot};

/// The ImageLocality score.
pub struct ImageLocality;

const MB: i64 = 1024 * 1024;
const TOTAL_NODES: &str = "ImageLocality/totalNodes";
const MIN_THRESHOLD: i64 = 23 * MB;
const MAX_CONTAINER_THRESHOLD: i64 = 1000 * MB;

/// Kubernetes' `calculatePriority`.
pub fn calculate_priority(sum: i64, num_containers: usize) -> i64 {
    let max = MAX_CONTAINER_THRESHOLD * num_containers as i64;
    let sum = sum.clamp(MIN_THRESHOLD, max.max(MIN_THRESHOLD));
    if max <= MIN_THRESHOLD {
        return 0;
    }
    MAX_NODE_SCORE * (sum - MIN_THRESHOLD) / (max - MIN_THRESHOLD)
}

impl ScorePlugin for ImageLocality {
    fn name(&self) -> &'static str {
        "ImageLocality"
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        _: &PodInfo,
        snapshot: &Snapshot,
        _: &[&NodeInfo],
    ) -> Pre {
        state.write(TOTAL_NODES, snapshot.num_nodes().max(1));
        Pre::Run
    }

    fn score(
        &self,
        state: &CycleState,
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> i64 {
        let Some(spec) = pod.pod.spec.as_ref() else {
            return 0;
        };
        let total_nodes = state.read::<usize>(TOTAL_NODES).copied().unwrap_or(1) as f64;
        let containers = spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers);
        let mut n = 0;
        let mut sum = 0;
        for c in containers {
            n += 1;
            let Some(image) = c.image.as_deref() else {
                continue;
            };
            let name = normalized_image_name(image);
            if let Some(size) = node.images.get(&name) {
                let spread = *snapshot.image_nodes.get(&name).unwrap_or(&1) as f64 / total_nodes;
                sum += (*size as f64 * spread) as i64;
            }
        }
        calculate_priority(sum, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod, snapshot};

    #[test]
    fn image_size_scaled_by_spread() {
        let with = node("a", "1", "1Gi").image("nginx:1.27", 500 * MB).build();
        let without = node("b", "1", "1Gi").build();
        let snap = snapshot(vec![with, without], vec![]);
        let p = pod("p").image("nginx:1.27").info();
        let mut st = CycleState::default();
        assert_eq!(ImageLocality.pre_score(&mut st, &p, &snap, &[]), Pre::Run);
        // 500 MiB on 1 of 2 nodes → 250 MiB; (250 - 23) * 100 / (1000 - 23) = 23.
        assert_eq!(
            ImageLocality.score(&st, &p, snap.get("a").unwrap(), &snap),
            23
        );
        assert_eq!(
            ImageLocality.score(&st, &p, snap.get("b").unwrap(), &snap),
            0
        );
        assert_eq!(normalized_image_name("nginx"), "nginx:latest");
        assert_eq!(
            normalized_image_name("reg:5000/nginx"),
            "reg:5000/nginx:latest"
        );
    }
}
