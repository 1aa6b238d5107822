//! Taint-based eviction (Kubernetes' `taint-eviction-controller`): a pod on a node with
//! `NoExecute` taints is deleted at once if it does not tolerate one of them, else when the
//! shortest `tolerationSeconds` of the tolerations it needs has passed since the taint's
//! `timeAdded` (tolerations without seconds keep it forever). Before deleting, the pod gets the
//! `DisruptionTarget` condition (reason `DeletionByTaintManager`) and a
//! `TaintManagerEviction` event, "Marking for deletion Pod ns/name".

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::ResourceExt;

use crate::daemonset::nodes::tolerates;
use crate::error::{is_not_found, Error};
use crate::events::{event_for, Type};

/// The controller's name on events.
const COMPONENT: &str = "taint-eviction-controller";

/// When `pod` must go from a node with `taints`: `None` to stay, else the time.
pub(crate) fn due(pod: &Pod, taints: &[Taint]) -> Option<Timestamp> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut deadline: Option<Timestamp> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<_> = tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return Some(Timestamp::UNIX_EPOCH);
        }
        // The shortest of the matching tolerations' seconds; none means forever.
        let Some(seconds) = matching.iter().filter_map(|t| t.toleration_seconds).min() else {
            continue;
        };
        let added = taint
            .time_added
            .as_ref()
            .map_or(Timestamp::UNIX_EPOCH, |t| t.0);
        let at = added + SignedDuration::from_secs(seconds.max(0));
        deadline = Some(deadline.map_or(at, |d| d.min(at)));
    }
    deadline
}

/// Deletes the pods whose time on a NoExecute-tainted node is up.
pub(crate) async fn sweep(client: &kube::Client) -> Result<(), Error> {
    let nodes = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let now = Timestamp::now();
    for node in nodes {
        let taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        if !taints.iter().any(|t| t.effect == "NoExecute") {
            continue;
        }
        let name = node.name_any();
        let pods = Api::<Pod>::all(client.clone())
            .list(&ListParams::default().fields(&format!("spec.nodeName={name}")))
            .await?;
        for pod in pods.items {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            if due(&pod, &taints).is_some_and(|at| at <= now) {
                evict(client, &pod).await?;
            }
        }
    }
    Ok(())
}

async fn evict(client: &kube::Client, pod: &Pod) -> Result<(), Error> {
    let ns = pod.namespace().unwrap_or_default();
    let name = pod.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let condition = serde_json::json!({"status": {"conditions": [{
        "type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
        "message": "Taint manager: deleting due to NoExecute taint",
        "lastTransitionTime": Time(Timestamp::now()),
    }]}});
    match api
        .patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Strategic(&condition),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    let message = format!("Marking for deletion Pod {ns}/{name}");
    let event = event_for(
        pod,
        COMPONENT,
        Type::Normal,
        "TaintManagerEviction",
        message,
    );
    let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), &ns);
    if let Err(e) = events.create(&Default::default(), &event).await {
        tracing::debug!(error = %e, "could not write event");
    }
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(pod = %format!("{ns}/{name}"), "evicted from NoExecute-tainted node");
            Ok(())
        }
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
