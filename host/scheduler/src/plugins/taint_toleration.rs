//! TaintToleration: a node's `NoSchedule`/`NoExecute` taints keep out pods that do not
//! tolerate them (filter); `PreferNoSchedule` taints a pod does not tolerate lower the node's
//! score (counted, then normalized in reverse).

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::framework::{
    default_normalize_score, CycleState, FilterPlugin, ScorePlugin, Status, MAX_NODE_SCORE,
};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};
use crate::selectors::tolerated;

/// The TaintToleration filter and score.
pub struct TaintToleration;

fn taints(node: &NodeInfo) -> &[Taint] {
    node.node()
        .spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

fn tolerations(pod: &PodInfo) -> &[Toleration] {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn filter(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let tols = tolerations(pod);
        let untolerated = taints(node)
            .iter()
            .find(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tols, t));
        match untolerated {
            None => Status::success(),
            Some(t) => Status::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                t.key,
                t.value.as_deref().unwrap_or("")
            )),
        }
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn score(&self, _: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        // Only tolerations with an empty or PreferNoSchedule effect count here.
        let tols: Vec<Toleration> = tolerations(pod)
            .iter()
            .filter(|t| {
                matches!(
                    t.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .cloned()
            .collect();
        taints(node)
            .iter()
            .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(&tols, t))
            .count() as i64
    }

    fn normalize(&self, _: &CycleState, _: &[&NodeInfo], scores: &mut [i64]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{node, pod, toleration};

    #[test]
    fn untolerated_no_schedule_taint_is_named_in_the_reason() {
        let n = node("n", "1", "1Gi")
            .taint("dedicated", "gpu", "NoSchedule")
            .info();
        let st = CycleState::default();
        assert_eq!(
            FilterPlugin::filter(&TaintToleration, &st, &pod("p").info(), &n),
            Status::unresolvable("node(s) had untolerated taint {dedicated: gpu}")
        );
        let tolerant = pod("p")
            .toleration(toleration("dedicated", "Equal", "gpu", ""))
            .info();
        assert!(FilterPlugin::filter(&TaintToleration, &st, &tolerant, &n).is_success());
        // PreferNoSchedule never filters.
        let soft = node("s", "1", "1Gi")
            .taint("a", "b", "PreferNoSchedule")
            .info();
        assert!(FilterPlugin::filter(&TaintToleration, &st, &pod("p").info(), &soft).is_success());
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let snap = Snapshot::default();
        let st = CycleState::default();
        let p = pod("p")
            .toleration(toleration("x", "Exists", "", "PreferNoSchedule"))
            .info();
        let clean = node("a", "1", "1Gi").info();
        let one = node("b", "1", "1Gi")
            .taint("y", "1", "PreferNoSchedule")
            .info();
        let two = node("c", "1", "1Gi")
            .taint("y", "1", "PreferNoSchedule")
            .taint("z", "1", "PreferNoSchedule")
            .taint("x", "1", "PreferNoSchedule")
            .info();
        let mut scores: Vec<i64> = [&clean, &one, &two]
            .iter()
            .map(|n| TaintToleration.score(&st, &p, n, &snap))
            .collect();
        assert_eq!(scores, [0, 1, 2]);
        TaintToleration.normalize(&st, &[], &mut scores);
        assert_eq!(scores, [100, 50, 0]);
    }
}
