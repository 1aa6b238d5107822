//! Mutating admission plugin: gives every container of a Pod or workload
//! template default resource requests and limits from its config, e.g.
//! `{"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}`.
//!
//! A resource the container already names (as a request or a limit) is left
//! alone, so a default never conflicts with what the author wrote.

use std::collections::BTreeMap;

use keelson_plugin_sdk::serde_json::{json, Map, Value};
use keelson_plugin_sdk::{
    escape_pointer_token, export_admission, k8s, Admission, MutateVerdict, Operation, Patch,
    Request,
};
use serde::Deserialize;

/// The plugin's `spec.config`: quantities as Kubernetes writes them.
#[derive(Deserialize, Default)]
struct Config {
    /// Default requests by resource name, e.g. `{"cpu": "100m"}`.
    #[serde(default)]
    requests: BTreeMap<String, String>,
    /// Default limits by resource name, e.g. `{"memory": "256Mi"}`.
    #[serde(default)]
    limits: BTreeMap<String, String>,
}

struct DefaultResources;

impl Admission for DefaultResources {
    fn mutate(req: Request) -> MutateVerdict {
        // A pod's resources are immutable after creation; templates may change.
        let applies = match req.operation {
            Operation::Create => true,
            Operation::Update => req.kind != "Pod",
            _ => false,
        };
        if !applies || !req.subresource.is_empty() {
            return MutateVerdict::unchanged();
        }
        let config: Config = match req.config() {
            Ok(config) => config,
            Err(err) => return MutateVerdict::deny(err),
        };
        let Some(object) = req.object() else {
            return MutateVerdict::unchanged();
        };
        let mut patch = Patch::new();
        for c in k8s::containers(&req.kind, &object) {
            if c.list == "ephemeralContainers" {
                continue; // ephemeral containers may not set resources
            }
            default_container(&mut patch, &c.pointer, c.value, &config);
        }
        MutateVerdict::patched(patch)
    }
}

/// Adds the missing requests and limits of one container to `patch`.
fn default_container(patch: &mut Patch, pointer: &str, container: &Value, config: &Config) {
    let resources = container.get("resources").and_then(Value::as_object);
    let named = |kind: &str, name: &str| {
        resources
            .and_then(|r| r.get(kind))
            .and_then(Value::as_object)
            .is_some_and(|m| m.contains_key(name))
    };
    let mut wanted: BTreeMap<&str, Map<String, Value>> = BTreeMap::new();
    for (kind, defaults) in [("requests", &config.requests), ("limits", &config.limits)] {
        for (name, quantity) in defaults {
            if !named("requests", name) && !named("limits", name) {
                wanted
                    .entry(kind)
                    .or_default()
                    .insert(name.clone(), json!(quantity));
            }
        }
    }
    if wanted.is_empty() {
        return;
    }
    let Some(resources) = resources else {
        patch.add(format!("{pointer}/resources"), json!(wanted));
        return;
    };
    for (kind, values) in wanted {
        if resources.get(kind).is_some_and(Value::is_object) {
            for (name, quantity) in values {
                let path = format!("{pointer}/resources/{kind}/{}", escape_pointer_token(&name));
                patch.add(path, quantity);
            }
        } else {
            patch.add(format!("{pointer}/resources/{kind}"), Value::Object(values));
        }
    }
}

export_admission!(DefaultResources);
