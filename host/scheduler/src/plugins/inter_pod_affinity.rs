//! InterPodAffinity: required pod affinity and anti-affinity (the incoming pod's terms and the
//! existing pods' anti-affinity terms against it) filter nodes by topology domain; preferred
//! terms of both sides, plus existing pods' required affinity at `hardPodAffinityWeight` 1,
//! score each domain, normalized by min/max to 0–100.

use std::collections::HashMap;

use crate::framework::{CycleState, FilterPlugin, Pre, ScorePlugin, Status, MAX_NODE_SCORE};
use crate::node_info::{AffinityTerm, NodeInfo, PodInfo, Snapshot};
use crate::selectors::Labels;

/// The InterPodAffinity filter and score.
pub struct InterPodAffinity;

/// `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const ERR_EXISTING_ANTI_AFFINITY: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";
/// `ErrReasonAffinityRulesNotMatch`.
pub const ERR_AFFINITY: &str = "node(s) didn't match pod affinity rules";
/// `ErrReasonAntiAffinityRulesNotMatch`.
pub const ERR_ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";

const HARD_POD_AFFINITY_WEIGHT: i64 = 1;
const FILTER_KEY: &str = "InterPodAffinity/filter";
const SCORE_KEY: &str = "InterPodAffinity/score";

/// (topology key, value) → count or score.
type TopologyCounts = HashMap<(String, String), i64>;

struct FilterState {
    existing_anti_affinity: TopologyCounts,
    affinity: TopologyCounts,
    anti_affinity: TopologyCounts,
}

fn bump(m: &mut TopologyCounts, node: &NodeInfo, key: &str, by: i64) {
    if let Some(v) = node.labels().get(key) {
        *m.entry((key.to_string(), v.clone())).or_default() += by;
    }
}

fn matches_all(terms: &[AffinityTerm], pod: &PodInfo, ns: &HashMap<String, Labels>) -> bool {
    !terms.is_empty() && terms.iter().all(|t| t.matches(&pod.pod, ns))
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> Result<Pre, Status> {
        let ns = &snap.namespace_labels;
        let mut st = FilterState {
            existing_anti_affinity: TopologyCounts::new(),
            affinity: TopologyCounts::new(),
            anti_affinity: TopologyCounts::new(),
        };
        let own = !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty();
        for node in snap.ready_nodes() {
            if !own && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in &node.pods {
                for t in &existing.required_anti_affinity {
                    if t.matches(&pod.pod, ns) {
                        bump(&mut st.existing_anti_affinity, node, &t.topology_key, 1);
                    }
                }
                if matches_all(&pod.required_affinity, existing, ns) {
                    for t in &pod.required_affinity {
                        bump(&mut st.affinity, node, &t.topology_key, 1);
                    }
                }
                for t in &pod.required_anti_affinity {
                    if t.matches(&existing.pod, ns) {
                        bump(&mut st.anti_affinity, node, &t.topology_key, 1);
                    }
                }
            }
        }
        if !own && st.existing_anti_affinity.is_empty() {
            return Ok(Pre::Skip);
        }
        state.write(FILTER_KEY, st);
        Ok(Pre::Run)
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::success();
        };
        let labels = node.labels();
        let has = |m: &TopologyCounts, k: &str, v: &str| {
            m.get(&(k.to_string(), v.to_string()))
                .is_some_and(|c| *c > 0)
        };
        if labels
            .iter()
            .any(|(k, v)| has(&st.existing_anti_affinity, k, v))
        {
            return Status::unschedulable(ERR_EXISTING_ANTI_AFFINITY);
        }
        let mut pods_exist = true;
        for t in &pod.required_affinity {
            match labels.get(&t.topology_key) {
                None => return Status::unresolvable(ERR_AFFINITY),
                Some(v) => pods_exist &= has(&st.affinity, &t.topology_key, v),
            }
        }
        if !pods_exist {
            // The first pod of a group that has affinity to itself may go anywhere its
            // topology keys exist.
            let empty = HashMap::new();
            let first = st.affinity.is_empty() && matches_all(&pod.required_affinity, pod, &empty);
            if !first {
                return Status::unresolvable(ERR_AFFINITY);
            }
        }
        for t in &pod.required_anti_affinity {
            if let Some(v) = labels.get(&t.topology_key) {
                if has(&st.anti_affinity, &t.topology_key, v) {
                    return Status::unschedulable(ERR_ANTI_AFFINITY);
                }
            }
        }
        Status::success()
    }
}

fn process(
    m: &mut TopologyCounts,
    terms: &[AffinityTerm],
    target: &PodInfo,
    node: &NodeInfo,
    ns: &HashMap<String, Labels>,
    sign: i64,
) {
    for t in terms {
        if t.matches(&target.pod, ns) {
            bump(m, node, &t.topology_key, t.weight * sign);
        }
    }
}

impl ScorePlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        _: &[&NodeInfo],
    ) -> Pre {
        let own = !pod.preferred_affinity.is_empty() || !pod.preferred_anti_affinity.is_empty();
        if !own && snap.ready_nodes().all(|n| n.pods_with_affinity == 0) {
            return Pre::Skip;
        }
        let ns = &snap.namespace_labels;
        let mut m = TopologyCounts::new();
        for node in snap.ready_nodes() {
            if !own && node.pods_with_affinity == 0 {
                continue;
            }
            for existing in node.pods.iter().filter(|p| own || p.has_affinity()) {
                process(&mut m, &pod.preferred_affinity, existing, node, ns, 1);
                process(&mut m, &pod.preferred_anti_affinity, existing, node, ns, -1);
                for t in &existing.required_affinity {
                    if t.matches(&pod.pod, ns) {
                        bump(&mut m, node, &t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                    }
                }
                process(&mut m, &existing.preferred_affinity, pod, node, ns, 1);
                process(&mut m, &existing.preferred_anti_affinity, pod, node, ns, -1);
            }
        }
        state.write(SCORE_KEY, m);
        Pre::Run
    }

    fn score(&self, state: &CycleState, _: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let Some(m) = state.read::<TopologyCounts>(SCORE_KEY) else {
            return 0;
        };
        node.labels()
            .iter()
            .filter_map(|(k, v)| m.get(&(k.clone(), v.clone())))
            .sum()
    }

    fn normalize(&self, _: &CycleState, _: &[&NodeInfo], scores: &mut [i64]) {
        let min = scores.iter().copied().min().unwrap_or(0);
        let max = scores.iter().copied().max().unwrap_or(0);
        let diff = max - min;
        for s in scores.iter_mut() {
            *s = if diff > 0 {
                (MAX_NODE_SCORE as f64 * ((*s - min) as f64 / diff as f64)) as i64
            } else {
                0
            };
        }
    }
}

#[cfg(test)]
mod tests;
