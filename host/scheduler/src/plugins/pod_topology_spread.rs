//! PodTopologySpread: `DoNotSchedule` constraints reject nodes where placing the pod would make
//! the count of matching pods in its domain exceed the global minimum by more than `maxSkew`
//! (honouring `minDomains`, `nodeAffinityPolicy`, `nodeTaintsPolicy`, `matchLabelKeys`);
//! `ScheduleAnyway` constraints score nodes lower the more matching pods their domains hold,
//! weighted by `ln(domains + 2)` and normalized as Kubernetes does. (Kubernetes' cluster-level
//! default constraints, applied to pods owned by Services/ReplicaSets, are not applied here.)

use std::collections::{HashMap, HashSet};

use k8s_openapi::api::core::v1::Taint;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::node_affinity::required_node_affinity_matches;
use crate::framework::{CycleState, FilterPlugin, Pre, ScorePlugin, Status, MAX_NODE_SCORE};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};
use crate::selectors::{optional_selector_matches, tolerated};

/// The PodTopologySpread filter and score.
pub struct PodTopologySpread;

/// `ErrReasonConstraintsNotMatch`.
pub const ERR_CONSTRAINTS: &str = "node(s) didn't match pod topology spread constraints";
/// `ErrReasonNodeLabelNotMatch`.
pub const ERR_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const FILTER_KEY: &str = "PodTopologySpread/filter";
const SCORE_KEY: &str = "PodTopologySpread/score";

struct Constraint {
    max_skew: i64,
    key: String,
    selector: Option<LabelSelector>,
    min_domains: i64,
    honor_affinity: bool,
    honor_taints: bool,
}

fn constraints(pod: &PodInfo, action: &str) -> Vec<Constraint> {
    let spec = pod.pod.spec.as_ref();
    let list = spec
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default();
    list.iter()
        .filter(|c| c.when_unsatisfiable == action)
        .map(|c| {
            let mut selector = c.label_selector.clone();
            if let Some(sel) = selector.as_mut() {
                for key in c.match_label_keys.iter().flatten() {
                    if let Some(v) = pod.labels().get(key) {
                        sel.match_expressions.get_or_insert_with(Vec::new).push(
                            LabelSelectorRequirement {
                                key: key.clone(),
                                operator: "In".into(),
                                values: Some(vec![v.clone()]),
                            },
                        );
                    }
                }
            }
            Constraint {
                max_skew: c.max_skew as i64,
                key: c.topology_key.clone(),
                selector,
                min_domains: c.min_domains.unwrap_or(1) as i64,
                honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
                honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
            }
        })
        .collect()
}

fn has_all_keys(cs: &[Constraint], node: &NodeInfo) -> bool {
    cs.iter().all(|c| node.labels().contains_key(&c.key))
}

fn included(c: &Constraint, pod: &PodInfo, node: &NodeInfo) -> bool {
    if c.honor_affinity && !required_node_affinity_matches(&pod.pod, node) {
        return false;
    }
    if c.honor_taints {
        let tols = pod
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default();
        let taints: &[Taint] = node
            .node()
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default();
        let blocked = taints
            .iter()
            .any(|t| (t.effect == "NoSchedule" || t.effect == "NoExecute") && !tolerated(tols, t));
        if blocked {
            return false;
        }
    }
    true
}

fn count_matching(c: &Constraint, pod: &PodInfo, node: &NodeInfo) -> i64 {
    node.pods
        .iter()
        .filter(|p| {
            !p.terminating()
                && p.namespace() == pod.namespace()
                && optional_selector_matches(c.selector.as_ref(), p.labels())
        })
        .count() as i64
}

