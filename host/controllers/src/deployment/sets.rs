//! A Deployment's ReplicaSets: revisions, the surge/unavailable fenceposts, finding or creating
//! the new ReplicaSet (named `<deployment>-<pod-template-hash>`, collisions counted in
//! `status.collisionCount`), scaling one with its `desired-replicas`/`max-replicas`
//! annotations, and the `revisionHistoryLimit` cleanup.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Resource;

use super::hash::{self, POD_TEMPLATE_HASH};
use super::{Pass, REVISION};
use crate::error::{is_conflict, is_not_found, Error};
use crate::events::{Recorder, Type};
use crate::ownership::controller_of;

const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Deployment annotations never copied onto its ReplicaSets (Kubernetes' `skipCopyAnnotation`).
const NOT_COPIED: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    "deployment.kubernetes.io/revision-history",
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];

/// The ReplicaSet's `deployment.kubernetes.io/revision` (0 if missing).
pub(crate) fn revision(rs: &ReplicaSet) -> i64 {
    annotation(rs, REVISION).unwrap_or(0)
}

fn annotation(rs: &ReplicaSet, key: &str) -> Option<i64> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The `desired-replicas` annotation: the Deployment size this set was last scaled for.
pub(crate) fn desired(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, DESIRED_REPLICAS).and_then(|v| i32::try_from(v).ok())
}

/// The `max-replicas` annotation: `replicas + maxSurge` when this set was last scaled.
pub(crate) fn max_replicas(rs: &ReplicaSet) -> Option<i32> {
    annotation(rs, MAX_REPLICAS).and_then(|v| i32::try_from(v).ok())
}

/// `spec.replicas`.
pub(crate) fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

