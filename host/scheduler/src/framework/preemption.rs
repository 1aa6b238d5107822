//! DefaultPreemption (Kubernetes' PostFilter): when a pod fits nowhere, find the nodes where
//! evicting lower-priority pods makes room, keep as few victims as possible (reprieving the
//! most important first, PodDisruptionBudget-protected ones before the rest), and pick the node
//! by Kubernetes' order: fewest PDB violations, lowest top victim priority, lowest priority
//! sum, fewest victims, latest start of the top victims. With no candidate it words why.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use super::diagnosis::FitError;
use super::{Code, CycleState, Profile, Status};
use crate::node_info::{NodeInfo, PodInfo, Snapshot};
use crate::selectors::label_selector_matches;

/// A preemption decision: nominate `node` for the pod and evict `victims`.
#[derive(Debug, Clone, PartialEq)]
pub struct Nomination {
    /// The node the pod is nominated to.
    pub node: String,
    /// Pods to evict there, most important first.
    pub victims: Vec<Arc<Pod>>,
    /// How many victims a PodDisruptionBudget protects.
    pub pdb_violations: usize,
}

/// The PostFilter outcome.
pub(crate) enum Preemption {
    /// Preempt.
    Nominate(Nomination),
    /// Preemption cannot help; the `preemption: …` message.
    Message(String),
}

/// Kubernetes' `MoreImportantPod`: higher priority, then the one that started earlier.
fn more_important_first(a: &Arc<PodInfo>, b: &Arc<PodInfo>) -> std::cmp::Ordering {
    b.priority
        .cmp(&a.priority)
        .then_with(|| start_time(&a.pod).cmp(&start_time(&b.pod)))
}

