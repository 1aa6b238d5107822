//! NodeResourcesFit: the pod's requests must fit in what the node has left (the seed's
//! PodFitsResources: cpu, memory, ephemeral-storage, the pod count and extended resources);
//! its score is the seed's LeastRequested priority on Kubernetes' 0–100 scale,
//! `(cpu((capacity - sum) * 100 / capacity) + memory((capacity - sum) * 100 / capacity)) / 2`
//! (Kubernetes' `LeastAllocated` strategy with cpu and memory weighted 1 each), where `sum`
//! counts the scoring defaults (100m, 200Mi) for containers without requests.

use crate::framework::{CycleState, FilterPlugin, ScorePlugin, Status, MAX_NODE_SCORE};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};
use crate::resources::{CPU, EPHEMERAL_STORAGE, MEMORY};

/// The NodeResourcesFit filter and its LeastAllocated score.
pub struct NodeResourcesFit;

/// One score resource with its weight (Kubernetes' `ResourceSpec`).
pub(crate) const SCORE_RESOURCES: [(&str, i64); 2] = [(CPU, 1), (MEMORY, 1)];

/// Kubernetes' `leastRequestedScore`: the free fraction of the node, 0–100.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let mut reasons = Vec::new();
        let mut unresolvable = false;
        let allowed = node.allocatable.allowed_pods;
        if node.pods.len() as i64 + 1 > allowed {
            reasons.push("Too many pods".to_string());
        }
        let req = &pod.requests;
        if !req.is_zero() {
            let mut check = |name: &str, want: i64| {
                let alloc = node.allocatable.get(name);
                if want > 0 && want > alloc - node.requested.get(name) {
                    reasons.push(format!("Insufficient {name}"));
                    unresolvable |= want > alloc;
                }
            };
            check(CPU, req.milli_cpu);
            check(MEMORY, req.memory);
            check(EPHEMERAL_STORAGE, req.ephemeral_storage);
            for (name, want) in &req.scalar {
                check(name, *want);
            }
        }
        match (reasons.is_empty(), unresolvable) {
            (true, _) => Status::success(),
            (false, false) => Status {
                reasons,
                ..Status::unschedulable("")
            },
            (false, true) => Status {
                reasons,
                ..Status::unresolvable("")
            },
        }
    }
}

impl ScorePlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let (mut total, mut weights) = (0, 0);
        for (name, weight) in SCORE_RESOURCES {
            let alloc = node.allocatable.get(name);
            if alloc == 0 {
                continue;
            }
            let requested = node.non_zero_requested.get(name) + pod.non_zero_requests.get(name);
            total += least_requested_score(requested, alloc) * weight;
            weights += weight;
        }
        if weights == 0 {
            0
        } else {
            total / weights
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{container, node, pod, ContainerExt};

    const GI: i64 = 1024 * 1024 * 1024;

    #[test]
    fn insufficient_resources_are_listed_in_kubernetes_words() {
        let st = CycleState::default();
        let mut n = node("n", "2", "4Gi")
            .pods(2)
            .scalar("example.com/gpu", "1")
            .info();
        n.add_pod(pod("a").container(container("c", "1500m", "1Gi")).info());
        let big = pod("p").container(container("c", "1", "1Gi")).info();
        assert_eq!(
            NodeResourcesFit.filter(&st, &big, &n),
            Status::unschedulable("Insufficient cpu")
        );
        let huge = pod("p").container(container("c", "3", "5Gi")).info();
        let s = NodeResourcesFit.filter(&st, &huge, &n);
        assert_eq!(s.reasons, ["Insufficient cpu", "Insufficient memory"]);
        // Larger than the whole node: preemption cannot help.
        assert_eq!(s.code, crate::framework::Code::UnschedulableAndUnresolvable);
        let gpus = pod("p")
            .container(container("c", "", "").scalar("example.com/gpu", "2"))
            .info();
        assert_eq!(
            NodeResourcesFit.filter(&st, &gpus, &n).reasons,
            ["Insufficient example.com/gpu"]
        );
        let other = pod("p")
            .container(container("c", "", "").scalar("example.com/fpga", "1"))
            .info();
        assert_eq!(
            NodeResourcesFit.filter(&st, &other, &n).reasons,
            ["Insufficient example.com/fpga"]
        );
        n.add_pod(pod("b").info());
        assert_eq!(
            NodeResourcesFit.filter(&st, &pod("p").info(), &n).reasons,
            ["Too many pods"]
        );
    }

    #[test]
    fn ephemeral_storage_is_checked() {
        let st = CycleState::default();
        let n = node("n", "2", "4Gi").ephemeral("10Gi").info();
        let p = pod("p")
            .container(container("c", "", "").ephemeral("20Gi"))
            .info();
        assert_eq!(
            NodeResourcesFit.filter(&st, &p, &n).reasons,
            ["Insufficient ephemeral-storage"]
        );
    }

    /// The seed's LeastRequested formula, on Kubernetes' 0–100 scale, with integer division.
    fn seed_least_requested(cap_cpu: i64, sum_cpu: i64, cap_mem: i64, sum_mem: i64) -> i64 {
        ((cap_cpu - sum_cpu) * 100 / cap_cpu + (cap_mem - sum_mem) * 100 / cap_mem) / 2
    }

    #[test]
    fn least_allocated_follows_the_seed_formula() {
        let st = CycleState::default();
        let snap = Snapshot::default();
        let mut n = node("n", "4", "10Gi").info();
        n.add_pod(pod("a").container(container("c", "1", "2Gi")).info());
        let p = pod("p").container(container("c", "500m", "1Gi")).info();
        let got = ScorePlugin::score(&NodeResourcesFit, &st, &p, &n, &snap);
        assert_eq!(got, seed_least_requested(4000, 1500, 10 * GI, 3 * GI));
        assert_eq!(got, (62 + 70) / 2);
        // A container without requests counts as 100m and 200Mi.
        let empty = node("e", "1", "1Gi").info();
        let q = pod("q").container(container("c", "", "")).info();
        let got = ScorePlugin::score(&NodeResourcesFit, &st, &q, &empty, &snap);
        assert_eq!(got, seed_least_requested(1000, 100, GI, 200 * 1024 * 1024));
        // Over-committed nodes score 0 for that resource.
        assert_eq!(least_requested_score(5, 4), 0);
    }
}
