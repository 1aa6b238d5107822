//! Aggregated discovery (`apidiscovery.k8s.io/v2`, and the identical `v2beta1`): `GET /api` and
//! `GET /apis` with `Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList`
//! answer every group → version → resource (verbs, scope, singular and short names, categories,
//! subresources) in one document, with `Vary: Accept` and an `ETag` (`If-None-Match` → 304) as
//! kube-apiserver sends them. Built from the legacy per-group-version documents of
//! [`crate::discovery`], so both always agree.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{json, Map, Value};

use crate::ApiServer;

/// The group of the aggregated discovery types.
const GROUP: &str = "apidiscovery.k8s.io";

/// The aggregated discovery version the Accept header asks for first (`v2` or `v2beta1`), or
/// `None` when the legacy documents come first (or are all it accepts).
pub(crate) fn negotiate(headers: &HeaderMap) -> Option<&'static str> {
    let accept = headers.get(http::header::ACCEPT)?.to_str().ok()?;
    for option in accept.split(',') {
        let mut parts = option.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return None,
            (Some("APIGroupDiscoveryList"), Some(GROUP), Some("v2")) => return Some("v2"),
            (Some("APIGroupDiscoveryList"), Some(GROUP), Some("v2beta1")) => {
                return Some("v2beta1")
            }
            _ => continue,
        }
    }
    None
}

/// The aggregated document of `/api` (`core`) or `/apis`, as a response.
pub(crate) fn respond(api: &ApiServer, core: bool, version: &str, headers: &HeaderMap) -> Response {
    let doc = document(api, core, version);
    let body = crate::codec::json_bytes(&doc);
    let etag = format!(
        "\"{:016X}\"",
        body.iter().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x100000001b3)
        })
    );
    let content_type = format!("application/json;g={GROUP};v={version};as=APIGroupDiscoveryList");
    let not_modified = headers
        .get(http::header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes());
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        body.into_response()
    };
    let h = response.headers_mut();
    h.insert(http::header::VARY, HeaderValue::from_static("Accept"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(http::header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&content_type) {
        h.insert(http::header::CONTENT_TYPE, v);
    }
    response
}

/// `APIGroupDiscoveryList` of the core group (`/api`) or of every other group (`/apis`).
pub(crate) fn document(api: &ApiServer, core: bool, version: &str) -> Value {
    let items: Vec<Value> = api
        .registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| g.is_empty() == core)
        .map(|(group, versions)| {
            let versions: Vec<Value> = versions
                .iter()
                .filter_map(|v| crate::discovery::resource_list(api, &group, v))
                .map(|list| group_version(&list))
                .collect();
            let mut metadata = json!({"creationTimestamp": null});
            if !group.is_empty() {
                metadata["name"] = json!(group);
            }
            json!({"metadata": metadata, "versions": versions})
        })
        .collect();
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": format!("{GROUP}/{version}"),
        "metadata": {},
        "items": items,
    })
}

/// One `APIVersionDiscovery` from a legacy `APIResourceList`: subresources (`deployments/scale`)
/// move under their resource.
fn group_version(list: &Value) -> Value {
    let gv = list["groupVersion"].as_str().unwrap_or_default();
    let version = gv.rsplit('/').next().unwrap_or_default();
    let legacy = list["resources"].as_array().cloned().unwrap_or_default();
    let mut resources: Vec<Value> = Vec::new();
    for r in legacy.iter().filter(|r| !is_subresource(r)) {
        let mut out = Map::new();
        out.insert("resource".into(), r["name"].clone());
        out.insert("responseKind".into(), response_kind(r));
        let scope = if r["namespaced"] == true {
            "Namespaced"
        } else {
            "Cluster"
        };
        out.insert("scope".into(), json!(scope));
        out.insert("singularResource".into(), r["singularName"].clone());
        out.insert("verbs".into(), r["verbs"].clone());
        for (from, to) in [("shortNames", "shortNames"), ("categories", "categories")] {
            if let Some(v) = r.get(from) {
                out.insert(to.into(), v.clone());
            }
        }
        let prefix = format!("{}/", r["name"].as_str().unwrap_or_default());
        let subresources: Vec<Value> = legacy
            .iter()
            .filter_map(|s| {
                let sub = s["name"].as_str()?.strip_prefix(&prefix)?;
                Some(json!({
                    "subresource": sub,
                    "responseKind": response_kind(s),
                    "verbs": s["verbs"],
                }))
            })
            .collect();
        if !subresources.is_empty() {
            out.insert("subresources".into(), json!(subresources));
        }
        resources.push(Value::Object(out));
    }
    json!({"version": version, "resources": resources, "freshness": "Current"})
}

fn is_subresource(r: &Value) -> bool {
    r["name"].as_str().is_some_and(|n| n.contains('/'))
}

fn response_kind(r: &Value) -> Value {
    let text = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
    json!({"group": text("group"), "version": text("version"), "kind": text("kind")})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> Option<&'static str> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, v.parse().unwrap());
        negotiate(&h)
    }

    #[test]
    fn negotiates_like_kube_apiserver() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(accept(kubectl), Some("v2"));
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"),
            Some("v2beta1")
        );
        assert_eq!(accept("application/json"), None);
        assert_eq!(accept("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"), None);
        assert_eq!(
            accept("application/json;g=apidiscovery.k8s.io;v=v3;as=APIGroupDiscoveryList"),
            None
        );
    }

    #[test]
    fn legacy_lists_become_nested_resources() {
        let list = json!({"groupVersion": "apps/v1", "resources": [
            {"name": "deployments", "singularName": "deployment", "namespaced": true, "kind": "Deployment", "verbs": ["get"], "shortNames": ["deploy"]},
            {"name": "deployments/scale", "singularName": "", "namespaced": true, "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"]},
        ]});
        let v = group_version(&list);
        assert_eq!(v["version"], "v1");
        let d = &v["resources"][0];
        assert_eq!(d["resource"], "deployments");
        assert_eq!(d["scope"], "Namespaced");
        assert_eq!(
            d["responseKind"],
            json!({"group": "", "version": "", "kind": "Deployment"})
        );
        assert_eq!(d["subresources"][0]["subresource"], "scale");
        assert_eq!(d["subresources"][0]["responseKind"]["group"], "autoscaling");
        assert_eq!(v["resources"].as_array().unwrap().len(), 1);
    }
}
