//! `metrics.k8s.io/v1beta1` NodeMetrics and PodMetrics (what `kubectl top node|pod` reads),
//! computed on each request from the agents, as metrics-server does from kubelets: every Node
//! with an agent endpoint is asked for its `/stats/summary` over the same client-certificate
//! HTTPS as `pods/log`; CPU is the agents' `usageNanoCores` (as `…n`), memory the working set
//! (as `…Ki`). Nodes whose agent does not answer (simulated nodes) are left out, like nodes
//! metrics-server cannot scrape.

use std::collections::BTreeMap;

use futures::future::join_all;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{json, Value};

use crate::handlers::Ctx;
use crate::objects::from_store;

/// `metrics.k8s.io/v1beta1` NodeMetrics: a node's resource usage.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeMetrics {
    /// `metrics.k8s.io/v1beta1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_version: Option<String>,
    /// `NodeMetrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    /// The node's name.
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    /// When the usage was read (RFC 3339).
    #[serde(default)]
    pub(crate) timestamp: String,
    /// Over how long the CPU rate was measured (a duration such as `10s`).
    #[serde(default)]
    pub(crate) window: String,
    /// `cpu` and `memory` in use.
    #[serde(default)]
    pub(crate) usage: BTreeMap<String, Quantity>,
}

/// One container's usage in a PodMetrics.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct ContainerMetrics {
    /// The container's name.
    pub(crate) name: String,
    /// `cpu` and `memory` in use.
    #[serde(default)]
    pub(crate) usage: BTreeMap<String, Quantity>,
}

/// `metrics.k8s.io/v1beta1` PodMetrics: the resource usage of a pod's containers.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodMetrics {
    /// `metrics.k8s.io/v1beta1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_version: Option<String>,
    /// `PodMetrics`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) kind: Option<String>,
    /// The pod's name and namespace.
    #[serde(default)]
    pub(crate) metadata: ObjectMeta,
    /// When the usage was read (RFC 3339).
    #[serde(default)]
    pub(crate) timestamp: String,
    /// Over how long the CPU rates were measured.
    #[serde(default)]
    pub(crate) window: String,
    /// Per container usage.
    #[serde(default)]
    pub(crate) containers: Vec<ContainerMetrics>,
}

fn usage(stats: &Value) -> Value {
    let cpu = stats["cpu"]["usageNanoCores"].as_u64().unwrap_or(0);
    let memory = stats["memory"]["workingSetBytes"].as_u64().unwrap_or(0);
    json!({"cpu": format!("{cpu}n"), "memory": format!("{}Ki", memory / 1024)})
}

/// Every agent's Summary, with its node name.
async fn summaries(ctx: &Ctx) -> Vec<(String, Value)> {
    let Some(nodes) = ctx.api.registry.lookup("", "v1", "nodes") else {
        return Vec::new();
    };
    let Some(client) = ctx.api.kubelet_client.get() else {
        return Vec::new();
    };
    let listed = match ctx.api.store.list(&nodes.prefix()).await {
        Ok((l, _)) => l,
        Err(e) => {
            tracing::warn!(error = %e, "listing nodes for metrics");
            return Vec::new();
        }
    };
    let asks = listed.into_iter().filter_map(|kv| {
        let node = from_store(&nodes, &kv).ok()?;
        let name = node["metadata"]["name"].as_str()?.to_string();
        let ip = node["status"]["addresses"]
            .as_array()?
            .iter()
            .find(|a| a["type"] == "InternalIP")?["address"]
            .as_str()?
            .to_string();
        let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
            .as_u64()
            .filter(|p| *p > 0)?;
        let host = match ip.parse::<std::net::IpAddr>() {
            Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => ip,
        };
        let url = format!("https://{host}:{port}/stats/summary");
        Some(async move {
            let answer = client
                .get(&url)
                .timeout(std::time::Duration::from_secs(5))
                .send()
                .await;
            match answer {
                Ok(r) if r.status().is_success() => r.json::<Value>().await.ok().map(|v| (name, v)),
                Ok(r) => {
                    tracing::debug!(node = %name, status = %r.status(), "no metrics");
                    None
                }
                Err(e) => {
                    tracing::debug!(node = %name, error = %e, "no metrics");
                    None
                }
            }
        })
    });
    join_all(asks).await.into_iter().flatten().collect()
}

/// Every NodeMetrics.
pub(super) async fn nodes(ctx: &Ctx) -> Vec<Value> {
    summaries(ctx)
        .await
        .into_iter()
        .filter(|(_, s)| s["node"]["cpu"].is_object())
        .map(|(name, s)| {
            let node = &s["node"];
            json!({
                "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": name, "creationTimestamp": node["cpu"]["time"]},
                "timestamp": node["cpu"]["time"], "window": "10s",
                "usage": usage(node),
            })
        })
        .collect()
}

/// Every PodMetrics (of the request's namespace, when it names one).
pub(super) async fn pods(ctx: &Ctx) -> Vec<Value> {
    let ns = ctx.namespace().map(String::from);
    let mut out = Vec::new();
    for (_, s) in summaries(ctx).await {
        for pod in s["pods"].as_array().into_iter().flatten() {
            let namespace = pod["podRef"]["namespace"].as_str().unwrap_or_default();
            if ns.as_deref().is_some_and(|n| n != namespace) {
                continue;
            }
            let containers: Vec<Value> = pod["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| json!({"name": c["name"], "usage": usage(c)}))
                .collect();
            let time = pod["containers"][0]["cpu"]["time"].clone();
            out.push(json!({
                "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                "metadata": {"name": pod["podRef"]["name"], "namespace": namespace,
                             "creationTimestamp": time},
                "timestamp": time, "window": "10s",
                "containers": containers,
            }));
        }
    }
    out
}
