//! Node objects of the simulated nodes and their registration (create, or update an existing
//! one's spec and status, so restarting the simulator is harmless).

use std::collections::BTreeMap;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::{node_names, Config, Error, NodeTemplate};

/// The pod range of node `index`: `10.<42 + index / 256>.<index % 256>.0/24` (never routed;
/// the simulator only writes these addresses into pod status).
pub(crate) fn pod_cidr_prefix(index: usize) -> String {
    format!("10.{}.{}", 42 + index / 256, index % 256)
}

/// The Node object for simulated node `index`.
pub fn node_object(template: &NodeTemplate, index: usize) -> Node {
    let name = format!("{}{index}", template.name_prefix);
    let mut labels: BTreeMap<String, String> = [
        ("kubernetes.io/hostname", name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("type", "keelson-sim"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    labels.extend(template.labels.clone());
    let resources: BTreeMap<String, Quantity> = template
        .resources
        .iter()
        .map(|(k, v)| (k.clone(), Quantity(v.clone())))
        .collect();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let condition = |type_: &str, status: &str, reason: &str, message: &str| NodeCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time: Some(now.clone()),
    };
    Node {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(labels),
            annotations: Some(
                [("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())].into(),
            ),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(format!("{}.0/24", pod_cidr_prefix(index))),
            taints: (!template.taints.is_empty()).then(|| template.taints.clone()),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(resources.clone()),
            capacity: Some(resources),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: format!("{}.0", pod_cidr_prefix(index)),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: name.clone(),
                },
            ]),
            conditions: Some(vec![
                condition("Ready", "True", "KubeletReady", "keelson sim node is ready"),
                condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "simulated",
                ),
                condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "simulated",
                ),
                condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "simulated",
                ),
            ]),
            node_info: Some(NodeSystemInfo {
                architecture: "amd64".into(),
                boot_id: String::new(),
                container_runtime_version: "keelson-sim://0.1.0".into(),
                kernel_version: "simulated".into(),
                kube_proxy_version: "v1.33.0".into(),
                kubelet_version: "v1.33.0-keelson-sim".into(),
                machine_id: name.clone(),
                operating_system: "linux".into(),
                os_image: "keelson sim".into(),
                system_uuid: name,
                ..Default::default()
            }),
            phase: Some("Running".into()),
            ..Default::default()
        }),
    }
}

async fn register_one(nodes: &Api<Node>, node: Node) -> Result<(), Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let spec = serde_json::json!({
                "metadata": {"labels": node.metadata.labels},
                "spec": {"taints": node.spec.as_ref().and_then(|s| s.taints.clone())},
            });
            nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(spec))
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    // Status is the kubelet's to write: set it through the status subresource.
    let status = serde_json::json!({"status": node.status});
    nodes
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
        .await?;
    Ok(())
}

/// Creates (or updates) every simulated node, `concurrency` at a time.
pub async fn register(client: &Client, config: &Config) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let indexes = config.first_index..config.first_index + config.count;
    debug_assert_eq!(indexes.len(), node_names(config).len());
    futures::stream::iter(indexes)
        .map(|i| register_one(&nodes, node_object(&config.template, i)))
        .buffer_unordered(config.concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}
