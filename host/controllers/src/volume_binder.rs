//! The PersistentVolume binder (Kubernetes' `persistentvolume-binder` controller, for volumes
//! that already exist): a Pending PersistentVolumeClaim is bound to the smallest Available
//! PersistentVolume that satisfies it — same storage class (`""` matches `""`), same volume
//! mode, every requested access mode, at least the requested `storage`, and the claim's label
//! selector — or to the volume it names in `spec.volumeName`, or to a volume pre-bound to it by
//! `spec.claimRef`. Binding writes the volume's `claimRef` first (annotation
//! `pv.kubernetes.io/bound-by-controller`), then the claim's `volumeName` and
//! `pv.kubernetes.io/bind-completed`, then both phases `Bound` (the claim's status also gets
//! the volume's capacity and access modes).
//!
//! A bound volume whose claim is gone (or was recreated with another uid) turns `Released`;
//! with `persistentVolumeReclaimPolicy: Delete` the PersistentVolume object is then deleted
//! (no volume plugin removes data: a `hostPath` directory stays on its node), with `Retain` it
//! stays Released for an administrator. A volume with no claim is `Available`.
//!
//! Claims of a StorageClass with `volumeBindingMode: WaitForFirstConsumer` are not bound until
//! the scheduler names their node (`volume.kubernetes.io/selected-node`); then the
//! provisioner of their class (the built-in [`crate::local_path`] for `local-path`) makes a
//! volume pre-bound to them, or they bind to an existing one like any other claim.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus,
};
use k8s_openapi::api::storage::v1::StorageClass;
use keelson_apimachinery::quantity;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::error::{is_conflict, is_not_found, Error};

/// Set on a claim once the binder has bound it.
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// Set on whichever side the binder (rather than the user) filled in.
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// Set on a claim by the scheduler: the node its first consumer was placed on.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// Runs the binder (claims) and the volume phase/reclaim loop until the process ends.
pub async fn run(client: kube::Client) {
    let claims = Controller::new(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    );
    let pending = claims.store();
    let claims = claims
        .watches(
            Api::<PersistentVolume>::all(client.clone()),
            watcher::Config::default(),
            move |pv: PersistentVolume| {
                // A volume that appears or frees up may satisfy any unbound claim.
                pending
                    .state()
                    .iter()
                    .filter(|c| {
                        c.spec
                            .as_ref()
                            .and_then(|s| s.volume_name.as_ref())
                            .is_none()
                    })
                    .map(|c| ObjectRef::from_obj(&**c))
                    .chain(claim_of(&pv))
                    .collect::<Vec<_>>()
            },
        )
        .run(reconcile_claim, claim_error, Arc::new(client.clone()))
        .for_each(|_| async {});
    let volumes = Controller::new(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
        |pvc: PersistentVolumeClaim| {
            pvc.spec
                .and_then(|s| s.volume_name)
                .map(|v| ObjectRef::new(&v))
        },
    )
    .run(reconcile_volume, volume_error, Arc::new(client))
    .for_each(|_| async {});
    tokio::join!(claims, volumes);
}

fn claim_of(pv: &PersistentVolume) -> Option<ObjectRef<PersistentVolumeClaim>> {
    let r = pv.spec.as_ref()?.claim_ref.as_ref()?;
    Some(ObjectRef::new(r.name.as_deref()?).within(r.namespace.as_deref()?))
}

fn claim_error(_c: Arc<PersistentVolumeClaim>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "binding a claim failed; will retry");
    Action::requeue(Duration::from_secs(2))
}

fn volume_error(_v: Arc<PersistentVolume>, e: &Error, _: Arc<kube::Client>) -> Action {
    tracing::warn!(error = %e, "updating a volume failed; will retry");
    Action::requeue(Duration::from_secs(2))
}

