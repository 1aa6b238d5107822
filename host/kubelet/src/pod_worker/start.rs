//! Starting one container of a pod worker: its environment (ConfigMaps and Secrets read
//! through the API), the image pulled as its policy says ([`super::pulling`]) and made ready by
//! the runtime, a fresh log file, the runtime's
//! start, and the task that waits for it (or stops it on request) and reports its exit.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{probing, Exit, Handle, Slot, Stop, Worker};
use crate::env;
use crate::runtime::ContainerConfig;
use crate::status::Current;
use crate::Error;

impl Worker {
    pub(super) async fn env_sources(&self, c: &Container) -> Result<env::Sources, Error> {
        let (cms, secrets) = env::referenced(c);
        let mut sources = env::Sources::default();
        let cm_api: Api<ConfigMap> = Api::namespaced(self.agent.client.clone(), &self.ns);
        for name in cms {
            if let Some(cm) = cm_api.get_opt(&name).await? {
                sources
                    .config_maps
                    .insert(name, cm.data.unwrap_or_default());
            }
        }
        let secret_api: Api<Secret> = Api::namespaced(self.agent.client.clone(), &self.ns);
        for name in secrets {
            if let Some(s) = secret_api.get_opt(&name).await? {
                let mut data: BTreeMap<String, String> = s.string_data.unwrap_or_default();
                for (k, v) in s.data.unwrap_or_default() {
                    data.insert(k, String::from_utf8_lossy(&v.0).into_owned());
                }
                sources.secrets.insert(name, data);
            }
        }
        Ok(sources)
    }

    pub(super) fn event(&self, warning: bool, reason: &str, message: String) {
        let node = &self.agent.config.node_name;
        crate::events::record(
            &self.agent.client,
            &self.pod,
            node,
            warning,
            reason,
            message,
        );
    }

    pub(super) fn wait(&mut self, slot: Slot, reason: &str, message: String) {
        self.event(true, "Failed", format!("Error: {message}"));
        tracing::info!(container = %self.state(slot).name, reason, %message, "container cannot start");
        self.state(slot).current = Current::Waiting {
            reason: reason.into(),
            message: Some(message),
        };
        self.due
            .insert(slot, Instant::now() + self.agent.config.backoff_base);
    }

