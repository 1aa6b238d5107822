//! A StatefulSet's template history as ControllerRevisions, as Kubernetes keeps it
//! (`pkg/controller/history`, `getStatefulSetRevisions`, `truncateHistory`): each revision's
//! data is the patch `{"spec":{"template":{…,"$patch":"replace"}}}` (keys sorted, as Go's
//! `json.Marshal` of a map writes them), named `<set>-<hash>` with FNV-32 over that JSON and
//! the collisionCount; an unchanged template reuses its revision, a template seen before
//! (`kubectl rollout undo`) gets its old revision renumbered to the newest.

use std::collections::BTreeSet;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Resource;
use serde_json::{json, Value};

use crate::error::{is_not_found, Error};

/// The label carrying a ControllerRevision's hash.
pub(crate) const HASH_LABEL: &str = "controller.kubernetes.io/hash";

/// Kubernetes' `rand.SafeEncodeString` alphabet.
const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// `v` with every object's keys in sorted order.
fn sorted(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The revision data of a set's template (Kubernetes' `getPatch`).
pub(crate) fn data_of(template: &PodTemplateSpec) -> Value {
    let mut t = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(m) = t.as_object_mut() {
        m.insert("$patch".into(), json!("replace"));
    }
    sorted(json!({ "spec": { "template": t } }))
}

/// The template a revision's data holds.
pub(crate) fn template_of(rev: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut t = rev.data.as_ref()?.0.pointer("/spec/template")?.clone();
    t.as_object_mut()?.remove("$patch");
    serde_json::from_value(t).ok()
}

/// Kubernetes' `HashControllerRevision`: FNV-32 (not 32a) over the data's JSON and the decimal
/// collisionCount, safe-encoded.
pub(crate) fn hash(data: &Value, collision_count: i32) -> String {
    let mut bytes = serde_json::to_vec(data).unwrap_or_default();
    bytes.extend_from_slice(collision_count.to_string().as_bytes());
    fnv1(&bytes)
        .to_string()
        .bytes()
        .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
        .collect()
}

/// Go's `fnv.New32()` sum: multiply, then xor.
fn fnv1(bytes: &[u8]) -> u32 {
    bytes.iter().fold(2_166_136_261, |h: u32, b| {
        h.wrapping_mul(16_777_619) ^ u32::from(*b)
    })
}

/// `<prefix>-<hash>`, the prefix cut to 223 bytes.
fn name_for(prefix: &str, hash: &str) -> String {
    let cut = prefix
        .char_indices()
        .nth(223)
        .map_or(prefix.len(), |(i, _)| i);
    format!("{}-{hash}", &prefix[..cut])
}

/// The revisions in force for one pass: the one pods at `status.currentRevision` run, the one
/// new pods get, and the collisionCount to store.
pub(crate) struct Revisions {
    /// The revision of the pods not yet updated.
    pub current: ControllerRevision,
    /// The revision of the set's template now.
    pub update: ControllerRevision,
    /// `status.collisionCount`.
    pub collision_count: i32,
}

fn new_revision(set: &StatefulSet, number: i64, collision_count: i32) -> ControllerRevision {
    let template = set
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let data = data_of(&template);
    let h = hash(&data, collision_count);
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(HASH_LABEL.into(), h.clone());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(name_for(
                set.metadata.name.as_deref().unwrap_or_default(),
                &h,
            )),
            namespace: set.metadata.namespace.clone(),
            labels: Some(labels),
            owner_references: set.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        data: Some(RawExtension(data)),
        revision: number,
    }
}

