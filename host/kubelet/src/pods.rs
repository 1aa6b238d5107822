//! Dispatch of the pods bound to this node: one field-selected watch
//! (`spec.nodeName=<node>`), one worker task per pod uid fed with the latest object. A pod
//! seen again after an agent restart gets a worker that adopts its status (restart counts,
//! finished containers), so nothing runs twice; a pod that disappears from the API (or from a
//! relisted watch) has its worker told to stop its containers at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::logs::{ContainerKey, LogStore};
use crate::runtime::{Runtime, Runtimes};
use crate::{Config, Error};

/// A running container: what `exec` and `attach` reach.
#[derive(Clone)]
pub(crate) struct RunningContainer {
    /// Its runtime.
    pub(crate) runtime: Arc<dyn Runtime>,
    /// Its id there.
    pub(crate) id: String,
    /// Its output (and log) of this run.
    pub(crate) output: Arc<crate::logs::LogWriter>,
}

/// What every pod worker shares.
pub(crate) struct Agent {
    pub(crate) client: Client,
    pub(crate) config: Config,
    /// The node's address (host IP, and pod IP of Wasm pods).
    pub(crate) ip: String,
    pub(crate) logs: Arc<LogStore>,
    pub(crate) runtimes: Runtimes,
    /// RuntimeClass handlers by class name, read at most once a minute (a handler cannot
    /// change; a class can be deleted and made again).
    pub(crate) handlers: std::sync::Mutex<HashMap<String, (String, std::time::Instant)>>,
    /// The running containers (what `exec` reaches): runtime and container id by
    /// (namespace, pod, container).
    pub(crate) running: std::sync::Mutex<HashMap<ContainerKey, RunningContainer>>,
    /// Previous CPU readings, for `/stats/summary` rates.
    pub(crate) cpu_readings: crate::stats::CpuReadings,
}

impl Agent {
    /// The cached handler of RuntimeClass `name`, if read within the last minute.
    pub(crate) fn handler_of(&self, name: &str) -> Option<String> {
        let cache = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(name)
            .filter(|(_, at)| at.elapsed() < std::time::Duration::from_secs(60))
            .map(|(h, _)| h.clone())
    }

    /// The runtime and container id of a running container.
    pub(crate) fn running(&self, key: &ContainerKey) -> Option<RunningContainer> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running.get(key).cloned()
    }

    /// The running containers of pod `name` in `ns`.
    pub(crate) fn running_in(&self, ns: &str, name: &str) -> Vec<RunningContainer> {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        running
            .iter()
            .filter(|((n, p, _), _)| n == ns && p == name)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Records a started container, or (`None`) forgets it if its id is still `id`.
    pub(crate) fn set_running(&self, key: &ContainerKey, id: &str, run: Option<RunningContainer>) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match run {
            Some(r) => {
                running.insert(key.clone(), r);
            }
            None => {
                if running.get(key).is_some_and(|r| r.id == id) {
                    running.remove(key);
                }
            }
        }
    }

    /// Caches and returns the handler of RuntimeClass `name`.
    pub(crate) fn remember_handler(&self, name: &str, handler: String) -> String {
        let mut cache = self.handlers.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(
            name.to_string(),
            (handler.clone(), std::time::Instant::now()),
        );
        handler
    }
}

struct WorkerHandle {
    pod: watch::Sender<Option<Pod>>,
    task: JoinHandle<()>,
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// Watches this node's pods and runs a worker for each until the future is dropped.
pub(crate) async fn run(agent: Arc<Agent>) -> Result<(), Error> {
    let api: Api<Pod> = Api::all(agent.client.clone());
    let selector = format!("spec.nodeName={}", agent.config.node_name);
    let stream =
        watcher::watcher(api, watcher::Config::default().fields(&selector)).default_backoff();
    let mut stream = std::pin::pin!(stream);
    let mut workers: HashMap<String, WorkerHandle> = HashMap::new();
    let mut listed: Option<HashSet<String>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Ok(Event::Init) => listed = Some(HashSet::new()),
            Ok(Event::InitApply(pod)) => {
                if let Some(seen) = listed.as_mut() {
                    seen.insert(uid(&pod));
                }
                dispatch(&agent, &mut workers, pod);
            }
            Ok(Event::InitDone) => {
                // Pods deleted while the watch was down: stop their workers.
                if let Some(seen) = listed.take() {
                    workers.retain(|uid, w| {
                        let keep = seen.contains(uid);
                        if !keep {
                            w.pod.send_replace(None);
                        }
                        keep
                    });
                }
            }
            Ok(Event::Apply(pod)) => dispatch(&agent, &mut workers, pod),
            Ok(Event::Delete(pod)) => {
                if let Some(w) = workers.remove(&uid(&pod)) {
                    w.pod.send_replace(None);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch error"),
        }
    }
    for w in workers.into_values() {
        w.task.abort();
    }
    Ok(())
}

fn dispatch(agent: &Arc<Agent>, workers: &mut HashMap<String, WorkerHandle>, pod: Pod) {
    let id = uid(&pod);
    if let Some(w) = workers.get(&id) {
        if !w.task.is_finished() {
            w.pod.send_replace(Some(pod));
        }
        return;
    }
    let (tx, rx) = watch::channel(Some(pod.clone()));
    let task = tokio::spawn(crate::pod_worker::run(agent.clone(), pod, rx));
    workers.insert(id, WorkerHandle { pod: tx, task });
}
