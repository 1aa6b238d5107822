//! The systems under test: an etcd process for the baseline backend, and the API server started
//! in this process (with the built-in controllers, as `keelson server` runs it) over either store.

use std::path::Path;

use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use keelson_store::local_etcd::LocalEtcd;

use super::http::Endpoint;

/// A store backend to benchmark.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The embedded SQLite revision log.
    Embedded,
    /// A real etcd started from PATH on free loopback ports.
    Etcd,
    /// The embedded store with shared reads off (lists read the store, every list and watcher
    /// decodes and encodes each object itself): the baseline for the watch cache's lists and
    /// shared watch encoding.
    EmbeddedUnshared,
}

impl Backend {
    /// The name printed in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
            Backend::EmbeddedUnshared => "embedded-unshared",
        }
    }
}

/// A started backend: the server, its data dir and (for etcd) the etcd process. The server
/// cannot be stopped, so this lives until the whole run ends.
pub(crate) struct Started {
    /// How to reach the server.
    pub(crate) endpoint: Endpoint,
    /// Time from `start()` to a bound, serving listener.
    pub(crate) cold_start: Duration,
    /// The in-process client (keelson-client over the router: no socket or TLS), as admin.
    pub(crate) in_process: kube::Client,
    /// The server's admin kubeconfig.
    pub(crate) kubeconfig: std::path::PathBuf,
    /// The server itself (for in-process clients of other identities).
    pub(crate) api: std::sync::Arc<keelson_apiserver::ApiServer>,
    _data: tempfile::TempDir,
    etcd: Option<LocalEtcd>,
}

impl Started {
    /// Whether this backend runs its own etcd.
    pub(crate) fn has_etcd(&self) -> bool {
        self.etcd.is_some()
    }
}

/// Why a backend did not start.
pub(crate) enum StartError {
    /// The backend is unavailable here (etcd not installed); skip it.
    Skip(String),
    /// It should have started but did not.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for StartError {
    fn from(e: anyhow::Error) -> Self {
        StartError::Failed(e)
    }
}

/// Starts the server on `backend` in a fresh temp dir under `base`.
pub(crate) async fn start(backend: Backend, base: &Path) -> Result<Started, StartError> {
    start_with(backend, base, Default::default()).await
}

/// Like [`start`], with the given authentication and authorization settings.
pub(crate) async fn start_with(
    backend: Backend,
    base: &Path,
    auth: keelson_apiserver::AuthConfig,
) -> Result<Started, StartError> {
    launch(backend, base, auth, true).await
}

/// Like [`start`], without the built-in controllers (the caller runs them as it likes).
pub(crate) async fn start_without_controllers(
    backend: Backend,
    base: &Path,
) -> Result<Started, StartError> {
    launch(backend, base, Default::default(), false).await
}

async fn launch(
    backend: Backend,
    base: &Path,
    auth: keelson_apiserver::AuthConfig,
    controllers: bool,
) -> Result<Started, StartError> {
    let data = tempfile::Builder::new()
        .prefix("keelson-bench-")
        .tempdir_in(base)
        .context("creating the data dir")?;
    let etcd = match backend {
        Backend::Embedded | Backend::EmbeddedUnshared => None,
        Backend::Etcd => Some(start_etcd().await?),
    };
    let store = etcd.as_ref().map_or_else(
        || "embedded".to_string(),
        |e| format!("etcd://{}", e.endpoint),
    );
    let config = keelson_apiserver::Config {
        data_dir: data.path().join("server"),
        secure_port: 0,
        insecure_port: None,
        bind_address: "127.0.0.1".into(),
        store,
        write_kubeconfig: None,
        auth,
        shared_reads: backend != Backend::EmbeddedUnshared,
        cluster_token: None,
        // Everything else (admission plugins, …) as `keelson server` defaults it.
        ..keelson_apiserver::Config::default()
    };
    let data_dir = config.data_dir.clone();
    let started = Instant::now();
    let plugin_host = keelson_plugin_host::PluginHost::new(data_dir.join("plugin-cache"))
        .context("creating the plugin host")?;
    let running = tokio::time::timeout(
        Duration::from_secs(60),
        keelson_apiserver::start(config, plugin_host),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the server did not start within 60 s"))?
    .context("starting the server")?;
    let cold_start = started.elapsed();
    let router = keelson_apiserver::router(running.api.clone());
    if controllers {
        tokio::spawn(keelson_controllers::run(
            crate::commands::server::controller_credentials(&running.api),
            Default::default(),
        ));
    }
    let endpoint = Endpoint::from_kubeconfig(&running.kubeconfig).await?;
    Ok(Started {
        endpoint,
        cold_start,
        in_process: keelson_client::in_process(router, keelson_client::UserInfo::admin()),
        kubeconfig: running.kubeconfig.clone(),
        api: running.api.clone(),
        _data: data,
        etcd,
    })
}

/// A real etcd on free loopback ports (healthy before the server starts, so the server's cold
/// start excludes etcd's own); skipped when etcd is not installed.
async fn start_etcd() -> Result<LocalEtcd, StartError> {
    match tokio::task::spawn_blocking(LocalEtcd::start)
        .await
        .context("starting etcd")?
    {
        Ok(etcd) => Ok(etcd),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StartError::Skip(
            "etcd is not installed (no `etcd` on PATH; Debian: apt install etcd-server)".into(),
        )),
        Err(e) => Err(anyhow::Error::new(e).context("starting etcd").into()),
    }
}
