//! `apiregistration.k8s.io/v1` APIServices: one per served group/version, `Local` (no
//! `spec.service`) and Available, as kube-apiserver's autoregister controller keeps them.

use serde_json::{json, Value};

use crate::error::ApiResult;
use crate::ApiServer;

/// Kubernetes' `groupPriorityMinimum` / `versionPriority` of the built-in group/versions
/// (kube-apiserver's `apiVersionPriorities`); other groups (CRDs) get 1000 / 100.
const PRIORITIES: [(&str, &str, i64, i64); 19] = [
    ("", "v1", 18000, 1),
    ("apiregistration.k8s.io", "v1", 18000, 15),
    ("apps", "v1", 17800, 15),
    ("events.k8s.io", "v1", 17750, 15),
    ("authentication.k8s.io", "v1", 17700, 15),
    ("authorization.k8s.io", "v1", 17600, 15),
    ("autoscaling", "v2", 17500, 30),
    ("batch", "v1", 17400, 15),
    ("certificates.k8s.io", "v1", 17300, 15),
    ("networking.k8s.io", "v1", 17200, 15),
    ("policy", "v1", 17100, 15),
    ("rbac.authorization.k8s.io", "v1", 17000, 15),
    ("storage.k8s.io", "v1", 16800, 15),
    ("apiextensions.k8s.io", "v1", 16700, 15),
    ("admissionregistration.k8s.io", "v1", 16700, 15),
    ("scheduling.k8s.io", "v1", 16600, 15),
    ("coordination.k8s.io", "v1", 16500, 15),
    ("node.k8s.io", "v1", 16300, 15),
    ("discovery.k8s.io", "v1", 16200, 15),
];

/// Every APIService, in discovery order.
pub(super) async fn all(api: &ApiServer) -> ApiResult<Vec<Value>> {
    let created = super::componentstatuses::cluster_created(api).await;
    let mut out = Vec::new();
    for (group, versions) in api.registry.group_versions() {
        for version in versions {
            out.push(apiservice(&group, &version, &created));
        }
    }
    Ok(out)
}

fn apiservice(group: &str, version: &str, created: &str) -> Value {
    let (group_priority, version_priority) = PRIORITIES
        .iter()
        .find(|(g, v, _, _)| *g == group && *v == version)
        .map(|(_, _, g, v)| (*g, *v))
        .unwrap_or((1000, 100));
    let name = format!("{version}.{group}");
    let mut spec = json!({
        "version": version,
        "groupPriorityMinimum": group_priority,
        "versionPriority": version_priority,
    });
    if !group.is_empty() {
        spec["group"] = json!(group);
    }
    json!({
        "kind": "APIService",
        "apiVersion": "apiregistration.k8s.io/v1",
        "metadata": {
            "name": name,
            "uid": stable_uid(&name),
            "creationTimestamp": created,
            "labels": {"kube-aggregator.kubernetes.io/automanaged": "onstart"},
        },
        "spec": spec,
        "status": {"conditions": [{
            "type": "Available",
            "status": "True",
            "lastTransitionTime": created,
            "reason": "Local",
            "message": "Local APIServices are always available",
        }]},
    })
}

/// A UID that stays the same across requests and restarts (derived from the name).
fn stable_uid(name: &str) -> String {
    let hash = |seed: u64| {
        name.bytes()
            .fold(seed, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100000001b3))
    };
    let hex = format!(
        "{:016x}{:016x}",
        hash(0xcbf29ce484222325),
        hash(0x84222325cbf29ce4)
    );
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `kubectl get apiservices` columns: Name, Service, Available, Age.
pub(crate) fn table_cells(o: &Value) -> Vec<Value> {
    let service = match o.pointer("/spec/service") {
        Some(s) if !s.is_null() => format!(
            "{}/{}",
            s["namespace"].as_str().unwrap_or_default(),
            s["name"].as_str().unwrap_or_default()
        ),
        _ => "Local".into(),
    };
    let available = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Available")
        .map(|c| match c["status"].as_str() {
            Some("True") => "True".to_string(),
            other => format!(
                "{} ({})",
                other.unwrap_or("Unknown"),
                c["reason"].as_str().unwrap_or_default()
            ),
        })
        .unwrap_or_else(|| "Unknown".into());
    vec![
        json!(crate::objects::name(o)),
        json!(service),
        json!(available),
        json!(crate::table::age(o)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_apiservices() {
        let core = apiservice("", "v1", "2026-01-01T00:00:00Z");
        assert_eq!(core["metadata"]["name"], "v1.");
        assert!(core["spec"].get("group").is_none());
        assert_eq!(core["spec"]["groupPriorityMinimum"], 18000);
        let apps = apiservice("apps", "v1", "2026-01-01T00:00:00Z");
        assert_eq!(apps["metadata"]["name"], "v1.apps");
        assert_eq!(apps["spec"]["group"], "apps");
        assert_eq!(
            apps["metadata"]["uid"],
            apiservice("apps", "v1", "x")["metadata"]["uid"]
        );
        assert_ne!(apps["metadata"]["uid"], core["metadata"]["uid"]);
        let cells = table_cells(&apps);
        assert_eq!(cells[1], "Local");
        assert_eq!(cells[2], "True");
        let custom = apiservice("example.com", "v1", "x");
        assert_eq!(custom["spec"]["versionPriority"], 100);
    }
}
