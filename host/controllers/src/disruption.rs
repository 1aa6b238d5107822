//! The disruption controller (Kubernetes' `pkg/controller/disruption`): keeps each
//! PodDisruptionBudget's status, which the `pods/eviction` subresource and scheduler preemption
//! read. `expectedPods` is the number of selected pods for an integer `minAvailable`, else the
//! replicas of the workloads owning them (Deployment, ReplicaSet, StatefulSet,
//! ReplicationController); `desiredHealthy` follows `minAvailable` or `maxUnavailable`
//! (percentages rounded up); `currentHealthy` counts Ready pods not being deleted nor recently
//! evicted (`disruptedPods`, forgotten after two minutes or once the pod goes);
//! `disruptionsAllowed` is the surplus, and the `DisruptionAllowed` condition says
//! `SufficientPods`, `InsufficientPods` or `SyncFailed`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

use crate::error::{is_not_found, Error};
use crate::ownership::controller_of;
use crate::replicaset::is_ready;
use crate::selector;

/// How long an eviction's entry in `disruptedPods` counts (Kubernetes' `DeletionTimeout`).
const DELETION_TIMEOUT: SignedDuration = SignedDuration::from_secs(120);

/// Runs the disruption controller until the process ends.
pub async fn run(client: kube::Client) {
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(client.clone()),
        watcher::Config::default(),
    );
    let store = controller.store();
    controller
        .watches(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            move |pod| {
                store
                    .state()
                    .iter()
                    .filter(|p| p.metadata.namespace == pod.metadata.namespace)
                    .filter(|p| {
                        p.spec
                            .as_ref()
                            .and_then(|s| s.selector.as_ref())
                            .is_some_and(|sel| selector::matches(sel, pod.metadata.labels.as_ref()))
                    })
                    .map(|p| ObjectRef::from_obj(p.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_pdb: Arc<PodDisruptionBudget>, e: &Error, _c: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing poddisruptionbudget failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

/// `value` of `total`, percentages rounded up (Kubernetes' `GetScaledValueFromIntOrPercent`).
fn scaled(value: &IntOrString, total: i32) -> Option<i32> {
    match value {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.parse().ok()?;
            Some(((pct * i64::from(total) + 99) / 100) as i32)
        }
    }
}

/// The replicas of the workloads controlling `pods`, each counted once (Kubernetes'
/// `getExpectedScale`); `None` if some pod has no known controller.
async fn expected_scale(
    client: &kube::Client,
    ns: &str,
    pods: &[Pod],
) -> Result<Option<i32>, Error> {
    let mut scales: BTreeMap<String, i32> = BTreeMap::new();
    for pod in pods {
        let Some(owner) = controller_of(&pod.metadata) else {
            return Ok(None);
        };
        if scales.contains_key(&owner.uid) {
            continue;
        }
        let found = match owner.kind.as_str() {
            "ReplicaSet" => {
                let rs = Api::<ReplicaSet>::namespaced(client.clone(), ns)
                    .get_opt(&owner.name)
                    .await?;
                match rs
                    .as_ref()
                    .and_then(|rs| controller_of(&rs.metadata).cloned())
                {
                    Some(d) if d.kind == "Deployment" => {
                        let dep = Api::<Deployment>::namespaced(client.clone(), ns)
                            .get_opt(&d.name)
                            .await?;
                        dep.map(|d| {
                            (
                                d.metadata.uid.clone().unwrap_or_default(),
                                d.spec.and_then(|s| s.replicas).unwrap_or(1),
                            )
                        })
                    }
                    _ => rs.map(|rs| {
                        (
                            owner.uid.clone(),
                            rs.spec.and_then(|s| s.replicas).unwrap_or(1),
                        )
                    }),
                }
            }
            "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
                .map(|s| {
                    (
                        owner.uid.clone(),
                        s.spec.and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            "ReplicationController" => Api::<ReplicationController>::namespaced(client.clone(), ns)
                .get_opt(&owner.name)
                .await?
                .map(|s| {
                    (
                        owner.uid.clone(),
                        s.spec.and_then(|s| s.replicas).unwrap_or(1),
                    )
                }),
            _ => None,
        };
        let Some((uid, replicas)) = found else {
            return Ok(None);
        };
        scales.insert(owner.uid.clone(), 0);
        scales.insert(uid, replicas);
    }
    Ok(Some(scales.values().sum()))
}

/// The status fields for the budget given its pods, the expected scale and `now`.
pub(crate) fn status_of(
    pdb: &PodDisruptionBudget,
    pods: &[Pod],
    scale: Option<i32>,
    now: Timestamp,
) -> serde_json::Value {
    let spec = pdb.spec.clone().unwrap_or_default();
    let old = pdb.status.clone().unwrap_or_default();
    // Evictions the API granted whose pods are not yet going: they count as unhealthy.
    let disrupted: BTreeMap<String, Time> = old
        .disrupted_pods
        .unwrap_or_default()
        .into_iter()
        .filter(|(name, at)| {
            let pod = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name));
            pod.is_some_and(|p| p.metadata.deletion_timestamp.is_none())
                && at.0 + DELETION_TIMEOUT > now
        })
        .collect();
    let healthy = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or_default()))
        .filter(|p| is_ready(p))
        .count() as i32;
    let (expected, desired) = match (&spec.min_available, &spec.max_unavailable) {
        (Some(IntOrString::Int(n)), _) => (Some(pods.len() as i32), Some(*n)),
        (Some(pct), _) => (scale, scale.and_then(|s| scaled(pct, s))),
        (None, Some(max)) => (
            scale,
            scale.and_then(|s| scaled(max, s).map(|m| (s - m).max(0))),
        ),
        (None, None) => (Some(pods.len() as i32), Some(1)),
    };
    let (allowed, reason) = match (expected, desired) {
        (Some(_), Some(d)) if healthy > d => (healthy - d, "SufficientPods"),
        (Some(_), Some(_)) => (0, "InsufficientPods"),
        _ => (0, "SyncFailed"),
    };
    let status = if allowed > 0 { "True" } else { "False" };
    let old_condition = old
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed");
    let transition = match old_condition {
        Some(c) if c.status == status => c.last_transition_time.clone(),
        _ => Time(now),
    };
    json!({
        "observedGeneration": pdb.metadata.generation,
        "disruptedPods": if disrupted.is_empty() { None } else { Some(&disrupted) },
        "currentHealthy": healthy,
        "desiredHealthy": desired.unwrap_or(0),
        "expectedPods": expected.unwrap_or(0),
        "disruptionsAllowed": allowed,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": status,
            "reason": reason,
            "message": "",
            "observedGeneration": pdb.metadata.generation,
            "lastTransitionTime": transition,
        }],
    })
}

