//! What the scheduler tells the cluster besides bindings: `FailedScheduling` (Warning) and
//! `Scheduled` (Normal) core/v1 Events from `default-scheduler`, and the pod's
//! `PodScheduled=False` (reason `Unschedulable`) condition via the status subresource. Writes
//! run on their own tasks behind a bounded channel, so a slow API never stalls scheduling;
//! when the channel is full reports are dropped, as Kubernetes' event broadcaster does.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use tokio::sync::mpsc;

/// The component name on events.
pub(crate) const COMPONENT: &str = "default-scheduler";

/// One report to write.
pub(crate) enum Report {
    /// The pod fits nowhere.
    Failed {
        /// The pod.
        pod: Arc<Pod>,
        /// The FitError message.
        message: String,
    },
    /// The pod was bound.
    Scheduled {
        /// The pod.
        pod: Arc<Pod>,
        /// The node.
        node: String,
    },
    /// The pod is evicted to make room for a higher-priority one.
    Preempted {
        /// The victim.
        pod: Arc<Pod>,
        /// The preemptor's uid.
        by: String,
        /// The node.
        node: String,
    },
}

/// Sends reports to the writer tasks.
#[derive(Clone)]
pub(crate) struct Reporter {
    tx: mpsc::Sender<Report>,
}

impl Reporter {
    /// Starts `concurrency` writers on `client`.
    pub(crate) fn start(client: Client, instance: String, concurrency: usize) -> Self {
        let (tx, rx) = mpsc::channel::<Report>(4096);
        let stream = tokio_stream_from(rx);
        tokio::spawn(async move {
            stream
                .for_each_concurrent(concurrency, |report| {
                    let client = client.clone();
                    let instance = instance.clone();
                    async move {
                        if let Err(e) = write(&client, &instance, report).await {
                            tracing::debug!(error = %e, "could not write scheduling report");
                        }
                    }
                })
                .await;
        });
        Reporter { tx }
    }

    /// Queues a report; drops it when the writers are behind.
    pub(crate) fn send(&self, report: Report) {
        let _ = self.tx.try_send(report);
    }
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Report>) -> impl futures::Stream<Item = Report> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// Builds the core/v1 Event about a pod.
pub(crate) fn event(
    pod: &Pod,
    instance: &str,
    type_: &str,
    reason: &str,
    message: String,
) -> Event {
    let now = Timestamp::now();
    let ns = pod
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".into());
    let name = pod.metadata.name.clone().unwrap_or_default();
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name),
            namespace: Some(ns),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(type_.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: None,
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(instance.into()),
        action: Some(
            if type_ == "Normal" {
                "Binding"
            } else {
                "Scheduling"
            }
            .into(),
        ),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// Is the pod already marked unschedulable with this message?
fn has_condition(pod: &Pod, message: &str) -> bool {
    pod.status
        .iter()
        .flat_map(|s| s.conditions.iter().flatten())
        .any(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
                && c.message.as_deref() == Some(message)
        })
}

async fn write(client: &Client, instance: &str, report: Report) -> Result<(), kube::Error> {
    let (pod, event) = match report {
        Report::Failed { pod, message } => {
            let ev = event(
                &pod,
                instance,
                "Warning",
                "FailedScheduling",
                message.clone(),
            );
            if !has_condition(&pod, &message) {
                let pods: Api<Pod> = Api::namespaced(
                    client.clone(),
                    pod.metadata.namespace.as_deref().unwrap_or("default"),
                );
                let patch = serde_json::json!({"status": {"conditions": [{
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": message,
                    "lastProbeTime": null,
                    "lastTransitionTime": Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                }]}});
                let name = pod.metadata.name.as_deref().unwrap_or_default();
                let (pp, patch) = (PatchParams::default(), Patch::Strategic(&patch));
                let write = || pods.patch_status(name, &pp, &patch);
                crate::preempt::retry_conflicts(write).await?;
            }
            (pod, ev)
        }
        Report::Preempted { pod, by, node } => {
            let msg = format!("Preempted by pod {by} on node {node}");
            let ev = event(&pod, instance, "Normal", "Preempted", msg);
            (pod, ev)
        }
        Report::Scheduled { pod, node } => {
            let msg = format!(
                "Successfully assigned {}/{} to {node}",
                pod.metadata.namespace.as_deref().unwrap_or("default"),
                pod.metadata.name.as_deref().unwrap_or_default()
            );
            let ev = event(&pod, instance, "Normal", "Scheduled", msg);
            (pod, ev)
        }
    };
    let events: Api<Event> = Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    );
    events.create(&PostParams::default(), &event).await?;
    Ok(())
}
