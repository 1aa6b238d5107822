//! Events the agent reports about pods (core/v1, what `kubectl describe` and `kubectl get
//! events` show), in the kubelet's words: Pulled, Created, Started, BackOff, Killing, Failed.
//! They are sent in the background, so a slow API never holds up a pod worker.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

const COMPONENT: &str = "kubelet";

/// The Event about `pod`, from the agent of node `node`.
pub(crate) fn event(pod: &Pod, node: &str, warning: bool, reason: &str, message: String) -> Event {
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
        type_: Some(if warning { "Warning" } else { "Normal" }.into()),
        source: Some(EventSource {
            component: Some(COMPONENT.into()),
            host: Some(node.into()),
        }),
        reporting_component: Some(COMPONENT.into()),
        reporting_instance: Some(node.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

/// Sends an Event about `pod` in the background.
pub(crate) fn record(
    client: &Client,
    pod: &Pod,
    node: &str,
    warning: bool,
    reason: &str,
    message: String,
) {
    let ev = event(pod, node, warning, reason, message);
    let api: Api<Event> = Api::namespaced(
        client.clone(),
        ev.metadata.namespace.as_deref().unwrap_or("default"),
    );
    tokio::spawn(async move {
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(error = %e, "could not record an event");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_name_the_pod_and_the_node() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"}
        }))
        .unwrap();
        let e = event(
            &pod,
            "n1",
            true,
            "BackOff",
            "Back-off restarting failed container c".into(),
        );
        assert_eq!(e.type_.as_deref(), Some("Warning"));
        assert_eq!(e.involved_object.uid.as_deref(), Some("u1"));
        assert_eq!(e.source.unwrap().host.as_deref(), Some("n1"));
        assert!(e.metadata.name.unwrap().starts_with("p."));
    }
}
