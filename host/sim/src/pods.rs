//! The kubelet's part for pods bound to simulated nodes: mark them Running and Ready (pod IP
//! from the node's range, start times, container statuses), end those annotated with a
//! duration, and finish graceful deletions by deleting the object.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::node::pod_cidr_prefix;
use crate::{Config, Error, DURATION_ANNOTATION, EXIT_CODE_ANNOTATION};

#[derive(Default)]
struct State {
    next_ip: HashMap<String, u32>,
    handled: HashSet<String>,
}

struct Kubelet {
    client: Client,
    nodes: HashMap<String, usize>,
    state: Mutex<State>,
    slots: Arc<Semaphore>,
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn now() -> String {
    rfc3339(Timestamp::now())
}

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

fn condition(type_: &str, status: &str, reason: Option<&str>) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "lastProbeTime": null, "lastTransitionTime": now()})
}

fn containers(pod: &Pod) -> Vec<(String, String)> {
    pod.spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| (c.name.clone(), c.image.clone().unwrap_or_default()))
        .collect()
}

/// The status of a pod that just started on the node.
fn running_status(pod: &Pod, host_ip: &str, pod_ip: &str) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let started = now();
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "imageID": "", "containerID": format!("sim://{uid}-{name}"),
                   "ready": true, "started": true, "restartCount": 0, "state": {"running": {"startedAt": started}}})
        })
        .collect();
    json!({"status": {
        "phase": "Running",
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip, "podIPs": [{"ip": pod_ip}],
        "startTime": started,
        "conditions": [
            condition("PodReadyToStartContainers", "True", None),
            condition("Initialized", "True", None),
            condition("Ready", "True", None),
            condition("ContainersReady", "True", None),
            condition("PodScheduled", "True", None),
        ],
        "containerStatuses": statuses,
    }})
}

/// The status of a pod whose containers exited with `code`.
fn finished_status(pod: &Pod, code: i32) -> Value {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| rfc3339(t.0))
        .unwrap_or_else(now);
    let reason = if code == 0 { "Completed" } else { "Error" };
    let statuses: Vec<Value> = containers(pod)
        .into_iter()
        .map(|(name, image)| {
            json!({"name": name, "image": image, "imageID": "", "containerID": format!("sim://{uid}-{name}"),
                   "ready": false, "started": false, "restartCount": 0,
                   "state": {"terminated": {"exitCode": code, "reason": reason, "startedAt": started, "finishedAt": now()}}})
        })
        .collect();
    json!({"status": {
        "phase": if code == 0 { "Succeeded" } else { "Failed" },
        "conditions": [
            condition("PodReadyToStartContainers", "False", None),
            condition("Initialized", "True", Some("PodCompleted")),
            condition("Ready", "False", Some("PodCompleted")),
            condition("ContainersReady", "False", Some("PodCompleted")),
            condition("PodScheduled", "True", None),
        ],
        "containerStatuses": statuses,
    }})
}

/// Seconds left until a pod with a duration annotation ends (0 when overdue).
fn remaining(pod: &Pod, seconds: f64) -> Duration {
    let start = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(|t| t.0);
    let elapsed = start
        .map(|s| Timestamp::now().duration_since(s).as_secs_f64().max(0.0))
        .unwrap_or(0.0);
    Duration::from_secs_f64((seconds - elapsed).max(0.0))
}

