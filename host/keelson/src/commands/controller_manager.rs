//! `keelson controller-manager`: the built-in controllers as a process of their own, against any
//! server named by a kubeconfig — the same code `keelson server` runs in-process. With
//! `--leader-elect` (the default, as in Kubernetes) only the holder of the Lease
//! `kube-system/kube-controller-manager` acts, so several managers can run side by side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Flags of `keelson controller-manager`.
#[derive(Args, Debug)]
pub(crate) struct ControllerManagerCommand {
    /// Kubeconfig of the server to manage (its current context).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Elect a leader on the Lease kube-system/kube-controller-manager before acting.
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

impl ControllerManagerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let client = keelson_client::from_kubeconfig(&self.kubeconfig)
            .await
            .with_context(|| format!("connecting with {}", self.kubeconfig.display()))?;
        let identity = keelson_client::leader::process_identity();
        tracing::info!(%identity, leader_elect = self.leader_elect, "controller manager starting");
        let controllers = async {
            if self.leader_elect {
                let timing = keelson_client::leader::Timing {
                    lease_duration: Duration::from_secs(self.leader_elect_lease_duration.max(1)),
                    renew_deadline: Duration::from_secs(self.leader_elect_renew_deadline.max(1)),
                    retry_period: Duration::from_secs(self.leader_elect_retry_period.max(1)),
                };
                keelson_controllers::run_elected(client, &identity, timing).await;
            } else {
                keelson_controllers::run(client).await;
            }
        };
        tokio::select! {
            () = controllers => Ok(()),
            signal = super::shutdown_signal() => {
                tracing::info!("shutting down");
                signal
            }
        }
    }
}
