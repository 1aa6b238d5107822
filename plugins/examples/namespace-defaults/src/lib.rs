//! Controller plugin: every namespace gets a ConfigMap `namespace-defaults` and a
//! ResourceQuota `default-quota`, created once (the cache is read first, so a reconcile of a
//! namespace that has both does nothing). Users may change them afterwards; a deleted one is
//! created again.
//!
//! Watches Namespaces, ConfigMaps and ResourceQuotas (a key of the latter two reconciles
//! their namespace). Config (`spec.config` of the WasmPlugin), every field optional:
//!
//! ```json
//! {"skipNamespaces": ["kube-system", "kube-public", "kube-node-lease"],
//!  "data": {"owner": "platform"},
//!  "hard": {"pods": "50", "requests.cpu": "4", "requests.memory": "8Gi"}}
//! ```

use std::collections::BTreeMap;

use keelson_plugin_sdk::controller::{
    self, export_controller, Action, Controller, Gvk, ReconcileKey,
};
use serde::Deserialize;
use serde_json::json;

/// Name of the ConfigMap made in every namespace.
const CONFIG_MAP: &str = "namespace-defaults";
/// Name of the ResourceQuota made in every namespace.
const QUOTA: &str = "default-quota";
/// Label on what this controller creates.
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct Config {
    skip_namespaces: Vec<String>,
    data: BTreeMap<String, String>,
    hard: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        let map = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        Config {
            skip_namespaces: ["kube-system", "kube-public", "kube-node-lease"]
                .map(String::from)
                .to_vec(),
            data: map(&[("managed-by", "namespace-defaults")]),
            hard: map(&[
                ("pods", "50"),
                ("requests.cpu", "4"),
                ("requests.memory", "8Gi"),
            ]),
        }
    }
}

struct NamespaceDefaults;

impl Controller for NamespaceDefaults {
    fn reconcile(key: ReconcileKey) -> Result<Vec<Action>, String> {
        let config: Config = controller::config()?;
        let namespace = match key.kind.kind.as_str() {
            "Namespace" => key.name,
            _ => key.namespace,
        };
        if namespace.is_empty() || config.skip_namespaces.contains(&namespace) {
            return Ok(vec![]);
        }
        let Some(ns) = controller::get(&Gvk::core("Namespace"), "", &namespace)? else {
            return Ok(vec![]);
        };
        let terminating = ns.pointer("/metadata/deletionTimestamp").is_some()
            || ns.pointer("/status/phase").and_then(|p| p.as_str()) == Some("Terminating");
        if terminating {
            return Ok(vec![]);
        }
        let labels = json!({ MANAGED_BY: "namespace-defaults" });
        let mut actions = Vec::new();
        if controller::get(&Gvk::core("ConfigMap"), &namespace, CONFIG_MAP)?.is_none() {
            actions.push(Action::create(&json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": CONFIG_MAP, "namespace": namespace, "labels": labels},
                "data": config.data,
            })));
        }
        if controller::get(&Gvk::core("ResourceQuota"), &namespace, QUOTA)?.is_none() {
            actions.push(Action::create(&json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {"name": QUOTA, "namespace": namespace, "labels": labels},
                "spec": {"hard": config.hard},
            })));
        }
        Ok(actions)
    }
}

export_controller!(NamespaceDefaults);
