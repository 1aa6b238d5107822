//! A scheduling profile and its algorithm (Kubernetes' `schedulePod`): PreFilter, Filter over
//! the nodes from a rotating start until `percentageOfNodesToScore` feasible ones are found,
//! PreScore/Score/NormalizeScore with weights, and the highest total with ties broken at random.

use rand::Rng;

use super::diagnosis::{FitError, ScheduleError};
use super::preemption::Preemption;
use super::{CycleState, FilterPlugin, Pre, ScorePlugin, Status, MAX_NODE_SCORE};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};

/// Below this many nodes every node is evaluated (`minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: i64 = 5;

/// How many feasible nodes to find before scoring (Kubernetes' `numFeasibleNodesToFind`):
/// all of them below 100 nodes; otherwise `percentage` of them, where 0 means adaptive
/// (`50 - nodes/125`, at least 5%), and never fewer than 100.
pub fn num_feasible_nodes_to_find(percentage: u32, num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let mut pct = percentage as i64;
    if pct == 0 {
        pct = (50 - num_all_nodes as i64 / 125).max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    }
    let n = (num_all_nodes as i64 * pct / 100) as usize;
    n.max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Where a pod goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduleResult {
    /// The chosen node.
    pub node: String,
    /// Nodes the filters looked at.
    pub evaluated: usize,
    /// Nodes that passed the filters.
    pub feasible: usize,
}

/// The built-in plugins' answer for one pod: the feasible nodes and their scores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidates {
    /// Feasible node names.
    pub nodes: Vec<String>,
    /// Weighted total score per feasible node (same order).
    pub totals: Vec<i64>,
    /// Nodes the filters looked at.
    pub evaluated: usize,
    /// Nodes that failed a filter, with its status.
    pub failed: Vec<(String, Status)>,
    /// Nodes in the cluster.
    pub num_all_nodes: usize,
}

/// A named set of plugins with score weights (one `KubeSchedulerConfiguration` profile).
pub struct Profile {
    /// The `schedulerName` pods use to pick this profile.
    pub scheduler_name: String,
    /// Filter plugins, in order.
    pub filters: Vec<Box<dyn FilterPlugin>>,
    /// Score plugins with their weights.
    pub scores: Vec<(Box<dyn ScorePlugin>, i64)>,
    /// `percentageOfNodesToScore` (0 = adaptive).
    pub percentage_of_nodes_to_score: u32,
}

impl Profile {
    /// Runs every filter on one node, stopping at the first failure.
    pub(crate) fn run_filters(
        &self,
        state: &CycleState,
        skip: &[bool],
        pod: &PodInfo,
        node: &NodeInfo,
    ) -> Status {
        for (i, f) in self.filters.iter().enumerate() {
            if skip[i] {
                continue;
            }
            let mut status = f.filter(state, pod, node);
            if !status.is_success() {
                status.plugin = f.name();
                return status;
            }
        }
        Status::success()
    }

    /// Runs the PreFilter steps; returns which filters to skip.
    fn run_pre_filters(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
    ) -> Result<Vec<bool>, Status> {
        let mut skip = Vec::with_capacity(self.filters.len());
        for f in &self.filters {
            match f.pre_filter(state, pod, snapshot) {
                Ok(Pre::Run) => skip.push(false),
                Ok(Pre::Skip) => skip.push(true),
                Err(mut status) => {
                    status.plugin = f.name();
                    return Err(status);
                }
            }
        }
        Ok(skip)
    }

    /// Picks a node for the pod. `next_start` rotates the first node evaluated across cycles,
    /// as Kubernetes' `nextStartNodeIndex` does.
    pub fn schedule(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        next_start: &mut usize,
        rng: &mut impl Rng,
    ) -> Result<ScheduleResult, ScheduleError> {
        let c = self.candidates(pod, snapshot, next_start)?;
        let best = select_host(&c.totals, rng);
        Ok(ScheduleResult {
            node: c.nodes[best].clone(),
            evaluated: c.evaluated,
            feasible: c.nodes.len(),
        })
    }