/// Kubernetes' `getStatefulSetRevisions` over the set's claimed `revisions`: reuses or
/// renumbers an equal revision, else creates one (bumping the collisionCount on a name clash
/// with different data).
pub(crate) async fn resolve(
    api: &Api<ControllerRevision>,
    set: &StatefulSet,
    mut revisions: Vec<ControllerRevision>,
) -> Result<Revisions, Error> {
    revisions.sort_by_key(|r| r.revision);
    let mut collision_count = set
        .status
        .as_ref()
        .and_then(|s| s.collision_count)
        .unwrap_or(0);
    let next = revisions.last().map_or(1, |r| r.revision + 1);
    let wanted = new_revision(set, next, collision_count);
    let equal = revisions.iter().rposition(|r| r.data == wanted.data);
    let update = match equal {
        Some(i) if i + 1 == revisions.len() => revisions[i].clone(),
        Some(i) => {
            let name = revisions[i].metadata.name.clone().unwrap_or_default();
            let patch = json!({ "revision": next });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?
        }
        None => loop {
            let candidate = new_revision(set, next, collision_count);
            match api.create(&PostParams::default(), &candidate).await {
                Ok(r) => break r,
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    let name = candidate.metadata.name.clone().unwrap_or_default();
                    let existing = api.get(&name).await?;
                    if existing.data == candidate.data {
                        break existing;
                    }
                    collision_count += 1;
                }
                Err(e) => return Err(e.into()),
            }
        },
    };
    let current_name = set.status.as_ref().and_then(|s| s.current_revision.clone());
    let current = revisions
        .iter()
        .find(|r| r.metadata.name.is_some() && r.metadata.name == current_name)
        .cloned()
        .unwrap_or_else(|| update.clone());
    Ok(Revisions {
        current,
        update,
        collision_count,
    })
}

/// Kubernetes' `truncateHistory`: deletes the oldest revisions that no pod, nor the current or
/// update revision, uses, beyond `revisionHistoryLimit`.
pub(crate) async fn truncate(
    api: &Api<ControllerRevision>,
    mut revisions: Vec<ControllerRevision>,
    live: &BTreeSet<String>,
    limit: i32,
) -> Result<(), Error> {
    revisions.retain(|r| !live.contains(r.metadata.name.as_deref().unwrap_or_default()));
    revisions.sort_by_key(|r| r.revision);
    let surplus = revisions
        .len()
        .saturating_sub(usize::try_from(limit).unwrap_or(0));
    for r in revisions.iter().take(surplus) {
        let name = r.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
fn keys(v: &Value) -> Vec<String> {
    v.as_object()
        .map(serde_json::Map::keys)
        .into_iter()
        .flatten()
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        serde_json::from_value(json!({
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": image}]},
        }))
        .unwrap()
    }

    #[test]
    fn data_is_a_sorted_replace_patch_of_the_template() {
        let data = data_of(&template("nginx:1.27"));
        let t = &data["spec"]["template"];
        assert_eq!(t["$patch"], "replace");
        assert_eq!(keys(t), ["$patch", "metadata", "spec"]);
        let text = serde_json::to_string(&data).unwrap();
        assert!(text.starts_with(r#"{"spec":{"template":{"$patch":"replace","metadata""#));
        let rev = ControllerRevision {
            data: Some(RawExtension(data)),
            ..Default::default()
        };
        assert_eq!(template_of(&rev), Some(template("nginx:1.27")));
    }

    #[test]
    fn hash_is_fnv32_with_the_collision_count() {
        // FNV-1 (Go's fnv.New32) of "a" is 0x050c5d7e; FNV-1a would give 0xe40c292c.
        assert_eq!(fnv1(b"a"), 0x050c_5d7e);
        // The probe is written as decimal text after the data.
        let data = json!(1);
        let expected: String = fnv1(b"17")
            .to_string()
            .bytes()
            .map(|b| ALPHANUMS[usize::from(b) % ALPHANUMS.len()] as char)
            .collect();
        assert_eq!(hash(&data, 7), expected);
        let data = data_of(&template("nginx:1.27"));
        assert_eq!(hash(&data, 0), hash(&data, 0));
        assert_ne!(hash(&data, 0), hash(&data, 1));
        assert_ne!(hash(&data, 0), hash(&data_of(&template("nginx:1.28")), 0));
        assert_eq!(name_for("web", "abc"), "web-abc");
        assert_eq!(name_for(&"x".repeat(300), "h").len(), 225);
    }
}
