//! The local-path provisioner (k3s's `rancher.io/local-path`, built in): a claim of a
//! StorageClass with that provisioner gets a `hostPath` PersistentVolume on the node its first
//! consumer was scheduled to (the scheduler's `volume.kubernetes.io/selected-node`), in that
//! node's storage directory (its agent publishes it as the Node annotation
//! [`STORAGE_DIR_ANNOTATION`]; `/var/lib/keelson/storage` when absent), as
//! `pvc-<uid>_<namespace>_<name>` with `type: DirectoryOrCreate`. The volume is pre-bound to
//! the claim (`claimRef`) and pinned to the node (`nodeAffinity` on `kubernetes.io/hostname`),
//! with the class's reclaim policy; the PersistentVolume binder then binds the pair. The
//! directory is made by the node's agent when a pod mounts the claim; a `Delete` reclaim
//! removes the PersistentVolume object, not the directory's data (as the binder documents).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, Node, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::watcher;
use kube::ResourceExt;

use crate::error::Error;
use crate::volume_binder::SELECTED_NODE;

/// The provisioner name (k3s's).
pub const PROVISIONER: &str = "rancher.io/local-path";
/// The Node annotation an agent puts its storage directory in.
pub const STORAGE_DIR_ANNOTATION: &str = "keelson.dev/local-path-dir";
/// Where volumes go on a node that names no directory.
const DEFAULT_DIR: &str = "/var/lib/keelson/storage";

/// Runs the provisioner until the process ends.
pub async fn run(client: kube::Client) {
    Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .run(reconcile, error_policy, Arc::new(client))
    .for_each(|_| async {})
    .await;
}

fn error_policy(_c: Arc<PersistentVolumeClaim>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "provisioning a local-path volume failed; will retry");
    Action::requeue(Duration::from_secs(2))
}

#[tracing::instrument(skip_all, fields(claim = %claim.name_any(), namespace = claim.namespace().unwrap_or_default()))]
async fn reconcile(
    claim: Arc<PersistentVolumeClaim>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    let spec = claim.spec.clone().unwrap_or_default();
    let unbound = spec.volume_name.as_deref().unwrap_or_default().is_empty();
    let Some(node) = claim.annotations().get(SELECTED_NODE).cloned() else {
        return Ok(Action::await_change());
    };
    let Some(class) = spec.storage_class_name.clone().filter(|c| !c.is_empty()) else {
        return Ok(Action::await_change());
    };
    if !unbound || claim.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let classes: Api<StorageClass> = Api::all((*client).clone());
    let Some(class) = classes.get_opt(&class).await? else {
        return Ok(Action::await_change());
    };
    if class.provisioner != PROVISIONER {
        return Ok(Action::await_change());
    }
    let uid = claim.uid().unwrap_or_default();
    let name = format!("pvc-{uid}");
    let volumes: Api<PersistentVolume> = Api::all((*client).clone());
    if volumes.get_opt(&name).await?.is_some() {
        return Ok(Action::await_change()); // made already; the binder binds it
    }
    let dir = Api::<Node>::all((*client).clone())
        .get_opt(&node)
        .await?
        .and_then(|n| n.annotations().get(STORAGE_DIR_ANNOTATION).cloned())
        .unwrap_or_else(|| DEFAULT_DIR.to_string());
    let ns = claim.namespace().unwrap_or_default();
    let path = format!(
        "{}/{name}_{ns}_{}",
        dir.trim_end_matches('/'),
        claim.name_any()
    );
    let capacity = spec.resources.as_ref().and_then(|r| r.requests.clone());
    let volume = PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(
                [(
                    "pv.kubernetes.io/provisioned-by".to_string(),
                    PROVISIONER.to_string(),
                )]
                .into(),
            ),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            capacity,
            access_modes: spec.access_modes.clone(),
            volume_mode: spec.volume_mode.clone(),
            storage_class_name: Some(class.name_any()),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            host_path: Some(HostPathVolumeSource {
                path: path.clone(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                namespace: Some(ns),
                name: Some(claim.name_any()),
                uid: Some(uid),
                ..Default::default()
            }),
            node_affinity: Some(pinned_to(&node)),
            ..Default::default()
        }),
        status: None,
    };
    match volumes.create(&PostParams::default(), &volume).await {
        Ok(_) => tracing::info!(volume = %name, %node, %path, "provisioned"),
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

/// Required node affinity to the node named `node`.
fn pinned_to(node: &str) -> VolumeNodeAffinity {
    VolumeNodeAffinity {
        required: Some(NodeSelector {
            node_selector_terms: vec![NodeSelectorTerm {
                match_expressions: Some(vec![NodeSelectorRequirement {
                    key: "kubernetes.io/hostname".into(),
                    operator: "In".into(),
                    values: Some(vec![node.to_string()]),
                }]),
                match_fields: None,
            }],
        }),
    }
}
