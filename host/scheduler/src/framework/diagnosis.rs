//! Why a pod fits nowhere, worded as Kubernetes' `FitError`: `0/3 nodes are available: 1
//! node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. preemption: 0/3
//! nodes are available: 3 Preemption is not helpful for scheduling.` — a histogram of the
//! filter reasons, sorted as strings, then the preemption dry run's own histogram.

use std::collections::BTreeMap;
use std::fmt;

use super::preemption::Nomination;
use super::Status;

/// A pod that no node can take.
#[derive(Debug, Clone, PartialEq)]
pub struct FitError {
    /// Nodes in the cluster.
    pub num_all_nodes: usize,
    /// Each failed node with the status of the filter that rejected it.
    pub statuses: Vec<(String, Status)>,
    /// The PostFilter (preemption) message, if preemption had something to say.
    pub post_filter: Option<String>,
    /// Where preemption would make room, and whom it would evict.
    pub nomination: Option<Nomination>,
}

impl FitError {
    /// `"<count> <reason>"` entries sorted as strings (Kubernetes' `sortReasonsHistogram`).
    pub fn histogram(&self) -> Vec<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, status) in &self.statuses {
            for r in &status.reasons {
                *counts.entry(r.as_str()).or_default() += 1;
            }
        }
        let mut out: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
        out.sort();
        out
    }

    /// The plugins that rejected at least one node.
    pub fn unschedulable_plugins(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = self.statuses.iter().map(|(_, s)| s.plugin).collect();
        p.sort();
        p.dedup();
        p
    }
}

impl fmt::Display for FitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes are available:", self.num_all_nodes)?;
        let histogram = self.histogram();
        if !histogram.is_empty() {
            write!(f, " {}.", histogram.join(", "))?;
        }
        if let Some(post) = &self.post_filter {
            write!(f, " preemption: {post}")?;
        }
        Ok(())
    }
}

/// Why a scheduling attempt failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// The cluster has no nodes.
    #[error("no nodes available to schedule pods")]
    NoNodes,
    /// No node passed the filters.
    #[error("{0}")]
    Fit(FitError),
    /// A plugin failed (a Wasm plugin trapped, ran past its deadline or memory cap, or
    /// answered garbage) and its `failurePolicy` is `Fail`.
    #[error("running {stage} plugin {plugin:?}: {message}")]
    Plugin {
        /// `Filter` or `Score`.
        stage: &'static str,
        /// The plugin's name.
        plugin: String,
        /// What went wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_sorts_the_histogram_like_kubernetes() {
        let status = |r: &str| Status::unschedulable(r);
        let fit = FitError {
            num_all_nodes: 3,
            statuses: vec![
                ("a".into(), status("Insufficient cpu")),
                (
                    "b".into(),
                    status("node(s) didn't match Pod's node affinity/selector"),
                ),
                ("c".into(), status("Insufficient cpu")),
            ],
            post_filter: Some(
                "0/3 nodes are available: 3 Preemption is not helpful for scheduling.".into(),
            ),
            nomination: None,
        };
        assert_eq!(
            fit.to_string(),
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             2 Insufficient cpu. preemption: 0/3 nodes are available: 3 Preemption is not \
             helpful for scheduling."
        );
    }
}
