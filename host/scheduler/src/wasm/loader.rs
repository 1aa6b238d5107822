//! Loads WasmPlugin objects (`wasmplugins.keelson.dev/v1alpha1`) of `spec.type: scheduler`
//! through the scheduler's `kube::Client` (`system:kube-scheduler` may get, list and watch them)
//! and keeps [`WasmPlugins`] in step: a new generation is compiled off the async workers and
//! swapped in; a deleted object, or one whose type changed, is dropped. A component that does
//! not load leaves the previous version running. Status is the API server's to write.
//!
//! The scheduler part of the spec: `spec.scheduler.weight` (score weight, default 1) and
//! `spec.scheduler.profiles` (schedulerNames it joins; absent or empty: every profile), with the
//! fields every WasmPlugin has (`component`, `config`, `failurePolicy`, `timeoutMillis`,
//! `memoryLimitBytes`).

use std::collections::HashSet;
use std::sync::Arc;

use futures::StreamExt;
use keelson_plugin_host::PluginHost;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;

use super::{WasmPlugins, WasmScheduler};
use crate::error::Error;

/// `wasmplugins.keelson.dev/v1alpha1`.
fn resource() -> ApiResource {
    ApiResource {
        group: "keelson.dev".into(),
        version: "v1alpha1".into(),
        api_version: "keelson.dev/v1alpha1".into(),
        kind: "WasmPlugin".into(),
        plural: "wasmplugins".into(),
    }
}

/// Watches WasmPlugins until the watch ends for good.
pub(crate) async fn watch(client: kube::Client, host: PluginHost, plugins: WasmPlugins) {
    let api: Api<DynamicObject> = Api::all_with(client, &resource());
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(o)) => {
                listed.insert(o.metadata.name.clone().unwrap_or_default());
                apply(&host, &plugins, o).await;
            }
            Ok(watcher::Event::Apply(o)) => apply(&host, &plugins, o).await,
            Ok(watcher::Event::InitDone) => {
                for name in plugins.names() {
                    if !listed.contains(&name) && plugins.remove(&name) {
                        tracing::info!(plugin.name = %name, "wasm scheduler plugin unloaded");
                    }
                }
            }
            Ok(watcher::Event::Delete(o)) => {
                let name = o.metadata.name.unwrap_or_default();
                if plugins.remove(&name) {
                    tracing::info!(plugin.name = %name, "wasm scheduler plugin unloaded");
                }
            }
            Err(e) => tracing::debug!(error = %e, "WasmPlugin watch failed; retrying"),
        }
    }
}

async fn apply(host: &PluginHost, plugins: &WasmPlugins, obj: DynamicObject) {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let generation = obj.metadata.generation.unwrap_or(0);
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    if spec.get("type").and_then(Value::as_str) != Some("scheduler") {
        if plugins.remove(&name) {
            tracing::info!(plugin.name = %name, "no longer a scheduler plugin; unloaded");
        }
        return;
    }
    if plugins
        .get(&name)
        .is_some_and(|p| p.generation == generation)
    {
        return;
    }
    match load(host, &name, &spec).await {
        Ok(mut p) => {
            p.generation = generation;
            tracing::info!(plugin.name = %name, generation, weight = p.weight, profiles = ?p.profiles, "wasm scheduler plugin running");
            plugins.insert(&name, Arc::new(p));
        }
        Err(e) => {
            tracing::warn!(plugin.name = %name, error = %e, "wasm scheduler plugin not loaded; the previous version keeps running")
        }
    }
}

/// Compiles the object's component and reads its scheduler settings.
pub(crate) async fn load(
    host: &PluginHost,
    name: &str,
    spec: &Value,
) -> Result<WasmScheduler, Error> {
    let wasm = keelson_plugin_host::spec::component_bytes(spec)
        .await
        .map_err(Error::Plugin)?;
    let limits = keelson_plugin_host::spec::limits(spec);
    let (host, owned) = (host.clone(), name.to_string());
    let plugin = tokio::task::spawn_blocking(move || host.load_scheduler(&owned, &wasm, limits))
        .await
        .map_err(|e| Error::Plugin(format!("loading {name}: {e}")))?
        .map_err(|e| Error::Plugin(format!("loading {name}: {e}")))?;
    let sched = spec.get("scheduler").cloned().unwrap_or(Value::Null);
    let weight = sched.get("weight").and_then(Value::as_i64).unwrap_or(1);
    if !(0..=100).contains(&weight) {
        return Err(Error::Plugin(format!(
            "{name}: spec.scheduler.weight {weight} is not in 0..=100"
        )));
    }
    let profiles = sched
        .get("profiles")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let config = spec.get("config").map(Value::to_string).unwrap_or_default();
    let ignore = spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore");
    Ok(WasmScheduler::new(plugin, weight, profiles, config, ignore))
}
