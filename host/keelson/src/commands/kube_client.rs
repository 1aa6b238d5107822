//! A `kube::Client` from a kubeconfig file, for the components the binary runs against an API
//! server (`keelson scheduler`, `keelson sim`, the server's own scheduler until the in-process
//! client exists).

use std::path::{Path, PathBuf};

use anyhow::Context;

/// The kubeconfig to use: the flag, else `$KUBECONFIG`, else the server's data-dir kubeconfig.
pub(crate) fn kubeconfig_path(flag: Option<PathBuf>) -> PathBuf {
    flag.unwrap_or_else(|| {
        let root = if std::env::var("USER").as_deref() == Ok("root") {
            PathBuf::from("/var/lib/keelson")
        } else {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".local/share/keelson")
        };
        root.join("kubeconfig.yaml")
    })
}

/// A client for the current context of the kubeconfig at `path`.
pub(crate) async fn from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("loading kubeconfig {}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}
