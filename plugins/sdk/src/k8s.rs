//! Kubernetes object shapes plugins commonly need: where a kind keeps its pod
//! spec, its containers, its labels.

use serde_json::Value;

/// JSON Pointer of the pod spec inside an object of `kind`, for Pods and the
/// built-in workload kinds; `None` for other kinds.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "Pod" => "/spec",
        "PodTemplate" => "/template/spec",
        "Deployment"
        | "ReplicaSet"
        | "StatefulSet"
        | "DaemonSet"
        | "Job"
        | "ReplicationController" => "/spec/template/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => return None,
    })
}

/// The pod spec of `object` (of `kind`) with its JSON Pointer, if it has one.
pub fn pod_specs<'a>(kind: &str, object: &'a Value) -> Option<(&'static str, &'a Value)> {
    let pointer = pod_spec_pointer(kind)?;
    object.pointer(pointer).map(|spec| (pointer, spec))
}

/// One container of a pod spec.
#[derive(Debug, Clone)]
pub struct Container<'a> {
    /// JSON Pointer of the container inside the object, e.g. `/spec/containers/0`.
    pub pointer: String,
    /// Which list it is in: `initContainers`, `containers` or `ephemeralContainers`.
    pub list: &'static str,
    /// The container object.
    pub value: &'a Value,
}

impl Container<'_> {
    /// `name` of the container (empty if missing).
    pub fn name(&self) -> &str {
        self.value.get("name").and_then(Value::as_str).unwrap_or("")
    }

    /// `image` of the container (empty if missing).
    pub fn image(&self) -> &str {
        self.value
            .get("image")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

/// All containers of `object` (of `kind`): init, regular and ephemeral.
pub fn containers<'a>(kind: &str, object: &'a Value) -> Vec<Container<'a>> {
    let Some((spec_ptr, spec)) = pod_specs(kind, object) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(items) = spec.get(list).and_then(Value::as_array) {
            for (i, value) in items.iter().enumerate() {
                out.push(Container {
                    pointer: format!("{spec_ptr}/{list}/{i}"),
                    list,
                    value,
                });
            }
        }
    }
    out
}

/// The object's labels (`metadata.labels`), empty when absent.
pub fn labels(object: &Value) -> Vec<(&str, &str)> {
    object
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default()
}
