//! The API server's WasmPlugin reconciler: watches `wasmplugins.keelson.dev/v1alpha1` objects
//! through the in-process client (as `system:apiserver`, like any controller — no store keys),
//! hands each new generation of an admission plugin to the admission crate's
//! [`WasmPlugins`] (which compiles it and swaps it into the chain), and writes `status`
//! (loaded, error, digest, observedGeneration, calls, errors, timeouts) through the status
//! subresource. Counters are copied into status within a second of changing (at most once a
//! second per plugin), so `kubectl get wasmplugins` does not lag `/metrics`. Scheduler plugins
//! are left to the scheduler, controller plugins to the controller manager.

mod metrics;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use keelson_admission::plugins::wasm::WasmPlugins;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

use crate::ApiServer;

/// How often counters are compared with what status last showed.
const COUNTER_SYNC: Duration = Duration::from_secs(1);

/// Starts the reconciler over `client`; plugin metrics are registered on `/metrics`.
pub(crate) fn start(api: &Arc<ApiServer>, client: kube::Client) {
    let plugins = api.wasm.clone();
    api.metrics
        .with_registry(|r| r.register_collector(Box::new(metrics::PluginMetrics(plugins.clone()))));
    let resource = keelson_client::resources::wasm_plugins();
    let reconciler = Reconciler {
        objects: Api::all_with(client, &resource),
        plugins,
        reported: BTreeMap::new(),
    };
    tokio::spawn(reconciler.run());
}

struct Reconciler {
    objects: Api<DynamicObject>,
    plugins: Arc<WasmPlugins>,
    /// The counters status last showed, per plugin.
    reported: BTreeMap<String, (u64, u64, u64)>,
}

impl Reconciler {
    async fn run(mut self) {
        let mut events = watcher(self.objects.clone(), watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listed: Vec<String> = Vec::new();
        let mut tick = tokio::time::interval(COUNTER_SYNC);
        loop {
            tokio::select! {
                event = events.next() => match event {
                    Some(Ok(watcher::Event::Init)) => listed.clear(),
                    Some(Ok(watcher::Event::InitApply(o))) => {
                        listed.push(o.metadata.name.clone().unwrap_or_default());
                        self.reconcile(o).await;
                    }
                    Some(Ok(watcher::Event::InitDone)) => {
                        for p in self.plugins.running() {
                            if !listed.contains(&p.name) {
                                self.remove(&p.name);
                            }
                        }
                    }
                    Some(Ok(watcher::Event::Apply(o))) => self.reconcile(o).await,
                    Some(Ok(watcher::Event::Delete(o))) => {
                        self.remove(o.metadata.name.as_deref().unwrap_or_default())
                    }
                    Some(Err(e)) => tracing::debug!(error = %e, "WasmPlugin watch failed; retrying"),
                    None => return,
                },
                _ = tick.tick() => self.report_counters().await,
            }
        }
    }

    fn remove(&mut self, name: &str) {
        if self.plugins.unload(name) {
            tracing::info!(plugin.name = %name, "plugin unloaded");
        }
        self.reported.remove(name);
    }

    #[tracing::instrument(skip_all, fields(controller = "wasmplugin", plugin.name = obj.metadata.name.as_deref().unwrap_or_default()))]
    async fn reconcile(&mut self, obj: DynamicObject) {
        let name = obj.metadata.name.clone().unwrap_or_default();
        let generation = obj.metadata.generation.unwrap_or(0);
        if self.plugins.generation(&name) == Some(generation) {
            return;
        }
        let spec = obj.data.get("spec").cloned().unwrap_or(json!({}));
        let plugin_type = spec.get("type").and_then(Value::as_str);
        if !WasmPlugins::handles(plugin_type) {
            // Another world's plugin (the scheduler and the controller manager load their
            // own); not this reconciler's.
            if !matches!(plugin_type, Some("scheduler" | "controller")) {
                let error = format!("plugin type {plugin_type:?} is not served (admission-validate, admission-mutate, scheduler and controller are)");
                self.set_status(
                    &name,
                    json!({"loaded": false, "error": error, "observedGeneration": generation}),
                )
                .await;
            }
            return;
        }
        let status = match self.plugins.load(&name, generation, &spec).await {
            Ok(digest) => {
                tracing::info!(generation, %digest, "plugin running");
                json!({"loaded": true, "error": "", "digest": digest, "observedGeneration": generation})
            }
            Err(e) => {
                tracing::warn!(error = %e, "plugin not loaded; the previous version keeps running");
                let running = self.plugins.running().into_iter().find(|p| p.name == name);
                json!({
                    "loaded": running.is_some(),
                    "error": e.to_string(),
                    "digest": running.map(|p| p.digest).unwrap_or_default(),
                    "observedGeneration": generation,
                })
            }
        };
        self.set_status(&name, status).await;
    }

    /// Copies changed call counters into each running plugin's status.
    async fn report_counters(&mut self) {
        for p in self.plugins.running() {
            let counters = (p.metrics.calls, p.metrics.errors, p.metrics.timeouts);
            if self.reported.get(&p.name) == Some(&counters) {
                continue;
            }
            let status = json!({"calls": counters.0, "errors": counters.1, "timeouts": counters.2});
            if self.set_status(&p.name, status).await {
                self.reported.insert(p.name, counters);
            }
        }
    }

    /// Merge-patches `status` through the status subresource; true when written.
    async fn set_status(&self, name: &str, status: Value) -> bool {
        let patch = Patch::Merge(json!({"status": status}));
        match self
            .objects
            .patch_status(name, &PatchParams::default(), &patch)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::debug!(plugin.name = %name, error = %e, "status update failed");
                false
            }
        }
    }
}
