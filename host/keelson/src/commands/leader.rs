//! `--leader-elect` and its timing flags, as Kubernetes' components take them, shared by the
//! commands that run a component against a server (`controller-manager`, `scheduler`).

use std::future::Future;
use std::time::Duration;

use clap::Args;
use keelson_client::leader::{process_identity, LeaderElector, Timing};

/// Leader election flags.
#[derive(Args, Debug, Clone)]
pub(crate) struct LeaderElectionArgs {
    /// Elect a leader on the component's Lease in kube-system before acting.
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
    /// when it is won back).
    pub(crate) async fn run<F, Fut>(&self, client: kube::Client, lease: &str, mut work: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        if !self.leader_elect {
            return work().await;
        }
        let identity = process_identity();
        tracing::info!(%identity, %lease, "campaigning for leadership");
        let timing = Timing {
            lease_duration: Duration::from_secs(self.leader_elect_lease_duration.max(1)),
            renew_deadline: Duration::from_secs(self.leader_elect_renew_deadline.max(1)),
            retry_period: Duration::from_secs(self.leader_elect_retry_period.max(1)),
        };
        LeaderElector::new(client, "kube-system", lease, &identity)
            .with_timing(timing)
            .run(work)
            .await;
    }
}
