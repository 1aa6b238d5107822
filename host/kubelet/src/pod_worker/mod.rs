//! One pod's worker: runs its init containers one after another, then its containers, on the
//! runtime its RuntimeClass names, once their images are there ([`pulling`]); restarts them per `restartPolicy` with CrashLoopBackOff;
//! writes the pod status whenever it changes; and on deletion runs `preStop` sleep hooks,
//! stops the containers within the grace period (`deletionGracePeriodSeconds`, else
//! `terminationGracePeriodSeconds`, else 30 s) and deletes the object with grace 0. Every
//! sync runs in a `sync_pod` span.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use k8s_openapi::api::node::v1::RuntimeClass;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tracing::Instrument;

mod adopt;
mod probing;
mod pulling;
mod start;
mod terminate;

use crate::backoff::Backoff;
use crate::pods::Agent;
use crate::runtime::{Exited, Runtime};
use crate::status::{self, ContainerState, Current, Terminated};

use adopt::{adopt, restarts};

/// A container: (is init container, index in its list).
type Slot = (bool, usize);

/// A running container's control: its stop channel and when it started.
struct Handle {
    stop: Option<oneshot::Sender<Stop>>,
    run: u64,
    started: Instant,
    /// The run's prober task, if it has probes.
    prober: Option<tokio::task::AbortHandle>,
}

/// How to stop a container: sleep `pre_stop` (a `preStop.sleep` hook), then stop by `deadline`.
struct Stop {
    pre_stop: Duration,
    deadline: Instant,
}

struct Exit {
    slot: Slot,
    run: u64,
    exited: Exited,
    started: Timestamp,
    finished: Timestamp,
    container_id: String,
}

struct Worker {
    agent: Arc<Agent>,
    pod: Pod,
    ns: String,
    name: String,
    uid: String,
    init: Vec<ContainerState>,
    containers: Vec<ContainerState>,
    /// How many times each container has run (adopted from the status on agent restart).
    runs: HashMap<Slot, u32>,
    handles: HashMap<Slot, Handle>,
    due: HashMap<Slot, Instant>,
    backoff: Backoff,
    exits_tx: mpsc::UnboundedSender<Exit>,
    probes_tx: mpsc::UnboundedSender<probing::ProbeEvent>,
    pulls: pulling::Pulls,
    next_run: u64,
    runtime: Option<Result<Arc<dyn Runtime>, String>>,
    /// The pod's sandbox exists; its IP when it has its own network.
    sandbox: Option<Option<String>>,
    start_time: Timestamp,
    written: Option<Value>,
    retry_write: Option<Instant>,
    deleting: Option<Instant>,
}

fn spec_of(pod: &Pod) -> (Vec<Container>, Vec<Container>) {
    pod.spec
        .as_ref()
        .map(|s| {
            (
                s.init_containers.clone().unwrap_or_default(),
                s.containers.clone(),
            )
        })
        .unwrap_or_default()
}

