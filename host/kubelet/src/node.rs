//! The agent's Node: registration (create, or update labels and status of an existing one, so
//! a restarted agent takes its Node back), the status heartbeat with capacity, addresses,
//! the kubelet endpoint and Ready / MemoryPressure / DiskPressure / PIDPressure from real
//! readings, and the Lease in `kube-node-lease` renewed every [`Config::lease_renew`].

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{json, Value};

use crate::host_info;
use crate::{Config, Error};

const LEASE_NAMESPACE: &str = "kube-node-lease";

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn labels(config: &Config) -> BTreeMap<String, String> {
    [
        ("kubernetes.io/hostname", config.node_name.as_str()),
        ("kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", host_info::arch()),
        ("beta.kubernetes.io/os", "linux"),
        ("beta.kubernetes.io/arch", host_info::arch()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The Node's `status`, from fresh readings.
pub(crate) fn status(config: &Config, ip: IpAddr, port: u16) -> Value {
    let (disk_total, _) = host_info::disk_bytes(&config.data_dir);
    let capacity = json!({
        "cpu": format!("{}m", host_info::cpu_millis()),
        "memory": format!("{}", host_info::memory_bytes()),
        "ephemeral-storage": format!("{disk_total}"),
        "pods": "110",
    });
    let pressure = host_info::pressure(&config.data_dir);
    let stamp = now();
    let condition = |type_: &str, hit: &Option<String>, ok_reason: &str, bad_reason: &str| {
        let (status, reason, message) = match hit {
            Some(m) => ("True", bad_reason, m.clone()),
            None => ("False", ok_reason, format!("kubelet has no {type_}")),
        };
        json!({"type": type_, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": stamp, "lastTransitionTime": stamp})
    };
    let (kernel, os_image, machine_id, boot_id) = host_info::system_info();
    json!({
        "capacity": capacity,
        "allocatable": capacity,
        "addresses": [
            {"type": "InternalIP", "address": ip.to_string()},
            {"type": "Hostname", "address": config.node_name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "conditions": [
            condition("MemoryPressure", &pressure.memory, "KubeletHasSufficientMemory", "KubeletHasInsufficientMemory"),
            condition("DiskPressure", &pressure.disk, "KubeletHasNoDiskPressure", "KubeletHasDiskPressure"),
            condition("PIDPressure", &pressure.pids, "KubeletHasSufficientPID", "KubeletHasInsufficientPID"),
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "keelson agent is posting ready status",
             "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
        ],
        "nodeInfo": {
            "architecture": host_info::arch(),
            "bootID": boot_id,
            "containerRuntimeVersion": "wasmtime://48",
            "kernelVersion": kernel,
            "kubeProxyVersion": "",
            "kubeletVersion": "v1.33.0-keelson",
            "machineID": machine_id,
            "operatingSystem": "linux",
            "osImage": os_image,
            "systemUUID": machine_id,
        },
        "runtimeHandlers": [{"name": "wasmtime", "features": {"recursiveReadOnlyMounts": false, "userNamespaces": false}}],
    })
}

fn keep_transition_times(status: &mut Value, old: &[k8s_openapi::api::core::v1::NodeCondition]) {
    for c in status["conditions"].as_array_mut().into_iter().flatten() {
        let held = old
            .iter()
            .find(|o| c["type"] == o.type_.as_str() && c["status"] == o.status.as_str());
        if let Some(since) = held.and_then(|o| o.last_transition_time.as_ref()) {
            c["lastTransitionTime"] = json!(since);
        }
    }
}

/// The Node annotation naming where local-path volumes of this node live (read by the
/// local-path provisioner in the controller manager).
const STORAGE_DIR_ANNOTATION: &str = "keelson.dev/local-path-dir";

fn annotations(config: &Config) -> BTreeMap<String, String> {
    [
        ("node.alpha.kubernetes.io/ttl".into(), "0".into()),
        (
            STORAGE_DIR_ANNOTATION.into(),
            config.data_dir.join("storage").display().to_string(),
        ),
    ]
    .into()
}

/// Creates the Node (or takes over an existing one) and writes its status.
pub(crate) async fn register(
    client: &Client,
    config: &Config,
    ip: IpAddr,
    port: u16,
) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let node = Node {
        metadata: ObjectMeta {
            name: Some(config.node_name.clone()),
            labels: Some(labels(config)),
            annotations: Some(annotations(config)),
            ..Default::default()
        },
        ..Default::default()
    };
    match nodes.create(&PostParams::default(), &node).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let patch =
                json!({"metadata": {"labels": labels(config), "annotations": annotations(config)}});
            nodes
                .patch(
                    &config.node_name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
        Err(e) => return Err(e.into()),
    }
    write_status(&nodes, config, ip, port).await?;
    renew_lease(client, config).await?;
    Ok(())
}

async fn write_status(
    nodes: &Api<Node>,
    config: &Config,
    ip: IpAddr,
    port: u16,
) -> Result<(), Error> {
    let mut status = status(config, ip, port);
    // A condition whose status holds keeps its lastTransitionTime.
    if let Some(current) = nodes.get_opt(&config.node_name).await? {
        let old = current
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default();
        keep_transition_times(&mut status, &old);
    }
    let patch = json!({"status": status});
    nodes
        .patch_status(
            &config.node_name,
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(())
}

async fn renew_lease(client: &Client, config: &Config) -> Result<(), kube::Error> {
    let leases: Api<Lease> = Api::namespaced(client.clone(), LEASE_NAMESPACE);
    let node = &config.node_name;
    let duration = (config.lease_renew.as_secs() * 4).max(1) as i32;
    let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
    let patch = json!({"spec": {"renewTime": now, "holderIdentity": node, "leaseDurationSeconds": duration}});
    match leases
        .patch(node, &PatchParams::default(), &Patch::Merge(patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(node.clone()),
                    namespace: Some(LEASE_NAMESPACE.into()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(node.clone()),
                    lease_duration_seconds: Some(duration),
                    renew_time: Some(now),
                    ..Default::default()
                }),
            };
            leases
                .create(&PostParams::default(), &lease)
                .await
                .map(|_| ())
        }
        Err(e) => Err(e),
    }
}

/// Renews the Lease every `lease_renew` and rewrites the status every `status_interval`;
/// failures are logged and retried on the next round.
pub(crate) async fn heartbeat(
    client: Client,
    config: Config,
    ip: IpAddr,
    port: u16,
) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let mut lease_tick = tokio::time::interval(config.lease_renew);
    let mut status_tick = tokio::time::interval(config.status_interval);
    lease_tick.tick().await;
    status_tick.tick().await;
    loop {
        tokio::select! {
            _ = lease_tick.tick() => {
                if let Err(e) = renew_lease(&client, &config).await {
                    tracing::warn!(error = %e, "could not renew the node lease");
                }
            }
            _ = status_tick.tick() => {
                if let Err(e) = write_status(&nodes, &config, ip, port).await {
                    tracing::warn!(error = %e, "could not update the node status");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_reports_capacity_addresses_and_conditions() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::new("n1", dir.path());
        let s = status(&config, IpAddr::from([10, 0, 0, 5]), 10250);
        assert_eq!(s["capacity"]["pods"], "110");
        assert!(s["capacity"]["cpu"].as_str().unwrap().ends_with('m'));
        assert!(
            s["capacity"]["memory"]
                .as_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
                > 0
        );
        assert_eq!(s["addresses"][0]["address"], "10.0.0.5");
        assert_eq!(s["daemonEndpoints"]["kubeletEndpoint"]["Port"], 10250);
        let types: Vec<&str> = s["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
        );
        assert_eq!(labels(&config)["kubernetes.io/hostname"], "n1");
        let mut s = s;
        let old: Vec<k8s_openapi::api::core::v1::NodeCondition> = serde_json::from_value(json!([
            {"type": "Ready", "status": "True", "lastTransitionTime": "2020-01-01T00:00:00Z"},
            {"type": "DiskPressure", "status": "Unknown", "lastTransitionTime": "2020-01-01T00:00:00Z"},
        ]))
        .unwrap();
        keep_transition_times(&mut s, &old);
        let since = |t: &str| {
            s["conditions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["type"] == t)
                .unwrap()["lastTransitionTime"]
                .clone()
        };
        assert_eq!(since("Ready"), "2020-01-01T00:00:00Z");
        assert_ne!(since("DiskPressure"), "2020-01-01T00:00:00Z");
    }
}
