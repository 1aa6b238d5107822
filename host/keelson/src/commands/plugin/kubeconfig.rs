//! Connecting to a Keelson (or any Kubernetes) API server the way kubectl does: the current
//! context of a kubeconfig (`--kubeconfig`, `$KUBECONFIG`, or the server's data dir), through
//! keelson-client.

use std::path::PathBuf;

use clap::Args;

/// Where the API server is.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// kubeconfig to use [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

impl ConnectArgs {
    /// A client for the kubeconfig's current context.
    pub(crate) async fn connect(&self) -> anyhow::Result<kube::Client> {
        let path = crate::commands::kube_client::kubeconfig_path(self.kubeconfig.clone());
        crate::commands::kube_client::from_kubeconfig(&path).await
    }
}
