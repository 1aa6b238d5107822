//! The pod garbage collector (Kubernetes' PodGC), every 20 s: deletes terminating pods that were
//! never scheduled (nothing else would finish them), pods bound to a Node that no longer
//! exists (after a 40 s quarantine, first marked `Failed` with a `DisruptionTarget` condition,
//! reason `DeletionByPodGC`), and the oldest finished pods beyond
//! `--terminated-pod-gc-threshold` (12,500).

use std::collections::HashSet;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};

use crate::error::Error;

/// The collector's settings (kube-controller-manager's flags).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// Finished pods kept before the oldest are deleted (`--terminated-pod-gc-threshold`);
    /// 0 keeps them all.
    pub terminated_threshold: usize,
    /// Time between passes.
    pub period: Duration,
    /// How long a Node must stay missing before its pods are collected.
    pub quarantine: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            terminated_threshold: 12_500,
            period: Duration::from_secs(20),
            quarantine: Duration::from_secs(40),
        }
    }
}

/// Runs the collector until the process ends.
pub async fn run(client: kube::Client, config: Config) {
    // Node names seen missing, with the pass that first saw them missing.
    let mut missing: std::collections::HashMap<String, tokio::time::Instant> = Default::default();
    let mut tick = tokio::time::interval(config.period);
    loop {
        tick.tick().await;
        if let Err(e) = pass(&client, &config, &mut missing).await {
            tracing::warn!(controller = "pod-garbage-collector", error = %e, "pass failed; will retry");
        }
    }
}

fn finished(p: &Pod) -> bool {
    matches!(
        p.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

fn node_of(p: &Pod) -> Option<&str> {
    p.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The finished pods to delete: the oldest beyond `threshold` (0: none).
pub fn terminated_excess(pods: &[Pod], threshold: usize) -> Vec<&Pod> {
    let mut done: Vec<&Pod> = pods
        .iter()
        .filter(|p| finished(p) && p.metadata.deletion_timestamp.is_none())
        .collect();
    if threshold == 0 || done.len() <= threshold {
        return Vec::new();
    }
    done.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let excess = done.len() - threshold;
    done.truncate(excess);
    done
}

#[tracing::instrument(skip_all, fields(controller = "pod-garbage-collector"))]
async fn pass(
    client: &kube::Client,
    config: &Config,
    missing: &mut std::collections::HashMap<String, tokio::time::Instant>,
) -> Result<(), Error> {
    let pods = Api::<Pod>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items;
    let nodes: HashSet<String> = Api::<Node>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|n| n.metadata.name)
        .collect();
    let now = tokio::time::Instant::now();
    missing.retain(|n, _| !nodes.contains(n));
    for p in &pods {
        if let Some(node) = node_of(p).filter(|n| !nodes.contains(*n)) {
            missing.entry(node.to_string()).or_insert(now);
        }
    }
    for p in &pods {
        match node_of(p) {
            None if p.metadata.deletion_timestamp.is_some() => {
                force_delete(client, p, "unscheduled and terminating").await?;
            }
            Some(node)
                if missing
                    .get(node)
                    .is_some_and(|since| now.duration_since(*since) >= config.quarantine) =>
            {
                if !finished(p) {
                    mark_failed(client, p, node).await?;
                }
                force_delete(client, p, "bound to a node that no longer exists").await?;
            }
            _ => {}
        }
    }
    for p in terminated_excess(&pods, config.terminated_threshold) {
        force_delete(client, p, "finished pods above the threshold").await?;
    }
    Ok(())
}

/// Kubernetes marks an orphaned pod failed before deleting it, so its controller sees why.
async fn mark_failed(client: &kube::Client, p: &Pod, node: &str) -> Result<(), Error> {
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(jiff::Timestamp::now());
    let patch = serde_json::json!({"status": {
        "phase": "Failed",
        "conditions": [{
            "type": "DisruptionTarget", "status": "True", "reason": "DeletionByPodGC",
            "message": "PodGC: node no longer exists", "lastTransitionTime": now,
        }],
    }});
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    match api
        .patch_status(name, &PatchParams::default(), &Patch::Strategic(patch))
        .await
    {
        Ok(_) => {
            tracing::info!(
                namespace = ns,
                pod = name,
                node,
                "marked failed: node is gone"
            );
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn force_delete(client: &kube::Client, p: &Pod, why: &str) -> Result<(), Error> {
    let ns = p.metadata.namespace.as_deref().unwrap_or_default();
    let name = p.metadata.name.as_deref().unwrap_or_default();
    let params = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: p.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    match Api::<Pod>::namespaced(client.clone(), ns)
        .delete(name, &params)
        .await
    {
        Ok(_) => {
            tracing::info!(namespace = ns, pod = name, why, "garbage-collected pod");
            Ok(())
        }
        Err(kube::Error::Api(s)) if matches!(s.code, 404 | 409) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, phase: &str, created: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
            "spec": {"containers": []},
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    #[test]
    fn oldest_finished_pods_beyond_the_threshold() {
        let pods = vec![
            pod("new-done", "Succeeded", "2026-12-07T12:00:03Z"),
            pod("old-done", "Failed", "2026-12-07T12:00:01Z"),
            pod("running", "Running", "2026-12-07T12:00:00Z"),
            pod("mid-done", "Succeeded", "2026-12-07T12:00:02Z"),
        ];
        let names = |v: Vec<&Pod>| -> Vec<String> {
            v.into_iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect()
        };
        assert_eq!(names(terminated_excess(&pods, 1)), ["old-done", "mid-done"]);
        assert!(terminated_excess(&pods, 3).is_empty());
        assert!(terminated_excess(&pods, 0).is_empty(), "0 keeps all");
    }
}
