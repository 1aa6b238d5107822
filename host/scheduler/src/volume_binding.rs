//! VolumeBinding, as far as Keelson's volumes need it. Before a pod with
//! PersistentVolumeClaims is placed, each claim is read: a missing claim makes the pod wait
//! (back-off, `persistentvolumeclaim "x" not found`), and a claim bound to a volume with
//! `nodeAffinity` (a local or local-path volume) restricts the pod to that volume's nodes —
//! the volume's required terms are ANDed into the pod's own required node affinity, so the
//! NodeAffinity filter applies them. When the pod is bound, each unbound claim of a
//! `WaitForFirstConsumer` class gets `volume.kubernetes.io/selected-node` (Kubernetes'
//! PreBind), which its provisioner acts on.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorTerm, PersistentVolume,
    PersistentVolumeClaim, Pod,
};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};

use crate::framework::ScheduleError;
use crate::node_info::PodInfo;

/// The annotation the scheduler sets on a claim waiting for its first consumer.
pub(crate) const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

fn claim_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.clone())
        .collect()
}

fn failed(message: String) -> ScheduleError {
    ScheduleError::Plugin {
        stage: "PreFilter",
        plugin: "VolumeBinding".into(),
        message,
    }
}

/// `info`, restricted to the nodes of the volumes its claims are bound to (the same `info`
/// when it has no claims or none bound to a pinned volume).
pub(crate) async fn constrain(
    client: &Client,
    info: &Arc<PodInfo>,
) -> Result<Arc<PodInfo>, ScheduleError> {
    let names = claim_names(&info.pod);
    if names.is_empty() {
        return Ok(info.clone());
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), info.namespace());
    let volumes: Api<PersistentVolume> = Api::all(client.clone());
    let mut pinned: Vec<Vec<NodeSelectorTerm>> = Vec::new();
    for name in names {
        let claim = claims
            .get_opt(&name)
            .await
            .map_err(|e| failed(e.to_string()))?
            .ok_or_else(|| failed(format!("persistentvolumeclaim \"{name}\" not found")))?;
        let Some(volume) = claim.spec.and_then(|s| s.volume_name) else {
            continue;
        };
        let terms = volumes
            .get_opt(&volume)
            .await
            .map_err(|e| failed(e.to_string()))?
            .and_then(|v| v.spec?.node_affinity?.required)
            .map(|r| r.node_selector_terms);
        pinned.extend(terms);
    }
    if pinned.is_empty() {
        return Ok(info.clone());
    }
    let mut pod = (*info.pod).clone();
    let spec = pod.spec.get_or_insert_with(Default::default);
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    let required = node
        .required_during_scheduling_ignored_during_execution
        .take()
        .map(|r| r.node_selector_terms);
    let combined = pinned.into_iter().fold(required, |acc, terms| {
        Some(match acc {
            None => terms,
            Some(acc) => and(&acc, &terms),
        })
    });
    node.required_during_scheduling_ignored_during_execution = combined.map(|t| NodeSelector {
        node_selector_terms: t,
    });
    Ok(Arc::new(PodInfo::new(Arc::new(pod))))
}

/// `(a1 OR a2 …) AND (b1 OR b2 …)` as one list of terms: every pair's requirements together.
fn and(a: &[NodeSelectorTerm], b: &[NodeSelectorTerm]) -> Vec<NodeSelectorTerm> {
    let join = |x: &Option<Vec<_>>, y: &Option<Vec<_>>| -> Option<Vec<_>> {
        match (x, y) {
            (None, None) => None,
            _ => Some(x.iter().chain(y.iter()).flatten().cloned().collect()),
        }
    };
    a.iter()
        .flat_map(|x| {
            b.iter().map(move |y| NodeSelectorTerm {
                match_expressions: join(&x.match_expressions, &y.match_expressions),
                match_fields: join(&x.match_fields, &y.match_fields),
            })
        })
        .collect()
}

/// Marks each unbound `WaitForFirstConsumer` claim of `pod` with the node it goes to.
pub(crate) async fn select_node(client: &Client, pod: &Pod, node: &str) -> Result<(), kube::Error> {
    let names = claim_names(pod);
    if names.is_empty() {
        return Ok(());
    }
    let claims: Api<PersistentVolumeClaim> =
        Api::namespaced(client.clone(), &pod.namespace().unwrap_or_default());
    let classes: Api<StorageClass> = Api::all(client.clone());
    for name in names {
        let Some(claim) = claims.get_opt(&name).await? else {
            continue;
        };
        let spec = claim.spec.clone().unwrap_or_default();
        if spec.volume_name.is_some() || claim.annotations().contains_key(SELECTED_NODE) {
            continue;
        }
        let Some(class) = spec.storage_class_name.filter(|c| !c.is_empty()) else {
            continue;
        };
        let waits = classes
            .get_opt(&class)
            .await?
            .is_some_and(|c| c.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"));
        if waits {
            let patch = serde_json::json!({"metadata": {"annotations": {SELECTED_NODE: node}}});
            claims
                .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
                .await?;
            tracing::debug!(claim = %name, %node, "selected node");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NodeSelectorRequirement;

    fn term(key: &str) -> NodeSelectorTerm {
        NodeSelectorTerm {
            match_expressions: Some(vec![NodeSelectorRequirement {
                key: key.into(),
                operator: "Exists".into(),
                values: None,
            }]),
            match_fields: None,
        }
    }

    #[test]
    fn and_of_two_ors_pairs_every_term() {
        let got = and(&[term("a"), term("b")], &[term("x")]);
        let keys: Vec<Vec<String>> = got
            .iter()
            .map(|t| {
                t.match_expressions
                    .iter()
                    .flatten()
                    .map(|r| r.key.clone())
                    .collect()
            })
            .collect();
        assert_eq!(keys, vec![vec!["a", "x"], vec!["b", "x"]]);
    }
}
