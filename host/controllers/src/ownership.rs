//! Adopting and releasing dependents (Kubernetes' `ControllerRefManager`): ownerReferences are
//! rewritten with a merge patch carrying the object's resourceVersion, so a claim never steals
//! an object another controller claimed meanwhile.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::error::{is_conflict, is_not_found, Error};

/// The controller reference of an object, if any.
pub(crate) fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
}

/// Makes `owner` the controller of an orphan; false if the object changed or went away (it is
/// looked at again on its next event).
async fn adopt<K>(api: &Api<K>, meta: &ObjectMeta, owner: &OwnerReference) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.push(owner.clone());
    set_owner_refs(api, meta, refs).await
}

/// Drops the ownerReference with `uid` from an object that stopped matching its selector.
async fn release<K>(api: &Api<K>, meta: &ObjectMeta, uid: &str) -> Result<(), Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut refs = meta.owner_references.clone().unwrap_or_default();
    refs.retain(|o| o.uid != uid);
    set_owner_refs(api, meta, refs).await.map(|_| ())
}

async fn set_owner_refs<K>(
    api: &Api<K>,
    meta: &ObjectMeta,
    refs: Vec<OwnerReference>,
) -> Result<bool, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let name = meta.name.clone().unwrap_or_default();
    let patch = serde_json::json!({ "metadata": {
        "ownerReferences": refs,
        "resourceVersion": meta.resource_version,
    }});
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if is_not_found(&e) || is_conflict(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Kubernetes' `ClaimObjects`: of `items` (listed by the selector's matchLabels), the ones
/// controlled by `owner` that still match `sel`; matching orphans for which `adoptable` holds
/// are adopted, owned ones that stopped matching released.
pub(crate) async fn claim<K>(
    api: &Api<K>,
    items: Vec<K>,
    sel: &LabelSelector,
    owner: &OwnerReference,
    adoptable: impl Fn(&K) -> bool,
) -> Result<Vec<K>, Error>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug,
{
    let mut owned = Vec::new();
    for item in items {
        let meta = item.meta();
        let matching = crate::selector::matches(sel, meta.labels.as_ref());
        let claimed = match controller_of(meta) {
            Some(c) if c.uid == owner.uid => {
                if !matching {
                    release(api, meta, &owner.uid).await?;
                }
                matching
            }
            Some(_) => false,
            None => matching && adoptable(&item) && adopt(api, meta, owner).await?,
        };
        if claimed {
            owned.push(item);
        }
    }
    Ok(owned)
}
