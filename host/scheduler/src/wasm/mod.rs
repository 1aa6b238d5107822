//! Wasm scheduler plugins (WIT world `keelson:plugin/scheduler`) as a framework stage after the
//! built-in plugins: the feasible nodes of a cycle are filtered by each Wasm plugin in one
//! batched call, the survivors scored in one batched call per plugin, and the weighted scores
//! added to the built-ins' totals before the host is picked.
//!
//! The calls are async and run without the cache lock, under each plugin's deadline and memory
//! cap (the plugin host's limits). A plugin that traps, loops, exhausts its memory or answers
//! garbage fails the call: with `failurePolicy: Fail` (the default) the pod is not scheduled in
//! this cycle (its `FailedScheduling` event names the plugin and the error) and goes to
//! back-off; with `Ignore` the plugin is skipped for this pod. Either way the error is counted
//! ([`WasmScheduler::errors`], and the plugin's own metrics) and the scheduler goes on.

mod loader;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::core::v1::Taint;
use keelson_plugin_host::scheduler::{
    self as wit, FilterCode, NodeInput, PodInput, TaintEffect, Toleration,
};
use keelson_plugin_host::SchedulerPlugin;
use rand::Rng;

use crate::framework::{
    select_host, Candidates, Code, FitError, ScheduleError, ScheduleResult, Status,
};
use crate::node_info::{NodeInfo, PodInfo};
use crate::resources::Resources;

pub(crate) use loader::watch;

/// What a failed filter names as its plugin in the scheduler's diagnosis.
pub const PLUGIN_LABEL: &str = "WasmPlugin";

/// One Wasm scheduler plugin as configured by its WasmPlugin object.
#[derive(Debug)]
pub struct WasmScheduler {
    /// The loaded component.
    pub plugin: Arc<SchedulerPlugin>,
    /// Score weight (`spec.scheduler.weight`, default 1); 0 disables scoring.
    pub weight: i64,
    /// Profiles (`schedulerName`s) the plugin joins; empty means all.
    pub profiles: Vec<String>,
    /// `spec.config` as JSON, handed to every call.
    pub config: String,
    /// `failurePolicy: Ignore`: a failed call skips the plugin instead of failing the pod.
    pub ignore_failures: bool,
    /// The WasmPlugin object's generation this was loaded from.
    pub generation: i64,
    errors: AtomicU64,
}

impl WasmScheduler {
    /// A plugin with no errors counted yet.
    pub fn new(
        plugin: Arc<SchedulerPlugin>,
        weight: i64,
        profiles: Vec<String>,
        config: String,
        ignore_failures: bool,
    ) -> Self {
        WasmScheduler {
            plugin,
            weight,
            profiles,
            config,
            ignore_failures,
            generation: 0,
            errors: AtomicU64::new(0),
        }
    }

    /// Failed calls (trap, deadline, memory cap, bad output) so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn joins(&self, profile: &str) -> bool {
        self.profiles.is_empty() || self.profiles.iter().any(|p| p == profile)
    }

    /// Counts and classifies a failed call: `Ok(())` to skip the plugin, or the pod's error.
    fn failed(
        &self,
        stage: &'static str,
        err: keelson_plugin_host::Error,
    ) -> Result<(), ScheduleError> {
        self.errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(plugin.name = %self.plugin.name(), stage, error = %err, ignored = self.ignore_failures, "wasm scheduler plugin failed");
        if self.ignore_failures {
            return Ok(());
        }
        Err(ScheduleError::Plugin {
            stage,
            plugin: self.plugin.name().to_string(),
            message: err.to_string(),
        })
    }
}

/// The running Wasm plugins by name, shared by the loader and the scheduling loop.
#[derive(Clone, Default)]
pub struct WasmPlugins {
    inner: Arc<RwLock<BTreeMap<String, Arc<WasmScheduler>>>>,
}

impl WasmPlugins {
    /// Adds or replaces a plugin.
    pub fn insert(&self, name: &str, plugin: Arc<WasmScheduler>) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), plugin);
    }

    /// Removes a plugin; true if it was running.
    pub fn remove(&self, name: &str) -> bool {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .is_some()
    }

    /// The running plugin of that name.
    pub fn get(&self, name: &str) -> Option<Arc<WasmScheduler>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    /// Names of the running plugins.
    pub fn names(&self) -> Vec<String> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.keys().cloned().collect()
    }

    /// The plugins that join `profile`, by name.
    pub fn for_profile(&self, profile: &str) -> Vec<Arc<WasmScheduler>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|p| p.joins(profile)).cloned().collect()
    }
}