fn storage(
    list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> i128 {
    list.and_then(|l| l.get("storage"))
        .and_then(|q| quantity::parse(&q.0).ok())
        .unwrap_or(0)
}

fn phase(pv: &PersistentVolume) -> &str {
    pv.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Available")
}

/// Does `pv` satisfy `pvc` (ignoring whether it is free)?
pub fn satisfies(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let (Some(vs), Some(cs)) = (pv.spec.as_ref(), pvc.spec.as_ref()) else {
        return false;
    };
    let class = |c: &Option<String>| c.clone().unwrap_or_default();
    let mode = |m: &Option<String>| m.clone().unwrap_or_else(|| "Filesystem".into());
    let modes = vs.access_modes.as_deref().unwrap_or_default();
    class(&vs.storage_class_name) == class(&cs.storage_class_name)
        && mode(&vs.volume_mode) == mode(&cs.volume_mode)
        && cs.access_modes.iter().flatten().all(|m| modes.contains(m))
        && storage(vs.capacity.as_ref())
            >= storage(cs.resources.as_ref().and_then(|r| r.requests.as_ref()))
        && cs
            .selector
            .as_ref()
            .is_none_or(|s| crate::selector::matches(s, pv.metadata.labels.as_ref()))
}

/// Is `pv`'s claimRef this very claim (by namespace, name and, when set, uid)?
fn refers_to(pv: &PersistentVolume, pvc: &PersistentVolumeClaim) -> bool {
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    r.namespace == pvc.metadata.namespace
        && r.name == pvc.metadata.name
        && r.uid
            .as_ref()
            .is_none_or(|u| Some(u) == pvc.metadata.uid.as_ref())
}

/// The volume to bind `pvc` to: one pre-bound to it, else the smallest free match.
pub fn choose<'a>(
    volumes: &'a [PersistentVolume],
    pvc: &PersistentVolumeClaim,
) -> Option<&'a PersistentVolume> {
    let usable =
        |pv: &&PersistentVolume| pv.metadata.deletion_timestamp.is_none() && satisfies(pv, pvc);
    if let Some(pre) = volumes.iter().filter(usable).find(|pv| refers_to(pv, pvc)) {
        return Some(pre);
    }
    volumes
        .iter()
        .filter(usable)
        .filter(|pv| {
            phase(pv) == "Available"
                && pv
                    .spec
                    .as_ref()
                    .and_then(|s| s.claim_ref.as_ref())
                    .is_none()
        })
        .min_by_key(|pv| storage(pv.spec.as_ref().and_then(|s| s.capacity.as_ref())))
}

async fn waits_for_consumer(client: &kube::Client, pvc: &PersistentVolumeClaim) -> bool {
    let Some(class) = pvc.spec.as_ref().and_then(|s| s.storage_class_name.clone()) else {
        return false;
    };
    if class.is_empty() || annotation(&pvc.metadata, SELECTED_NODE).is_some() {
        return false;
    }
    let classes: Api<StorageClass> = Api::all(client.clone());
    matches!(classes.get_opt(&class).await, Ok(Some(sc)) if sc.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer"))
}

fn annotation<'a>(
    meta: &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<&'a String> {
    meta.annotations.as_ref()?.get(key)
}

