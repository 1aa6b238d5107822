//! The namespace controller: when a namespace is terminating, delete everything in it, wait
//! until it is empty, then remove the `kubernetes` finalizer through `namespaces/<n>/finalize`.

use std::collections::HashSet;
use std::time::Duration;

use keelson_apiserver::ApiClient;
use serde_json::{json, Value};

use crate::discovery;
use crate::informer::{self, Change};

/// Runs the namespace controller until the process ends.
pub async fn run(client: ApiClient) {
    let mut changes = informer::start(client.clone(), "/api/v1/namespaces".into());
    let mut terminating: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            Some(change) = changes.recv() => {
                let objs = match change {
                    Change::Sync(items) => { terminating.clear(); items }
                    Change::Upsert(o) => vec![o],
                    Change::Delete(o) => { terminating.remove(o["metadata"]["name"].as_str().unwrap_or_default()); vec![] }
                };
                for o in objs {
                    if o.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null()) {
                        terminating.insert(o["metadata"]["name"].as_str().unwrap_or_default().to_string());
                    }
                }
            }
            _ = tick.tick() => {
                for ns in terminating.clone() {
                    match clean(&client, &ns).await {
                        Ok(true) => { terminating.remove(&ns); }
                        Ok(false) => {}
                        Err(e) => tracing::debug!(namespace = %ns, error = %e.message, "namespace cleanup will retry"),
                    }
                }
            }
        }
    }
}

/// Deletes the namespace's content; finalizes it once nothing is left. True when done.
async fn clean(client: &ApiClient, ns: &str) -> Result<bool, keelson_apiserver::ApiError> {
    let mut remaining = 0usize;
    for r in discovery::resources(client)
        .await
        .into_iter()
        .filter(|r| r.namespaced)
    {
        let (items, _) = match client.list(&r.list_path(Some(ns))).await {
            Ok(x) => x,
            Err(e) if e.code == 404 => continue,
            Err(e) => return Err(e),
        };
        for item in &items {
            remaining += 1;
            if item
                .pointer("/metadata/deletionTimestamp")
                .is_some_and(|v| !v.is_null())
            {
                continue;
            }
            let name = item["metadata"]["name"].as_str().unwrap_or_default();
            let opts = json!({"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"});
            match client
                .delete(&r.object_path(Some(ns), name), Some(&opts))
                .await
            {
                Ok(_) => {}
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
    }
    if remaining > 0 {
        return Ok(false);
    }
    let path = format!("/api/v1/namespaces/{ns}");
    let mut obj: Value = match client.get(&path).await {
        Ok(o) => o,
        Err(e) if e.code == 404 => return Ok(true),
        Err(e) => return Err(e),
    };
    obj["spec"]["finalizers"] = json!([]);
    match client.update(&format!("{path}/finalize"), &obj).await {
        Ok(_) => {
            tracing::info!(namespace = %ns, "namespace finalized");
            Ok(true)
        }
        Err(e) if e.code == 404 => Ok(true),
        Err(e) => Err(e),
    }
}
