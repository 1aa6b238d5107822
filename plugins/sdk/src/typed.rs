//! Typed accessors for the hot paths: they read only the fields they return
//! out of the request's JSON and skip the rest without building it, which is
//! several times cheaper than parsing the whole object with
//! [`Request::object`](crate::Request::object).

use serde::Deserialize;

use crate::Request;

/// One container of the object's pod spec, as the typed accessor reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerImage {
    /// JSON Pointer of the container inside the object, e.g. `/spec/containers/0`.
    pub pointer: String,
    /// Which list it is in: `initContainers`, `containers` or `ephemeralContainers`.
    pub list: &'static str,
    /// `name` of the container (empty if missing).
    pub name: String,
    /// `image` of the container (empty if missing).
    pub image: String,
}

#[derive(Deserialize, Default)]
struct Lean {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    #[serde(default)]
    init_containers: Vec<Lean>,
    #[serde(default)]
    containers: Vec<Lean>,
    #[serde(default)]
    ephemeral_containers: Vec<Lean>,
}

#[derive(Deserialize)]
struct Spec<T> {
    spec: Option<T>,
}

#[derive(Deserialize)]
struct Template<T> {
    template: Option<T>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobTemplate<T> {
    job_template: Option<T>,
}

type Workload = Spec<Template<Spec<PodSpec>>>;

#[derive(Deserialize)]
struct Metadata {
    metadata: Option<Meta>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(default)]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

impl Request {
    /// The containers (init, regular, ephemeral) of the object's pod spec, for
    /// Pods and the built-in workload kinds (see [`crate::k8s::pod_spec_pointer`]);
    /// empty for other kinds, on delete, or when the object is not JSON.
    pub fn containers(&self) -> Vec<ContainerImage> {
        let Some(pointer) = crate::k8s::pod_spec_pointer(&self.kind) else {
            return Vec::new();
        };
        let text = self.object.as_str();
        let spec = match self.kind.as_str() {
            "Pod" => serde_json::from_str::<Spec<PodSpec>>(text)
                .ok()
                .and_then(|o| o.spec),
            "PodTemplate" => serde_json::from_str::<Template<Spec<PodSpec>>>(text)
                .ok()
                .and_then(|o| o.template?.spec),
            "CronJob" => serde_json::from_str::<Spec<JobTemplate<Workload>>>(text)
                .ok()
                .and_then(|o| o.spec?.job_template?.spec?.template?.spec),
            _ => serde_json::from_str::<Workload>(text)
                .ok()
                .and_then(|o| o.spec?.template?.spec),
        };
        let Some(spec) = spec else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (list, items) in [
            ("initContainers", spec.init_containers),
            ("containers", spec.containers),
            ("ephemeralContainers", spec.ephemeral_containers),
        ] {
            for (i, c) in items.into_iter().enumerate() {
                out.push(ContainerImage {
                    pointer: format!("{pointer}/{list}/{i}"),
                    list,
                    name: c.name,
                    image: c.image,
                });
            }
        }
        out
    }

    /// The object's labels (`metadata.labels`), read without parsing the rest.
    pub fn labels(&self) -> std::collections::BTreeMap<String, String> {
        self.meta().labels
    }

    /// The object's annotations (`metadata.annotations`), read without parsing
    /// the rest.
    pub fn annotations(&self) -> std::collections::BTreeMap<String, String> {
        self.meta().annotations
    }

    fn meta(&self) -> Meta {
        serde_json::from_str::<Metadata>(&self.object)
            .ok()
            .and_then(|m| m.metadata)
            .unwrap_or_default()
    }
}
