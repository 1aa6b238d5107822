//! The StatefulSet controller: a `kube::runtime` Controller over StatefulSets that owns their
//! pods and ControllerRevisions. Each pass claims the set's pods (orphans named
//! `<set>-<ordinal>` that match its selector) and revisions, resolves the current and update
//! revisions ([`revision`]), applies the [`plan`] (ordered or parallel creation with the
//! pods' claims, scale-down from the highest ordinal, rolling update down to the partition),
//! writes Kubernetes' status counts and revisions, and trims the revision history. It emits
//! Kubernetes' `SuccessfulCreate` / `SuccessfulDelete` events in its wording.

mod identity;
mod plan;
mod revision;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::Resource;
use serde_json::json;

use crate::error::{is_not_found, Error};
use crate::events::{Recorder, Type};
use crate::replicaset::{is_available, is_ready, now};
use crate::{ownership, selector};
use identity::{ordinal_of, revision_of};
use plan::{Shape, Step};

/// The controller's name on events.
const COMPONENT: &str = "statefulset-controller";

struct Ctx {
    client: kube::Client,
    recorder: Recorder,
}

/// Runs the StatefulSet controller until the process ends.
pub async fn run(client: kube::Client) {
    let sets: Api<StatefulSet> = Api::all(client.clone());
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(client.clone(), COMPONENT),
        client: client.clone(),
    });
    Controller::new(sets, watcher::Config::default())
        .owns(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .owns(
            Api::<ControllerRevision>::all(client),
            watcher::Config::default(),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|_| async {})
        .await;
}

fn error_policy(_set: Arc<StatefulSet>, e: &Error, _ctx: Arc<Ctx>) -> Action {
    tracing::warn!(error = %e, "syncing statefulset failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

fn shape(set: &StatefulSet) -> Shape {
    let spec = set.spec.clone().unwrap_or_default();
    let strategy = spec.update_strategy.unwrap_or_default();
    Shape {
        name: set.metadata.name.clone().unwrap_or_default(),
        replicas: spec.replicas.unwrap_or(1),
        start: spec.ordinals.and_then(|o| o.start).unwrap_or(0),
        parallel: spec.pod_management_policy.as_deref() == Some("Parallel"),
        rolling: strategy.type_.as_deref() != Some("OnDelete"),
        partition: strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0),
        min_ready_seconds: spec.min_ready_seconds.unwrap_or(0),
    }
}

#[tracing::instrument(skip_all, fields(
    controller = "statefulset",
    namespace = set.metadata.namespace.as_deref().unwrap_or_default(),
    name = set.metadata.name.as_deref().unwrap_or_default(),
))]
async fn reconcile(set: Arc<StatefulSet>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let Some(spec) = set.spec.as_ref() else {
        return Ok(Action::await_change());
    };
    if set.metadata.deletion_timestamp.is_some() || selector::is_empty(&spec.selector) {
        return Ok(Action::await_change());
    }
    let client = &ctx.client;
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let name = set.metadata.name.clone().unwrap_or_default();
    let shape = shape(&set);
    let query = ListParams::default().labels(&selector::match_labels_query(&spec.selector));
    let owner = set.controller_owner_ref(&()).unwrap_or_default();

    let pods_api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = pods_api.list(&query).await?.items;
    let pods = ownership::claim(&pods_api, listed, &spec.selector, &owner, |p| {
        ordinal_of(&name, p.metadata.name.as_deref().unwrap_or_default()).is_some()
    })
    .await?;
    let revs_api: Api<ControllerRevision> = Api::namespaced(client.clone(), &ns);
    let listed = revs_api.list(&query).await?.items;
    let revisions = ownership::claim(&revs_api, listed, &spec.selector, &owner, |_| true).await?;
    let revs = revision::resolve(&revs_api, &set, revisions.clone()).await?;
    let current_name = revs.current.metadata.name.clone().unwrap_or_default();
    let update_name = revs.update.metadata.name.clone().unwrap_or_default();

    let at = now().0;
    let steps = plan::plan(&shape, &pods, &update_name, at);
    let mut created = Vec::new();
    for step in &steps {
        match step {
            Step::Create(o) => {
                let on_current = shape.rolling && *o < shape.start + shape.partition;
                let (rev, rev_name) = if on_current {
                    (&revs.current, &current_name)
                } else {
                    (&revs.update, &update_name)
                };
                let template = revision::template_of(rev).unwrap_or_else(|| spec.template.clone());
                created.push(identity::new_pod(&set, &template, *o, rev_name));
            }
            Step::Replace(p) | Step::Condemn(p) | Step::Update(p) => {
                if matches!(step, Step::Condemn(_)) && identity::delete_claims_when_scaled(&set) {
                    release_claims(client, &set, p).await?;
                }
                delete(&pods_api, p).await?;
                let msg = format!("delete Pod {p} in StatefulSet {name} successful");
                ctx.recorder
                    .publish(set.as_ref(), Type::Normal, "SuccessfulDelete", msg);
            }
        }
    }
    let results = join_all(created.iter().map(|pod| create(&ctx, &set, pod))).await;
    for r in results {
        r?;
    }

    let status = status_of(&set, &shape, &pods, &created, &revs, at);
    let changed = {
        let current = serde_json::to_value(&set.status).unwrap_or_default();
        status
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| current.get(k) != Some(v))
    };
    if changed {
        let api: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
        let patch = json!({ "status": status });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }

    let mut live: BTreeSet<String> = pods
        .iter()
        .filter_map(|p| revision_of(p).map(str::to_string))
        .collect();
    live.insert(current_name);
    live.insert(update_name);
    let listed = revs_api.list(&query).await?.items;
    let owned: Vec<ControllerRevision> = listed
        .into_iter()
        .filter(|r| ownership::controller_of(&r.metadata).is_some_and(|o| o.uid == owner.uid))
        .collect();
    revision::truncate(
        &revs_api,
        owned,
        &live,
        spec.revision_history_limit.unwrap_or(10),
    )
    .await?;

    if shape.min_ready_seconds > 0 {
        return Ok(Action::requeue(Duration::from_secs(
            shape.min_ready_seconds as u64,
        )));
    }
    Ok(Action::await_change())
}

