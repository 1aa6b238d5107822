//! Where a component finds its API server: the kubeconfig path (flag, `$KUBECONFIG`, else the
//! server's data-dir kubeconfig) and a keelson-client `kube::Client` for it, for the components
//! the binary runs against a server (`keelson scheduler`, `controller-manager`, `sim`, `plugin`).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The kubeconfig to use: the flag, else `$KUBECONFIG`, else the server's data-dir kubeconfig.
pub(crate) fn kubeconfig_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| super::server::default_data_dir().join("kubeconfig.yaml"))
}

/// A client for the current context of the kubeconfig at `path`.
pub(crate) async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    keelson_client::from_kubeconfig(path)
        .await
        .with_context(|| format!("connecting with {}", path.display()))
}
