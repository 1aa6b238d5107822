//! NodeResourcesBalancedAllocation: prefers nodes whose cpu and memory would be used in equal
//! fractions. Kubernetes 1.33 scores `(1 - std) * 100`, where for two resources the standard
//! deviation is `|cpuFraction - memoryFraction| / 2`; the seed's (Kubernetes ≤1.22) formula
//! `10 - abs(cpuFraction - memoryFraction) * 10`, scaled to 100, relates to it as
//! `k8s = (seed + 100) / 2`. Fractions use the real requests (no scoring defaults) and are
//! capped at 1; best-effort pods are not scored (Kubernetes #129138).

use crate::framework::{CycleState, Pre, ScorePlugin, MAX_NODE_SCORE};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};

use super::node_resources_fit::SCORE_RESOURCES;

/// The NodeResourcesBalancedAllocation score.
pub struct BalancedAllocation;

/// Kubernetes' `balancedResourceScorer` over (requested, allocatable) pairs.
pub fn balanced_score(pairs: &[(i64, i64)]) -> i64 {
    let fractions: Vec<f64> = pairs
        .iter()
        .filter(|(_, alloc)| *alloc != 0)
        .map(|(req, alloc)| (*req as f64 / *alloc as f64).min(1.0))
        .collect();
    let std = match fractions.len() {
        2 => ((fractions[0] - fractions[1]) / 2.0).abs(),
        n if n > 2 => {
            let mean = fractions.iter().sum::<f64>() / n as f64;
            (fractions
                .iter()
                .map(|f| (f - mean) * (f - mean))
                .sum::<f64>()
                / n as f64)
                .sqrt()
        }
        _ => 0.0,
    };
    ((1.0 - std) * MAX_NODE_SCORE as f64) as i64
}

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot, _: &[&NodeInfo]) -> Pre {
        let best_effort = SCORE_RESOURCES
            .iter()
            .all(|(r, _)| pod.requests.get(r) == 0);
        if best_effort {
            Pre::Skip
        } else {
            Pre::Run
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let pairs: Vec<(i64, i64)> = SCORE_RESOURCES
            .iter()
            .map(|(r, _)| {
                (
                    node.requested.get(r) + pod.requests.get(r),
                    node.allocatable.get(r),
                )
            })
            .collect();
        balanced_score(&pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod};

    /// The seed's BalancedResourceAllocation, scaled to 100.
    fn seed_balanced(cpu_fraction: f64, memory_fraction: f64) -> f64 {
        (10.0 - (cpu_fraction - memory_fraction).abs() * 10.0) * 10.0
    }

    #[test]
    fn balanced_allocation_scores() {
        let st = CycleState::default();
        let snap = Snapshot::default();
        let mut n = node("n", "4", "8Gi").info();
        n.add_pod(pod("a").container(container("c", "1", "1Gi")).info());
        let p = pod("p").container(container("c", "1", "1Gi")).info();
        // cpu 2/4 = 0.5, memory 2/8 = 0.25: std 0.125 → 87.
        let got = BalancedAllocation.score(&st, &p, &n, &snap);
        assert_eq!(got, 87);
        assert_eq!(got, ((seed_balanced(0.5, 0.25) + 100.0) / 2.0) as i64);
        // Equal fractions score 100 under both formulas.
        let even = pod("e").container(container("c", "2", "4Gi")).info();
        assert_eq!(
            BalancedAllocation.score(&st, &even, &node("m", "4", "8Gi").info(), &snap),
            100
        );
        assert_eq!(seed_balanced(0.5, 0.5), 100.0);
        // Fractions are capped at 1.
        assert_eq!(balanced_score(&[(8, 4), (0, 4)]), 50);
    }

    #[test]
    fn best_effort_pods_are_not_scored() {
        let mut st = CycleState::default();
        let snap = Snapshot::default();
        assert_eq!(
            BalancedAllocation.pre_score(&mut st, &pod("p").info(), &snap, &[]),
            Pre::Skip
        );
        let p = pod("p").container(container("c", "1", "")).info();
        assert_eq!(
            BalancedAllocation.pre_score(&mut st, &p, &snap, &[]),
            Pre::Run
        );
    }
}
