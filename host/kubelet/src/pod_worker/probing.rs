//! Probes of a pod worker's running containers. Each container run with probes gets a prober
//! task: the startup probe first (liveness and readiness wait for it), then liveness and
//! readiness side by side, each after `initialDelaySeconds` and every `periodSeconds`, with
//! `successThreshold` / `failureThreshold` consecutive results deciding. Every failed attempt
//! is an `Unhealthy` event ("Liveness probe failed: …"); the prober reports readiness and
//! startup changes and a liveness or startup failure to the worker, which updates the
//! container's `ready`/`started` and kills the container (a `Killing` event, "Container c
//! failed liveness probe, will be restarted") for the restart policy to restart. Each attempt
//! runs in a `probe` span.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::Instrument;

use super::{Slot, Stop, Worker};
use crate::pods::Agent;
use crate::probe::{self, Target};

/// What a prober tells its worker.
pub(super) enum Update {
    /// The readiness probe's verdict changed.
    Ready(bool),
    /// The startup probe succeeded.
    Started,
    /// Liveness (or startup) failed for good: kill the container.
    Kill {
        /// `liveness` or `startup`.
        probe: &'static str,
    },
}

/// A prober's report about one run of one container.
pub(super) struct ProbeEvent {
    pub(super) slot: Slot,
    pub(super) run: u64,
    pub(super) update: Update,
}

/// A prober task for one container run.
pub(super) struct Prober {
    pub(super) agent: Arc<Agent>,
    pub(super) pod: Pod,
    pub(super) container: Container,
    pub(super) target: Target,
    pub(super) slot: Slot,
    pub(super) run: u64,
    pub(super) started: Instant,
    pub(super) tx: mpsc::UnboundedSender<ProbeEvent>,
}

/// Whether a container has any probe (and so needs a prober).
pub(super) fn has_probes(c: &Container) -> bool {
    c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some()
}

fn period(p: &Probe) -> Duration {
    Duration::from_secs(p.period_seconds.unwrap_or(10).max(1) as u64)
}

impl Prober {
    fn send(&self, update: Update) {
        let _ = self.tx.send(ProbeEvent {
            slot: self.slot,
            run: self.run,
            update,
        });
    }

    /// One attempt; a failure is recorded as an `Unhealthy` event.
    async fn attempt(&self, kind: &'static str, probe: &Probe) -> bool {
        let span = tracing::info_span!("probe", probe = kind, container = %self.container.name);
        let result = probe::run(probe, &self.container, &self.target)
            .instrument(span)
            .await;
        match result {
            Ok(()) => true,
            Err(message) => {
                let mut title = kind.to_string();
                title[..1].make_ascii_uppercase();
                tracing::debug!(probe = kind, container = %self.container.name, %message, "probe failed");
                crate::events::record(
                    &self.agent.client,
                    &self.pod,
                    &self.agent.config.node_name,
                    true,
                    "Unhealthy",
                    format!("{title} probe failed: {message}"),
                );
                false
            }
        }
    }

    async fn initial_delay(&self, p: &Probe) {
        let delay = Duration::from_secs(p.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        tokio::time::sleep_until(self.started + delay).await;
    }

    /// Runs the startup probe until it passes (true) or fails for good (false).
    async fn startup(&self, p: &Probe) -> bool {
        self.initial_delay(p).await;
        let threshold = p.failure_threshold.unwrap_or(3).max(1);
        let mut failures = 0;
        loop {
            if self.attempt("startup", p).await {
                self.send(Update::Started);
                return true;
            }
            failures += 1;
            if failures >= threshold {
                self.send(Update::Kill { probe: "startup" });
                return false;
            }
            tokio::time::sleep(period(p)).await;
        }
    }

    async fn liveness(&self, p: &Probe) {
        self.initial_delay(p).await;
        let threshold = p.failure_threshold.unwrap_or(3).max(1);
        let mut failures = 0;
        loop {
            match self.attempt("liveness", p).await {
                true => failures = 0,
                false => failures += 1,
            }
            if failures >= threshold {
                self.send(Update::Kill { probe: "liveness" });
                return;
            }
            tokio::time::sleep(period(p)).await;
        }
    }

    async fn readiness(&self, p: &Probe) {
        self.initial_delay(p).await;
        let (needed_ok, needed_fail) = (
            p.success_threshold.unwrap_or(1).max(1),
            p.failure_threshold.unwrap_or(3).max(1),
        );
        let (mut ok, mut failed, mut ready) = (0, 0, false);
        loop {
            if self.attempt("readiness", p).await {
                (ok, failed) = (ok + 1, 0);
                if !ready && ok >= needed_ok {
                    ready = true;
                    self.send(Update::Ready(true));
                }
            } else {
                (ok, failed) = (0, failed + 1);
                if ready && failed >= needed_fail {
                    ready = false;
                    self.send(Update::Ready(false));
                }
            }
            tokio::time::sleep(period(p)).await;
        }
    }

    /// Probes the container until the task is aborted (the run ended) or it must be killed.
    pub(super) async fn run(self) {
        let c = self.container.clone();
        if let Some(p) = &c.startup_probe {
            if !self.startup(p).await {
                return;
            }
        }
        let live = async {
            match &c.liveness_probe {
                Some(p) => self.liveness(p).await,
                None => std::future::pending().await,
            }
        };
        let ready = async {
            match &c.readiness_probe {
                Some(p) => self.readiness(p).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = live => {}
            _ = ready => {}
        }
    }
}

impl Worker {
    /// Applies a prober's report to the container it is about.
    pub(super) fn on_probe(&mut self, event: ProbeEvent) {
        let Some(handle) = self.handles.get_mut(&event.slot) else {
            return;
        };
        if handle.run != event.run {
            return;
        }
        match event.update {
            Update::Ready(ready) => self.state(event.slot).probe_ready = Some(ready),
            Update::Started => self.state(event.slot).probe_started = Some(true),
            Update::Kill { probe } => {
                let Some(stop) = handle.stop.take() else {
                    return;
                };
                let spec = self.spec(event.slot);
                let probe_grace = spec.as_ref().and_then(|c| match probe {
                    "startup" => c.startup_probe.as_ref(),
                    _ => c.liveness_probe.as_ref(),
                });
                let grace = self
                    .grace_seconds(probe_grace.and_then(|p| p.termination_grace_period_seconds));
                let _ = stop.send(Stop {
                    pre_stop: Duration::ZERO,
                    deadline: Instant::now() + Duration::from_secs(grace),
                });
                let name = self.state(event.slot).name.clone();
                tracing::info!(container = %name, probe, "probe failed; killing the container");
                self.event(
                    false,
                    "Killing",
                    format!("Container {name} failed {probe} probe, will be restarted"),
                );
            }
        }
    }
}
