//! Scheduler plugins: the pod and node records of WIT `scheduler-types` and
//! calls into the `keelson:plugin/scheduler` world, batched over candidate
//! nodes, one fresh instance per call. Answers are checked (one per node,
//! scores at most 100, bounded reasons) before the scheduler sees them.

use crate::bindings::scheduler as wit;
use crate::loaded::Loaded;
use crate::metrics::MetricsSnapshot;
use crate::store::State;
use crate::{Error, Limits};

/// Longest filter reason, in bytes.
pub const MAX_REASON_BYTES: usize = 1024;
/// Highest score (Kubernetes' `MaxNodeScore`).
pub const MAX_SCORE: u32 = 100;

/// How a taint repels pods that do not tolerate it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaintEffect {
    /// New pods are not scheduled onto the node.
    NoSchedule,
    /// The scheduler tries to avoid the node.
    PreferNoSchedule,
    /// New pods are not scheduled and running ones are evicted.
    NoExecute,
}

/// A node taint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value; may be empty.
    pub value: String,
    /// What the taint does.
    pub effect: TaintEffect,
}

/// A pod toleration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toleration {
    /// Taint key to tolerate; empty with `exists` tolerates every taint.
    pub key: String,
    /// True for operator `Exists`, false for `Equal`.
    pub exists: bool,
    /// Value to compare with `Equal`.
    pub value: String,
    /// Effect tolerated; `None` tolerates all effects.
    pub effect: Option<TaintEffect>,
    /// For `NoExecute`: seconds the pod stays bound after the taint appears.
    pub toleration_seconds: Option<i64>,
}

/// An amount of the resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage_bytes: u64,
    /// Number of pods.
    pub pods: u32,
}

/// What the scheduler knows about one candidate node (WIT `node-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeInput {
    /// Node name.
    pub name: String,
    /// Node labels.
    pub labels: Vec<(String, String)>,
    /// Node taints.
    pub taints: Vec<Taint>,
    /// Allocatable resources.
    pub allocatable: Resources,
    /// Requests of the pods bound to or assumed on the node.
    pub requested: Resources,
    /// The node is cordoned.
    pub unschedulable: bool,
}

/// The pod being scheduled (WIT `pod-info`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInput {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Pod labels.
    pub labels: Vec<(String, String)>,
    /// `spec.nodeSelector`.
    pub node_selector: Vec<(String, String)>,
    /// `spec.tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Effective requests.
    pub requests: Resources,
    /// `spec.priority`, 0 when unset.
    pub priority: i32,
    /// The whole pod as JSON.
    pub object: String,
    /// The plugin's configuration as JSON; empty is sent as `{}`.
    pub config: String,
}

/// Outcome of filtering one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterCode {
    /// The pod fits the node.
    Success,
    /// The pod does not fit now; preemption might make room.
    Unschedulable,
    /// The pod does not fit and preemption would not help.
    UnschedulableAndUnresolvable,
}

/// A checked filter answer for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterResult {
    /// Whether the pod fits.
    pub code: FilterCode,
    /// Why not (at most [`MAX_REASON_BYTES`]); empty on success.
    pub reason: String,
}

/// One loaded version of a scheduler plugin. Cheap to share (`Arc`); calls
/// from many tasks run on separate instances.
#[derive(Debug)]
pub struct SchedulerPlugin {
    pub(crate) inner: Loaded<wit::SchedulerPre<State>>,
}

impl SchedulerPlugin {
    /// Runs `filter` over `nodes` on a fresh instance, under the plugin's
    /// deadline and memory cap (see [`AdmissionPlugin::validate_async`](crate::AdmissionPlugin::validate_async)).
    /// Element `i` of the answer is for `nodes[i]`.
    pub async fn filter_async(
        &self,
        pod: PodInput,
        nodes: Vec<NodeInput>,
    ) -> Result<Vec<FilterResult>, Error> {
        let n = nodes.len();
        let pod = pod_to_wit(pod);
        let nodes: Vec<wit::NodeInfo> = nodes.into_iter().map(node_to_wit).collect();
        let p = &self.inner;
        p.measured(async {
            let (mut store, instance) = p.instantiate().await?;
            let raw = instance
                .call_filter(&mut store, &pod, &nodes)
                .await
                .map_err(|e| p.classify(e, &store))?;
            check_filter(raw, n)
        })
        .await
    }

    /// Runs `score` over `nodes` on a fresh instance; each score is 0–100.
    pub async fn score_async(
        &self,
        pod: PodInput,
        nodes: Vec<NodeInput>,
    ) -> Result<Vec<u32>, Error> {
        let n = nodes.len();
        let pod = pod_to_wit(pod);
        let nodes: Vec<wit::NodeInfo> = nodes.into_iter().map(node_to_wit).collect();
        let p = &self.inner;
        p.measured(async {
            let (mut store, instance) = p.instantiate().await?;
            let raw = instance
                .call_score(&mut store, &pod, &nodes)
                .await
                .map_err(|e| p.classify(e, &store))?;
            check_scores(raw, n)
        })
        .await
    }