/// Runs the Wasm plugins over the built-ins' candidates and picks the host. `inputs[i]`
/// describes `candidates.nodes[i]`.
pub async fn decide(
    plugins: &[Arc<WasmScheduler>],
    pod: &PodInfo,
    mut candidates: Candidates,
    mut inputs: Vec<NodeInput>,
    rng: &mut impl Rng,
) -> Result<ScheduleResult, ScheduleError> {
    let object = serde_json::to_string(&*pod.pod).unwrap_or_default();
    let base = pod_input(pod, object);
    for p in plugins {
        if candidates.nodes.is_empty() {
            break;
        }
        let pod = PodInput {
            config: p.config.clone(),
            ..base.clone()
        };
        let results = match p.plugin.filter_async(pod, inputs.clone()).await {
            Ok(results) => results,
            Err(e) => {
                p.failed("Filter", e)?;
                continue;
            }
        };
        let mut kept = Candidates {
            nodes: Vec::new(),
            totals: Vec::new(),
            failed: std::mem::take(&mut candidates.failed),
            ..candidates
        };
        let mut kept_inputs = Vec::new();
        for (((node, total), input), result) in candidates
            .nodes
            .drain(..)
            .zip(candidates.totals.drain(..))
            .zip(inputs.drain(..))
            .zip(results.iter())
        {
            if result.code == FilterCode::Success {
                kept.nodes.push(node);
                kept.totals.push(total);
                kept_inputs.push(input);
            } else {
                kept.failed.push((node, filter_status(p, result)));
            }
        }
        candidates = kept;
        inputs = kept_inputs;
    }
    if candidates.nodes.is_empty() {
        return Err(ScheduleError::Fit(FitError {
            num_all_nodes: candidates.num_all_nodes,
            statuses: candidates.failed,
            post_filter: None,
            nomination: None,
        }));
    }
    if candidates.nodes.len() > 1 {
        for p in plugins.iter().filter(|p| p.weight > 0) {
            let pod = PodInput {
                config: p.config.clone(),
                ..base.clone()
            };
            match p.plugin.score_async(pod, inputs.clone()).await {
                Ok(scores) => {
                    for (t, s) in candidates.totals.iter_mut().zip(scores) {
                        *t += i64::from(s) * p.weight;
                    }
                }
                Err(e) => p.failed("Score", e)?,
            }
        }
    }
    let best = select_host(&candidates.totals, rng);
    Ok(ScheduleResult {
        feasible: candidates.nodes.len(),
        node: candidates.nodes.swap_remove(best),
        evaluated: candidates.evaluated,
    })
}

fn filter_status(p: &WasmScheduler, r: &wit::FilterResult) -> Status {
    let reason = if r.reason.is_empty() {
        format!("node(s) were refused by Wasm plugin {}", p.plugin.name())
    } else {
        r.reason.clone()
    };
    let code = match r.code {
        FilterCode::UnschedulableAndUnresolvable => Code::UnschedulableAndUnresolvable,
        _ => Code::Unschedulable,
    };
    Status {
        code,
        reasons: vec![reason],
        plugin: PLUGIN_LABEL,
    }
}

fn resources(r: &Resources, pods: u32) -> wit::Resources {
    let u = |v: i64| v.max(0) as u64;
    wit::Resources {
        cpu_millis: u(r.milli_cpu),
        memory_bytes: u(r.memory),
        ephemeral_storage_bytes: u(r.ephemeral_storage),
        pods,
    }
}

fn effect(e: &str) -> TaintEffect {
    match e {
        "NoExecute" => TaintEffect::NoExecute,
        "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
        _ => TaintEffect::NoSchedule,
    }
}

fn pairs<'a>(m: impl IntoIterator<Item = (&'a String, &'a String)>) -> Vec<(String, String)> {
    m.into_iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The WIT record of a node, from the scheduler's cache.
pub fn node_input(n: &NodeInfo) -> NodeInput {
    let spec = n.node.as_ref().and_then(|node| node.spec.as_ref());
    let taints: &[Taint] = spec.and_then(|s| s.taints.as_deref()).unwrap_or_default();
    NodeInput {
        name: n.name.clone(),
        labels: pairs(n.labels()),
        taints: taints
            .iter()
            .map(|t| wit::Taint {
                key: t.key.clone(),
                value: t.value.clone().unwrap_or_default(),
                effect: effect(&t.effect),
            })
            .collect(),
        allocatable: resources(&n.allocatable, n.allocatable.allowed_pods.max(0) as u32),
        requested: resources(&n.requested, n.pods.len() as u32),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
    }
}

/// The WIT record of a pod (without the plugin's config).
pub fn pod_input(p: &PodInfo, object: String) -> PodInput {
    let spec = p.pod.spec.as_ref();
    PodInput {
        namespace: p.namespace().to_string(),
        name: p.pod.metadata.name.clone().unwrap_or_default(),
        labels: pairs(p.labels()),
        node_selector: spec
            .and_then(|s| s.node_selector.as_ref())
            .map(pairs)
            .unwrap_or_default(),
        tolerations: spec
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|t| Toleration {
                key: t.key.clone().unwrap_or_default(),
                exists: t.operator.as_deref() == Some("Exists"),
                value: t.value.clone().unwrap_or_default(),
                effect: t.effect.as_deref().map(effect),
                toleration_seconds: t.toleration_seconds,
            })
            .collect(),
        requests: resources(&p.requests, 1),
        priority: p.priority,
        object,
        config: String::new(),
    }
}

#[cfg(test)]
mod tests;
