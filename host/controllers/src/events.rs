//! Events from the controllers, as kube-controller-manager writes them: core/v1 Events (what
//! `kubectl describe` and `kubectl get events` read; Keelson stores `events.k8s.io/v1` Events
//! apart, so kube-runtime's `Recorder`, which writes those, would leave them unseen) with
//! Kubernetes' reasons and messages, `source.component` the controller's name. Writes run on
//! their own task, so a slow API never holds up a reconcile, and a failed write is only
//! logged, as Kubernetes' event broadcaster does.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::Resource;

/// An event's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Type {
    /// Something happened as intended.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Writes events about objects on behalf of one controller.
#[derive(Clone)]
pub(crate) struct Recorder {
    client: kube::Client,
    component: &'static str,
}

impl Recorder {
    /// A recorder for the controller named `component` (e.g. `statefulset-controller`).
    pub(crate) fn new(client: kube::Client, component: &'static str) -> Self {
        Self { client, component }
    }

    /// Records an event about `obj` in the background.
    pub(crate) fn publish<K>(&self, obj: &K, type_: Type, reason: &str, message: String)
    where
        K: Resource<DynamicType = ()>,
    {
        let event = event_for(obj, self.component, type_, reason, message);
        let ns = event.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        tokio::spawn(async move {
            if let Err(e) = api.create(&PostParams::default(), &event).await {
                tracing::debug!(error = %e, "could not write event");
            }
        });
    }
}

/// The core/v1 Event about `obj`.
pub(crate) fn event_for<K>(
    obj: &K,
    component: &str,
    type_: Type,
    reason: &str,
    message: String,
) -> Event
where
    K: Resource<DynamicType = ()>,
{
    let now = Timestamp::now();
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    let ns = meta.namespace.clone().unwrap_or_else(|| "default".into());
    Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
            namespace: Some(ns),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message),
        type_: Some(
            match type_ {
                Type::Normal => "Normal",
                Type::Warning => "Warning",
            }
            .into(),
        ),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        reporting_component: Some(component.into()),
        reporting_instance: Some(component.into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::StatefulSet;

    #[test]
    fn event_refers_to_its_object() {
        let sts = StatefulSet {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("u1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = event_for(
            &sts,
            "statefulset-controller",
            Type::Normal,
            "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful".into(),
        );
        assert_eq!(ev.metadata.namespace.as_deref(), Some("ns"));
        assert!(ev.metadata.name.unwrap().starts_with("web."));
        let obj = ev.involved_object;
        assert_eq!(obj.kind.as_deref(), Some("StatefulSet"));
        assert_eq!(obj.api_version.as_deref(), Some("apps/v1"));
        assert_eq!(obj.uid.as_deref(), Some("u1"));
        assert_eq!(ev.type_.as_deref(), Some("Normal"));
        assert_eq!(
            ev.source.unwrap().component.as_deref(),
            Some("statefulset-controller")
        );
    }
}