impl Kubelet {
    fn api(&self, pod: &Pod) -> Api<Pod> {
        Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        )
    }

    fn pod_ip(&self, node: &str) -> (String, String) {
        let index = self.nodes[node];
        let mut st = self.state.lock().unwrap();
        let next = st.next_ip.entry(node.to_string()).or_insert(0);
        *next = *next % 253 + 1;
        let prefix = pod_cidr_prefix(index);
        (format!("{prefix}.0"), format!("{prefix}.{}", *next + 1))
    }

    /// First time this pod's uid reaches `stage`?
    fn first(&self, pod: &Pod, stage: &str) -> bool {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        self.state
            .lock()
            .unwrap()
            .handled
            .insert(format!("{uid}/{stage}"))
    }

    fn forget(&self, pod: &Pod) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let mut st = self.state.lock().unwrap();
        for stage in ["start", "finish", "delete"] {
            st.handled.remove(&format!("{uid}/{stage}"));
        }
    }

    async fn handle(self: Arc<Self>, pod: Pod, node: String) -> Result<(), kube::Error> {
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            if self.first(&pod, "delete") {
                let dp = DeleteParams {
                    grace_period_seconds: Some(0),
                    preconditions: Some(Preconditions {
                        uid: pod.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..Default::default()
                };
                self.api(&pod).delete(&name, &dp).await?;
            }
            return Ok(());
        }
        let pending = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending")
            == "Pending";
        let pp = PatchParams::default();
        let mut pod = pod;
        if pending && self.first(&pod, "start") {
            let (host_ip, pod_ip) = self.pod_ip(&node);
            let patch = running_status(&pod, &host_ip, &pod_ip);
            pod = self
                .api(&pod)
                .patch_status(&name, &pp, &Patch::Merge(patch))
                .await?;
        }
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
        let duration = annotation(&pod, DURATION_ANNOTATION).and_then(|d| d.parse::<f64>().ok());
        if let (true, Some(seconds)) = (running, duration) {
            if self.first(&pod, "finish") {
                let k = self.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(remaining(&pod, seconds)).await;
                    let _slot = k.slots.acquire().await;
                    let code = annotation(&pod, EXIT_CODE_ANNOTATION)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or(0);
                    let patch = finished_status(&pod, code);
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    if let Err(e) = k
                        .api(&pod)
                        .patch_status(&name, &PatchParams::default(), &Patch::Merge(patch))
                        .await
                    {
                        tracing::debug!(pod = %name, error = %e, "sim pod could not finish");
                    }
                });
            }
        }
        Ok(())
    }
}

/// Watches all pods and runs those bound to the simulated nodes.
pub(crate) async fn run(client: Client, config: Config) -> Result<(), Error> {
    let nodes = crate::node_names(&config)
        .into_iter()
        .enumerate()
        .map(|(i, n)| (n, config.first_index + i))
        .collect();
    let kubelet = Arc::new(Kubelet {
        client: client.clone(),
        nodes,
        state: Mutex::new(State::default()),
        slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
    });
    let api: Api<Pod> = Api::all(client);
    let mut stream =
        std::pin::pin!(watcher::watcher(api, watcher::Config::default()).default_backoff());
    while let Some(ev) = stream.next().await {
        let pod = match ev {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(Event::Delete(p)) => {
                kubelet.forget(&p);
                continue;
            }
            Ok(Event::Init | Event::InitDone) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "sim pod watch error");
                continue;
            }
        };
        let Some(node) = pod.spec.as_ref().and_then(|s| s.node_name.clone()) else {
            continue;
        };
        if !kubelet.nodes.contains_key(&node) {
            continue;
        }
        let k = kubelet.clone();
        let permit = kubelet.slots.clone().acquire_owned().await;
        tokio::spawn(async move {
            let key = format!(
                "{}/{}",
                pod.metadata.namespace.as_deref().unwrap_or(""),
                pod.metadata.name.as_deref().unwrap_or("")
            );
            if let Err(e) = k.handle(pod, node).await {
                tracing::debug!(pod = %key, error = %e, "sim pod update failed");
            }
            drop(permit);
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "uid": "u1", "annotations": {DURATION_ANNOTATION: "5"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": "Running", "startTime": rfc3339(Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(2))}
        }))
        .unwrap()
    }

    #[test]
    fn running_and_finished_statuses() {
        let p = pod();
        let s = running_status(&p, "10.42.0.0", "10.42.0.2");
        assert_eq!(s["status"]["phase"], "Running");
        assert_eq!(s["status"]["podIP"], "10.42.0.2");
        assert_eq!(s["status"]["containerStatuses"][0]["ready"], true);
        assert_eq!(finished_status(&p, 0)["status"]["phase"], "Succeeded");
        let failed = finished_status(&p, 3);
        assert_eq!(failed["status"]["phase"], "Failed");
        assert_eq!(
            failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"],
            3
        );
    }

    #[test]
    fn duration_counts_from_the_start_time() {
        let left = remaining(&pod(), 5.0);
        assert!(
            left <= Duration::from_secs(3) && left >= Duration::from_secs(2),
            "{left:?}"
        );
        assert_eq!(remaining(&pod(), 1.0), Duration::ZERO);
    }
}