/// Runs one pod until it is deleted; `updates` carries the latest object (`None` once the pod
/// is gone from the API).
pub(crate) async fn run(agent: Arc<Agent>, pod: Pod, mut updates: watch::Receiver<Option<Pod>>) {
    let (exits_tx, mut exits) = mpsc::unbounded_channel();
    let (probes_tx, mut probes) = mpsc::unbounded_channel();
    let (pulls, mut pulled) = pulling::Pulls::new();
    let mut w = Worker::new(agent, pod, exits_tx, probes_tx, pulls);
    let key = format!("{}/{}", w.ns, w.name);
    loop {
        let span = tracing::info_span!("sync_pod", pod = %key, uid = %w.uid);
        if w.sync().instrument(span).await {
            return;
        }
        let wake = w.next_wake();
        tokio::select! {
            changed = updates.changed() => {
                let latest = if changed.is_ok() { updates.borrow_and_update().clone() } else { None };
                match latest {
                    Some(pod) => w.pod = pod,
                    None => return w.vanished(&mut exits).await,
                }
            }
            Some(exit) = exits.recv() => w.on_exit(exit),
            Some(event) = probes.recv() => w.on_probe(event),
            Some(done) = pulled.recv() => w.on_pulled(done),
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}

impl Worker {
    fn new(
        agent: Arc<Agent>,
        pod: Pod,
        exits_tx: mpsc::UnboundedSender<Exit>,
        probes_tx: mpsc::UnboundedSender<probing::ProbeEvent>,
        pulls: pulling::Pulls,
    ) -> Self {
        let (init_spec, spec) = spec_of(&pod);
        let status = pod.status.as_ref();
        let mut runs = HashMap::new();
        let mut adopt_all = |list: &[Container], init: bool| -> Vec<ContainerState> {
            let statuses = status.and_then(|s| match init {
                true => s.init_container_statuses.as_ref(),
                false => s.container_statuses.as_ref(),
            });
            list.iter()
                .enumerate()
                .map(|(i, c)| {
                    let (state, n) = adopt(c, statuses);
                    runs.insert((init, i), n);
                    state
                })
                .collect()
        };
        let mut init = adopt_all(&init_spec, true);
        let mut containers = adopt_all(&spec, false);
        // Runs that ended (or were lost with an earlier agent) and that the restart policy
        // restarts wait for their next start.
        let policy = pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into());
        for (c, spec) in init.iter_mut().zip(&init_spec) {
            c.sidecar = spec.restart_policy.as_deref() == Some("Always");
        }
        let wait_again = |c: &mut ContainerState, restart: bool| {
            if let (true, Current::Terminated(t)) = (restart, &c.current) {
                c.last = Some(t.clone());
                c.current = Current::Waiting {
                    reason: "ContainerCreating".into(),
                    message: None,
                };
            }
        };
        for c in containers.iter_mut() {
            let code = match &c.current {
                Current::Terminated(t) => t.exit.code,
                _ => continue,
            };
            wait_again(c, restarts(false, &policy, code));
        }
        // Sidecars run again unless the containers are done.
        let main_done = containers.iter().all(ContainerState::terminated);
        for c in init.iter_mut() {
            let code = match &c.current {
                Current::Terminated(t) => t.exit.code,
                _ => continue,
            };
            let restart = match c.sidecar {
                true => !main_done,
                false => restarts(true, &policy, code),
            };
            wait_again(c, restart);
        }
        let start_time = status
            .and_then(|s| s.start_time.as_ref())
            .map(|t| t.0)
            .unwrap_or_else(Timestamp::now);
        let (ns, name, uid) = (
            pod.metadata.namespace.clone().unwrap_or_default(),
            pod.metadata.name.clone().unwrap_or_default(),
            pod.metadata.uid.clone().unwrap_or_default(),
        );
        for c in init.iter().chain(containers.iter()) {
            let key = (ns.clone(), name.clone(), c.name.clone());
            agent.logs.adopt(&key, &uid, c.restart_count);
        }
        let config = &agent.config;
        Worker {
            backoff: Backoff::new(config.backoff_base, config.backoff_max),
            ns,
            name,
            uid,
            agent,
            pod,
            init,
            containers,
            runs,
            handles: HashMap::new(),
            due: HashMap::new(),
            exits_tx,
            probes_tx,
            pulls,
            next_run: 0,
            runtime: None,
            sandbox: None,
            start_time,
            written: None,
            retry_write: None,
            deleting: None,
        }
    }

    fn policy(&self) -> String {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.restart_policy.clone())
            .unwrap_or_else(|| "Always".into())
    }

    fn state(&mut self, slot: Slot) -> &mut ContainerState {
        match slot.0 {
            true => &mut self.init[slot.1],
            false => &mut self.containers[slot.1],
        }
    }

    fn spec(&self, slot: Slot) -> Option<Container> {
        let (init, containers) = spec_of(&self.pod);
        match slot.0 {
            true => init.get(slot.1).cloned(),
            false => containers.get(slot.1).cloned(),
        }
    }

    fn next_wake(&self) -> Instant {
        let far = Instant::now() + Duration::from_secs(3600);
        self.due
            .values()
            .chain(self.retry_write.iter())
            .chain(self.deleting.iter())
            .copied()
            .min()
            .unwrap_or(far)
            .min(far)
    }

    /// One sync: start what is due, handle deletion, write the status. True when done.
    async fn sync(&mut self) -> bool {
        if self.pod.metadata.deletion_timestamp.is_some() {
            return self.terminate().await;
        }
        if self.runtime.is_none() {
            self.runtime = Some(self.resolve_runtime().await);
        }
        if let Some(Err(message)) = self.runtime.clone() {
            for slot in self.all_slots() {
                let state = self.state(slot);
                if !state.terminated() {
                    state.current = Current::Waiting {
                        reason: "ContainerCreating".into(),
                        message: Some(message.clone()),
                    };
                }
            }
            self.runtime = None;
            self.due.insert(
                (false, usize::MAX),
                Instant::now() + self.agent.config.backoff_base,
            );
        } else if self.ensure_sandbox().await {
            self.due.remove(&(false, usize::MAX));
            self.start_due().await;
            self.stop_sidecars();
        }
        self.write_status().await;
        false
    }

    fn sandbox_spec(&self) -> crate::runtime::PodSandbox {
        let spec = self.pod.spec.as_ref();
        crate::runtime::PodSandbox {
            uid: self.uid.clone(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            port_mappings: spec
                .map(crate::runtime::PortMapping::of)
                .unwrap_or_default(),
        }
    }

    /// Makes the pod's sandbox once; false (and a retry planned) while it cannot be made.
    async fn ensure_sandbox(&mut self) -> bool {
        if self.sandbox.is_some() {
            return true;
        }
        let Some(Ok(runtime)) = self.runtime.clone() else {
            return false;
        };
        match runtime.create_sandbox(&self.sandbox_spec()).await {
            Ok(ip) => {
                tracing::info!(
                    pod.ip = ip.as_deref().unwrap_or("node"),
                    "pod sandbox ready"
                );
                self.sandbox = Some(ip);
                true
            }
            Err(e) => {
                let message = format!("Failed to create pod sandbox: {e}");
                self.event(true, "FailedCreatePodSandBox", message.clone());
                for slot in self.all_slots() {
                    let state = self.state(slot);
                    if !state.terminated() {
                        state.current = Current::Waiting {
                            reason: "ContainerCreating".into(),
                            message: Some(message.clone()),
                        };
                    }
                }
                self.due.insert(
                    (false, usize::MAX),
                    Instant::now() + self.agent.config.backoff_base,
                );
                false
            }
        }
    }

    /// Removes the pod's sandbox once its containers are gone.
    async fn remove_sandbox(&mut self) {
        if let (Some(_), Some(Ok(runtime))) = (self.sandbox.take(), self.runtime.clone()) {
            runtime.remove_sandbox(&self.sandbox_spec()).await;
        }
    }

    fn all_slots(&self) -> Vec<Slot> {
        (0..self.init.len())
            .map(|i| (true, i))
            .chain((0..self.containers.len()).map(|i| (false, i)))
            .collect()
    }

    async fn resolve_runtime(&self) -> Result<Arc<dyn Runtime>, String> {
        let class = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone());
        let handler = match &class {
            None => "runc".to_string(),
            Some(name) => match self.agent.handler_of(name) {
                Some(handler) => handler,
                None => {
                    let classes: Api<RuntimeClass> = Api::all(self.agent.client.clone());
                    match classes.get_opt(name).await {
                        Ok(Some(rc)) => self.agent.remember_handler(name, rc.handler),
                        Ok(None) => return Err(format!("RuntimeClass \"{name}\" not found")),
                        Err(e) => return Err(format!("reading RuntimeClass \"{name}\": {e}")),
                    }
                }
            },
        };
        self.agent.runtimes.get(&handler).ok_or_else(|| {
            format!(
                "no runtime for handler \"{handler}\" on this node (it runs {:?}; set runtimeClassName: wasm for WASI components)",
                self.agent.runtimes.handlers()
            )
        })
    }

    /// Starts the next init container, or all containers once init is done, where due.
    async fn start_due(&mut self) {
        let now = Instant::now();
        let due = |w: &Self, slot: Slot| {
            w.due.get(&slot).is_none_or(|t| *t <= now)
                && !w.handles.contains_key(&slot)
                && !w.pulls.pulling(slot)
        };
        if self.main_done() {
            return;
        }
        for i in 0..self.init.len() {
            let c = &self.init[i];
            if c.sidecar && c.initialized() {
                // A restarting sidecar does not hold back what follows it.
                if !c.running() && due(self, (true, i)) {
                    self.start((true, i)).await;
                }
                continue;
            }
            if c.succeeded() {
                continue;
            }
            if !c.terminated() && due(self, (true, i)) {
                self.start((true, i)).await;
            }
            // A sidecar that just started lets the next init container go.
            if !(self.init[i].sidecar && self.init[i].running()) {
                return;
            }
        }
        for i in 0..self.containers.len() {
            if !self.containers[i].terminated() && due(self, (false, i)) {
                self.start((false, i)).await;
            }
        }
    }

    /// All containers ended for good (the restart policy restarts none): sidecars stop.
    fn main_done(&self) -> bool {
        !self.containers.is_empty() && self.containers.iter().all(ContainerState::terminated)
    }

    /// Stops running sidecars once the containers are done, within the grace period.
    fn stop_sidecars(&mut self) {
        if !self.main_done() {
            return;
        }
        let grace = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
            .max(0) as u64;
        let deadline = Instant::now() + Duration::from_secs(grace);
        for (slot, handle) in self.handles.iter_mut() {
            if slot.0 && self.init[slot.1].sidecar {
                if let Some(stop) = handle.stop.take() {
                    let _ = stop.send(Stop {
                        pre_stop: Duration::ZERO,
                        deadline,
                    });
                }
            }
        }
    }

    fn on_exit(&mut self, exit: Exit) {
        let Some(handle) = self.handles.get(&exit.slot) else {
            return;
        };
        if handle.run != exit.run {
            return;
        }
        let ran = handle.started.elapsed();
        if let Some(prober) = &handle.prober {
            prober.abort();
        }
        self.handles.remove(&exit.slot);
        let term = Terminated {
            exit: exit.exited,
            started_at: exit.started,
            finished_at: exit.finished,
            container_id: exit.container_id,
        };
        let code = term.exit.code;
        let policy = self.policy();
        let sidecar = exit.slot.0 && self.init[exit.slot.1].sidecar;
        let restart = self.deleting.is_none()
            && match sidecar {
                true => !self.main_done(),
                false => restarts(exit.slot.0, &policy, code),
            };
        let (pod, ns, uid) = (self.name.clone(), self.ns.clone(), self.uid.clone());
        let state = self.state(exit.slot);
        tracing::info!(container = %state.name, code, reason = %term.exit.reason, restart, "container exited");
        if !restart {
            state.current = Current::Terminated(term);
            return;
        }
        state.last = Some(term);
        let name = state.name.clone();
        let delay = self.backoff.delay(&name, ran);
        if !delay.is_zero() {
            self.event(
                true,
                "BackOff",
                format!("Back-off restarting failed container {name} in pod {pod}_{ns}({uid})"),
            );
        }
        let state = self.state(exit.slot);
        state.current = match delay.is_zero() {
            true => Current::Waiting {
                reason: "ContainerCreating".into(),
                message: None,
            },
            false => Current::Waiting {
                reason: "CrashLoopBackOff".into(),
                message: Some(format!(
                    "back-off {}s restarting failed container={name} pod={pod}_{ns}({uid})",
                    delay.as_secs()
                )),
            },
        };
        self.due.insert(exit.slot, Instant::now() + delay);
    }

    async fn write_status(&mut self) {
        let sandbox = matches!(self.runtime, Some(Ok(_))) && self.sandbox.is_some();
        let pod_ip = match &self.sandbox {
            Some(Some(ip)) => ip.as_str(),
            _ => self.agent.ip.as_str(),
        };
        let status = status::pod_status(
            &self.pod,
            &self.init,
            &self.containers,
            &self.agent.ip,
            pod_ip,
            &self.start_time,
            sandbox,
        );
        if self.written.as_ref() == Some(&status) {
            return;
        }
        let api: Api<Pod> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let patch = json!({"status": status});
        match api
            .patch_status(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(pod) => {
                self.pod.status = pod.status;
                self.written = Some(status);
                self.retry_write = None;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write pod status");
                self.retry_write = Some(Instant::now() + Duration::from_secs(1));
            }
        }
    }
}
