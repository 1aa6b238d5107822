//! The DaemonSet controller: a `kube::runtime` Controller over DaemonSets that owns their pods
//! and looks again at every DaemonSet when a node changes. Each pass puts one pod on every
//! eligible node ([`nodes::eligible`]: nodeSelector, required node affinity, taints), removes
//! pods from nodes that are gone or no longer eligible and failed ones, rolls pods whose
//! `controller-revision-hash` label is not the template's within `maxUnavailable`
//! (RollingUpdate; OnDelete leaves them), and writes the status. Daemon pods are pinned to
//! their node with a `matchFields metadata.name` node affinity and bound by the scheduler, as
//! in Kubernetes.

pub(crate) mod nodes;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;

use crate::deployment::hash;
use crate::error::{is_not_found, Error};
use crate::events::{Recorder, Type};
use crate::replicaset::{delete_pods, from_template, is_active, is_available, is_ready, now};
use crate::{ownership, selector};

/// The label carrying the template hash a daemon pod was made from.
pub const REVISION_HASH: &str = "controller-revision-hash";

/// Runs the DaemonSet controller until the process ends.
pub async fn run(client: kube::Client) {
    let sets: Api<DaemonSet> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let nodes: Api<Node> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    controller
        .owns(pods, watcher::Config::default())
        .watches(nodes, watcher::Config::default(), move |_node| {
            store
                .state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        })
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

fn error_policy(_ds: Arc<DaemonSet>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "syncing daemonset failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

/// The node a daemon pod is on, or pinned to while unscheduled.
fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = &spec.node_name {
        return Some(n.clone());
    }
    let terms = &spec
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms;
    terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name" && f.operator == "In")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH)
        .map(String::as_str)
}

/// A daemon pod for `node`.
fn pod_for(ds: &DaemonSet, node: &str, revision: &str) -> Pod {
    let spec = ds.spec.clone().unwrap_or_default();
    let owner = ds.controller_owner_ref(&()).unwrap_or_default();
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let mut pod = from_template(&spec.template, &ns, &name, owner);
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_HASH.into(), revision.into());
    if let Some(ps) = pod.spec.as_mut() {
        ps.tolerations
            .get_or_insert_with(Vec::new)
            .extend(nodes::daemon_tolerations());
        let pin = NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.into()]),
            }]),
            match_expressions: None,
        };
        let affinity = ps.affinity.get_or_insert_with(Affinity::default);
        affinity
            .node_affinity
            .get_or_insert_with(NodeAffinity::default)
            .required_during_scheduling_ignored_during_execution = Some(NodeSelector {
            node_selector_terms: vec![pin],
        });
    }
    pod
}

