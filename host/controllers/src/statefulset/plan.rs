//! What one pass of a StatefulSet does to its pods, decided without I/O (Kubernetes'
//! `updateStatefulSet`): create missing ordinals and replace failed or succeeded pods, lowest
//! first; delete condemned pods (ordinals past the replicas), highest first; then, for
//! RollingUpdate, delete the highest pod not at the update revision down to the partition, one
//! at a time. With `OrderedReady` each step waits for every earlier pod to be Running and
//! Ready (and available after minReadySeconds) and does one thing; with `Parallel` creation
//! and deletion do everything at once, and only the rolling update waits.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::identity::{ordinal_of, revision_of};
use crate::replicaset::{is_available, is_ready};

/// The parts of a StatefulSet's spec the plan reads.
#[derive(Debug, Clone)]
pub(crate) struct Shape {
    /// The set's name (pods are `<name>-<ordinal>`).
    pub name: String,
    /// `spec.replicas`.
    pub replicas: i32,
    /// `spec.ordinals.start`.
    pub start: i32,
    /// `podManagementPolicy: Parallel`.
    pub parallel: bool,
    /// `updateStrategy.type: RollingUpdate` (else OnDelete).
    pub rolling: bool,
    /// `updateStrategy.rollingUpdate.partition`.
    pub partition: i32,
    /// `spec.minReadySeconds`.
    pub min_ready_seconds: i32,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Create the pod (and its claims) with this ordinal.
    Create(i32),
    /// Delete a failed or succeeded pod so it is made again.
    Replace(String),
    /// Delete a pod past the replicas.
    Condemn(String),
    /// Delete a pod not at the update revision.
    Update(String),
}

fn terminating(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_some()
}

fn phase(p: &Pod) -> Option<&str> {
    p.status.as_ref()?.phase.as_deref()
}

/// Kubernetes' `isHealthy`: Running, Ready (and available), not terminating.
fn healthy(shape: &Shape, now: Timestamp, p: &Pod) -> bool {
    phase(p) == Some("Running")
        && is_ready(p)
        && is_available(p, shape.min_ready_seconds, now)
        && !terminating(p)
}

