//! The ResourceQuota controller: recalculates every ResourceQuota's `status.used` (and sets
//! `status.hard` to `spec.hard`) from the objects in its namespace, as Kubernetes' quota
//! controller does. The ResourceQuota admission plugin only charges new usage; this controller
//! is what gives usage back when objects are deleted or pods end (Succeeded / Failed pods use
//! no compute resources and do not count as `pods`).
//!
//! A quota is recalculated when it is created or changed, when a counted object in its
//! namespace changes (pods, services, configmaps, secrets, persistentvolumeclaims,
//! replicationcontrollers and resourcequotas are watched), and on a full resync every
//! [`RESYNC`] (Kubernetes' `--resource-quota-sync-period`), which also catches other kinds
//! counted through `count/<resource>.<group>` (Kubernetes watches those too; Keelson lists them
//! when it recalculates). The evaluators are `keelson_apimachinery::quota`, shared with the
//! admission plugin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, PersistentVolumeClaim, Pod, ReplicationController, ResourceQuota,
    ResourceQuotaStatus, Secret, Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use keelson_apimachinery::quantity;
use keelson_apimachinery::quota::{self, Usage};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::discovery::ApiResource;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::Resource;
use serde_json::Value;

use crate::error::{is_conflict, is_not_found, Error};

/// How often every quota is recalculated even without changes (Kubernetes' default 5m).
pub const RESYNC: Duration = Duration::from_secs(300);

/// Runs the ResourceQuota controller until the process ends.
pub async fn run(client: kube::Client) {
    let cfg = watcher::Config::default();
    let controller = Controller::new(Api::<ResourceQuota>::all(client.clone()), cfg.clone());
    let store = controller.store();
    controller
        .watches(Api::<Pod>::all(client.clone()), cfg.clone(), in_ns(&store))
        .watches(
            Api::<Service>::all(client.clone()),
            cfg.clone(),
            in_ns(&store),
        )
        .watches(
            Api::<ConfigMap>::all(client.clone()),
            cfg.clone(),
            in_ns(&store),
        )
        .watches(
            Api::<Secret>::all(client.clone()),
            cfg.clone(),
            in_ns(&store),
        )
        .watches(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            cfg.clone(),
            in_ns(&store),
        )
        .watches(
            Api::<ReplicationController>::all(client.clone()),
            cfg.clone(),
            in_ns(&store),
        )
        .watches(
            Api::<ResourceQuota>::all(client.clone()),
            cfg,
            in_ns(&store),
        )
        .run(reconcile, error_policy, Arc::new(client))
        .for_each(|_| async {})
        .await;
}

/// Maps a changed object to every quota in its namespace.
fn in_ns<K: Resource>(
    store: &Store<ResourceQuota>,
) -> impl Fn(K) -> Vec<ObjectRef<ResourceQuota>> + Send + Sync + 'static {
    let store = store.clone();
    move |obj: K| {
        let ns = obj.meta().namespace.clone().unwrap_or_default();
        store
            .state()
            .iter()
            .filter(|q| q.metadata.namespace.as_deref() == Some(ns.as_str()))
            .map(|q| ObjectRef::from_obj(&**q))
            .collect()
    }
}

fn error_policy(_quota: Arc<ResourceQuota>, e: &Error, _client: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "recalculating quota usage failed; will retry");
    Action::requeue(Duration::from_secs(2))
}

/// The API resource of `group`/`resource`: the core kinds the evaluators know, else discovery.
async fn api_resource(
    client: &kube::Client,
    group: &str,
    resource: &str,
) -> Result<Option<ApiResource>, Error> {
    let group = match kube::discovery::group(client, group).await {
        Ok(g) => g,
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Ok(group
        .recommended_resources()
        .into_iter()
        .map(|(ar, _)| ar)
        .find(|ar| ar.plural == resource))
}

/// Every object of `group`/`resource` in `ns`, as JSON (empty when the resource is not served).
async fn objects(
    client: &kube::Client,
    ns: &str,
    group: &str,
    resource: &str,
) -> Result<Vec<Value>, Error> {
    let Some(ar) = api_resource(client, group, resource).await? else {
        return Ok(Vec::new());
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &ar);
    let list = api.list(&ListParams::default()).await?;
    Ok(list
        .items
        .iter()
        .filter_map(|o| serde_json::to_value(o).ok())
        .collect())
}

/// The status a quota should have, given what its namespace uses.
pub fn status_for(quota: &ResourceQuota, used: &Usage) -> ResourceQuotaStatus {
    let hard_list = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    let used_list: BTreeMap<String, Quantity> = hard_list
        .iter()
        .filter_map(|(k, h)| {
            let v = used.get(k)?;
            Some((
                k.clone(),
                Quantity(quantity::format(*v, quantity::is_binary(&h.0))),
            ))
        })
        .collect();
    ResourceQuotaStatus {
        hard: Some(hard_list),
        used: Some(used_list),
    }
}

#[tracing::instrument(skip_all, fields(controller = "resourcequota", namespace = rq.metadata.namespace.as_deref().unwrap_or_default(), quota = rq.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile(rq: Arc<ResourceQuota>, client: Arc<kube::Client>) -> Result<Action, Error> {
    if rq.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = rq.metadata.namespace.clone().unwrap_or_default();
    let name = rq.metadata.name.clone().unwrap_or_default();
    let value = serde_json::to_value(&*rq).unwrap_or_default();
    let hard = quota::hard(&value);
    let mut used = Usage::new();
    for (group, resource) in quota::counted_resources(&hard) {
        let objects = objects(&client, &ns, &group, &resource).await?;
        used.extend(quota::usage_of(&value, &hard, &group, &resource, &objects));
    }
    let status = status_for(&rq, &used);
    if rq.status.as_ref() == Some(&status) {
        return Ok(Action::requeue(RESYNC));
    }
    let mut updated = (*rq).clone();
    updated.status = Some(status);
    let api: Api<ResourceQuota> = Api::namespaced((*client).clone(), &ns);
    match api
        .replace_status(&name, &PostParams::default(), &updated)
        .await
    {
        Ok(_) => tracing::debug!("quota usage recalculated"),
        // Changed meanwhile (admission charged it, or its spec changed): recalculate again.
        Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(100))),
        Err(e) if is_not_found(&e) => return Ok(Action::await_change()),
        Err(e) => return Err(e.into()),
    }
    Ok(Action::requeue(RESYNC))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lists_every_hard_resource_in_its_format() {
        let rq: ResourceQuota = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "q", "namespace": "ns"},
            "spec": {"hard": {"pods": "2", "requests.memory": "1Gi", "limits.cpu": "1", "foo": "1"}},
        }))
        .unwrap();
        let used: Usage = [
            ("pods".to_string(), 1000),
            ("requests.memory".to_string(), 256 * 1024 * 1024 * 1000),
            ("limits.cpu".to_string(), 0),
        ]
        .into();
        let status = status_for(&rq, &used);
        let used = status.used.unwrap();
        assert_eq!(used["pods"].0, "1");
        assert_eq!(used["requests.memory"].0, "256Mi");
        assert_eq!(used["limits.cpu"].0, "0");
        assert!(!used.contains_key("foo"), "no evaluator counts it");
        assert_eq!(status.hard.unwrap().len(), 4);
    }
}
