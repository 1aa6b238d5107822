//! `--leader-elect` and its timing flags, as Kubernetes' components take them, shared by the
//! commands that run a component against a server (`controller-manager`, `scheduler`).

use std::future::Future;
use std::time::Duration;

use clap::Args;
use keelson_client::leader::{process_identity, LeaderElector, Timing};

/// Leader election flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct LeaderElectionArgs {
    /// Elect a leader on the component's Lease in kube-system before acting (`keelson
    /// server`: only with a shared store; the embedded store has one server).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_elect: bool,
    /// Seconds a Lease holds without renewal before another candidate may take it.
    #[arg(long, default_value_t = 15)]
    leader_elect_lease_duration: u64,
    /// Seconds the leader keeps retrying a failing renewal before it stops leading.
    #[arg(long, default_value_t = 10)]
    leader_elect_renew_deadline: u64,
    /// Seconds between acquire and renew attempts.
    #[arg(long, default_value_t = 2)]
    leader_elect_retry_period: u64,
}

impl LeaderElectionArgs {
    /// Runs `work` — at once without `--leader-elect`, else whenever this process holds the
    /// Lease `kube-system/<lease>` (work is cancelled when leadership is lost and started again
    /// when it is won back) — until `stop` completes; a held Lease is then given up at once.
    pub(crate) async fn run<F, Fut>(
        &self,
        client: kube::Client,
        lease: &str,
        mut work: F,
        stop: impl Future<Output = ()>,
    ) where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        if !self.leader_elect {
            tokio::select! {
                () = work() => {}
                () = stop => {}
            }
            return;
        }
        let identity = process_identity();
        tracing::info!(%identity, %lease, "campaigning for leadership");
        LeaderElector::new(client, "kube-system", lease, &identity)
            .with_timing(self.timing())
            .run_until(work, stop)
            .await;
    }

    /// Whether `--leader-elect` is on.
    pub(crate) fn enabled(&self) -> bool {
        self.leader_elect
    }

    /// The election's timing from the flags.
    pub(crate) fn timing(&self) -> Timing {
        Timing {
            lease_duration: Duration::from_secs(self.leader_elect_lease_duration.max(1)),
            renew_deadline: Duration::from_secs(self.leader_elect_renew_deadline.max(1)),
            retry_period: Duration::from_secs(self.leader_elect_retry_period.max(1)),
        }
    }
}

/// Completes on SIGTERM or SIGINT (or at once if the handlers cannot be installed).
pub(crate) async fn stop_on_signal() {
    if let Err(e) = super::shutdown_signal().await {
        tracing::warn!(error = %e, "no signal handler");
    }
}