/// The steps of one pass over `pods` (those the set owns), given the update revision's name.
pub(crate) fn plan(
    shape: &Shape,
    pods: &[Pod],
    update_revision: &str,
    now: Timestamp,
) -> Vec<Step> {
    let end = shape.start + shape.replicas.max(0);
    let mut replicas: BTreeMap<i32, &Pod> = BTreeMap::new();
    let mut condemned: Vec<(i32, &Pod)> = Vec::new();
    for p in pods {
        let Some(o) = ordinal_of(&shape.name, p.metadata.name.as_deref().unwrap_or_default())
        else {
            continue;
        };
        if (shape.start..end).contains(&o) {
            replicas.insert(o, p);
        } else {
            condemned.push((o, p));
        }
    }
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    let is_healthy = |p: &Pod| healthy(shape, now, p);
    let first_unhealthy = replicas
        .values()
        .copied()
        .chain(condemned.iter().map(|(_, p)| *p))
        .find(|p| !is_healthy(p))
        .and_then(|p| p.metadata.name.clone());
    let monotonic = !shape.parallel;
    let mut steps = Vec::new();

    for o in shape.start..end {
        match replicas.get(&o) {
            None => {
                steps.push(Step::Create(o));
                if monotonic {
                    return steps;
                }
            }
            Some(p) if matches!(phase(p), Some("Failed" | "Succeeded")) && !terminating(p) => {
                steps.push(Step::Replace(p.metadata.name.clone().unwrap_or_default()));
                if monotonic {
                    return steps;
                }
            }
            Some(p) if monotonic && !is_healthy(p) => return steps,
            Some(_) => {}
        }
    }

    for (_, p) in &condemned {
        let name = p.metadata.name.clone().unwrap_or_default();
        if terminating(p) {
            if monotonic {
                return steps;
            }
            continue;
        }
        if monotonic && first_unhealthy.as_ref().is_some_and(|u| *u != name) {
            return steps;
        }
        steps.push(Step::Condemn(name));
        if monotonic {
            return steps;
        }
    }

    if !shape.rolling || !steps.is_empty() {
        return steps;
    }
    let lowest = shape.start + shape.partition.max(0);
    for o in (lowest..end).rev() {
        let Some(p) = replicas.get(&o) else {
            return steps;
        };
        if revision_of(p) != Some(update_revision) && !terminating(p) {
            steps.push(Step::Update(p.metadata.name.clone().unwrap_or_default()));
            return steps;
        }
        if !is_healthy(p) {
            return steps;
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn shape(replicas: i32, parallel: bool) -> Shape {
        Shape {
            name: "web".into(),
            replicas,
            start: 0,
            parallel,
            rolling: true,
            partition: 0,
            min_ready_seconds: 0,
        }
    }

    /// A pod `web-<o>` at `rev` in `state`: "ready", "pending", "failed" or "terminating".
    fn pod(o: i32, rev: &str, state: &str) -> Pod {
        let ready = state == "ready" || state == "terminating";
        let phase = match state {
            "pending" => "Pending",
            "failed" => "Failed",
            _ => "Running",
        };
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": format!("web-{o}"), "labels": {"controller-revision-hash": rev}},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap();
        if state == "terminating" {
            p.metadata.deletion_timestamp = Some(crate::replicaset::now());
        }
        p
    }

    fn run(shape: &Shape, pods: &[Pod]) -> Vec<Step> {
        plan(shape, pods, "r2", Timestamp::now())
    }

    #[test]
    fn ordered_ready_creates_one_at_a_time_after_the_previous_is_ready() {
        let s = shape(3, false);
        assert_eq!(run(&s, &[]), [Step::Create(0)]);
        assert_eq!(run(&s, &[pod(0, "r2", "pending")]), []);
        assert_eq!(run(&s, &[pod(0, "r2", "ready")]), [Step::Create(1)]);
        assert_eq!(
            run(&s, &[pod(0, "r2", "ready"), pod(1, "r2", "ready")]),
            [Step::Create(2)]
        );
        // A failed pod is replaced before anything after it.
        assert_eq!(
            run(&s, &[pod(0, "r2", "failed"), pod(1, "r2", "ready")]),
            [Step::Replace("web-0".into())]
        );
    }

    #[test]
    fn parallel_creates_and_deletes_all_at_once() {
        let s = shape(3, true);
        assert_eq!(
            run(&s, &[pod(1, "r2", "pending")]),
            [Step::Create(0), Step::Create(2)]
        );
        let s = shape(1, true);
        let pods = [
            pod(0, "r2", "ready"),
            pod(1, "r2", "pending"),
            pod(2, "r2", "ready"),
        ];
        assert_eq!(
            run(&s, &pods),
            [Step::Condemn("web-2".into()), Step::Condemn("web-1".into())]
        );
    }

    #[test]
    fn ordered_scale_down_goes_from_the_highest_ordinal_one_at_a_time() {
        let s = shape(1, false);
        let pods = [
            pod(0, "r2", "ready"),
            pod(1, "r2", "ready"),
            pod(2, "r2", "ready"),
        ];
        assert_eq!(run(&s, &pods), [Step::Condemn("web-2".into())]);
        // While web-2 terminates, web-1 waits.
        let pods = [
            pod(0, "r2", "ready"),
            pod(1, "r2", "ready"),
            pod(2, "r2", "terminating"),
        ];
        assert_eq!(run(&s, &pods), []);
        // An unhealthy survivor blocks the scale-down.
        let pods = [pod(0, "r2", "pending"), pod(1, "r2", "ready")];
        assert_eq!(run(&s, &pods), []);
        // The first unhealthy pod may itself be the one condemned.
        let pods = [pod(0, "r2", "ready"), pod(1, "r2", "pending")];
        assert_eq!(run(&s, &pods), [Step::Condemn("web-1".into())]);
    }

    #[test]
    fn rolling_update_goes_down_from_the_highest_ordinal_to_the_partition() {
        let mut s = shape(3, false);
        let old = [
            pod(0, "r1", "ready"),
            pod(1, "r1", "ready"),
            pod(2, "r1", "ready"),
        ];
        assert_eq!(run(&s, &old), [Step::Update("web-2".into())]);
        let mid = [
            pod(0, "r1", "ready"),
            pod(1, "r1", "ready"),
            pod(2, "r2", "pending"),
        ];
        assert_eq!(run(&s, &mid), [], "waits for web-2 to be ready");
        let mid = [
            pod(0, "r1", "ready"),
            pod(1, "r1", "ready"),
            pod(2, "r2", "ready"),
        ];
        assert_eq!(run(&s, &mid), [Step::Update("web-1".into())]);
        s.partition = 2;
        assert_eq!(run(&s, &mid), [], "ordinals below the partition stay");
        s.rolling = false;
        s.partition = 0;
        assert_eq!(run(&s, &old), [], "OnDelete leaves pods alone");
    }
}
