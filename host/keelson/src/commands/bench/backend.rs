//! The systems under test: an etcd process for the baseline backend, and the API server started
//! in this process (with the built-in controllers, as `keelson server` runs it) over either store.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use super::http::Endpoint;

/// A store backend to benchmark.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    /// The embedded SQLite revision log.
    Embedded,
    /// A real etcd started from PATH on free loopback ports.
    Etcd,
}

impl Backend {
    /// The name printed in tables.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Etcd => "etcd",
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
    /// The in-process client (`ApiServer::client()`): the same router, no socket or TLS.
    pub(crate) in_process: keelson_apiserver::ApiClient,
    _data: tempfile::TempDir,
    etcd: Option<Etcd>,
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
    let data = tempfile::Builder::new()
        .prefix("keelson-bench-")
        .tempdir_in(base)
        .context("creating the data dir")?;
    let etcd = match backend {
        Backend::Embedded => None,
        Backend::Etcd => Some(Etcd::start(base).await?),
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
        // Everything else (admission plugins, …) as `keelson server` defaults it.
        ..keelson_apiserver::Config::default()
    };
    let data_dir = config.data_dir.clone();
    let started = Instant::now();
    let running = tokio::time::timeout(Duration::from_secs(60), keelson_apiserver::start(config))
        .await
        .map_err(|_| anyhow::anyhow!("the server did not start within 60 s"))?
        .context("starting the server")?;
    let cold_start = started.elapsed();
    keelson_controllers::start(running.api.client());
    let endpoint = Endpoint::from_data_dir(&data_dir, running.secure_port)?;
    Ok(Started {
        endpoint,
        cold_start,
        in_process: running.api.client(),
        _data: data,
        etcd,
    })
}

/// An etcd process on free loopback ports with its data in a temp dir; killed on drop.
struct Etcd {
    child: Child,
    _dir: tempfile::TempDir,
    endpoint: String,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Etcd {
    async fn start(base: &Path) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("keelson-bench-etcd-")
            .tempdir_in(base)
            .context("creating etcd's data dir")?;
        let (client, peer) = (free_port()?, free_port()?);
        let endpoint = format!("127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        let client_url = format!("http://{endpoint}");
        let spawned = Command::new("etcd")
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &peer_url])
            .args(["--initial-advertise-peer-urls", &peer_url])
            .args(["--initial-cluster", &format!("default={peer_url}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StartError::Skip(
                    "etcd is not installed (no `etcd` on PATH; Debian: apt install etcd-server)"
                        .into(),
                ))
            }
            Err(e) => return Err(anyhow::Error::new(e).context("starting etcd").into()),
        };
        let mut etcd = Etcd {
            child,
            _dir: dir,
            endpoint,
        };
        // Ready means a leader is elected (`/health`), so the server's cold start excludes
        // etcd's own.
        let health = format!("{client_url}/health");
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .no_proxy()
            .build()
            .context("building the etcd health client")?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(resp) = http.get(&health).send().await {
                if resp.text().await.is_ok_and(|t| t.contains("\"true\"")) {
                    return Ok(etcd);
                }
            }
            if let Ok(Some(status)) = etcd.child.try_wait() {
                return Err(anyhow::anyhow!("etcd exited at start: {status}").into());
            }
            if Instant::now() >= deadline {
                return Err(anyhow::anyhow!("etcd was not healthy within 20 s").into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