/// Creates a pod's missing claims, then the pod, with Kubernetes' events.
async fn create(ctx: &Ctx, set: &StatefulSet, pod: &Pod) -> Result<(), Error> {
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let Some(o) = ordinal_of(&set_name, &pod_name) else {
        return Ok(());
    };
    let claims_api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ns);
    for claim in identity::claims(set, o) {
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        match claims_api.create(&PostParams::default(), &claim).await {
            Ok(_) => {
                let msg = format!(
                    "create Claim {claim_name} Pod {pod_name} in StatefulSet {set_name} success"
                );
                ctx.recorder
                    .publish(set, Type::Normal, "SuccessfulCreate", msg);
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => {
                let msg = format!(
                    "create Claim {claim_name} for Pod {pod_name} in StatefulSet {set_name} failed error: {e}"
                );
                ctx.recorder
                    .publish(set, Type::Warning, "FailedCreate", msg);
                return Err(e.into());
            }
        }
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    match pods.create(&PostParams::default(), pod).await {
        Ok(_) => {
            let msg = format!("create Pod {pod_name} in StatefulSet {set_name} successful");
            ctx.recorder
                .publish(set, Type::Normal, "SuccessfulCreate", msg);
            tracing::info!(pod = %pod_name, "created pod");
            Ok(())
        }
        // Still there from before (being deleted): made again on a later pass.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => {
            let msg = format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
            ctx.recorder
                .publish(set, Type::Warning, "FailedCreate", msg);
            Err(e.into())
        }
    }
}

async fn delete(api: &Api<Pod>, name: &str) -> Result<(), Error> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(pod = %name, "deleted pod");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// `whenScaled: Delete`: the condemned pod becomes the owner of its claims, so the garbage
/// collector removes them after it.
async fn release_claims(
    client: &kube::Client,
    set: &StatefulSet,
    pod_name: &str,
) -> Result<(), Error> {
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let set_name = set.metadata.name.clone().unwrap_or_default();
    let Some(o) = ordinal_of(&set_name, pod_name) else {
        return Ok(());
    };
    let pod = match Api::<Pod>::namespaced(client.clone(), &ns)
        .get(pod_name)
        .await
    {
        Ok(p) => p,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), &ns);
    let owner = pod.controller_owner_ref(&()).map(|o| OwnerReference {
        controller: None,
        ..o
    });
    for claim in identity::claims(set, o) {
        let claim_name = claim.metadata.name.unwrap_or_default();
        let patch = json!({ "metadata": { "ownerReferences": [owner] } });
        match claims
            .patch(&claim_name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Kubernetes' status of a StatefulSet after a pass (`updateStatefulSet` counting and
/// `completeRollingUpdate`).
fn status_of(
    set: &StatefulSet,
    shape: &Shape,
    pods: &[Pod],
    created: &[Pod],
    revs: &revision::Revisions,
    at: k8s_openapi::jiff::Timestamp,
) -> serde_json::Value {
    let current = revs.current.metadata.name.as_deref();
    let update = revs.update.metadata.name.as_deref();
    let (mut replicas, mut ready, mut available, mut on_current, mut on_update) = (0, 0, 0, 0, 0);
    for p in pods.iter().chain(created) {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        let is_new = p.metadata.uid.is_none();
        if phase.is_none() && !is_new {
            continue;
        }
        replicas += 1;
        let running = phase == Some("Running");
        if running && is_ready(p) {
            ready += 1;
            if is_available(p, shape.min_ready_seconds, at) {
                available += 1;
            }
        }
        if p.metadata.deletion_timestamp.is_none() {
            let rev = revision_of(p);
            on_current += i32::from(rev.is_some() && rev == current);
            on_update += i32::from(rev.is_some() && rev == update);
        }
    }
    let (mut current_name, mut current_replicas) = (current, on_current);
    if shape.rolling && on_update == replicas && ready == replicas {
        current_name = update;
        current_replicas = on_update;
    }
    json!({
        "observedGeneration": set.metadata.generation,
        "replicas": replicas,
        "readyReplicas": ready,
        "availableReplicas": available,
        "currentReplicas": current_replicas,
        "updatedReplicas": on_update,
        "currentRevision": current_name,
        "updateRevision": update,
        "collisionCount": revs.collision_count,
    })
}
