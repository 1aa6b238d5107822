//! One pass of a replica set: list the pods its selector matches (a consistent list from the
//! API server, so pods this controller created or deleted in an earlier pass are always seen and
//! a burst of watch events can neither over- nor under-create), claim them (adopt matching
//! orphans, release owned pods that stopped matching), create or delete to reach
//! `spec.replicas`, and compute the status counts.

use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde::Serialize;

use super::pods::{deletion_order, from_template, is_active, is_available, is_ready};
use super::ReplicaOwner;
use crate::error::{is_not_found, Error};
use crate::events::{Recorder, Type};
use crate::{ownership, selector};

/// Most pods created or deleted in one pass (Kubernetes' `burstReplicas`).
const BURST: usize = 500;

/// The counts of a set's status subresource (same names on ReplicaSet and
/// ReplicationController).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SetStatus {
    /// Active pods (not terminated, not being deleted).
    pub replicas: i32,
    /// Active pods carrying every label of the template.
    pub fully_labeled_replicas: i32,
    /// Active pods that are Ready.
    pub ready_replicas: i32,
    /// Active pods Ready for at least minReadySeconds.
    pub available_replicas: i32,
    /// The set's generation these counts were made for.
    pub observed_generation: i64,
}

/// Syncs one set's pods; `None` if it has no usable selector or template.
pub(crate) async fn sync<K: ReplicaOwner>(
    client: &kube::Client,
    set: &K,
) -> Result<Option<SetStatus>, Error> {
    let (Some(sel), Some(template)) = (set.selector(), set.template()) else {
        return Ok(None);
    };
    if selector::is_empty(&sel) {
        return Ok(None);
    }
    let meta = set.meta();
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let deleting = meta.deletion_timestamp.is_some();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let listed = api
        .list(&ListParams::default().labels(&selector::match_labels_query(&sel)))
        .await?;

    let owner = set.controller_owner_ref(&()).unwrap_or_default();
    let owned = ownership::claim(&api, listed.items, &sel, &owner, |p| {
        !deleting && is_active(p)
    })
    .await?;
    let active: Vec<Pod> = owned.into_iter().filter(is_active).collect();
    let want = usize::try_from(set.replicas()).unwrap_or(0);
    let component = if K::kind(&()) == "ReplicaSet" {
        "replicaset-controller"
    } else {
        "replication-controller"
    };
    let recorder = Recorder::new(client.clone(), component);
    if !deleting {
        if active.len() < want {
            let n = (want - active.len()).min(BURST);
            let pod = from_template(template, &ns, &name, owner.clone());
            create(&api, &pod, n, &recorder, set).await?;
        } else if active.len() > want {
            let mut surplus: Vec<&Pod> = active.iter().collect();
            surplus.sort_by(|a, b| deletion_order(a, b));
            surplus.truncate((active.len() - want).min(BURST));
            for name in delete_pods(&api, &surplus).await? {
                let msg = format!("Deleted pod: {name}");
                recorder.publish(set, Type::Normal, "SuccessfulDelete", msg);
            }
        }
    }
    Ok(Some(status_of(set, &active)))
}

fn status_of<K: ReplicaOwner>(set: &K, active: &[Pod]) -> SetStatus {
    let template_labels = set
        .template()
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let now = super::now().0;
    let count = |f: &dyn Fn(&Pod) -> bool| active.iter().filter(|p| f(p)).count() as i32;
    SetStatus {
        replicas: active.len() as i32,
        fully_labeled_replicas: count(&|p| {
            let labels = p.metadata.labels.as_ref();
            template_labels
                .iter()
                .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        }),
        ready_replicas: count(&is_ready),
        available_replicas: count(&|p| is_available(p, set.min_ready_seconds(), now)),
        observed_generation: set.meta().generation.unwrap_or(0),
    }
}

/// Creates `n` copies of `pod` in slow-start batches (1, 2, 4, …) like Kubernetes, stopping at
/// the first batch with a failure so a rejecting API server is not flooded; each creation is
/// reported as an event on `set`.
async fn create<K: ReplicaOwner>(
    api: &Api<Pod>,
    pod: &Pod,
    n: usize,
    recorder: &Recorder,
    set: &K,
) -> Result<(), Error> {
    let mut done = 0;
    let mut batch = 1;
    while done < n {
        let size = batch.min(n - done);
        let params = PostParams::default();
        let results = join_all((0..size).map(|_| api.create(&params, pod))).await;
        for r in results {
            match r {
                Ok(p) => {
                    let msg = format!("Created pod: {}", p.metadata.name.unwrap_or_default());
                    recorder.publish(set, Type::Normal, "SuccessfulCreate", msg);
                }
                Err(e) => {
                    let msg = format!("Error creating: {e}");
                    recorder.publish(set, Type::Warning, "FailedCreate", msg);
                    return Err(e.into());
                }
            }
        }
        done += size;
        batch *= 2;
    }
    tracing::info!(created = n, "created pods");
    Ok(())
}

/// Deletes `pods`, ignoring those already gone; the names of those deleted.
pub(crate) async fn delete_pods(api: &Api<Pod>, pods: &[&Pod]) -> Result<Vec<String>, Error> {
    if pods.is_empty() {
        return Ok(Vec::new());
    }
    let results = join_all(pods.iter().map(|p| {
        let name = p.metadata.name.clone().unwrap_or_default();
        async move { (api.delete(&name, &DeleteParams::default()).await, name) }
    }))
    .await;
    let mut deleted = Vec::new();
    for (r, name) in results {
        match r {
            Ok(_) => deleted.push(name),
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    tracing::info!(deleted = pods.len(), "deleted pods");
    Ok(deleted)
}
