//! The remote client: a [`kube::Client`] from a kubeconfig file (HTTPS, the CA and
//! credentials it embeds), for components running outside the server's process.

use std::path::Path;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;

/// A client for the cluster and user of `path`'s current context.
pub async fn from_kubeconfig(path: &Path) -> Result<kube::Client, Error> {
    let wrap = |source| Error::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(wrap)?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(wrap)?;
    Ok(kube::Client::try_from(config)?)
}
