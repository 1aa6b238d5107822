//! The node lifecycle controller (Kubernetes' `pkg/controller/nodelifecycle`): every
//! `monitor_period` it compares each node's last heartbeat — its Lease in `kube-node-lease`
//! or its Ready condition's lastHeartbeatTime, whichever is newer — with
//! `--node-monitor-grace-period`; a silent node gets Ready (and its pressure conditions)
//! `Unknown` with reason `NodeStatusUnknown` ("Kubelet stopped posting node status."), its pods
//! are marked not Ready, and its taints follow Ready as Kubernetes sets them:
//! `node.kubernetes.io/unreachable` (Unknown) or `node.kubernetes.io/not-ready` (False), each
//! `NoSchedule` and `NoExecute`. [`eviction`] then deletes the pods that do not tolerate the
//! NoExecute taints, after their `tolerationSeconds`.

pub mod eviction;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::ResourceExt;
use tracing::Instrument;

use crate::error::Error;

/// The taint of a node whose Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// The taint of a node whose Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";

/// How the node lifecycle controller is tuned.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// How often nodes are checked (`--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
    /// How long a node may stay silent before it is Unknown (`--node-monitor-grace-period`,
    /// 50 s since Kubernetes 1.32).
    pub grace_period: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            monitor_period: Duration::from_secs(5),
            grace_period: Duration::from_secs(50),
        }
    }
}

/// Runs the node lifecycle and taint eviction loops until the process ends.
pub async fn run(client: kube::Client, config: Config) {
    let mut tick = tokio::time::interval(config.monitor_period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = monitor(&client, &config).await {
            tracing::warn!(error = %e, "monitoring node health failed; will retry");
        }
        if let Err(e) = eviction::sweep(&client).await {
            tracing::warn!(error = %e, "taint eviction failed; will retry");
        }
    }
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The node's last sign of life: its Lease's renewTime or its Ready heartbeat; its creation
/// time if it never sent one.
pub(crate) fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renewed = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = ready_condition(node)
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    let created = node.metadata.creation_timestamp.as_ref().map(|t| t.0);
    renewed.max(posted).or(created)
}

/// The conditions of a node silent since `heartbeat` at `now`, if they must change: Ready and
/// the pressure conditions become Unknown (Ready is added if the node never posted one).
pub(crate) fn stale_conditions(
    node: &Node,
    heartbeat: Option<Timestamp>,
    now: Timestamp,
    grace: Duration,
) -> Option<Vec<NodeCondition>> {
    let heartbeat = heartbeat?;
    let silent = now.duration_since(heartbeat).as_secs_f64();
    if silent <= grace.as_secs_f64() {
        return None;
    }
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let (reason, message) = if ready_condition(node).is_some() {
        ("NodeStatusUnknown", "Kubelet stopped posting node status.")
    } else {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        });
        (
            "NodeStatusNeverUpdated",
            "Kubelet never posted node status.",
        )
    };
    let mut changed = false;
    for c in conditions.iter_mut() {
        let watched = matches!(
            c.type_.as_str(),
            "Ready" | "MemoryPressure" | "DiskPressure" | "PIDPressure"
        );
        if watched && c.status != "Unknown" {
            c.status = "Unknown".into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_transition_time = Some(Time(now));
            changed = true;
        }
    }
    changed.then_some(conditions)
}

/// The node's taints with the not-ready / unreachable ones set for `ready` (the Ready
/// condition's status), keeping the others and the time existing ones were added.
pub(crate) fn taints_for(existing: &[Taint], ready: Option<&str>, now: Timestamp) -> Vec<Taint> {
    let key = match ready {
        Some("False") => Some(NOT_READY),
        Some("Unknown") => Some(UNREACHABLE),
        _ => None,
    };
    let mut out: Vec<Taint> = existing
        .iter()
        .filter(|t| {
            let ours = t.key == NOT_READY || t.key == UNREACHABLE;
            !ours || Some(t.key.as_str()) == key
        })
        .cloned()
        .collect();
    if let Some(key) = key {
        for effect in ["NoSchedule", "NoExecute"] {
            if !out.iter().any(|t| t.key == key && t.effect == effect) {
                out.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    out
}

/// One round over all nodes.
async fn monitor(client: &kube::Client, config: &Config) -> Result<(), Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: BTreeMap<String, Lease> =
        Api::<Lease>::namespaced(client.clone(), "kube-node-lease")
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|l| (l.name_any(), l))
            .collect();
    for node in nodes.list(&ListParams::default()).await?.items {
        let name = node.name_any();
        let span = tracing::info_span!("reconcile", controller = "node-lifecycle", node = %name);
        let lease = leases.get(&name);
        check(client, &nodes, node, lease, config)
            .instrument(span)
            .await?;
    }
    Ok(())
}

/// Checks one node: conditions, then taints.
async fn check(
    client: &kube::Client,
    nodes: &Api<Node>,
    mut node: Node,
    lease: Option<&Lease>,
    config: &Config,
) -> Result<(), Error> {
    let name = node.name_any();
    let now = Timestamp::now();
    let heartbeat = last_heartbeat(&node, lease);
    if let Some(conditions) = stale_conditions(&node, heartbeat, now, config.grace_period) {
        node.status.get_or_insert_with(Default::default).conditions = Some(conditions);
        match nodes
            .replace_status(&name, &PostParams::default(), &node)
            .await
        {
            Ok(n) => node = n,
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(node = %name, "node stopped posting status: Ready is Unknown");
        mark_pods_not_ready(client, &name).await?;
    }
    let ready = ready_condition(&node).map(|c| c.status.clone());
    let existing = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted = taints_for(&existing, ready.as_deref(), now);
    if wanted != existing {
        node.spec.get_or_insert_with(Default::default).taints =
            Some(wanted).filter(|t| !t.is_empty());
        match nodes.replace(&name, &PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %name, ready = ?ready, "node taints updated"),
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Kubernetes' `MarkPodsNotReady`: the pods of a silent node are no longer Ready.
async fn mark_pods_not_ready(client: &kube::Client, node: &str) -> Result<(), Error> {
    let pods: Api<Pod> = Api::all(client.clone());
    let on_node = pods
        .list(&ListParams::default().fields(&format!("spec.nodeName={node}")))
        .await?;
    for pod in on_node.items {
        if !crate::replicaset::is_ready(&pod) {
            continue;
        }
        let ns = pod.namespace().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        let patch = serde_json::json!({"status": {"conditions": [{
            "type": "Ready", "status": "False", "lastTransitionTime": Time(Timestamp::now()),
        }]}});
        match api
            .patch_status(
                &pod.name_any(),
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
