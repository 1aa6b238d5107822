//! The ReplicaSet and ReplicationController controllers: one generic `kube::runtime`
//! Controller per kind over the [`ReplicaOwner`] trait, watching the sets and every pod (owned
//! pods map to their controller, orphans to each set in their namespace whose selector matches
//! them). [`sync`] does the work: claims pods, creates or deletes to match `spec.replicas`, and
//! reports the counts the status subresource gets.

mod pods;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::selector;
pub(crate) use pods::{deletion_order, from_template, is_active, is_available, is_ready, now};
pub(crate) use sync::delete_pods;
pub use sync::SetStatus;

/// A kind that keeps `spec.replicas` pods from a template: ReplicaSet or
/// ReplicationController. The controller only needs these views of it.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = kube::core::NamespaceResourceScope>
    + Clone
    + std::fmt::Debug
    + DeserializeOwned
    + serde::Serialize
    + Send
    + Sync
    + 'static
{
    /// `spec.replicas` (default 1).
    fn replicas(&self) -> i32;
    /// `spec.minReadySeconds`.
    fn min_ready_seconds(&self) -> i32;
    /// The pod selector (a ReplicationController's map becomes matchLabels).
    fn selector(&self) -> Option<LabelSelector>;
    /// The pod template.
    fn template(&self) -> Option<&PodTemplateSpec>;
    /// `status.observedGeneration`.
    fn observed(&self) -> SetStatus;
}

impl ReplicaOwner for ReplicaSet {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        self.spec.as_ref().map(|s| s.selector.clone())
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn observed(&self) -> SetStatus {
        self.status
            .as_ref()
            .map(|s| SetStatus {
                replicas: s.replicas,
                fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
                ready_replicas: s.ready_replicas.unwrap_or(0),
                available_replicas: s.available_replicas.unwrap_or(0),
                observed_generation: s.observed_generation.unwrap_or(0),
            })
            .unwrap_or_default()
    }
}

impl ReplicaOwner for ReplicationController {
    fn replicas(&self) -> i32 {
        self.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
    }
    fn min_ready_seconds(&self) -> i32 {
        self.spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0)
    }
    fn selector(&self) -> Option<LabelSelector> {
        // An RC without a selector selects its template's labels (API defaulting).
        let spec = self.spec.as_ref()?;
        let labels = spec.selector.clone().or_else(|| {
            spec.template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        })?;
        Some(LabelSelector {
            match_labels: Some(labels),
            match_expressions: None,
        })
    }
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref()?.template.as_ref()
    }
    fn observed(&self) -> SetStatus {
        self.status
            .as_ref()
            .map(|s| SetStatus {
                replicas: s.replicas,
                fully_labeled_replicas: s.fully_labeled_replicas.unwrap_or(0),
                ready_replicas: s.ready_replicas.unwrap_or(0),
                available_replicas: s.available_replicas.unwrap_or(0),
                observed_generation: s.observed_generation.unwrap_or(0),
            })
            .unwrap_or_default()
    }
}

/// Runs the ReplicaSet controller until the process ends.
pub async fn run(client: kube::Client) {
    run_for::<ReplicaSet>(client).await
}

/// Runs the ReplicationController controller until the process ends.
pub async fn run_rc(client: kube::Client) {
    run_for::<ReplicationController>(client).await
}

async fn run_for<K: ReplicaOwner>(client: kube::Client) {
    let sets: Api<K> = Api::all(client.clone());
    let pods: Api<Pod> = Api::all(client.clone());
    let controller = Controller::new(sets, watcher::Config::default());
    let store = controller.store();
    controller
        .watches(pods, watcher::Config::default(), move |pod| {
            sets_for_pod(&store, &pod)
        })
        .run(reconcile::<K>, error_policy::<K>, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

/// The sets a pod event concerns: its controller if it has one of this kind, else every set in
/// its namespace that would adopt it.
fn sets_for_pod<K: ReplicaOwner>(store: &Store<K>, pod: &Pod) -> Vec<ObjectRef<K>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let owners = pod.metadata.owner_references.as_deref().unwrap_or_default();
    if let Some(owner) = owners.iter().find(|o| o.controller == Some(true)) {
        if owner.kind == K::kind(&()) {
            return vec![ObjectRef::new(&owner.name).within(ns)];
        }
        return Vec::new();
    }
    store
        .state()
        .iter()
        .filter(|s| s.meta().namespace.as_deref() == Some(ns))
        .filter(|s| {
            s.selector().is_some_and(|sel| {
                !selector::is_empty(&sel) && selector::matches(&sel, pod.metadata.labels.as_ref())
            })
        })
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

fn error_policy<K: ReplicaOwner>(_set: Arc<K>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, kind = %K::kind(&()), "syncing pods failed; will retry");
    Action::requeue(Duration::from_secs(1))
}

#[tracing::instrument(skip_all, fields(
    controller = %K::kind(&()),
    namespace = set.meta().namespace.as_deref().unwrap_or_default(),
    name = set.meta().name.as_deref().unwrap_or_default(),
))]
async fn reconcile<K: ReplicaOwner>(
    set: Arc<K>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let Some(status) = sync::sync(&client, set.as_ref()).await? else {
        return Ok(Action::await_change());
    };
    if status != set.observed() {
        let ns = set.meta().namespace.clone().unwrap_or_default();
        let name = set.meta().name.clone().unwrap_or_default();
        let api: Api<K> = Api::namespaced((*client).clone(), &ns);
        let patch = serde_json::json!({ "status": status });
        match api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            Err(e) if crate::error::is_not_found(&e) => return Ok(Action::await_change()),
            Err(e) => return Err(e.into()),
        }
    }
    // Pods become available minReadySeconds after turning ready, without another event.
    let min_ready = set.min_ready_seconds();
    if min_ready > 0 && status.available_replicas < status.ready_replicas {
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}
