//! The running scheduler: watches on Nodes, Pods and Namespaces feed the cache and the queue;
//! one loop pops the next pod, runs its profile against the cache, assumes the pod on the chosen
//! node and hands the binding (`pods/binding`) to a bounded set of tasks, so the next cycle
//! starts while the API call is in flight. Pods with `spec.nodeName` are never queued; pods
//! whose `schedulerName` names no profile are left to another scheduler.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Binding, Namespace, Node, ObjectReference, Pod};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::cache::{pod_key, Cache};
use crate::error::Error;
use crate::framework::{FitError, Profile, ScheduleError, ScheduleResult};
use crate::node_info::PodInfo;
use crate::plugins::{default_profile, DEFAULT_SCHEDULER_NAME};
use crate::preempt;
use crate::queue::Queue;
use crate::report::{Report, Reporter};
use crate::wasm::{self, WasmPlugins};
use keelson_plugin_host::PluginHost;

/// How the scheduler runs.
pub struct Config {
    /// Profiles by `schedulerName` (the default: Kubernetes' default profile as `default-scheduler`).
    pub profiles: Vec<Profile>,
    /// Bindings in flight at once.
    pub bind_concurrency: usize,
    /// Event and status writes in flight at once.
    pub report_concurrency: usize,
    /// First back-off after a failed attempt (doubles up to `max_backoff`).
    pub initial_backoff: Duration,
    /// Longest back-off.
    pub max_backoff: Duration,
    /// This instance's name on events (`reportingInstance`).
    pub instance: String,
    /// Where WasmPlugin objects of `spec.type: scheduler` are compiled; `None` ignores them.
    pub wasm_host: Option<PluginHost>,
    /// The running Wasm scheduler plugins: those added here, and those loaded from WasmPlugin
    /// objects when `wasm_host` is set.
    pub wasm_plugins: WasmPlugins,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            profiles: vec![default_profile(DEFAULT_SCHEDULER_NAME, 0)],
            bind_concurrency: 64,
            report_concurrency: 16,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(10),
            instance: format!("{DEFAULT_SCHEDULER_NAME}-keelson"),
            wasm_host: None,
            wasm_plugins: WasmPlugins::default(),
        }
    }
}

struct Scheduler {
    client: Client,
    profiles: HashMap<String, Profile>,
    cache: Mutex<Cache>,
    queue: Queue,
    reporter: Reporter,
    bind_slots: Arc<Semaphore>,
    wasm: WasmPlugins,
}

/// Runs the scheduler until a watch ends for good.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    if config.profiles.is_empty() {
        return Err(Error::Config("no profiles".into()));
    }
    let sched = Arc::new(Scheduler {
        reporter: Reporter::start(
            client.clone(),
            config.instance.clone(),
            config.report_concurrency,
        ),
        profiles: config
            .profiles
            .into_iter()
            .map(|p| (p.scheduler_name.clone(), p))
            .collect(),
        cache: Mutex::new(Cache::default()),
        queue: Queue::new(config.initial_backoff, config.max_backoff),
        bind_slots: Arc::new(Semaphore::new(config.bind_concurrency.max(1))),
        wasm: config.wasm_plugins.clone(),
        client,
    });
    let wasm_loader = {
        let (client, plugins) = (sched.client.clone(), config.wasm_plugins);
        async move {
            match config.wasm_host {
                Some(host) => crate::wasm::watch(client, host, plugins).await,
                None => std::future::pending().await,
            }
        }
    };
    tracing::info!(profiles = ?sched.profiles.keys().collect::<Vec<_>>(), "scheduler starting");
    let flusher = {
        let s = sched.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                s.queue.flush();
            }
        }
    };
    tokio::select! {
        r = sched.clone().watch_nodes() => r,
        r = sched.clone().watch_pods() => r,
        r = sched.clone().watch_namespaces() => r,
        r = sched.clone().watch_pdbs() => r,
        () = sched.clone().schedule_loop() => Ok(()),
        () = flusher => Ok(()),
        () = wasm_loader => Ok(()),
    }
}

/// A watch stream that restarts with back-off, yielding events and logging errors.
fn events<K>(api: Api<K>) -> impl futures::Stream<Item = Event<K>> + Send
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|e| async move {
            e.map_err(|e| tracing::warn!(error = %e, "scheduler watch error"))
                .ok()
        })
}

