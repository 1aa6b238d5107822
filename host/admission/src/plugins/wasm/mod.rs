//! Wasm admission plugins: the running versions of `WasmPlugin` objects of type
//! `admission-validate` / `admission-mutate`, each a link of the chain ([`adapter`]). Loading a
//! new generation compiles it off the async workers (through the shared [`PluginHost`]) and,
//! if it loads, swaps it into the chain without a restart: in-flight calls finish on the
//! version they hold, the next call uses the new one. A version that fails to load leaves the
//! old one running. Who feeds this (the API server's WasmPlugin reconciler) lives elsewhere.

mod adapter;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use keelson_plugin_host::{MetricsSnapshot, PluginHost};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::{Chain, Plugin, Stage};
use adapter::{Role, WasmAdmission};

/// Concurrent plugin calls across all plugins (the host's instance pool is larger).
const MAX_CONCURRENT_CALLS: usize = 32;

/// Why a WasmPlugin version could not be loaded (its `status.error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// `spec.type` names a world this registry does not run.
    #[error("plugin type {0:?} is not an admission type")]
    NotAdmission(Option<String>),
    /// `spec.component` is missing or unreadable.
    #[error("{0}")]
    Component(String),
    /// The component did not compile or does not implement the world.
    #[error("{0}")]
    Host(String),
}

/// One running plugin as status reports it.
#[derive(Debug, Clone)]
pub struct RunningPlugin {
    /// `metadata.name` of the WasmPlugin.
    pub name: String,
    /// The generation running.
    pub generation: i64,
    /// sha256 of the component.
    pub digest: String,
    /// Calls, errors, timeouts, latency.
    pub metrics: MetricsSnapshot,
}

/// The running Wasm admission plugins, wired into one chain.
pub struct WasmPlugins {
    host: PluginHost,
    chain: Arc<Chain>,
    running: Mutex<BTreeMap<String, (i64, Arc<WasmAdmission>)>>,
    permits: Arc<Semaphore>,
}

impl WasmPlugins {
    /// A registry that loads through `host` and swaps plugins into `chain`.
    pub fn new(host: PluginHost, chain: Arc<Chain>) -> Self {
        Self {
            host,
            chain,
            running: Mutex::new(BTreeMap::new()),
            permits: Arc::new(Semaphore::new(MAX_CONCURRENT_CALLS)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, (i64, Arc<WasmAdmission>)>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `spec.type` is one this registry runs.
    pub fn handles(plugin_type: Option<&str>) -> bool {
        role(plugin_type).is_some()
    }

    /// The generation of `name` that is running, if any.
    pub fn generation(&self, name: &str) -> Option<i64> {
        self.lock().get(name).map(|(g, _)| *g)
    }

    /// Every running plugin with its counters.
    pub fn running(&self) -> Vec<RunningPlugin> {
        self.lock()
            .iter()
            .map(|(name, (generation, p))| RunningPlugin {
                name: name.clone(),
                generation: *generation,
                digest: p.plugin.digest().to_string(),
                metrics: p.plugin.metrics(),
            })
            .collect()
    }

    /// Loads generation `generation` of `name` from its `spec` and swaps it in; returns the
    /// component's digest. On error the previous version (if any) keeps running.
    pub async fn load(
        &self,
        name: &str,
        generation: i64,
        spec: &Value,
    ) -> Result<String, LoadError> {
        let plugin_type = spec.get("type").and_then(Value::as_str);
        let role = role(plugin_type)
            .ok_or_else(|| LoadError::NotAdmission(plugin_type.map(String::from)))?;
        let bytes = keelson_plugin_host::spec::component_bytes(spec)
            .await
            .map_err(LoadError::Component)?;
        let limits = keelson_plugin_host::spec::limits(spec);
        let (host, owned) = (self.host.clone(), name.to_string());
        let plugin = tokio::task::spawn_blocking(move || host.load(&owned, &bytes, limits))
            .await
            .map_err(|e| LoadError::Host(e.to_string()))?
            .map_err(|e| LoadError::Host(e.to_string()))?;
        let digest = plugin.digest().to_string();
        let adapter =
            WasmAdmission::new(name.to_string(), role, plugin, spec, self.permits.clone());
        self.lock()
            .insert(name.to_string(), (generation, Arc::new(adapter)));
        self.rebuild_chain();
        Ok(digest)
    }

    /// Stops running `name`; true when it was running.
    pub fn unload(&self, name: &str) -> bool {
        let removed = self.lock().remove(name).is_some();
        if removed {
            self.rebuild_chain();
        }
        removed
    }

    /// Puts the running plugins into the chain, ordered by `spec.order`, then name.
    fn rebuild_chain(&self) {
        let mut all: Vec<Arc<WasmAdmission>> =
            self.lock().values().map(|(_, p)| p.clone()).collect();
        all.sort_by_key(|p| (p.order, p.name.clone()));
        let pick = |role: Role| {
            all.iter()
                .filter(|p| p.role == role)
                .map(|p| p.clone() as Arc<dyn Plugin>)
                .collect()
        };
        self.chain.set_dynamic(Stage::Mutating, pick(Role::Mutate));
        self.chain
            .set_dynamic(Stage::Validating, pick(Role::Validate));
    }
}

fn role(plugin_type: Option<&str>) -> Option<Role> {
    match plugin_type {
        Some("admission-validate") => Some(Role::Validate),
        Some("admission-mutate") => Some(Role::Mutate),
        _ => None,
    }
}
