//! Graceful termination of a pod worker's pod: `preStop` sleep hooks, stopping the containers
//! within the grace period, the final status and the delete with grace 0; and the abrupt end
//! when the pod vanished from the API.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, Preconditions};
use kube::Api;
use tokio::time::Instant;

use tokio::sync::mpsc;

use super::{spec_of, Exit, Stop, Worker};
use crate::status::Current;

impl Worker {
    /// Graceful termination; true once the object is deleted.
    /// Seconds a stop may take: `first` (the deletion's or a probe's grace period), else the
    /// pod's `terminationGracePeriodSeconds`, else Kubernetes' 30.
    pub(super) fn grace_seconds(&self, first: Option<i64>) -> u64 {
        first
            .or_else(|| {
                self.pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64
    }

    pub(super) async fn terminate(&mut self) -> bool {
        let meta = &self.pod.metadata;
        let grace = self.grace_seconds(meta.deletion_grace_period_seconds);
        if self.deleting.is_none() {
            let deadline = Instant::now() + Duration::from_secs(grace);
            self.deleting = Some(deadline);
            self.due.clear();
            tracing::info!(grace_seconds = grace, "terminating pod");
        }
        let deadline = self.deleting.unwrap_or_else(Instant::now);
        let (init_spec, spec) = spec_of(&self.pod);
        for (slot, handle) in self.handles.iter_mut() {
            let Some(stop) = handle.stop.take() else {
                continue;
            };
            let c = if slot.0 {
                init_spec.get(slot.1)
            } else {
                spec.get(slot.1)
            };
            let pre_stop = c
                .and_then(|c| c.lifecycle.as_ref())
                .and_then(|l| l.pre_stop.as_ref())
                .and_then(|h| h.sleep.as_ref())
                .map(|s| Duration::from_secs(s.seconds.max(0) as u64))
                .unwrap_or_default();
            let _ = stop.send(Stop { pre_stop, deadline });
            if let Some(c) = c {
                let node = &self.agent.config.node_name;
                let message = format!("Stopping container {}", c.name);
                crate::events::record(
                    &self.agent.client,
                    &self.pod,
                    node,
                    false,
                    "Killing",
                    message,
                );
            }
        }
        for slot in self.all_slots() {
            let state = self.state(slot);
            if let Current::Waiting { .. } = state.current {
                if let Some(last) = state.last.clone() {
                    state.current = Current::Terminated(last);
                }
            }
        }
        if !self.handles.is_empty() {
            // Past the deadline the container tasks are already killing; wake to re-check.
            self.deleting = Some(deadline.max(Instant::now() + Duration::from_millis(200)));
            return false;
        }
        self.write_status().await;
        // The sandbox (network namespace, address) goes before the object, so a client that
        // saw the pod go finds nothing of it left on the node.
        self.remove_sandbox().await;
        let api: Api<Pod> = Api::namespaced(self.agent.client.clone(), &self.ns);
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(&self.name, &dp).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not delete the pod; retrying");
                self.deleting = Some(Instant::now() + Duration::from_secs(1));
                return false;
            }
        }
        tracing::info!("pod deleted");
        self.agent.logs.remove_pod(&self.ns, &self.name, &self.uid);
        true
    }

    /// The pod is gone from the API: kill its containers at once and forget it.
    pub(super) async fn vanished(mut self, exits: &mut mpsc::UnboundedReceiver<Exit>) {
        let now = Instant::now();
        for handle in self.handles.values_mut() {
            if let Some(stop) = handle.stop.take() {
                let _ = stop.send(Stop {
                    pre_stop: Duration::ZERO,
                    deadline: now,
                });
            }
        }
        // The sandbox goes once the containers are stopped.
        let limit = Instant::now() + Duration::from_secs(10);
        while !self.handles.is_empty() {
            match tokio::time::timeout_at(limit, exits.recv()).await {
                Ok(Some(exit)) => self.handles.remove(&exit.slot),
                _ => break,
            };
        }
        self.remove_sandbox().await;
        self.agent.logs.remove_pod(&self.ns, &self.name, &self.uid);
        tracing::info!(pod = %self.name, "pod removed from the API; containers stopped");
    }
}