    pub(super) async fn start(&mut self, slot: Slot) {
        let Some(spec) = self.spec(slot) else { return };
        let Some(Ok(runtime)) = self.runtime.clone() else {
            return;
        };
        let env = match self.env_sources(&spec).await {
            Ok(sources) => env::build(&self.pod, &spec, &sources),
            Err(e) => Err(e),
        };
        let env = match env {
            Ok(env) => env,
            Err(e) => return self.wait(slot, "CreateContainerConfigError", e.to_string()),
        };
        let pod_dir = self.agent.logs.pod_dir(&self.ns, &self.name, &self.uid);
        // The pod's resolv.conf per dnsPolicy (a container runtime mounts it at
        // /etc/resolv.conf; Wasm guests have no resolver to read it).
        let config = &self.agent.config;
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        let resolv = crate::dns::resolv_conf(
            &self.pod,
            &config.cluster_dns,
            &config.cluster_domain,
            &host,
        );
        if let Err(e) = std::fs::create_dir_all(&pod_dir)
            .and_then(|()| std::fs::write(pod_dir.join("resolv.conf"), resolv))
        {
            return self.wait(
                slot,
                "CreateContainerConfigError",
                format!("resolv.conf: {e}"),
            );
        }
        let volumes = pod_dir.join("volumes");
        let mounts =
            match crate::volumes::mounts(&self.agent.client, &self.pod, &spec, &volumes).await {
                Ok(m) => m,
                Err(Error::VolumeNotReady(message)) => {
                    // Kubernetes' FailedMount: the pod stays ContainerCreating until it mounts.
                    self.event(
                        true,
                        "FailedMount",
                        format!("Unable to attach or mount volumes: {message}"),
                    );
                    self.state(slot).current = Current::Waiting {
                        reason: "ContainerCreating".into(),
                        message: None,
                    };
                    self.due
                        .insert(slot, Instant::now() + self.agent.config.backoff_base);
                    return;
                }
                Err(e) => return self.wait(slot, "CreateContainerConfigError", e.to_string()),
            };
        if !self.ensure_image(slot, &spec, &runtime).await {
            return;
        }
        let image = spec.image.clone().unwrap_or_default();
        let image_id = match runtime.prepare(&image).await {
            Ok(id) if runtime.pulls() => id,
            Ok(id) => {
                let message = format!("Container image \"{image}\" already present on machine");
                self.event(false, "Pulled", message);
                id
            }
            Err(e @ Error::ImageNotFound(_)) => {
                return self.wait(slot, "ErrImageNeverPull", e.to_string())
            }
            Err(e) => return self.wait(slot, "CreateContainerError", e.to_string()),
        };
        let runs = self.runs.entry(slot).or_insert(0);
        let restart = match *runs {
            0 => 0,
            _ => self.state(slot).restart_count + 1,
        };
        let ckey = (self.ns.clone(), self.name.clone(), spec.name.clone());
        let writer = match self.agent.logs.start(&ckey, &self.uid, restart) {
            Ok(w) => Arc::new(w),
            Err(e) => return self.wait(slot, "CreateContainerError", format!("log file: {e}")),
        };
        let limits = spec.resources.as_ref().and_then(|r| r.limits.as_ref());
        let limit = |name: &str| {
            limits
                .and_then(|l| l.get(name))
                .and_then(|q| keelson_apimachinery::quantity::parse(&q.0).ok())
        };
        let id = format!("{}-{}-{restart}", self.uid, spec.name);
        let container_id = format!("{}://{id}", runtime.scheme());
        let (command, args) = env::command_line(&spec, &env);
        let pod_spec = self.pod.spec.as_ref();
        let config = ContainerConfig {
            id,
            pod_uid: self.uid.clone(),
            hostname: pod_spec
                .and_then(|s| s.hostname.clone())
                .unwrap_or_else(|| self.name.clone()),
            host_network: pod_spec.and_then(|s| s.host_network).unwrap_or(false),
            image,
            command,
            args,
            env,
            memory_limit: limit("memory").map(|m| (m / 1000).max(0) as u64),
            cpu_limit_millis: limit("cpu").map(|m| m.max(1) as u64),
            output: writer.clone(),
            mounts,
            stdin: spec.stdin.unwrap_or(false),
            stdin_once: spec.stdin_once.unwrap_or(false),
            tty: spec.tty.unwrap_or(false),
        };
        let mut container = match runtime.start(config).await {
            Ok(c) => c,
            Err(e) => {
                writer.close();
                self.agent.logs.finish(&ckey);
                return self.wait(slot, "CreateContainerError", e.to_string());
            }
        };
        *self.runs.entry(slot).or_insert(0) += 1;
        self.next_run += 1;
        let run = self.next_run;
        let (stop_tx, stop_rx) = oneshot::channel::<Stop>();
        let (tx, logs) = (self.exits_tx.clone(), self.agent.logs.clone());
        let started = Timestamp::now();
        let id = container_id.clone();
        let runtime_id = format!("{}-{}-{restart}", self.uid, spec.name);
        let run_entry = crate::pods::RunningContainer {
            runtime: runtime.clone(),
            id: runtime_id.clone(),
            output: writer.clone(),
        };
        self.agent.set_running(&ckey, &runtime_id, Some(run_entry));
        let agent = self.agent.clone();
        tokio::spawn(async move {
            let exited = tokio::select! {
                exited = container.wait() => exited,
                Ok(stop) = stop_rx => {
                    let hook = stop.pre_stop.min(stop.deadline.saturating_duration_since(Instant::now()));
                    tokio::select! {
                        exited = container.wait() => exited,
                        _ = tokio::time::sleep(hook) => {
                            container.stop(stop.deadline.saturating_duration_since(Instant::now())).await
                        }
                    }
                }
            };
            writer.close();
            logs.finish(&ckey);
            agent.set_running(&ckey, &runtime_id, None);
            let _ = tx.send(Exit {
                slot,
                run,
                exited,
                started,
                finished: Timestamp::now(),
                container_id: id,
            });
        });
        tracing::info!(container = %spec.name, restart, "container started");
        self.event(
            false,
            "Created",
            format!("Created container: {}", spec.name),
        );
        self.event(false, "Started", format!("Started container {}", spec.name));
        self.due.remove(&slot);
        let prober = probing::has_probes(&spec).then(|| {
            let pod_ip = match &self.sandbox {
                Some(Some(ip)) => ip.clone(),
                _ => self.agent.ip.clone(),
            };
            let prober = probing::Prober {
                agent: self.agent.clone(),
                pod: self.pod.clone(),
                container: spec.clone(),
                target: crate::probe::Target {
                    runtime: runtime.clone(),
                    container_id: format!("{}-{}-{restart}", self.uid, spec.name),
                    pod_ip,
                },
                slot,
                run,
                started: Instant::now(),
                tx: self.probes_tx.clone(),
            };
            tokio::spawn(prober.run()).abort_handle()
        });
        let state = self.state(slot);
        state.probe_ready = spec.readiness_probe.as_ref().map(|_| false);
        state.probe_started = spec.startup_probe.as_ref().map(|_| false);
        state.image_id = image_id;
        state.restart_count = restart;
        state.current = Current::Running {
            started_at: started,
            container_id,
        };
        self.handles.insert(
            slot,
            Handle {
                stop: Some(stop_tx),
                run,
                started: Instant::now(),
                prober,
            },
        );
    }
}