#[tracing::instrument(skip_all, fields(controller = "persistentvolume-binder", namespace = pvc.metadata.namespace.as_deref().unwrap_or_default(), claim = pvc.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile_claim(
    pvc: Arc<PersistentVolumeClaim>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    if pvc.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = pvc.metadata.namespace.clone().unwrap_or_default();
    let name = pvc.metadata.name.clone().unwrap_or_default();
    let claims: Api<PersistentVolumeClaim> = Api::namespaced((*client).clone(), &ns);
    let volumes: Api<PersistentVolume> = Api::all((*client).clone());
    let bound_phase = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let named = pvc.spec.as_ref().and_then(|s| s.volume_name.clone());
    if named.is_none() && waits_for_consumer(&client, &pvc).await {
        return set_claim_phase(&claims, &pvc, "Pending", None).await;
    }
    let pv = match &named {
        Some(v) => match volumes.get_opt(v).await? {
            Some(pv) => pv,
            None if bound_phase => return set_claim_phase(&claims, &pvc, "Lost", None).await,
            None => return set_claim_phase(&claims, &pvc, "Pending", None).await,
        },
        None => {
            let all = volumes.list(&ListParams::default()).await?.items;
            match choose(&all, &pvc) {
                Some(pv) => pv.clone(),
                None => return set_claim_phase(&claims, &pvc, "Pending", None).await,
            }
        }
    };
    let pv_name = pv.metadata.name.clone().unwrap_or_default();
    // 1. The volume's claimRef.
    let claim_ref = pv.spec.as_ref().and_then(|s| s.claim_ref.as_ref());
    if claim_ref.is_some() && !refers_to(&pv, &pvc) {
        // Named a volume that belongs to another claim.
        return set_claim_phase(&claims, &pvc, "Pending", None).await;
    }
    if claim_ref.and_then(|r| r.uid.as_ref()).is_none() {
        let mut updated = pv.clone();
        let spec = updated.spec.get_or_insert_with(Default::default);
        spec.claim_ref = Some(ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("PersistentVolumeClaim".into()),
            namespace: Some(ns.clone()),
            name: Some(name.clone()),
            uid: pvc.metadata.uid.clone(),
            resource_version: pvc.metadata.resource_version.clone(),
            ..Default::default()
        });
        updated
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(BOUND_BY_CONTROLLER.into(), "yes".into());
        match volumes
            .replace(&pv_name, &PostParams::default(), &updated)
            .await
        {
            Ok(_) => {}
            Err(e) if is_conflict(&e) => return Ok(Action::requeue(Duration::from_millis(200))),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(volume = %pv_name, "bound volume to claim");
    }
    // 2. The claim's volumeName and annotation.
    if named.as_deref() != Some(pv_name.as_str())
        || annotation(&pvc.metadata, BIND_COMPLETED).is_none()
    {
        let mut annotations = serde_json::json!({BIND_COMPLETED: "yes"});
        if named.is_none() {
            annotations[BOUND_BY_CONTROLLER] = "yes".into();
        }
        let patch = serde_json::json!({
            "metadata": {"annotations": annotations},
            "spec": {"volumeName": pv_name},
        });
        claims
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    // 3. Both phases.
    set_claim_phase(&claims, &pvc, "Bound", Some(&pv)).await?;
    set_volume_phase(&volumes, &pv_name, "Bound").await?;
    Ok(Action::await_change())
}