impl Scheduler {
    async fn watch_nodes(self: Arc<Self>) -> Result<(), Error> {
        let mut stream = std::pin::pin!(events(Api::<Node>::all(self.client.clone())));
        let mut relist: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Init => relist = Some(HashSet::new()),
                Event::InitApply(n) | Event::Apply(n) => {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(n.metadata.name.clone().unwrap_or_default());
                    }
                    let changed = self.cache.lock().unwrap().set_node(n);
                    if changed {
                        self.queue.move_all();
                    }
                }
                Event::InitDone => {
                    let seen = relist.take().unwrap_or_default();
                    let mut cache = self.cache.lock().unwrap();
                    for gone in cache.node_names().difference(&seen) {
                        cache.remove_node(gone);
                    }
                    drop(cache);
                    self.queue.move_all();
                }
                Event::Delete(n) => {
                    let name = n.metadata.name.unwrap_or_default();
                    self.cache.lock().unwrap().remove_node(&name);
                }
            }
        }
        Ok(())
    }

    async fn watch_pods(self: Arc<Self>) -> Result<(), Error> {
        let mut stream = std::pin::pin!(events(Api::<Pod>::all(self.client.clone())));
        let mut relist: Option<HashSet<String>> = None;
        while let Some(ev) = stream.next().await {
            match ev {
                Event::Init => relist = Some(HashSet::new()),
                Event::InitApply(p) | Event::Apply(p) => {
                    if let Some(seen) = relist.as_mut() {
                        seen.insert(pod_key(&p));
                    }
                    self.on_pod(p);
                }
                Event::InitDone => {
                    let seen = relist.take().unwrap_or_default();
                    let stale: Vec<String> = {
                        let cache = self.cache.lock().unwrap();
                        cache
                            .observed_pod_keys()
                            .into_iter()
                            .filter(|k| !seen.contains(k))
                            .collect()
                    };
                    for key in stale {
                        self.on_pod_gone(&key);
                    }
                }
                Event::Delete(p) => self.on_pod_gone(&pod_key(&p)),
            }
        }
        Ok(())
    }

    async fn watch_namespaces(self: Arc<Self>) -> Result<(), Error> {
        let mut stream = std::pin::pin!(events(Api::<Namespace>::all(self.client.clone())));
        while let Some(ev) = stream.next().await {
            match ev {
                Event::InitApply(ns) | Event::Apply(ns) => {
                    let name = ns.metadata.name.unwrap_or_default();
                    let labels = ns.metadata.labels.unwrap_or_default();
                    self.cache.lock().unwrap().set_namespace(name, labels);
                }
                Event::Delete(ns) => {
                    let name = ns.metadata.name.unwrap_or_default();
                    self.cache.lock().unwrap().remove_namespace(&name);
                }
                Event::Init | Event::InitDone => {}
            }
        }
        Ok(())
    }

    async fn watch_pdbs(self: Arc<Self>) -> Result<(), Error> {
        let api = Api::<PodDisruptionBudget>::all(self.client.clone());
        let mut stream = std::pin::pin!(events(api));
        while let Some(ev) = stream.next().await {
            let mut cache = self.cache.lock().unwrap();
            match ev {
                Event::Init => cache.snapshot.pdbs.clear(),
                Event::InitApply(p) | Event::Apply(p) => cache.set_pdb(p),
                Event::Delete(p) => cache.remove_pdb(&p),
                Event::InitDone => {}
            }
        }
        Ok(())
    }

    fn on_pod(&self, pod: Pod) {
        let key = pod_key(&pod);
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded") | Some("Failed")) {
            self.on_pod_gone(&key);
            return;
        }
        let spec = pod.spec.as_ref();
        if spec
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
        {
            self.queue.delete(&key);
            self.cache.lock().unwrap().set_pod(Arc::new(pod));
            return;
        }
        let name = spec
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        if pod.metadata.deletion_timestamp.is_some() || !self.profiles.contains_key(name) {
            self.queue.delete(&key);
            return;
        }
        self.queue.add(Arc::new(PodInfo::new(Arc::new(pod))));
    }

    fn on_pod_gone(&self, key: &str) {
        self.queue.delete(key);
        let counted = self.cache.lock().unwrap().remove_pod(key);
        if counted {
            self.queue.move_all();
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        let mut rng = StdRng::from_entropy();
        let mut next_start = 0usize;
        let mut cycles = 0u64;
        loop {
            let popped = self.queue.pop().await;
            cycles += 1;
            if cycles.is_multiple_of(32) {
                tokio::task::yield_now().await;
            }
            let info = popped.info;
            let span =
                tracing::info_span!("schedule", pod = %info.key, node = tracing::field::Empty);
            let result = self
                .schedule_one(&info, &mut next_start, &mut rng)
                .instrument(span.clone())
                .await;
            match result {
                Ok(placed) => {
                    span.record("node", placed.node.as_str());
                    let permit = self.bind_slots.clone().acquire_owned().await;
                    let s = self.clone();
                    tokio::spawn(
                        async move {
                            s.bind(info, placed.node).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(e) => {
                    span.in_scope(|| tracing::debug!(reason = %e, "unschedulable"));
                    if matches!(e, ScheduleError::Plugin { .. }) {
                        self.queue.backoff(&info.key);
                    } else {
                        self.queue.unschedulable(&info.key, popped.cycle);
                    }
                    let message = e.to_string();
                    self.reporter.send(Report::Failed {
                        pod: info.pod.clone(),
                        message,
                    });
                    if let ScheduleError::Fit(FitError {
                        nomination: Some(n),
                        ..
                    }) = e
                    {
                        let s = self.clone();
                        let task = async move {
                            let done = preempt::carry_out(&s.client, &s.reporter, &info.pod, n);
                            if let Err(e) = done.await {
                                tracing::warn!(error = %e, "preemption failed");
                                s.queue.backoff(&info.key);
                            }
                        };
                        tokio::spawn(task.instrument(span));
                    }
                }
            }
        }
    }

    /// One scheduling cycle: the profile's built-in plugins under the cache lock, then, when
    /// Wasm plugins join the profile, their batched calls without the lock, and the pod
    /// assumed on the chosen node.
    async fn schedule_one(
        &self,
        info: &Arc<PodInfo>,
        next_start: &mut usize,
        rng: &mut StdRng,
    ) -> Result<ScheduleResult, ScheduleError> {
        let name = info
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or(DEFAULT_SCHEDULER_NAME);
        let profile = &self.profiles[name];
        let plugins = self.wasm.for_profile(name);
        // Claims bound to pinned volumes narrow the pod's nodes (VolumeBinding's filter).
        let constrained = crate::volume_binding::constrain(&self.client, info).await?;
        let info = &constrained;
        let (candidates, inputs) = {
            let mut cache = self.cache.lock().unwrap();
            if plugins.is_empty() {
                let r = profile.schedule(info, &cache.snapshot, next_start, rng);
                if let Ok(placed) = &r {
                    cache.assume(info.clone(), &placed.node);
                }
                return r;
            }
            let candidates = profile.candidates(info, &cache.snapshot, next_start)?;
            let inputs: Vec<_> = candidates
                .nodes
                .iter()
                .filter_map(|n| cache.snapshot.get(n))
                .map(wasm::node_input)
                .collect();
            (candidates, inputs)
        };
        let placed = wasm::decide(&plugins, info, candidates, inputs, rng).await?;
        let mut cache = self.cache.lock().unwrap();
        if cache.snapshot.get(&placed.node).is_none() {
            return Err(ScheduleError::NoNodes);
        }
        cache.assume(info.clone(), &placed.node);
        Ok(placed)
    }

    async fn bind(&self, info: Arc<PodInfo>, node: String) {
        // VolumeBinding's PreBind: claims waiting for their first consumer learn its node.
        if let Err(e) = crate::volume_binding::select_node(&self.client, &info.pod, &node).await {
            tracing::info!(error = %e, "selecting the node of the pod's claims failed");
            self.cache.lock().unwrap().forget(&info.key);
            self.queue.backoff(&info.key);
            return;
        }
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), info.namespace());
        let name = info.pod.metadata.name.clone().unwrap_or_default();
        let binding = Binding {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: Some(info.namespace().to_string()),
                uid: info.pod.metadata.uid.clone(),
                ..Default::default()
            },
            target: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Node".into()),
                name: Some(node.clone()),
                ..Default::default()
            },
        };
        let result = pods
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &name,
                &PostParams::default(),
                &binding,
            )
            .await;
        match result {
            Ok(_) => {
                tracing::debug!("bound");
                self.queue.done(&info.key);
                self.reporter.send(Report::Scheduled {
                    pod: info.pod.clone(),
                    node,
                });
            }
            Err(e) => {
                self.cache.lock().unwrap().forget(&info.key);
                let gone = matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
                tracing::info!(error = %e, "binding failed");
                if gone {
                    self.queue.delete(&info.key);
                } else {
                    self.queue.backoff(&info.key);
                }
            }
        }
    }
}