struct FilterState {
    constraints: Vec<Constraint>,
    counts: HashMap<(usize, String), i64>,
    min: Vec<i64>,
    domains: Vec<usize>,
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_filter(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
    ) -> Result<Pre, Status> {
        let cs = constraints(pod, "DoNotSchedule");
        if cs.is_empty() {
            return Ok(Pre::Skip);
        }
        let mut counts: HashMap<(usize, String), i64> = HashMap::new();
        for node in snap.ready_nodes().filter(|n| has_all_keys(&cs, n)) {
            for (i, c) in cs.iter().enumerate() {
                if !included(c, pod, node) {
                    continue;
                }
                let v = node.labels()[&c.key].clone();
                *counts.entry((i, v)).or_default() += count_matching(c, pod, node);
            }
        }
        let min = (0..cs.len())
            .map(|i| {
                counts
                    .iter()
                    .filter(|((j, _), _)| *j == i)
                    .map(|(_, n)| *n)
                    .min()
                    .unwrap_or(0)
            })
            .collect();
        let domains = (0..cs.len())
            .map(|i| counts.keys().filter(|(j, _)| *j == i).count())
            .collect();
        state.write(
            FILTER_KEY,
            FilterState {
                constraints: cs,
                counts,
                min,
                domains,
            },
        );
        Ok(Pre::Run)
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status {
        let Some(st) = state.read::<FilterState>(FILTER_KEY) else {
            return Status::success();
        };
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(v) = node.labels().get(&c.key) else {
                return Status::unresolvable(ERR_LABEL);
            };
            let min = if (st.domains[i] as i64) < c.min_domains {
                0
            } else {
                st.min[i]
            };
            let own = optional_selector_matches(c.selector.as_ref(), pod.labels()) as i64;
            let matching = st.counts.get(&(i, v.clone())).copied().unwrap_or(0);
            if matching + own - min > c.max_skew {
                return Status::unschedulable(ERR_CONSTRAINTS);
            }
        }
        Status::success()
    }
}

struct ScoreState {
    constraints: Vec<Constraint>,
    counts: HashMap<(usize, String), i64>,
    weights: Vec<f64>,
    ignored: HashSet<String>,
}

impl ScorePlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn pre_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snap: &Snapshot,
        feasible: &[&NodeInfo],
    ) -> Pre {
        let cs = constraints(pod, "ScheduleAnyway");
        if cs.is_empty() {
            return Pre::Skip;
        }
        let mut ignored = HashSet::new();
        let mut counts: HashMap<(usize, String), i64> = HashMap::new();
        for node in feasible {
            if !has_all_keys(&cs, node) {
                ignored.insert(node.name.clone());
                continue;
            }
            for (i, c) in cs.iter().enumerate().filter(|(_, c)| c.key != HOSTNAME) {
                counts.insert((i, node.labels()[&c.key].clone()), 0);
            }
        }
        let weights = cs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let size = if c.key == HOSTNAME {
                    feasible.len() - ignored.len()
                } else {
                    counts.keys().filter(|(j, _)| *j == i).count()
                };
                ((size + 2) as f64).ln()
            })
            .collect();
        for node in snap.ready_nodes().filter(|n| has_all_keys(&cs, n)) {
            for (i, c) in cs.iter().enumerate().filter(|(_, c)| c.key != HOSTNAME) {
                if !included(c, pod, node) {
                    continue;
                }
                if let Some(n) = counts.get_mut(&(i, node.labels()[&c.key].clone())) {
                    *n += count_matching(c, pod, node);
                }
            }
        }
        state.write(
            SCORE_KEY,
            ScoreState {
                constraints: cs,
                counts,
                weights,
                ignored,
            },
        );
        Pre::Run
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, _: &Snapshot) -> i64 {
        let Some(st) = state.read::<ScoreState>(SCORE_KEY) else {
            return 0;
        };
        let mut score = 0.0;
        for (i, c) in st.constraints.iter().enumerate() {
            let Some(v) = node.labels().get(&c.key) else {
                continue;
            };
            let cnt = if c.key == HOSTNAME {
                count_matching(c, pod, node)
            } else {
                st.counts.get(&(i, v.clone())).copied().unwrap_or(0)
            };
            score += cnt as f64 * st.weights[i] + (c.max_skew - 1) as f64;
        }
        score.round() as i64
    }

    fn normalize(&self, state: &CycleState, nodes: &[&NodeInfo], scores: &mut [i64]) {
        let Some(st) = state.read::<ScoreState>(SCORE_KEY) else {
            return;
        };
        let kept = || {
            nodes
                .iter()
                .zip(scores.iter())
                .filter(|(n, _)| !st.ignored.contains(&n.name))
        };
        let min = kept().map(|(_, s)| *s).min().unwrap_or(0);
        let max = kept().map(|(_, s)| *s).max().unwrap_or(0);
        for (n, s) in nodes.iter().zip(scores.iter_mut()) {
            *s = if st.ignored.contains(&n.name) {
                0
            } else if max == 0 {
                MAX_NODE_SCORE
            } else {
                MAX_NODE_SCORE * (max + min - *s) / max
            };
        }
    }
}

#[cfg(test)]
mod tests;
