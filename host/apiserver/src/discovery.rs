//! Discovery: `/version`, `/api`, `/apis`, and the per-group-version resource lists with verbs,
//! short names, categories and subresources, as kubectl reads them.

use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::codec::json_response;
use crate::registry::ResourceDef;
use crate::ApiServer;

/// The Kubernetes version Keelson speaks (kubectl picks its binary from the minor).
pub(crate) const KUBE_MINOR: &str = "33";

/// `/version`.
pub(crate) fn version() -> Value {
    json!({
        "major": "1",
        "minor": KUBE_MINOR,
        "gitVersion": format!("v1.{KUBE_MINOR}.0+keelson.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "keelson",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

/// Serves discovery paths; `None` when `path` is not one.
pub(crate) fn handle(api: &ApiServer, path: &str, headers: &HeaderMap) -> Option<Response> {
    if matches!(path, "/api" | "/apis") {
        let mut response = match crate::discovery_v2::negotiate(headers) {
            Some(version) => crate::discovery_v2::respond(api, path == "/api", version, headers),
            None if path == "/api" => json_response(200, &api_versions()),
            None => json_response(200, &group_list(api)),
        };
        response
            .headers_mut()
            .insert(http::header::VARY, http::HeaderValue::from_static("Accept"));
        return Some(response);
    }
    let body = match path {
        "/version" => version(),
        _ => {
            let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
            match parts.as_slice() {
                ["api", v] => resource_list(api, "", v)?,
                ["apis", g] => {
                    let groups = group_list(api);
                    groups["groups"]
                        .as_array()?
                        .iter()
                        .find(|x| x["name"] == *g)
                        .cloned()
                        .map(|mut g| {
                            g["kind"] = json!("APIGroup");
                            g["apiVersion"] = json!("v1");
                            g
                        })?
                }
                ["apis", g, v] => resource_list(api, g, v)?,
                _ => return None,
            }
        }
    };
    Some(json_response(200, &body))
}

/// The legacy `/api` document.
fn api_versions() -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    })
}

fn group_list(api: &ApiServer) -> Value {
    let groups: Vec<Value> = api
        .registry
        .group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                .collect();
            json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
        })
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// The legacy `APIResourceList` of one group/version; `None` when nothing is served there.
pub(crate) fn resource_list(api: &ApiServer, group: &str, version: &str) -> Option<Value> {
    let defs = api.registry.in_group_version(group, version);
    if defs.is_empty() {
        return None;
    }
    let mut resources = Vec::new();
    for d in &defs {
        resources.push(resource(d));
        resources.extend(subresources(d));
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    )
}

fn resource(d: &ResourceDef) -> Value {
    let verbs: &[&str] = if d.review {
        &["create"]
    } else if crate::computed::kind_of(d).is_some() {
        &crate::computed::VERBS
    } else {
        &VERBS
    };
    let mut r = json!({
        "name": d.plural,
        "singularName": d.singular,
        "namespaced": d.namespaced,
        "kind": d.kind,
        "verbs": verbs,
    });
    if !d.short_names.is_empty() {
        r["shortNames"] = json!(d.short_names);
    }
    if !d.categories.is_empty() {
        r["categories"] = json!(d.categories);
    }
    r
}

fn subresources(d: &ResourceDef) -> Vec<Value> {
    let sub = |name: &str, kind: &str, group: Option<(&str, &str)>, verbs: &[&str]| {
        let mut v = json!({"name": format!("{}/{name}", d.plural), "singularName": "", "namespaced": d.namespaced, "kind": kind, "verbs": verbs});
        if let Some((g, ver)) = group {
            v["group"] = json!(g);
            v["version"] = json!(ver);
        }
        v
    };
    let mut out = Vec::new();
    if d.status {
        out.push(sub("status", &d.kind, None, &["get", "patch", "update"]));
    }
    if d.scale.is_some() {
        out.push(sub(
            "scale",
            "Scale",
            Some(("autoscaling", "v1")),
            &["get", "patch", "update"],
        ));
    }
    for extra in &d.extra_subresources {
        out.push(match *extra {
            "binding" => sub("binding", "Binding", None, &["create"]),
            "eviction" => sub("eviction", "Eviction", Some(("policy", "v1")), &["create"]),
            "finalize" => sub("finalize", &d.kind, None, &["update"]),
            "ephemeralcontainers" => sub(extra, &d.kind, None, &["get", "patch", "update"]),
            "exec" => sub("exec", "PodExecOptions", None, &["create", "get"]),
            "attach" => sub("attach", "PodAttachOptions", None, &["create", "get"]),
            "portforward" => sub(
                "portforward",
                "PodPortForwardOptions",
                None,
                &["create", "get"],
            ),
            other => sub(other, &d.kind, None, &["get"]),
        });
    }
    out
}
