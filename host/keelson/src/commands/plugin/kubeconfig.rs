//! Connecting to a Keelson (or any Kubernetes) API server the way kubectl does: the current
//! context of a kubeconfig (`--kubeconfig`, `$KUBECONFIG`, or the server's data dir), through
//! keelson-client.

use std::path::PathBuf;

use anyhow::Context;
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
        let path = self.kubeconfig.clone().unwrap_or_else(|| {
            let root = if std::env::var("USER").as_deref() == Ok("root") {
                PathBuf::from("/var/lib/keelson")
            } else {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".local/share/keelson")
            };
            root.join("kubeconfig.yaml")
        });
        keelson_client::from_kubeconfig(&path)
            .await
            .with_context(|| format!("connecting with {}", path.display()))
    }
}
