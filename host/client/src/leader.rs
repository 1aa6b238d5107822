//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection` does
//! it: a candidate takes the Lease when nobody holds it or the holder has not renewed it for
//! `lease_duration` (measured on the candidate's own clock from when it last saw the record
//! change, so clocks need not agree), renews it every `retry_period`, and stops leading when
//! it cannot renew within `renew_deadline`. Writes are conditional on the resourceVersion read,
//! so two candidates never both win. (No crate for this fits kube 5, hence this module.)

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};

/// Timing, with Kubernetes components' defaults (15 s, 10 s, 2 s).
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before giving up leadership.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// One candidate for the Lease `namespace/name`.
pub struct LeaderElector {
    leases: Api<Lease>,
    name: String,
    identity: String,
    timing: Timing,
    /// The last record seen and when (on our clock) it was first seen.
    observed: Option<(LeaseSpec, Instant)>,
}

impl LeaderElector {
    /// A candidate called `identity` (unique per process, e.g. `hostname_uuid`).
    pub fn new(client: kube::Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            leases: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            timing: Timing::default(),
            observed: None,
        }
    }

    /// Overrides the timing.
    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Runs `work` whenever this candidate leads: waits for the Lease, runs `work()` while
    /// renewing, and when leadership is lost drops (cancels) the work and campaigns again.
    /// Never returns unless `work` itself completes.
    pub async fn run<F, Fut>(self, work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        self.run_until(work, std::future::pending()).await
    }

    /// [`Self::run`] until `stop` completes: then the work is dropped and a held Lease given
    /// up at once (client-go's `ReleaseOnCancel`), so another candidate leads within one
    /// retry period instead of waiting out the lease duration.
    pub async fn run_until<F, Fut>(mut self, mut work: F, stop: impl Future<Output = ()>)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = self.acquire() => {}
                () = &mut stop => return,
            }
            tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
            tokio::select! {
                () = work() => {
                    self.release().await;
                    return;
                }
                () = self.keep() => {
                    tracing::warn!(lease = %self.name, identity = %self.identity, "leadership lost");
                }
                () = &mut stop => {
                    self.release().await;
                    tracing::info!(lease = %self.name, identity = %self.identity, "stopping: lease released");
                    return;
                }
            }
        }
    }

    /// Waits until this candidate holds the Lease.
    pub async fn acquire(&mut self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => tracing::debug!(lease = %self.name, error = %e, "lease attempt failed"),
            }
            tokio::time::sleep(self.timing.retry_period).await;
        }
    }

    /// Renews until a renewal has failed for `renew_deadline`; returns when leadership is lost.
    async fn keep(&mut self) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::time::sleep(self.timing.retry_period).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewed = Instant::now(),
                Ok(false) => return,
                Err(e) => {
                    tracing::debug!(lease = %self.name, error = %e, "lease renewal failed");
                    if last_renewed.elapsed() >= self.timing.renew_deadline {
                        return;
                    }
                }
            }
        }
    }

    /// Gives the Lease up (best effort), so another candidate takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(&self.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        let _ = self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await;
    }

    /// One round of client-go's `tryAcquireOrRenew`: true when this candidate holds the Lease.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let seconds = self.timing.lease_duration.as_secs().max(1) as i32;
        let Some(mut lease) = self.leases.get_opt(&self.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let held_by_me = spec.holder_identity.as_deref() == Some(&self.identity);
        if !held_by_me && !self.expired(&spec) {
            return Ok(false);
        }
        let new = lease.spec.get_or_insert_with(Default::default);
        if !held_by_me {
            new.acquire_time = Some(now.clone());
            new.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            new.holder_identity = Some(self.identity.clone());
        }
        new.renew_time = Some(now);
        new.lease_duration_seconds = Some(seconds);
        match self
            .leases
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether the holder of `spec` has let it lapse, judged on our clock since we first saw
    /// this exact record. An empty holder is free at once.
    fn expired(&mut self, spec: &LeaseSpec) -> bool {
        if spec
            .holder_identity
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return true;
        }
        let seen = match &self.observed {
            Some((old, at)) if old == spec => *at,
            _ => {
                self.observed = Some((spec.clone(), Instant::now()));
                return false;
            }
        };
        let duration = spec
            .lease_duration_seconds
            .map(|s| Duration::from_secs(s.max(0) as u64))
            .unwrap_or(self.timing.lease_duration);
        seen.elapsed() >= duration
    }
}

/// A candidate identity unique to this process: `<hostname>_<pid>_<random>`.
pub fn process_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "keelson".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{host}_{}_{nanos:08x}", std::process::id())
}
