//! NodeAffinity: `spec.nodeSelector` and required node-affinity terms decide where a pod may go
//! (the seed's MatchNodeSelector); preferred terms add their weights to a node's score, which
//! is then normalized to 0–100.

use k8s_openapi::api::core::v1::{NodeAffinity as Affinity, Pod};

use crate::framework::{
    default_normalize_score, CycleState, FilterPlugin, Pre, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};
use crate::selectors::{node_selector_term_matches, node_selector_terms_match};

/// The NodeAffinity filter and score.
pub struct NodeAffinity;

/// Kubernetes' `ErrReasonPod`.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

fn affinity(pod: &Pod) -> Option<&Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()?.node_affinity.as_ref()
}

/// Does the node satisfy the pod's nodeSelector and required node affinity
/// (Kubernetes' `GetRequiredNodeAffinity(pod).Match(node)`)?
pub fn required_node_affinity_matches(pod: &Pod, node: &NodeInfo) -> bool {
    let labels = node.labels();
    let selector_ok = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_selector.as_ref())
        .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
    selector_ok
        && affinity(pod)
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .is_none_or(|req| node_selector_terms_match(&req.node_selector_terms, node.node()))
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        if required_node_affinity_matches(&pod.pod, node) {
            Status::success()
        } else {
            Status::unresolvable(ERR_REASON_POD)
        }
    }
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn pre_score(&self, _: &mut CycleState, pod: &PodInfo, _: &Snapshot, _: &[&NodeInfo]) -> Pre {
        let preferred = affinity(&pod.pod).and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        });
        if preferred.is_none_or(|p| p.is_empty()) {
            Pre::Skip
        } else {
            Pre::Run
        }
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        affinity(&pod.pod)
            .and_then(|a| {
                a.preferred_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .into_iter()
            .flatten()
            .filter(|t| t.weight != 0 && node_selector_term_matches(&t.preference, node.node()))
            .map(|t| t.weight as i64)
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &[&NodeInfo], scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, node_term, pod};
    use k8s_openapi::api::core::v1::{
        Affinity as PodAffinitySpec, NodeSelector, PreferredSchedulingTerm,
    };

    #[test]
    fn node_selector_and_required_terms_filter() {
        let st = CycleState::default();
        let ssd = node("a", "1", "1Gi")
            .label("disk", "ssd")
            .label("zone", "z1")
            .info();
        let hdd = node("b", "1", "1Gi").label("disk", "hdd").info();
        let p = pod("p").node_selector("disk", "ssd").info();
        assert!(FilterPlugin::filter(&NodeAffinity, &st, &p, &ssd).is_success());
        assert_eq!(
            FilterPlugin::filter(&NodeAffinity, &st, &p, &hdd),
            Status::unresolvable(ERR_REASON_POD)
        );
        let req = pod("q")
            .affinity(PodAffinitySpec {
                node_affinity: Some(Affinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: vec![node_term("zone", "In", &["z1", "z2"])],
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .info();
        assert!(FilterPlugin::filter(&NodeAffinity, &st, &req, &ssd).is_success());
        assert!(!FilterPlugin::filter(&NodeAffinity, &st, &req, &hdd).is_success());
    }

    #[test]
    fn preferred_terms_score_by_weight_then_normalize() {
        let st = CycleState::default();
        let snap = Snapshot::default();
        let pref = |w, k: &str, v: &str| PreferredSchedulingTerm {
            weight: w,
            preference: node_term(k, "In", &[v]),
        };
        let p = pod("p")
            .affinity(PodAffinitySpec {
                node_affinity: Some(Affinity {
                    preferred_during_scheduling_ignored_during_execution: Some(vec![
                        pref(20, "disk", "ssd"),
                        pref(60, "zone", "z1"),
                    ]),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .info();
        let nodes = [
            node("a", "1", "1Gi")
                .label("disk", "ssd")
                .label("zone", "z1")
                .info(),
            node("b", "1", "1Gi").label("disk", "ssd").info(),
            node("c", "1", "1Gi").info(),
        ];
        let mut scores: Vec<i64> = nodes
            .iter()
            .map(|n| NodeAffinity.score(&st, &p, n, &snap))
            .collect();
        assert_eq!(scores, [80, 20, 0]);
        NodeAffinity.normalize(&st, &[], &mut scores);
        assert_eq!(scores, [100, 25, 0]);
    }
}
