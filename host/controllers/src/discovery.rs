//! What the server serves, read from its discovery endpoints through `kube::Discovery`: every
//! resource (preferred version per group) that can be listed, watched and deleted, so
//! controllers can reach any kind an ownerReference or a namespace may hold.

use kube::api::{Api, DynamicObject};
use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};

/// One served resource.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Group, version, kind and plural.
    pub api: ApiResource,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        self.api == other.api
    }
}

impl Resource {
    /// The API for objects of this resource in `ns` (all namespaces when `None`, or when the
    /// resource is cluster-scoped).
    pub fn api(&self, client: &kube::Client, ns: Option<&str>) -> Api<DynamicObject> {
        match (self.namespaced, ns) {
            (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &self.api),
            _ => Api::all_with(client.clone(), &self.api),
        }
    }

    /// Whether this resource serves objects of `api_version` and `kind`.
    pub fn serves(&self, api_version: &str, kind: &str) -> bool {
        self.api.api_version == api_version && self.api.kind == kind
    }
}

/// Every resource supporting list, watch and delete.
pub async fn resources(client: &kube::Client) -> Result<Vec<Resource>, kube::Error> {
    let discovery = Discovery::new(client.clone()).run().await?;
    let mut out = Vec::new();
    for group in discovery.groups() {
        for (api, caps) in group.recommended_resources() {
            if usable(&caps) {
                out.push(Resource {
                    api,
                    namespaced: caps.scope == Scope::Namespaced,
                });
            }
        }
    }
    Ok(out)
}

fn usable(caps: &ApiCapabilities) -> bool {
    [verbs::LIST, verbs::WATCH, verbs::DELETE]
        .iter()
        .all(|v| caps.supports_operation(v))
}
