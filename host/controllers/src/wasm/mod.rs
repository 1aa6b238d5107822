//! Wasm controllers: WasmPlugin objects (`wasmplugins.keelson.dev/v1alpha1`) of
//! `spec.type: controller`, each run by [`runner`] as the ServiceAccount its
//! `spec.controller.serviceAccountName` names, watching the kinds `spec.controller.watches`
//! declares (see [`spec`]). A new generation is compiled off the async workers and replaces
//! the running one; one that does not load leaves the previous version running, with the
//! error in status. A deleted object, or one whose type changed, stops its controller.
//!
//! Status (through the status subresource, as the `wasmplugin-controller` ServiceAccount):
//! `loaded`, `error` (the load error, else the last reconcile failure until a success),
//! `digest`, `observedGeneration`, and the plugin host's `calls`, `errors` (traps, deadlines,
//! memory cap, bad output) and `timeouts`, plus `reconcileErrors` (every failed reconcile,
//! refused actions included), written when they change (at most every 2 s).

mod cache;
mod queue;
mod runner;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use keelson_plugin_host::{ControllerPlugin, PluginHost};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::{json, Value};

use crate::Credentials;
use runner::Counters;
use spec::ControllerSpec;

/// The ServiceAccount (in `kube-system`) the runner reads WasmPlugins and writes their status as.
pub const CONTROLLER_NAME: &str = "wasmplugin-controller";

/// How often status counters are compared with what status last showed.
const STATUS_SYNC: Duration = Duration::from_secs(2);

/// One running plugin.
struct Running {
    generation: i64,
    plugin: Arc<ControllerPlugin>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
    /// What status last showed.
    reported: Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the Wasm controllers until the process ends (or the task is dropped, which stops
/// them all).
pub async fn run(creds: Credentials, host: PluginHost) {
    let client = creds.client(CONTROLLER_NAME);
    let objects: Api<DynamicObject> =
        Api::all_with(client, &keelson_client::resources::wasm_plugins());
    let mut events = watcher(objects.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut listed: HashSet<String> = HashSet::new();
    let mut tick = tokio::time::interval(STATUS_SYNC);
    loop {
        tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Ok(watcher::Event::Init)) => listed.clear(),
                Some(Ok(watcher::Event::InitApply(o))) => {
                    listed.insert(o.metadata.name.clone().unwrap_or_default());
                    apply(&creds, &host, &objects, &mut running, o).await;
                }
                Some(Ok(watcher::Event::Apply(o))) => apply(&creds, &host, &objects, &mut running, o).await,
                Some(Ok(watcher::Event::InitDone)) => {
                    running.retain(|name, _| listed.contains(name));
                }
                Some(Ok(watcher::Event::Delete(o))) => {
                    if running.remove(&o.metadata.name.unwrap_or_default()).is_some() {
                        tracing::info!("wasm controller stopped: its WasmPlugin was deleted");
                    }
                }
                Some(Err(e)) => tracing::debug!(error = %e, "WasmPlugin watch failed; retrying"),
            },
            _ = tick.tick() => report(&objects, &mut running).await,
        }
    }
}

/// Starts, replaces or stops the controller of one WasmPlugin.
async fn apply(
    creds: &Credentials,
    host: &PluginHost,
    objects: &Api<DynamicObject>,
    running: &mut HashMap<String, Running>,
    obj: DynamicObject,
) {
    let name = obj.metadata.name.clone().unwrap_or_default();
    let generation = obj.metadata.generation.unwrap_or(0);
    let spec = obj.data.get("spec").cloned().unwrap_or(Value::Null);
    if spec.get("type").and_then(Value::as_str) != Some("controller") {
        if running.remove(&name).is_some() {
            tracing::info!(plugin.name = %name, "no longer a controller plugin; stopped");
        }
        return;
    }
    if running
        .get(&name)
        .is_some_and(|r| r.generation == generation)
    {
        return;
    }
    match load(host, &name, &spec).await {
        Ok((plugin, controller)) => {
            let counters = Arc::new(Counters::default());
            let client = creds.service_account(
                &controller.service_account_namespace,
                &controller.service_account_name,
            );
            let config = spec.get("config").map(Value::to_string).unwrap_or_default();
            tracing::info!(plugin.name = %name, generation, service_account = %controller.service_account_name, watches = controller.watches.len(), "wasm controller running");
            let task = tokio::spawn(runner::run(
                plugin.clone(),
                controller,
                config,
                client,
                counters.clone(),
            ));
            let status = json!({"loaded": true, "error": "", "digest": plugin.digest(), "observedGeneration": generation});
            set_status(objects, &name, &status).await;
            running.insert(
                name,
                Running {
                    generation,
                    plugin,
                    counters,
                    task,
                    reported: Value::Null,
                },
            );
        }
        Err(e) => {
            tracing::warn!(plugin.name = %name, error = %e, "wasm controller not loaded; the previous version keeps running");
            let loaded = running.contains_key(&name);
            let status = json!({"loaded": loaded, "error": e, "observedGeneration": generation});
            set_status(objects, &name, &status).await;
        }
    }
}

/// Compiles the component and reads `spec.controller`.
async fn load(
    host: &PluginHost,
    name: &str,
    spec: &Value,
) -> Result<(Arc<ControllerPlugin>, ControllerSpec), String> {
    let controller = ControllerSpec::parse(spec)?;
    let wasm = keelson_plugin_host::spec::component_bytes(spec).await?;
    let limits = keelson_plugin_host::spec::limits(spec);
    let (host, owned) = (host.clone(), name.to_string());
    let plugin = tokio::task::spawn_blocking(move || host.load_controller(&owned, &wasm, limits))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((plugin, controller))
}

/// Writes the counters and last error of each running plugin when they changed.
async fn report(objects: &Api<DynamicObject>, running: &mut HashMap<String, Running>) {
    for (name, r) in running.iter_mut() {
        let m = r.plugin.metrics();
        let status = json!({
            "calls": m.calls,
            "errors": m.errors,
            "timeouts": m.timeouts,
            "reconcileErrors": r.counters.failures.load(Ordering::Relaxed),
            "error": r.counters.last_error(),
        });
        if status != r.reported && set_status(objects, name, &status).await {
            r.reported = status;
        }
    }
}

/// Merge-patches `status`; true when written.
async fn set_status(objects: &Api<DynamicObject>, name: &str, status: &Value) -> bool {
    let patch = Patch::Merge(json!({ "status": status }));
    match objects
        .patch_status(name, &PatchParams::default(), &patch)
        .await
    {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!(plugin.name = %name, error = %e, "WasmPlugin status update failed");
            false
        }
    }
}