    /// Filters and scores with the built-in plugins, stopping short of picking a host: the
    /// feasible nodes with their weighted totals (`[0]` when only one node is feasible), for
    /// callers that add plugins of their own (Wasm) before [`select_host`].
    pub fn candidates(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        next_start: &mut usize,
    ) -> Result<Candidates, ScheduleError> {
        let all: Vec<&NodeInfo> = snapshot.ready_nodes().collect();
        if all.is_empty() {
            return Err(ScheduleError::NoNodes);
        }
        let mut state = CycleState::default();
        let skip = match self.run_pre_filters(&mut state, pod, snapshot) {
            Ok(skip) => skip,
            Err(status) => {
                let statuses = all
                    .iter()
                    .map(|n| (n.name.clone(), status.clone()))
                    .collect();
                return Err(self.fit_error(pod, snapshot, &state, &[], statuses));
            }
        };
        let want = num_feasible_nodes_to_find(self.percentage_of_nodes_to_score, all.len());
        let mut feasible: Vec<&NodeInfo> = Vec::with_capacity(want.min(all.len()));
        let mut failed: Vec<(String, Status)> = Vec::new();
        let start = *next_start % all.len();
        let mut processed = 0;
        for k in 0..all.len() {
            let node = all[(start + k) % all.len()];
            processed += 1;
            let status = self.run_filters(&state, &skip, pod, node);
            if status.is_success() {
                feasible.push(node);
                if feasible.len() >= want {
                    break;
                }
            } else {
                failed.push((node.name.clone(), status));
            }
        }
        *next_start = (start + processed) % all.len();
        if feasible.is_empty() {
            return Err(self.fit_error(pod, snapshot, &state, &skip, failed));
        }
        let totals = if feasible.len() == 1 {
            vec![0]
        } else {
            self.prioritize(&mut state, pod, snapshot, &feasible)
        };
        Ok(Candidates {
            nodes: feasible.iter().map(|n| n.name.clone()).collect(),
            totals,
            evaluated: processed,
            failed,
            num_all_nodes: snapshot.num_nodes(),
        })
    }

    /// Weighted total score per feasible node (Kubernetes' `prioritizeNodes`).
    pub fn prioritize(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        snapshot: &Snapshot,
        feasible: &[&NodeInfo],
    ) -> Vec<i64> {
        let mut totals = vec![0i64; feasible.len()];
        let mut scores = vec![0i64; feasible.len()];
        for (plugin, weight) in &self.scores {
            if plugin.pre_score(state, pod, snapshot, feasible) == Pre::Skip {
                continue;
            }
            for (s, node) in scores.iter_mut().zip(feasible) {
                *s = plugin.score(state, pod, node, snapshot);
            }
            plugin.normalize(state, feasible, &mut scores);
            for (t, s) in totals.iter_mut().zip(&scores) {
                *t += s.clamp(&0, &MAX_NODE_SCORE) * weight;
            }
        }
        totals
    }

    fn fit_error(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &CycleState,
        skip: &[bool],
        statuses: Vec<(String, Status)>,
    ) -> ScheduleError {
        let num_all_nodes = snapshot.num_nodes();
        let (post_filter, nomination) = if skip.is_empty() {
            (None, None)
        } else {
            match self.preempt(pod, snapshot, state, skip, &statuses) {
                Preemption::Nominate(n) => (None, Some(n)),
                Preemption::Message(m) => (Some(m), None),
            }
        };
        ScheduleError::Fit(FitError {
            num_all_nodes,
            statuses,
            post_filter,
            nomination,
        })
    }
}

/// The index of the highest total; among equal totals each is picked with equal probability
/// (reservoir sampling, as Kubernetes' `selectHost` does).
pub fn select_host(totals: &[i64], rng: &mut impl Rng) -> usize {
    let mut best = 0;
    let mut ties = 1;
    for (i, t) in totals.iter().enumerate().skip(1) {
        if *t > totals[best] {
            best = i;
            ties = 1;
        } else if *t == totals[best] {
            ties += 1;
            if rng.gen_range(0..ties) == 0 {
                best = i;
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feasible_nodes_to_find_is_adaptive() {
        assert_eq!(num_feasible_nodes_to_find(0, 50), 50);
        assert_eq!(num_feasible_nodes_to_find(0, 100), 100);
        // 1000 nodes: 50 - 8 = 42% → 420.
        assert_eq!(num_feasible_nodes_to_find(0, 1000), 420);
        // 5000 nodes: 50 - 40 = 10% → 500.
        assert_eq!(num_feasible_nodes_to_find(0, 5000), 500);
        // 6000 nodes: 50 - 48 = 2% → clamped to 5% → 300.
        assert_eq!(num_feasible_nodes_to_find(0, 6000), 300);
        // Explicit 1% of 2000 is 20, raised to the 100 minimum.
        assert_eq!(num_feasible_nodes_to_find(1, 2000), 100);
        assert_eq!(num_feasible_nodes_to_find(100, 2000), 2000);
    }

    #[test]
    fn ties_are_broken_at_random() {
        let mut rng = rand::thread_rng();
        let mut seen = [0usize; 3];
        for _ in 0..300 {
            seen[select_host(&[5, 9, 9], &mut rng)] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1] > 50 && seen[2] > 50, "{seen:?}");
        assert_eq!(select_host(&[1, 7, 3], &mut rng), 1);
    }
}