#[tracing::instrument(skip_all, fields(
    controller = "disruption",
    namespace = pdb.metadata.namespace.as_deref().unwrap_or_default(),
    name = pdb.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(
    pdb: Arc<PodDisruptionBudget>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let ns = pdb.namespace().unwrap_or_default();
    let name = pdb.name_any();
    let api: Api<PodDisruptionBudget> = Api::namespaced((*client).clone(), &ns);
    // The eviction subresource writes disruptedPods: start from the stored budget.
    let pdb = match api.get(&name).await {
        Ok(p) => p,
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    };
    let Some(sel) = pdb.spec.as_ref().and_then(|s| s.selector.clone()) else {
        return Ok(Action::await_change());
    };
    let listed = Api::<Pod>::namespaced((*client).clone(), &ns)
        .list(&ListParams::default().labels(&selector::match_labels_query(&sel)))
        .await?;
    let pods: Vec<Pod> = listed
        .items
        .into_iter()
        .filter(|p| selector::matches(&sel, p.metadata.labels.as_ref()))
        .collect();
    let scale = expected_scale(&client, &ns, &pods).await?;
    let status = status_of(&pdb, &pods, scale, Timestamp::now());
    let current = serde_json::to_value(&pdb.status).unwrap_or_default();
    let changed = status.as_object().into_iter().flatten().any(|(k, v)| {
        let old = current.get(k).unwrap_or(&serde_json::Value::Null);
        k != "conditions" && old != v
    }) || current.pointer("/conditions/0/reason")
        != status.pointer("/conditions/0/reason");
    if changed {
        let mut body = pdb.clone();
        body.status = serde_json::from_value(status.clone()).ok();
        match api.replace_status(&name, &Default::default(), &body).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {
                return Ok(Action::requeue(Duration::from_millis(200)))
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Entries in disruptedPods expire without an event.
    if status.get("disruptedPods").is_some_and(|d| !d.is_null()) {
        return Ok(Action::requeue(Duration::from_secs(10)));
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pdb(spec: serde_json::Value, status: serde_json::Value) -> PodDisruptionBudget {
        serde_json::from_value(json!({
            "metadata": {"name": "b", "namespace": "ns", "generation": 2},
            "spec": spec, "status": status,
        }))
        .unwrap()
    }

    fn pod(name: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {"app": "web"}},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
        }))
        .unwrap()
    }

    #[test]
    fn budgets_from_min_available_and_max_unavailable() {
        let now = Timestamp::now();
        let pods = [pod("a", true), pod("b", true), pod("c", false)];
        let s = status_of(
            &pdb(json!({"minAvailable": 1}), json!({})),
            &pods,
            None,
            now,
        );
        assert_eq!(
            (
                &s["currentHealthy"],
                &s["desiredHealthy"],
                &s["expectedPods"],
                &s["disruptionsAllowed"]
            ),
            (&json!(2), &json!(1), &json!(3), &json!(1))
        );
        assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
        assert_eq!(s["conditions"][0]["status"], "True");
        assert_eq!(s["observedGeneration"], 2);

        let s = status_of(
            &pdb(json!({"maxUnavailable": "50%"}), json!({})),
            &pods,
            Some(3),
            now,
        );
        // 50% of 3 rounds up to 2 unavailable: 1 must stay healthy.
        assert_eq!(
            (&s["desiredHealthy"], &s["disruptionsAllowed"]),
            (&json!(1), &json!(1))
        );
        let s = status_of(
            &pdb(json!({"minAvailable": "100%"}), json!({})),
            &pods,
            Some(3),
            now,
        );
        assert_eq!(
            (&s["desiredHealthy"], &s["disruptionsAllowed"]),
            (&json!(3), &json!(0))
        );
        assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
        assert_eq!(s["conditions"][0]["status"], "False");
        let s = status_of(
            &pdb(json!({"maxUnavailable": 1}), json!({})),
            &pods,
            None,
            now,
        );
        assert_eq!(
            s["conditions"][0]["reason"], "SyncFailed",
            "pods without a controller"
        );
    }

    #[test]
    fn recent_evictions_count_as_unhealthy_until_they_expire() {
        let now = Timestamp::now();
        let pods = [pod("a", true), pod("b", true)];
        let recent = Time(now - SignedDuration::from_secs(10));
        let old = Time(now - SignedDuration::from_secs(300));
        let budget = pdb(
            json!({"minAvailable": 1}),
            json!({"disruptedPods": {"a": recent, "b": old, "gone": recent}}),
        );
        let s = status_of(&budget, &pods, None, now);
        assert_eq!(s["currentHealthy"], 1);
        assert_eq!(s["disruptionsAllowed"], 0);
        assert_eq!(s["disruptedPods"], json!({"a": recent}));
    }
}
