//! What the server serves, read from its discovery endpoints: every listable resource with its
//! group/version, kind and scope, so controllers can build request paths from ownerReferences.

use keelson_apiserver::ApiClient;
use serde_json::Value;

/// One served resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `v1` or `apps/v1`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Plural name.
    pub plural: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl Resource {
    fn base(&self) -> String {
        if self.api_version.contains('/') {
            format!("/apis/{}", self.api_version)
        } else {
            format!("/api/{}", self.api_version)
        }
    }

    /// Path of the collection (all namespaces when `ns` is None).
    pub fn list_path(&self, ns: Option<&str>) -> String {
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("{}/namespaces/{ns}/{}", self.base(), self.plural),
            _ => format!("{}/{}", self.base(), self.plural),
        }
    }

    /// Path of one object.
    pub fn object_path(&self, ns: Option<&str>, name: &str) -> String {
        format!("{}/{name}", self.list_path(ns))
    }
}

/// Every resource that supports list and watch and delete (no subresources).
pub async fn resources(client: &ApiClient) -> Vec<Resource> {
    let mut gvs = vec!["v1".to_string()];
    if let Ok(groups) = client.get("/apis").await {
        for g in groups["groups"].as_array().into_iter().flatten() {
            for v in g["versions"].as_array().into_iter().flatten() {
                if let Some(gv) = v["groupVersion"].as_str() {
                    gvs.push(gv.to_string());
                }
            }
        }
    }
    let mut out = Vec::new();
    for gv in gvs {
        let path = if gv.contains('/') {
            format!("/apis/{gv}")
        } else {
            format!("/api/{gv}")
        };
        let Ok(list) = client.get(&path).await else {
            continue;
        };
        for r in list["resources"].as_array().into_iter().flatten() {
            let name = r["name"].as_str().unwrap_or_default();
            let verbs: Vec<&str> = r["verbs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            if name.contains('/') || !verbs.contains(&"watch") || !verbs.contains(&"delete") {
                continue;
            }
            out.push(Resource {
                api_version: gv.clone(),
                kind: r["kind"].as_str().unwrap_or_default().to_string(),
                plural: name.to_string(),
                namespaced: r["namespaced"].as_bool().unwrap_or(false),
            });
        }
    }
    out
}