fn start_time(pod: &Pod) -> Option<Timestamp> {
    pod.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// Splits victims into those whose eviction would exceed a PodDisruptionBudget and the rest
/// (Kubernetes' `filterPodsWithPDBViolation`).
fn split_by_pdb(
    victims: Vec<Arc<PodInfo>>,
    snapshot: &Snapshot,
) -> (Vec<Arc<PodInfo>>, Vec<Arc<PodInfo>>) {
    let mut allowed: Vec<i32> = snapshot
        .pdbs
        .iter()
        .map(|p| p.status.as_ref().map_or(0, |s| s.disruptions_allowed))
        .collect();
    let (mut violating, mut fine) = (Vec::new(), Vec::new());
    for v in victims {
        let mut violated = false;
        if !v.labels().is_empty() {
            for (i, pdb) in snapshot.pdbs.iter().enumerate() {
                let selector = pdb.spec.as_ref().and_then(|s| s.selector.as_ref());
                let empty = selector.is_none_or(|s| {
                    s.match_labels.as_ref().is_none_or(|m| m.is_empty())
                        && s.match_expressions.as_ref().is_none_or(|m| m.is_empty())
                });
                let disrupted = pdb
                    .status
                    .as_ref()
                    .and_then(|s| s.disrupted_pods.as_ref())
                    .is_some_and(|d| d.contains_key(v.pod.metadata.name.as_deref().unwrap_or("")));
                if pdb.metadata.namespace.as_deref() != Some(v.namespace())
                    || empty
                    || disrupted
                    || !selector.is_some_and(|s| label_selector_matches(s, v.labels()))
                {
                    continue;
                }
                allowed[i] -= 1;
                violated |= allowed[i] < 0;
            }
        }
        if violated {
            violating.push(v);
        } else {
            fine.push(v);
        }
    }
    (violating, fine)
}

struct Candidate {
    node: String,
    victims: Vec<Arc<PodInfo>>,
    pdb_violations: usize,
}

impl Profile {
    /// Kubernetes' `SelectVictimsOnNode`.
    fn select_victims(
        &self,
        state: &CycleState,
        skip: &[bool],
        pod: &PodInfo,
        node: &NodeInfo,
        snapshot: &Snapshot,
    ) -> Result<Candidate, Status> {
        let mut trimmed = node.clone();
        let mut potential: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|p| p.priority < pod.priority)
            .cloned()
            .collect();
        if potential.is_empty() {
            return Err(Status::unresolvable(
                "No preemption victims found for incoming pod",
            ));
        }
        for v in &potential {
            trimmed.remove_pod(&v.key);
        }
        let fits = self.run_filters(state, skip, pod, &trimmed);
        if !fits.is_success() {
            return Err(fits);
        }
        potential.sort_by(more_important_first);
        let (violating, fine) = split_by_pdb(potential, snapshot);
        let mut victims = Vec::new();
        let mut pdb_violations = 0;
        for (protected, group) in [(true, violating), (false, fine)] {
            for v in group {
                trimmed.add_pod(v.clone());
                if !self.run_filters(state, skip, pod, &trimmed).is_success() {
                    trimmed.remove_pod(&v.key);
                    pdb_violations += protected as usize;
                    victims.push(v);
                }
            }
        }
        victims.sort_by(more_important_first);
        Ok(Candidate {
            node: node.name.clone(),
            victims,
            pdb_violations,
        })
    }

    /// Runs DefaultPreemption for a pod that fits nowhere.
    pub(crate) fn preempt(
        &self,
        pod: &PodInfo,
        snapshot: &Snapshot,
        state: &CycleState,
        skip: &[bool],
        statuses: &[(String, Status)],
    ) -> Preemption {
        let spec = pod.pod.spec.as_ref();
        if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
            return Preemption::Message("not eligible due to preemptionPolicy=Never.".into());
        }
        let nominated = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.nominated_node_name.as_deref());
        if let Some(node) = nominated.and_then(|n| snapshot.get(n)) {
            if node
                .pods
                .iter()
                .any(|p| p.terminating() && p.priority < pod.priority)
            {
                return Preemption::Message(
                    "not eligible due to a terminating pod on the nominated node.".into(),
                );
            }
        }
        let mut result = Vec::with_capacity(statuses.len());
        let mut candidates = Vec::new();
        for (name, status) in statuses {
            if status.code == Code::UnschedulableAndUnresolvable {
                result.push((
                    name.clone(),
                    Status::unresolvable("Preemption is not helpful for scheduling"),
                ));
                continue;
            }
            let Some(info) = snapshot.get(name) else {
                continue;
            };
            match self.select_victims(state, skip, pod, info, snapshot) {
                Ok(c) => candidates.push(c),
                Err(s) => result.push((name.clone(), s)),
            }
        }
        if let Some(best) = pick_one_node(candidates) {
            return Preemption::Nominate(Nomination {
                node: best.node,
                victims: best.victims.iter().map(|v| v.pod.clone()).collect(),
                pdb_violations: best.pdb_violations,
            });
        }
        let fit = FitError {
            num_all_nodes: snapshot.num_nodes(),
            statuses: result,
            post_filter: None,
            nomination: None,
        };
        Preemption::Message(fit.to_string())
    }
}