    crate::loaded::plugin_accessors!();
}

fn check_filter(raw: Vec<wit::FilterResult>, n: usize) -> Result<Vec<FilterResult>, Error> {
    if raw.len() != n {
        return Err(Error::BadOutput(format!(
            "filter answered {} results for {n} nodes",
            raw.len()
        )));
    }
    raw.into_iter()
        .map(|r| {
            if r.reason.len() > MAX_REASON_BYTES {
                return Err(Error::BadOutput(format!(
                    "a filter reason is {} bytes, more than {MAX_REASON_BYTES}",
                    r.reason.len()
                )));
            }
            let code = match r.code {
                wit::FilterCode::Success => FilterCode::Success,
                wit::FilterCode::Unschedulable => FilterCode::Unschedulable,
                wit::FilterCode::UnschedulableAndUnresolvable => {
                    FilterCode::UnschedulableAndUnresolvable
                }
            };
            let reason = if code == FilterCode::Success {
                String::new()
            } else {
                r.reason
            };
            Ok(FilterResult { code, reason })
        })
        .collect()
}

fn check_scores(raw: Vec<u32>, n: usize) -> Result<Vec<u32>, Error> {
    if raw.len() != n {
        return Err(Error::BadOutput(format!(
            "score answered {} scores for {n} nodes",
            raw.len()
        )));
    }
    if let Some(s) = raw.iter().find(|s| **s > MAX_SCORE) {
        return Err(Error::BadOutput(format!("score {s} is above {MAX_SCORE}")));
    }
    Ok(raw)
}

fn labels(l: Vec<(String, String)>) -> Vec<wit::keelson::plugin::types::Label> {
    l.into_iter()
        .map(|(key, value)| wit::keelson::plugin::types::Label { key, value })
        .collect()
}

fn resources(r: Resources) -> wit::Resources {
    wit::Resources {
        cpu_millis: r.cpu_millis,
        memory_bytes: r.memory_bytes,
        ephemeral_storage_bytes: r.ephemeral_storage_bytes,
        pods: r.pods,
    }
}

fn effect(e: TaintEffect) -> wit::TaintEffect {
    match e {
        TaintEffect::NoSchedule => wit::TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule => wit::TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute => wit::TaintEffect::NoExecute,
    }
}

fn node_to_wit(n: NodeInput) -> wit::NodeInfo {
    wit::NodeInfo {
        name: n.name,
        labels: labels(n.labels),
        taints: n
            .taints
            .into_iter()
            .map(|t| wit::Taint {
                key: t.key,
                value: t.value,
                effect: effect(t.effect),
            })
            .collect(),
        allocatable: resources(n.allocatable),
        requested: resources(n.requested),
        unschedulable: n.unschedulable,
    }
}

fn pod_to_wit(p: PodInput) -> wit::PodInfo {
    wit::PodInfo {
        namespace: p.namespace,
        name: p.name,
        labels: labels(p.labels),
        node_selector: labels(p.node_selector),
        tolerations: p
            .tolerations
            .into_iter()
            .map(|t| wit::Toleration {
                key: t.key,
                operator: if t.exists {
                    wit::TolerationOperator::Exists
                } else {
                    wit::TolerationOperator::Equal
                },
                value: t.value,
                effect: t.effect.map(effect),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        requests: resources(p.requests),
        priority: p.priority,
        object: if p.object.is_empty() {
            "{}".into()
        } else {
            p.object
        },
        config: if p.config.is_empty() {
            "{}".into()
        } else {
            p.config
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_checked() {
        assert!(matches!(
            check_scores(vec![1, 2], 3),
            Err(Error::BadOutput(_))
        ));
        assert!(matches!(
            check_scores(vec![101], 1),
            Err(Error::BadOutput(_))
        ));
        assert_eq!(check_scores(vec![0, 100], 2).unwrap(), vec![0, 100]);
        let ok = wit::FilterResult {
            code: wit::FilterCode::Success,
            reason: "ignored".into(),
        };
        let long = wit::FilterResult {
            code: wit::FilterCode::Unschedulable,
            reason: "x".repeat(MAX_REASON_BYTES + 1),
        };
        assert_eq!(check_filter(vec![ok.clone()], 1).unwrap()[0].reason, "");
        assert!(matches!(
            check_filter(vec![ok], 2),
            Err(Error::BadOutput(_))
        ));
        assert!(matches!(
            check_filter(vec![long], 1),
            Err(Error::BadOutput(_))
        ));
    }
}
