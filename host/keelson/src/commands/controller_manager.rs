//! `keelson controller-manager`: the built-in controllers as a process of their own, against any
//! server named by a kubeconfig — the same code `keelson server` runs in-process. With
//! `--leader-elect` (the default, as in Kubernetes) only the holder of the Lease
//! `kube-system/kube-controller-manager` acts, so several managers can run side by side.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Flags of `keelson controller-manager`.
#[derive(Args, Debug)]
pub(crate) struct ControllerManagerCommand {
    /// Kubeconfig of the server to manage (its current context).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    leader: super::leader::LeaderElectionArgs,
}

impl ControllerManagerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let client = keelson_client::from_kubeconfig(&self.kubeconfig)
            .await
            .with_context(|| format!("connecting with {}", self.kubeconfig.display()))?;
        let controllers = self
            .leader
            .run(client.clone(), keelson_controllers::LEASE_NAME, || {
                keelson_controllers::run(keelson_controllers::Credentials::shared(client.clone()))
            });
        tokio::select! {
            () = controllers => Ok(()),
            signal = super::shutdown_signal() => {
                tracing::info!("shutting down");
                signal
            }
        }
    }
}
