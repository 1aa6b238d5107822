//! The remote client: a [`kube::Client`] from a kubeconfig file (HTTPS, the CA and
//! credentials it embeds), for components running outside the server's process — kube's
//! standard HTTP/1.1 client ([`from_kubeconfig`]), or one that speaks HTTP/2 when the server
//! offers it ([`multiplexed`]), so one connection carries many requests and watches.

use std::path::Path;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::ConfigExt;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tower::{BoxError, ServiceBuilder};

use crate::Error;

/// The connection settings of `path`'s current context.
pub async fn config_from_kubeconfig(path: &Path) -> Result<kube::Config, Error> {
    let wrap = |source| Error::Kubeconfig {
        path: path.display().to_string(),
        source,
    };
    let kubeconfig = Kubeconfig::read_from(path).map_err(wrap)?;
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(wrap)
}

/// A client for the cluster and user of `path`'s current context.
pub async fn from_kubeconfig(path: &Path) -> Result<kube::Client, Error> {
    let config = config_from_kubeconfig(path).await?;
    Ok(kube::Client::try_from(config)?)
}

/// A client with its own connection that negotiates HTTP/2 (ALPN `h2`, falling back to
/// HTTP/1.1), with `config`'s server, CA and credentials.
pub fn multiplexed(config: &kube::Config) -> Result<kube::Client, Error> {
    let tls = config.rustls_client_config()?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    // Small writes (a request's HEADERS then DATA frame) must not wait for delayed ACKs.
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(BoxError::from)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace.clone()))
}