#[tracing::instrument(skip_all, fields(
    controller = "daemonset",
    namespace = ds.metadata.namespace.as_deref().unwrap_or_default(),
    name = ds.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(ds: Arc<DaemonSet>, client: Arc<kube::Client>) -> Result<Action, Error> {
    let Some(spec) = ds.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if ds.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let pod_spec = spec.template.spec.clone().unwrap_or_default();
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let pods_api: Api<Pod> = Api::namespaced((*client).clone(), &ns);
    let nodes = Api::<Node>::all((*client).clone())
        .list(&ListParams::default())
        .await?
        .items;
    let listed = pods_api
        .list(&ListParams::default().labels(&selector::match_labels_query(&spec.selector)))
        .await?;
    let owner = ds.controller_owner_ref(&()).unwrap_or_default();
    let owned =
        ownership::claim(&pods_api, listed.items, &spec.selector, &owner, is_active).await?;
    let revision = hash::compute(
        &spec.template,
        ds.status.as_ref().and_then(|s| s.collision_count),
    );
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let at = now().0;

    let mut by_node: BTreeMap<String, Vec<Pod>> = BTreeMap::new();
    let mut doomed: Vec<Pod> = Vec::new();
    for pod in owned {
        let failed = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed");
        match node_of(&pod) {
            _ if failed => doomed.push(pod),
            _ if !is_active(&pod) => {}
            Some(n) => by_node.entry(n).or_default().push(pod),
            None => doomed.push(pod),
        }
    }
    let mut create: Vec<String> = Vec::new();
    let mut kept: Vec<Pod> = Vec::new();
    let mut misscheduled = 0;
    for node in &nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut there = by_node.remove(&name).unwrap_or_default();
        if !nodes::eligible(&pod_spec, node) {
            misscheduled += i32::from(!there.is_empty());
            doomed.append(&mut there);
            continue;
        }
        there.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let mut rest = there.into_iter();
        match rest.next() {
            Some(p) => kept.push(p),
            None => create.push(name),
        }
        doomed.extend(rest);
    }
    doomed.extend(by_node.into_values().flatten());
    let desired = (kept.len() + create.len()) as i32;

    // RollingUpdate: replace outdated pods while at most maxUnavailable nodes lack an
    // available one (outdated pods that are not available go first, for free).
    let rolling = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        != Some("OnDelete");
    if rolling {
        let max_unavailable = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.clone())
            .unwrap_or(IntOrString::Int(1));
        let max_unavailable = crate::deployment::scaled(&max_unavailable, desired, true).max(1);
        let available = kept
            .iter()
            .filter(|p| is_available(p, min_ready, at))
            .count() as i32;
        let mut budget = max_unavailable - (desired - available);
        let (mut outdated, current): (Vec<Pod>, Vec<Pod>) = kept
            .into_iter()
            .partition(|p| hash_of(p) != Some(revision.as_str()));
        outdated.sort_by_key(|p| is_available(p, min_ready, at));
        kept = current;
        for p in outdated {
            if !is_available(&p, min_ready, at) {
                doomed.push(p);
            } else if budget > 0 {
                budget -= 1;
                doomed.push(p);
            } else {
                kept.push(p);
            }
        }
    }

    let recorder = Recorder::new((*client).clone(), "daemonset-controller");
    let doomed_refs: Vec<&Pod> = doomed.iter().collect();
    for name in delete_pods(&pods_api, &doomed_refs).await? {
        let msg = format!("Deleted pod: {name}");
        recorder.publish(ds.as_ref(), Type::Normal, "SuccessfulDelete", msg);
    }
    let params = PostParams::default();
    let new_pods: Vec<Pod> = create.iter().map(|n| pod_for(&ds, n, &revision)).collect();
    let made = join_all(new_pods.iter().map(|p| pods_api.create(&params, p))).await;
    for r in made {
        match r {
            Ok(p) => {
                let msg = format!("Created pod: {}", p.metadata.name.unwrap_or_default());
                recorder.publish(ds.as_ref(), Type::Normal, "SuccessfulCreate", msg);
            }
            Err(e) => {
                let msg = format!("Error creating: {e}");
                recorder.publish(ds.as_ref(), Type::Warning, "FailedCreate", msg);
                return Err(e.into());
            }
        }
    }
    if !create.is_empty() {
        tracing::info!(created = create.len(), "created daemon pods");
    }

    let count = |f: &dyn Fn(&Pod) -> bool| kept.iter().filter(|p| f(p)).count() as i32;
    let available = count(&|p| is_available(p, min_ready, at));
    let status = serde_json::json!({ "status": {
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": kept.len() as i32,
        "numberMisscheduled": misscheduled,
        "numberReady": count(&is_ready),
        "numberAvailable": available,
        "numberUnavailable": desired - available,
        "updatedNumberScheduled": count(&|p| hash_of(p) == Some(revision.as_str())),
        "observedGeneration": ds.metadata.generation,
    }});
    let current = serde_json::to_value(&ds.status).unwrap_or_default();
    let changed = status["status"]
        .as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| current.get(k) != Some(v));
    if changed {
        let api: Api<DaemonSet> = Api::namespaced((*client).clone(), &ns);
        let name = ds.metadata.name.clone().unwrap_or_default();
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    if min_ready > 0 && available < count(&is_ready) {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}
