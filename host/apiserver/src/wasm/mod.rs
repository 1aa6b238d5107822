//! WasmPlugin objects (`wasmplugins.keelson.dev/v1alpha1`) → running plugins. A reconciler
//! watches the objects; a new generation is compiled (off the async workers) and, if it loads,
//! swapped into the admission chain without a restart: in-flight calls finish on the version
//! they hold, the next call uses the new one. A version that fails to compile leaves the old
//! one running and sets `status.error`. Per-plugin metrics are served on `/metrics`.

mod adapter;
mod metrics;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use keelson_admission::{Plugin, Stage};
use keelson_plugin_host::{Limits, PluginHost};
use keelson_store::EventKind;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::objects;
use crate::ApiServer;
use adapter::{Role, WasmAdmission};

/// Where WasmPlugin objects live in the store.
const PREFIX: &str = "/registry/keelson.dev/wasmplugins/";
/// Concurrent plugin calls across all plugins (the host's instance pool is larger).
const MAX_CONCURRENT_CALLS: usize = 32;

/// The running plugins.
#[derive(Default)]
pub(crate) struct Running {
    plugins: Mutex<BTreeMap<String, (i64, Arc<WasmAdmission>)>>,
}

impl Running {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, (i64, Arc<WasmAdmission>)>> {
        self.plugins.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every running plugin, for metrics.
    pub(crate) fn all(&self) -> Vec<Arc<WasmAdmission>> {
        self.lock().values().map(|(_, p)| p.clone()).collect()
    }
}

/// Starts the reconciler; plugin metrics are registered on the server's `/metrics`.
pub(crate) fn start(api: Arc<ApiServer>, cache_dir: PathBuf) -> anyhow::Result<()> {
    let host = PluginHost::new(&cache_dir)?;
    let running = Arc::new(Running::default());
    api.metrics
        .with_registry(|r| r.register_collector(Box::new(metrics::PluginMetrics(running.clone()))));
    let reconciler = Reconciler {
        api,
        host: Arc::new(host),
        running,
        permits: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS)),
    };
    tokio::spawn(reconciler.run());
    Ok(())
}

struct Reconciler {
    api: Arc<ApiServer>,
    host: Arc<PluginHost>,
    running: Arc<Running>,
    permits: Arc<Semaphore>,
}