/// `status.availableReplicas`.
pub(crate) fn available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`: a count, or a percentage of `total` rounded
/// up or down.
pub(crate) fn scaled(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let pct: i64 = s.trim_end_matches('%').parse().unwrap_or(0);
            let product = pct * i64::from(total);
            let value = if round_up {
                (product + 99) / 100
            } else {
                product / 100
            };
            value as i32
        }
    }
}

impl Pass {
    fn rolling_param(&self, surge: bool) -> IntOrString {
        let ru = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.strategy.as_ref())
            .and_then(|s| s.rolling_update.as_ref());
        let v = ru.and_then(|r| {
            if surge {
                r.max_surge.clone()
            } else {
                r.max_unavailable.clone()
            }
        });
        v.unwrap_or_else(|| IntOrString::String("25%".into()))
    }

    /// `maxSurge` as a count (rounded up); 0 for Recreate.
    pub(crate) fn max_surge(&self) -> i32 {
        if self.recreate() {
            return 0;
        }
        scaled(&self.rolling_param(true), self.replicas(), true)
    }

    /// Kubernetes' `MaxUnavailable`: the resolved fencepost (at least 1 when maxSurge is 0),
    /// at most `spec.replicas`; 0 for Recreate or zero replicas.
    pub(crate) fn max_unavailable(&self) -> i32 {
        let replicas = self.replicas();
        if self.recreate() || replicas == 0 {
            return 0;
        }
        let mut unavailable = scaled(&self.rolling_param(false), replicas, false);
        if unavailable == 0 && self.max_surge() == 0 {
            unavailable = 1;
        }
        unavailable.min(replicas)
    }

    /// The index of the ReplicaSet whose template is the Deployment's (the oldest if several).
    pub(crate) fn find_new(&self) -> Option<usize> {
        let template = &self.deployment.spec.as_ref()?.template;
        self.sets
            .iter()
            .enumerate()
            .filter(|(_, rs)| {
                rs.spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| hash::equal_ignoring_hash(t, template))
            })
            .min_by_key(|(_, rs)| rs.metadata.creation_timestamp.as_ref().map(|t| t.0))
            .map(|(i, _)| i)
    }

    /// Sum of `spec.replicas` over all sets.
    pub(crate) fn total_spec(&self) -> i32 {
        self.sets.iter().map(spec_replicas).sum()
    }

    fn wanted_annotations(
        &self,
        revision: i64,
        rs: &ReplicaSet,
        sizes: bool,
    ) -> BTreeMap<String, String> {
        let mut out: BTreeMap<String, String> = self
            .deployment
            .metadata
            .annotations
            .iter()
            .flatten()
            .filter(|(k, _)| !NOT_COPIED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if self::revision(rs) < revision {
            out.insert(REVISION.into(), revision.to_string());
        }
        if sizes {
            out.insert(DESIRED_REPLICAS.into(), self.replicas().to_string());
            out.insert(
                MAX_REPLICAS.into(),
                (self.replicas() + self.max_surge()).to_string(),
            );
        }
        out
    }

    /// Finds the new ReplicaSet (bringing its revision and annotations up to date), or creates
    /// it with `initial` replicas when `create`; its index in `sets`.
    pub(crate) async fn ensure_new(
        &mut self,
        create: bool,
        initial: i32,
    ) -> Result<Option<usize>, Error> {
        let found = self.find_new();
        let max_old = self
            .sets
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != found)
            .map(|(_, rs)| revision(rs))
            .max()
            .unwrap_or(0);
        let next = max_old + 1;
        if let Some(i) = found {
            let want = self.wanted_annotations(next, &self.sets[i], false);
            self.annotate(i, want).await?;
            self.set_deployment_revision(revision(&self.sets[i]))
                .await?;
            return Ok(Some(i));
        }
        if !create {
            return Ok(None);
        }
        let rs = self.new_set(next, initial);
        let name = rs.metadata.name.clone().unwrap_or_default();
        match self.sets_api.create(&PostParams::default(), &rs).await {
            Ok(created) => {
                tracing::info!(replicaset = %name, replicas = initial, "created new ReplicaSet");
                if initial > 0 {
                    self.report_scaling(format!(
                        "Scaled up replica set {name} from 0 to {initial}"
                    ));
                }
                self.sets.push(created);
                self.created = true;
                self.set_deployment_revision(next).await?;
                Ok(Some(self.sets.len() - 1))
            }
            Err(e) if is_conflict(&e) => {
                // Ours already (made from this very hash, say by an earlier pass): use it;
                // someone else's: a hash collision, retried with the next collisionCount.
                let existing = self.sets_api.get(&name).await?;
                let uid = self.deployment.metadata.uid.as_deref();
                if controller_of(&existing.metadata).is_some_and(|c| Some(c.uid.as_str()) == uid) {
                    self.sets.push(existing);
                    return Ok(Some(self.sets.len() - 1));
                }
                self.bump_collision_count().await?;
                Err(Error::Contended(format!("ReplicaSet {name}")))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// A `ScalingReplicaSet` event on the Deployment.
    fn report_scaling(&self, message: String) {
        let recorder = Recorder::new(self.client.clone(), "deployment-controller");
        recorder.publish(
            &*self.deployment,
            Type::Normal,
            "ScalingReplicaSet",
            message,
        );
    }

    fn new_set(&self, revision: i64, initial: i32) -> ReplicaSet {
        let spec = self.deployment.spec.clone().unwrap_or_default();
        let collisions = self
            .deployment
            .status
            .as_ref()
            .and_then(|s| s.collision_count);
        let pod_hash = hash::compute(&spec.template, collisions);
        let mut template = hash::without_hash(&spec.template);
        template
            .metadata
            .get_or_insert_with(ObjectMeta::default)
            .labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), pod_hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(BTreeMap::new)
            .insert(POD_TEMPLATE_HASH.into(), pod_hash.clone());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{}-{pod_hash}", self.name())),
                namespace: Some(self.namespace()),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: self.deployment.controller_owner_ref(&()).map(|o| vec![o]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(initial),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        rs.metadata.annotations = Some(self.wanted_annotations(revision, &rs, true));
        rs
    }

    async fn bump_collision_count(&self) -> Result<(), Error> {
        let count = self
            .deployment
            .status
            .as_ref()
            .and_then(|s| s.collision_count)
            .unwrap_or(0);
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), &self.namespace());
        let patch = serde_json::json!({ "status": { "collisionCount": count + 1 } });
        api.patch_status(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    async fn set_deployment_revision(&self, revision: i64) -> Result<(), Error> {
        let current = self
            .deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION));
        if current.map(String::as_str) == Some(revision.to_string().as_str()) {
            return Ok(());
        }
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), &self.namespace());
        let patch = serde_json::json!({ "metadata": { "annotations": { REVISION: revision.to_string() } } });
        api.patch(&self.name(), &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Merges `want` into set `i`'s annotations when any differ.
    async fn annotate(&mut self, i: usize, want: BTreeMap<String, String>) -> Result<(), Error> {
        let have = self.sets[i]
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        if want.iter().all(|(k, v)| have.get(k) == Some(v)) {
            return Ok(());
        }
        let patch = serde_json::json!({ "metadata": { "annotations": want } });
        self.patch_set(i, &patch).await
    }

    async fn patch_set(&mut self, i: usize, patch: &serde_json::Value) -> Result<(), Error> {
        let name = self.sets[i].metadata.name.clone().unwrap_or_default();
        self.sets[i] = self
            .sets_api
            .patch(&name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }

    /// Scales set `i` to `replicas`, recording the Deployment size it was scaled for; whether
    /// anything changed.
    pub(crate) async fn scale_set(&mut self, i: usize, replicas: i32) -> Result<bool, Error> {
        let size_changed = spec_replicas(&self.sets[i]) != replicas;
        if !size_changed && desired(&self.sets[i]) == Some(self.replicas()) {
            return Ok(false);
        }
        let patch = serde_json::json!({
            "metadata": { "annotations": {
                DESIRED_REPLICAS: self.replicas().to_string(),
                MAX_REPLICAS: (self.replicas() + self.max_surge()).to_string(),
            }},
            "spec": { "replicas": replicas },
        });
        let from = spec_replicas(&self.sets[i]);
        self.patch_set(i, &patch).await?;
        if size_changed {
            let name = self.sets[i].metadata.name.clone().unwrap_or_default();
            tracing::info!(replicaset = %name, replicas, "scaled ReplicaSet");
            let way = if replicas > from { "up" } else { "down" };
            let msg = format!("Scaled {way} replica set {name} from {from} to {replicas}");
            self.report_scaling(msg);
        }
        Ok(size_changed)
    }

    /// Deletes the oldest fully scaled-down old sets beyond `revisionHistoryLimit` (default 10).
    pub(crate) async fn cleanup(&mut self, new: Option<usize>) -> Result<(), Error> {
        let limit = self
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10)
            .max(0) as usize;
        let mut idle: Vec<usize> = (0..self.sets.len())
            .filter(|i| Some(*i) != new)
            .filter(|i| {
                let rs = &self.sets[*i];
                spec_replicas(rs) == 0
                    && rs.status.as_ref().map(|s| s.replicas).unwrap_or(0) == 0
                    && rs.metadata.deletion_timestamp.is_none()
            })
            .collect();
        if idle.len() <= limit {
            return Ok(());
        }
        idle.sort_by_key(|i| revision(&self.sets[*i]));
        for i in &idle[..idle.len() - limit] {
            let name = self.sets[*i].metadata.name.clone().unwrap_or_default();
            match self.sets_api.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {
                    tracing::info!(replicaset = %name, "deleted old ReplicaSet beyond revisionHistoryLimit")
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_kubernetes() {
        let pct = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled(&pct("25%"), 3, true), 1);
        assert_eq!(scaled(&pct("25%"), 3, false), 0);
        assert_eq!(scaled(&pct("25%"), 10, true), 3);
        assert_eq!(scaled(&pct("25%"), 10, false), 2);
        assert_eq!(scaled(&pct("100%"), 7, false), 7);
        assert_eq!(scaled(&IntOrString::Int(2), 10, true), 2);
    }
}
