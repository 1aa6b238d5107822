//! Carrying out a preemption through the API: the preemptor gets `status.nominatedNodeName`;
//! each victim gets a `DisruptionTarget` condition (reason `PreemptionByScheduler`), a
//! `Preempted` event, and a delete (graceful where the API server implements it).

use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client};

use crate::framework::Nomination;
use crate::report::{Report, Reporter, COMPONENT};

fn api(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// Runs a write again (up to five times) while the API server answers 409 Conflict: patches
/// carry no resourceVersion, so a conflict only means another writer raced this one.
pub(crate) async fn retry_conflicts<T, F, Fut>(mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 5 => attempt += 1,
            other => return other,
        }
    }
}

/// Nominates the node for `pod` and evicts the victims.
pub(crate) async fn carry_out(
    client: &Client,
    reporter: &Reporter,
    pod: &Pod,
    nomination: Nomination,
) -> Result<(), kube::Error> {
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let nominate = serde_json::json!({"status": {"nominatedNodeName": nomination.node}});
    let pods = api(client, pod);
    let (pp, patch) = (PatchParams::default(), Patch::Merge(&nominate));
    retry_conflicts(|| pods.patch_status(name, &pp, &patch)).await?;
    let by = pod.metadata.uid.clone().unwrap_or_default();
    for victim in nomination.victims {
        let vname = victim.metadata.name.clone().unwrap_or_default();
        let vapi = api(client, &victim);
        let condition = serde_json::json!({"status": {"conditions": [{
            "type": "DisruptionTarget",
            "status": "True",
            "reason": "PreemptionByScheduler",
            "message": format!("{COMPONENT}: preempting to accommodate a higher priority pod"),
            "lastTransitionTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        }]}});
        if let Err(e) = vapi
            .patch_status(
                &vname,
                &PatchParams::default(),
                &Patch::Strategic(condition),
            )
            .await
        {
            tracing::debug!(victim = %vname, error = %e, "could not mark the victim");
        }
        reporter.send(Report::Preempted {
            pod: Arc::new(victim.as_ref().clone()),
            by: by.clone(),
            node: nomination.node.clone(),
        });
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: victim.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match vapi.delete(&vname, &dp).await {
            Ok(_) => tracing::info!(victim = %vname, node = %nomination.node, "preempted"),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
