//! Core `componentstatuses` (deprecated in Kubernetes but served by 1.33, read by `kubectl get
//! cs`): `etcd-0` is the store answering a read; `scheduler` and `controller-manager` are their
//! leader Leases in `kube-system` when those exist (healthy while renewed), else the component
//! running inside this server process.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::ApiServer;

/// The components and the Lease each one's leader holds.
const LEADERS: [(&str, &str); 2] = [
    ("controller-manager", "kube-controller-manager"),
    ("scheduler", "kube-scheduler"),
];

/// Every ComponentStatus, from a check made now.
pub(super) async fn all(api: &ApiServer) -> Vec<Value> {
    let mut out = Vec::new();
    for (name, lease) in LEADERS {
        out.push(status(name, leader(api, name, lease).await));
    }
    let store = match api.store.current_revision().await {
        Ok(_) => Ok(r#"{"health":"true","reason":""}"#.to_string()),
        Err(e) => Err(format!("store unreachable: {e}")),
    };
    out.push(status("etcd-0", store));
    out
}

/// Health of a leader-elected component: `Ok(message)` or `Err(error)`.
async fn leader(api: &ApiServer, name: &str, lease: &str) -> Result<String, String> {
    match read_lease(api, lease).await {
        Some(l) => lease_health(&l, Utc::now()),
        None if api.components.is_running(name) => Ok("ok".into()),
        None => Err(format!(
            "no leader Lease kube-system/{lease} and no {name} running in this server"
        )),
    }
}

async fn read_lease(api: &ApiServer, name: &str) -> Option<Value> {
    let def = api.registry.lookup("coordination.k8s.io", "v1", "leases")?;
    let kv = api
        .store
        .get(&def.key(Some("kube-system"), name))
        .await
        .ok()??;
    crate::objects::from_store(&def, &kv).ok()
}

/// A Lease's holder is healthy while `renewTime + leaseDurationSeconds` is in the future.
fn lease_health(lease: &Value, now: DateTime<Utc>) -> Result<String, String> {
    let spec = &lease["spec"];
    let holder = spec["holderIdentity"].as_str().unwrap_or_default();
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let duration = spec["leaseDurationSeconds"].as_i64().unwrap_or(0);
    match renewed {
        _ if holder.is_empty() => Err("leader Lease has no holder".into()),
        Some(t) if t + chrono::Duration::seconds(duration) >= now => Ok("ok".into()),
        Some(t) => Err(format!("leader {holder} last renewed its Lease at {t}")),
        None => Err(format!("leader {holder} never renewed its Lease")),
    }
}

fn status(name: &str, health: Result<String, String>) -> Value {
    let condition = match health {
        Ok(message) => json!({"type": "Healthy", "status": "True", "message": message}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// When the cluster was created: the `kube-system` namespace's creationTimestamp.
pub(super) async fn cluster_created(api: &ApiServer) -> String {
    let ns = match api.registry.lookup("", "v1", "namespaces") {
        Some(def) => match api.store.get(&def.key(None, "kube-system")).await {
            Ok(Some(kv)) => crate::objects::from_store(&def, &kv).ok(),
            _ => None,
        },
        None => None,
    };
    ns.as_ref()
        .and_then(|n| crate::objects::meta_str(n, "creationTimestamp"))
        .map(String::from)
        .unwrap_or_else(crate::objects::now)
}

/// `kubectl get cs` columns: Name, Status, Message, Error (Kubernetes' printer).
pub(crate) fn table_cells(o: &Value) -> Vec<Value> {
    let healthy = o["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == "Healthy");
    let (status, message, error) = match healthy {
        Some(c) => (
            if c["status"] == "True" {
                "Healthy"
            } else {
                "Unhealthy"
            },
            c["message"].as_str().unwrap_or_default(),
            c["error"].as_str().unwrap_or_default(),
        ),
        None => ("Unknown", "", ""),
    };
    vec![
        json!(crate::objects::name(o)),
        json!(status),
        json!(message),
        json!(error),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_freshness_decides_health() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:30Z")
            .unwrap()
            .to_utc();
        let lease = |renew: &str, holder: &str| json!({"spec": {"holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renew}});
        assert!(lease_health(&lease("2026-01-01T00:00:20.000000Z", "a"), now).is_ok());
        assert!(
            lease_health(&lease("2026-01-01T00:00:10.000000Z", "a"), now)
                .unwrap_err()
                .contains("last renewed")
        );
        assert!(lease_health(&lease("2026-01-01T00:00:20.000000Z", ""), now).is_err());
        let cells = table_cells(&status("scheduler", Err("down".into())));
        assert_eq!(cells[1], "Unhealthy");
        assert_eq!(cells[3], "down");
        assert_eq!(
            table_cells(&status("etcd-0", Ok("ok".into())))[1],
            "Healthy"
        );
    }
}
