//! The ServiceAccount controller: every active namespace has a `default` ServiceAccount.

use keelson_apiserver::ApiClient;
use serde_json::{json, Value};

use crate::informer::{self, Change};

/// Runs the ServiceAccount controller until the process ends.
pub async fn run(client: ApiClient) {
    let mut changes = informer::start(client.clone(), "/api/v1/namespaces".into());
    while let Some(change) = changes.recv().await {
        let namespaces = match change {
            Change::Sync(items) => items,
            Change::Upsert(o) => vec![o],
            Change::Delete(_) => continue,
        };
        for ns in namespaces {
            if ns
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                continue;
            }
            let name = ns["metadata"]["name"].as_str().unwrap_or_default();
            ensure_default(&client, name).await;
        }
    }
}

async fn ensure_default(client: &ApiClient, ns: &str) {
    let path = format!("/api/v1/namespaces/{ns}/serviceaccounts");
    if client.get(&format!("{path}/default")).await.is_ok() {
        return;
    }
    let sa: Value = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default", "namespace": ns}});
    match client.create(&path, &sa).await {
        Ok(_) => tracing::info!(namespace = %ns, "created default ServiceAccount"),
        Err(e) if e.code == 409 || e.code == 403 || e.code == 404 => {}
        Err(e) => {
            tracing::warn!(namespace = %ns, error = %e.message, "creating default ServiceAccount failed")
        }
    }
}
