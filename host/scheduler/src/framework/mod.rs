//! The scheduling framework's shape (Kubernetes' `framework` package): plugin traits for the
//! PreFilter/Filter and PreScore/Score/NormalizeScore extension points, the per-cycle state
//! plugins share, and filter statuses with their codes.

mod diagnosis;
mod preemption;
mod profile;

use std::any::Any;
use std::collections::HashMap;

pub use diagnosis::{FitError, ScheduleError};
pub use preemption::Nomination;
pub use profile::{num_feasible_nodes_to_find, select_host, Candidates, Profile, ScheduleResult};

use crate::node_info::{NodeInfo, PodInfo, Snapshot};

/// The highest score a plugin gives a node (Kubernetes' `MaxNodeScore`).
pub const MAX_NODE_SCORE: i64 = 100;

/// How a filter answered for one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Code {
    /// The node passed.
    Success,
    /// The node does not fit now, but preempting pods could change that.
    Unschedulable,
    /// The node does not fit, and preemption would not help.
    UnschedulableAndUnresolvable,
}

/// A filter's verdict with its human-readable reasons (Kubernetes' `framework.Status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// The code.
    pub code: Code,
    /// Reasons, in Kubernetes' wording (`Insufficient cpu`).
    pub reasons: Vec<String>,
    /// The plugin that failed the node.
    pub plugin: &'static str,
}

impl Status {
    /// The node passed.
    pub fn success() -> Self {
        Status {
            code: Code::Success,
            reasons: Vec::new(),
            plugin: "",
        }
    }

    /// The node failed with a code and one reason.
    pub fn new(code: Code, reason: impl Into<String>) -> Self {
        Status {
            code,
            reasons: vec![reason.into()],
            plugin: "",
        }
    }

    /// `Unschedulable` with one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Status::new(Code::Unschedulable, reason)
    }

    /// `UnschedulableAndUnresolvable` with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Status::new(Code::UnschedulableAndUnresolvable, reason)
    }

    /// Did the node pass?
    pub fn is_success(&self) -> bool {
        self.code == Code::Success
    }

    /// The reasons joined as Kubernetes prints a status message.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }
}

/// Data plugins compute once per cycle (in PreFilter/PreScore) and read per node.
#[derive(Default)]
pub struct CycleState {
    values: HashMap<&'static str, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Stores a plugin's state under its key.
    pub fn write<T: Any + Send + Sync>(&mut self, key: &'static str, value: T) {
        self.values.insert(key, Box::new(value));
    }

    /// Reads a plugin's state.
    pub fn read<T: Any + Send + Sync>(&self, key: &'static str) -> Option<&T> {
        self.values.get(key).and_then(|v| v.downcast_ref())
    }
}

/// What a PreFilter or PreScore step decided.
#[derive(Debug, PartialEq, Eq)]
pub enum Pre {
    /// Run the plugin's per-node step.
    Run,
    /// The plugin has nothing to say about this pod: skip its per-node step.
    Skip,
}

/// A Filter plugin, with its PreFilter step.
pub trait FilterPlugin: Send + Sync {
    /// The plugin's Kubernetes name (`NodeResourcesFit`).
    fn name(&self) -> &'static str;

    /// Computes per-cycle state; an error status fails the pod on every node.
    fn pre_filter(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
    ) -> Result<Pre, Status> {
        Ok(Pre::Run)
    }

    /// Does the pod fit on the node?
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Status;
}

/// A Score plugin, with its PreScore and NormalizeScore steps.
pub trait ScorePlugin: Send + Sync {
    /// The plugin's Kubernetes name.
    fn name(&self) -> &'static str;

    /// Computes per-cycle state over the feasible nodes.
    fn pre_score(
        &self,
        _state: &mut CycleState,
        _pod: &PodInfo,
        _snapshot: &Snapshot,
        _feasible: &[&NodeInfo],
    ) -> Pre {
        Pre::Run
    }

    /// The node's raw score (0–100 unless `normalize` rescales it).
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo, snapshot: &Snapshot)
        -> i64;

    /// Rescales the raw scores of the feasible nodes (same order) to 0–100.
    fn normalize(&self, _state: &CycleState, _nodes: &[&NodeInfo], _scores: &mut [i64]) {}
}

/// Kubernetes' `DefaultNormalizeScore`: scales to `max_priority` by the highest score, and
/// with `reverse` turns a high raw score into a low final one.
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [i64]) {
    let max = scores.iter().copied().max().unwrap_or(0);
    if max == 0 {
        if reverse {
            scores.iter_mut().for_each(|s| *s = max_priority);
        }
        return;
    }
    for s in scores.iter_mut() {
        *s = max_priority * *s / max;
        if reverse {
            *s = max_priority - *s;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_normalize_scales_and_reverses() {
        let mut s = [0, 2, 4];
        default_normalize_score(MAX_NODE_SCORE, false, &mut s);
        assert_eq!(s, [0, 50, 100]);
        let mut s = [0, 1, 4];
        default_normalize_score(MAX_NODE_SCORE, true, &mut s);
        assert_eq!(s, [100, 75, 0]);
        let mut s = [0, 0];
        default_normalize_score(MAX_NODE_SCORE, true, &mut s);
        assert_eq!(s, [100, 100]);
    }
}