impl Reconciler {
    async fn run(self) {
        let mut status_tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            let Ok((items, rev)) = self.api.store.list(PREFIX).await else {
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            };
            let live: Vec<String> = items
                .iter()
                .map(|kv| kv.key.trim_start_matches(PREFIX).to_string())
                .collect();
            let gone: Vec<String> = self
                .running
                .lock()
                .keys()
                .filter(|k| !live.contains(k))
                .cloned()
                .collect();
            for name in gone {
                self.remove(&name);
            }
            for kv in &items {
                if let Ok(obj) = serde_json::from_slice::<Value>(&kv.value) {
                    self.reconcile(obj).await;
                }
            }
            let Ok(mut watch) = self.api.store.watch(PREFIX, rev).await else {
                continue;
            };
            loop {
                tokio::select! {
                    ev = watch.next() => match ev {
                        Some(Ok(ev)) => {
                            let Ok(obj) = serde_json::from_slice::<Value>(&ev.kv.value) else { continue };
                            if ev.kind == EventKind::Deleted {
                                self.remove(objects::name(&obj));
                            } else {
                                self.reconcile(obj).await;
                            }
                        }
                        _ => break,
                    },
                    _ = status_tick.tick() => self.report_metrics().await,
                }
            }
        }
    }

    fn remove(&self, name: &str) {
        if self.running.lock().remove(name).is_some() {
            tracing::info!(plugin.name = %name, "plugin unloaded");
            self.rebuild_chain();
        }
    }

    /// Puts the running plugins into the chain, ordered by `spec.order`, then name.
    fn rebuild_chain(&self) {
        let mut all = self.running.all();
        all.sort_by_key(|p| (p.order, p.name.clone()));
        let pick = |role: Role| {
            all.iter()
                .filter(|p| p.role == role)
                .map(|p| p.clone() as Arc<dyn Plugin>)
                .collect()
        };
        self.api
            .admission
            .set_dynamic(Stage::Mutating, pick(Role::Mutate));
        self.api
            .admission
            .set_dynamic(Stage::Validating, pick(Role::Validate));
    }

    async fn reconcile(&self, obj: Value) {
        let name = objects::name(&obj).to_string();
        let generation = obj
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if self
            .running
            .lock()
            .get(&name)
            .is_some_and(|(g, _)| *g == generation)
        {
            return;
        }
        let spec = obj.get("spec").cloned().unwrap_or(json!({}));
        let role = match spec.get("type").and_then(Value::as_str) {
            Some("admission-validate") => Role::Validate,
            Some("admission-mutate") => Role::Mutate,
            other => {
                let msg = format!("plugin type {other:?} is not served yet: scheduler and controller plugins come with the scheduler and controller work");
                self.set_status(&name, generation, Err(msg)).await;
                return;
            }
        };
        match self.load(&name, &spec).await {
            Ok(plugin) => {
                let digest = plugin.digest().to_string();
                let adapter = Arc::new(WasmAdmission::new(
                    name.clone(),
                    role,
                    plugin,
                    &spec,
                    self.permits.clone(),
                ));
                self.running
                    .lock()
                    .insert(name.clone(), (generation, adapter));
                self.rebuild_chain();
                tracing::info!(plugin.name = %name, generation, digest = %digest, "plugin running");
                self.set_status(&name, generation, Ok(digest)).await;
            }
            Err(e) => {
                tracing::warn!(plugin.name = %name, error = %e, "plugin not loaded; the previous version keeps running");
                self.set_status(&name, generation, Err(e)).await;
            }
        }
    }

    async fn load(
        &self,
        name: &str,
        spec: &Value,
    ) -> Result<Arc<keelson_plugin_host::AdmissionPlugin>, String> {
        let bytes = match (
            spec.pointer("/component/base64").and_then(Value::as_str),
            spec.pointer("/component/path").and_then(Value::as_str),
        ) {
            (Some(b64), _) => base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map_err(|e| format!("spec.component.base64 is not base64: {e}"))?,
            (None, Some(path)) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("reading {path}: {e}"))?,
            (None, None) => return Err("spec.component needs base64 or path".into()),
        };
        let defaults = Limits::default();
        let limits = Limits {
            memory_bytes: spec
                .get("memoryLimitBytes")
                .and_then(Value::as_u64)
                .map(|m| m as usize)
                .unwrap_or(defaults.memory_bytes),
            timeout: spec
                .get("timeoutMillis")
                .and_then(Value::as_u64)
                .map(Duration::from_millis)
                .unwrap_or(defaults.timeout),
            fuel: None,
        };
        let (host, name) = (self.host.clone(), name.to_string());
        tokio::task::spawn_blocking(move || host.load(&name, &bytes, limits))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())
    }

    /// Writes `status` (loaded/error/digest/observedGeneration) if it changed.
    async fn set_status(&self, name: &str, generation: i64, outcome: Result<String, String>) {
        let running_digest = self
            .running
            .lock()
            .get(name)
            .map(|(_, p)| p.plugin.digest().to_string());
        let status = match outcome {
            Ok(digest) => {
                json!({"loaded": true, "error": "", "digest": digest, "observedGeneration": generation})
            }
            Err(e) => {
                json!({"loaded": running_digest.is_some(), "error": e, "digest": running_digest.unwrap_or_default(), "observedGeneration": generation})
            }
        };
        self.patch_status(name, |s| {
            for (k, v) in status.as_object().into_iter().flatten() {
                s[k] = v.clone();
            }
        })
        .await;
    }

    /// Copies call counters into each running plugin's status.
    async fn report_metrics(&self) {
        for p in self.running.all() {
            let m = p.plugin.metrics();
            self.patch_status(&p.name, |s| {
                s["calls"] = json!(m.calls);
                s["errors"] = json!(m.errors);
                s["timeouts"] = json!(m.timeouts);
            })
            .await;
        }
    }

    async fn patch_status(&self, name: &str, change: impl Fn(&mut Value)) {
        let key = format!("{PREFIX}{name}");
        for _ in 0..3 {
            let Ok(Some(kv)) = self.api.store.get(&key).await else {
                return;
            };
            let Ok(mut obj) = serde_json::from_slice::<Value>(&kv.value) else {
                return;
            };
            if !obj.get("status").is_some_and(Value::is_object) {
                obj["status"] = json!({});
            }
            let before = obj["status"].clone();
            change(&mut obj["status"]);
            if obj["status"] == before {
                return;
            }
            match self
                .api
                .store
                .update(&key, objects::to_store(&obj), kv.mod_revision)
                .await
            {
                Err(keelson_store::Error::Conflict(_)) => continue,
                _ => return,
            }
        }
    }
}