async fn set_claim_phase(
    claims: &Api<PersistentVolumeClaim>,
    pvc: &PersistentVolumeClaim,
    phase: &str,
    pv: Option<&PersistentVolume>,
) -> Result<Action, Error> {
    let mut status = PersistentVolumeClaimStatus {
        phase: Some(phase.into()),
        ..pvc.status.clone().unwrap_or_default()
    };
    if let Some(spec) = pv.and_then(|p| p.spec.as_ref()) {
        status.capacity = spec.capacity.clone();
        status.access_modes = spec.access_modes.clone();
    }
    if pvc.status.as_ref() != Some(&status) {
        let patch = serde_json::json!({"status": status});
        let name = pvc.metadata.name.clone().unwrap_or_default();
        claims
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(Action::await_change())
}

async fn set_volume_phase(
    volumes: &Api<PersistentVolume>,
    name: &str,
    phase: &str,
) -> Result<(), Error> {
    let status = PersistentVolumeStatus {
        phase: Some(phase.into()),
        ..Default::default()
    };
    let patch = serde_json::json!({"status": status});
    match volumes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[tracing::instrument(skip_all, fields(controller = "persistentvolume-binder", volume = pv.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile_volume(
    pv: Arc<PersistentVolume>,
    client: Arc<kube::Client>,
) -> Result<Action, Error> {
    if pv.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = pv.metadata.name.clone().unwrap_or_default();
    let volumes: Api<PersistentVolume> = Api::all((*client).clone());
    let Some(r) = pv.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
        if phase(&pv) != "Available" || pv.status.as_ref().and_then(|s| s.phase.as_ref()).is_none()
        {
            set_volume_phase(&volumes, &name, "Available").await?;
        }
        return Ok(Action::await_change());
    };
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(
        (*client).clone(),
        r.namespace.as_deref().unwrap_or_default(),
    );
    let claim = claims
        .get_opt(r.name.as_deref().unwrap_or_default())
        .await?;
    let gone = match (&claim, &r.uid) {
        (None, _) => true,
        (Some(c), Some(uid)) => c.metadata.uid.as_ref() != Some(uid),
        (Some(_), None) => false,
    };
    if !gone {
        return Ok(Action::await_change());
    }
    if r.uid.is_none() {
        // Pre-bound to a claim that does not exist yet: stays Available for it.
        return Ok(Action::await_change());
    }
    if phase(&pv) != "Released" {
        set_volume_phase(&volumes, &name, "Released").await?;
        tracing::info!(volume = %name, "claim deleted; volume released");
    }
    let policy = pv
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    if policy == "Delete" {
        let params = DeleteParams {
            preconditions: Some(kube::api::Preconditions {
                uid: pv.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match volumes.delete(&name, &params).await {
            Ok(_) => {
                tracing::info!(volume = %name, "deleted released volume (reclaim policy Delete)")
            }
            Err(e) if is_not_found(&e) || is_conflict(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pv(
        name: &str,
        size: &str,
        class: &str,
        modes: &[&str],
        labels: serde_json::Value,
    ) -> PersistentVolume {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": labels},
            "spec": {"capacity": {"storage": size}, "storageClassName": class, "accessModes": modes,
                     "hostPath": {"path": "/tmp/x"}},
        }))
        .unwrap()
    }

    fn pvc(
        size: &str,
        class: &str,
        modes: &[&str],
        selector: serde_json::Value,
    ) -> PersistentVolumeClaim {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "c", "namespace": "ns", "uid": "u1"},
            "spec": {"resources": {"requests": {"storage": size}}, "storageClassName": class,
                     "accessModes": modes, "selector": selector},
        }))
        .unwrap()
    }

    #[test]
    fn picks_the_smallest_volume_that_fits() {
        let volumes = vec![
            pv("big", "10Gi", "", &["ReadWriteOnce"], serde_json::json!({})),
            pv(
                "small",
                "1Gi",
                "",
                &["ReadWriteOnce"],
                serde_json::json!({}),
            ),
            pv(
                "tiny",
                "100Mi",
                "",
                &["ReadWriteOnce"],
                serde_json::json!({}),
            ),
            pv(
                "fast",
                "1Gi",
                "fast",
                &["ReadWriteOnce"],
                serde_json::json!({}),
            ),
            pv("rom", "1Gi", "", &["ReadOnlyMany"], serde_json::json!({})),
        ];
        let claim = pvc("500Mi", "", &["ReadWriteOnce"], serde_json::Value::Null);
        assert_eq!(
            choose(&volumes, &claim).unwrap().metadata.name.as_deref(),
            Some("small")
        );
        let claim = pvc("500Mi", "fast", &["ReadWriteOnce"], serde_json::Value::Null);
        assert_eq!(
            choose(&volumes, &claim).unwrap().metadata.name.as_deref(),
            Some("fast")
        );
        let claim = pvc("500Mi", "", &["ReadOnlyMany"], serde_json::Value::Null);
        assert_eq!(
            choose(&volumes, &claim).unwrap().metadata.name.as_deref(),
            Some("rom")
        );
        let claim = pvc("20Gi", "", &["ReadWriteOnce"], serde_json::Value::Null);
        assert!(choose(&volumes, &claim).is_none());
    }

    #[test]
    fn selectors_and_claim_refs() {
        let mut taken = pv(
            "taken",
            "1Gi",
            "",
            &["ReadWriteOnce"],
            serde_json::json!({}),
        );
        taken.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
            namespace: Some("ns".into()),
            name: Some("other".into()),
            ..Default::default()
        });
        let labelled = pv(
            "labelled",
            "5Gi",
            "",
            &["ReadWriteOnce"],
            serde_json::json!({"tier": "gold"}),
        );
        let volumes = vec![taken.clone(), labelled];
        let claim = pvc(
            "1Gi",
            "",
            &["ReadWriteOnce"],
            serde_json::json!({"matchLabels": {"tier": "gold"}}),
        );
        assert_eq!(
            choose(&volumes, &claim).unwrap().metadata.name.as_deref(),
            Some("labelled")
        );
        let claim = pvc(
            "1Gi",
            "",
            &["ReadWriteOnce"],
            serde_json::json!({"matchLabels": {"tier": "silver"}}),
        );
        assert!(
            choose(&volumes, &claim).is_none(),
            "taken belongs to another claim"
        );
        let mut pre = taken;
        pre.spec.as_mut().unwrap().claim_ref.as_mut().unwrap().name = Some("c".into());
        let claim = pvc("1Gi", "", &["ReadWriteOnce"], serde_json::Value::Null);
        assert_eq!(
            choose(&[pre], &claim).unwrap().metadata.name.as_deref(),
            Some("taken"),
            "pre-bound"
        );
    }
}