/// Kubernetes' `pickOneNodeForPreemption`.
fn pick_one_node(candidates: Vec<Candidate>) -> Option<Candidate> {
    let key = |c: &Candidate| {
        let top = c.victims.first().map_or(i32::MIN, |v| v.priority);
        let sum: i64 = c
            .victims
            .iter()
            .map(|v| v.priority as i64 + i32::MAX as i64 + 1)
            .sum();
        // Latest start among the top-priority victims' earliest start wins: negate for min.
        let earliest = c
            .victims
            .iter()
            .filter(|v| v.priority == top)
            .filter_map(|v| start_time(&v.pod))
            .min()
            .map(|t| -t.as_nanosecond());
        (c.pdb_violations, top, sum, c.victims.len(), earliest)
    };
    candidates.into_iter().min_by_key(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framework::ScheduleError;
    use crate::testing::{container, node, pod, snapshot};

    fn schedule(snap: &Snapshot, p: &Arc<PodInfo>) -> ScheduleError {
        let profile = crate::default_profile("default-scheduler", 0);
        profile
            .schedule(p, snap, &mut 0, &mut rand::thread_rng())
            .unwrap_err()
    }

    #[test]
    fn evicts_the_fewest_lowest_priority_pods() {
        let busy = |n: &str, prio: i32| {
            pod(n)
                .priority(prio)
                .container(container("c", "1", ""))
                .build()
        };
        let snap = snapshot(
            vec![node("a", "2", "4Gi").build(), node("b", "2", "4Gi").build()],
            vec![
                (busy("a-low", 1), "a"),
                (busy("a-mid", 5), "a"),
                (busy("b-low", 3), "b"),
                (busy("b-high", 100), "b"),
            ],
        );
        let p = pod("p")
            .priority(10)
            .container(container("c", "1", ""))
            .info();
        let ScheduleError::Fit(fit) = schedule(&snap, &p) else {
            panic!("expected a fit error")
        };
        let n = fit.nomination.clone().expect("a nomination");
        // a: a-mid is reprieved, a-low goes (top victim priority 1); b: b-low (3) must go.
        assert_eq!(n.node, "a");
        let names: Vec<_> = n
            .victims
            .iter()
            .map(|v| v.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(names, ["a-low"]);
        assert!(fit.post_filter.is_none());
        assert!(!fit.to_string().contains("preemption:"));
    }

    #[test]
    fn no_lower_priority_pods_means_no_victims() {
        let snap = snapshot(
            vec![node("a", "1", "4Gi").build()],
            vec![(
                pod("x")
                    .priority(50)
                    .container(container("c", "1", ""))
                    .build(),
                "a",
            )],
        );
        let p = pod("p")
            .priority(10)
            .container(container("c", "1", ""))
            .info();
        let err = schedule(&snap, &p);
        assert_eq!(
            err.to_string(),
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: \
             1 No preemption victims found for incoming pod."
        );
        let never = pod("p")
            .priority(10)
            .container(container("c", "1", ""))
            .build();
        let mut never = never;
        never.spec.as_mut().unwrap().preemption_policy = Some("Never".into());
        let err = schedule(&snap, &Arc::new(PodInfo::new(Arc::new(never))));
        assert!(
            err.to_string()
                .ends_with("preemption: not eligible due to preemptionPolicy=Never."),
            "{err}"
        );
    }

    #[test]
    fn pdb_protected_pods_are_spared_when_there_is_a_choice() {
        use k8s_openapi::api::policy::v1::{
            PodDisruptionBudget, PodDisruptionBudgetSpec, PodDisruptionBudgetStatus,
        };
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
        let victim = |n: &str, app: &str| {
            pod(n)
                .priority(1)
                .label("app", app)
                .container(container("c", "1", ""))
                .build()
        };
        let mut snap = snapshot(
            vec![node("a", "1", "4Gi").build(), node("b", "1", "4Gi").build()],
            vec![(victim("guarded", "db"), "a"), (victim("free", "web"), "b")],
        );
        let mut pdb = PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                selector: Some(LabelSelector {
                    match_labels: Some([("app".to_string(), "db".to_string())].into()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                disruptions_allowed: 0,
                ..Default::default()
            }),
            ..Default::default()
        };
        pdb.metadata.namespace = Some("default".into());
        snap.pdbs.push(pdb);
        let p = pod("p")
            .priority(10)
            .container(container("c", "1", ""))
            .info();
        let ScheduleError::Fit(fit) = schedule(&snap, &p) else {
            panic!("expected a fit error")
        };
        let n = fit.nomination.unwrap();
        assert_eq!((n.node.as_str(), n.pdb_violations), ("b", 0));
    }
}
