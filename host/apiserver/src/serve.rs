//! Starting the server: store, credentials, bootstrap objects, the HTTPS listener (rustls,
//! HTTP/1.1 and HTTP/2) and the optional loopback-only plaintext listener; and stopping it
//! gracefully: stop accepting, end watches, drain in-flight requests, flush the store.

use std::net::SocketAddr;
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::start_error::{IoContext, StartError};
use crate::{bootstrap, data_dir, handlers, pki, wasm, ApiServer, Config};

/// A running server.
pub struct Running {
    /// The shared state (for in-process components).
    pub api: Arc<ApiServer>,
    /// The bound HTTPS port.
    pub secure_port: u16,
    /// The bound plaintext port, if any.
    pub insecure_port: Option<u16>,
    /// Path of the written kubeconfig.
    pub kubeconfig: std::path::PathBuf,
    /// Every accepted connection, so shutdown can drain them.
    connections: Arc<std::sync::Mutex<Option<GracefulShutdown>>>,
}

impl Running {
    /// Graceful shutdown: stops accepting connections, ends open watches (clients re-watch
    /// elsewhere), lets in-flight requests finish for up to `drain`, then flushes the store.
    /// Returns how many connections were still open when the drain began.
    pub async fn shutdown(self, drain: std::time::Duration) -> Result<(), keelson_store::Error> {
        self.api.stopping.cancel();
        let graceful = self
            .connections
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(graceful) = graceful {
            let open = graceful.count();
            tracing::info!(connections = open, "draining connections");
            if tokio::time::timeout(drain, graceful.shutdown())
                .await
                .is_err()
            {
                tracing::warn!(?drain, "connections still open after the drain period");
            }
        }
        self.api.store.flush().await?;
        tracing::info!("store flushed; shutdown complete");
        Ok(())
    }
}

/// The identity of the API server's own loopback requests.
pub(crate) fn loopback_user() -> crate::UserInfo {
    crate::UserInfo::new("system:apiserver", &["system:masters"])
}

/// Opens the store, prepares credentials and bootstrap objects, and starts serving; Wasm
/// plugins load through `plugin_host` (one engine and cache shared with the other parts).
pub async fn start(
    config: Config,
    plugin_host: keelson_plugin_host::PluginHost,
) -> Result<Running, StartError> {
    let dir = config.data_dir.display().to_string();
    data_dir::secure(&config.data_dir).context(|| format!("securing {dir}"))?;
    let encryption = match &config.encryption_provider_config {
        Some(path) => crate::encryption_config::load(path, &crate::Registry::builtin())?,
        None => vec![],
    };
    let store =
        keelson_store::Store::open_encrypted(&config.store, &config.data_dir, encryption).await?;
    store.spawn_compactor(config.compaction_interval);
    if let Some(token) = config
        .cluster_token
        .as_deref()
        .filter(|_| store.backend().kind() == "etcd")
    {
        let (data_dir, issuer) = (&config.data_dir, &config.auth.service_account_issuer);
        crate::cluster_secrets::sync(&store, data_dir, token, |dir| {
            pki::ensure(dir)?;
            keelson_auth::authn::serviceaccount::ServiceAccountTokens::ensure(
                &dir.join("tls"),
                issuer,
            )
            .map(|_| ())
            .map_err(std::io::Error::other)
        })
        .await?;
    }
    let creds = pki::ensure(&config.data_dir).context(|| format!("credentials in {dir}"))?;
    let chain = keelson_admission::Chain::new(&config.admission)?;
    tracing::info!(plugins = ?chain.enabled(), "admission chain");
    let auth = crate::Auth::load(
        &config.auth,
        &config.data_dir.join("tls"),
        &creds.admin_token,
    )?;
    let api = ApiServer::new(store, auth, chain, plugin_host, config.data_dir.clone());
    api.shared_reads
        .store(config.shared_reads, std::sync::atomic::Ordering::Relaxed);
    if let Some((policy, log)) = &config.audit {
        let _ = api.audit.set(crate::audit::Audit::open(policy, log)?);
    }
    crate::certs::spawn_expiry_watch(&api.metrics, config.data_dir.clone());
    let _ = api.node_token.set(creds.node_token.clone());
    let tls_dir = config.data_dir.join("tls");
    let serving = std::fs::read_to_string(tls_dir.join("server.crt"))
        .and_then(|c| Ok((c, std::fs::read_to_string(tls_dir.join("server.key"))?)));
    match serving
        .map_err(|e| e.to_string())
        .and_then(|(c, k)| handlers::kubelet_client(&c, &k))
    {
        Ok(client) => {
            let _ = api.kubelet_client.set(client);
        }
        Err(e) => tracing::warn!(error = %e, "no client for agents: pods/log is unavailable"),
    }

    let address = format!("{}:{}", config.bind_address, config.secure_port);
    let listener = TcpListener::bind((config.bind_address.as_str(), config.secure_port))
        .await
        .context(|| format!("listening on {address}"))?;
    let secure_port = listener
        .local_addr()
        .context(|| format!("listening on {address}"))?
        .port();
    // Service IP/NodePort ranges agree with the Services before anything is allocated
    // (a data dir from before the ranges were stored, a crash between allocation and write).
    crate::strategy::service::repair(&api)
        .await
        .map_err(|message| StartError::Bootstrap {
            what: "the Service IP and NodePort ranges".into(),
            message,
        })?;
    crate::strategy::service::spawn_repair(&api);
    bootstrap::run(&api, secure_port).await?;

    let kubeconfig = config.data_dir.join("kubeconfig.yaml");
    for path in std::iter::once(&kubeconfig).chain(config.write_kubeconfig.as_ref()) {
        pki::write_kubeconfig(path, &creds, secure_port)
            .context(|| format!("writing {}", path.display()))?;
    }

    let loopback = keelson_client::in_process(handlers::router(api.clone()), loopback_user());
    let _ = api.loopback.set(loopback.clone());
    crate::auth::reconcile_policy(&loopback)
        .await
        .map_err(|e| StartError::Bootstrap {
            what: "the bootstrap RBAC policy".into(),
            message: e.to_string(),
        })?;
    crate::auth::feed::start(&api, loopback.clone()).await;
    crate::auth::csr_signer::start(&api, loopback.clone(), config.data_dir.clone());
    wasm::start(&api, loopback);

    let (tls, verifier) = pki::server_tls(&creds, &config.data_dir)
        .context(|| "loading the serving certificate".into())?;
    let tls = TlsAcceptor::from(Arc::new(tls));
    let router = handlers::router(api.clone());
    let connections = Arc::new(std::sync::Mutex::new(Some(GracefulShutdown::new())));
    let listening = Listening {
        stopping: api.stopping.clone(),
        connections: connections.clone(),
        verifier,
    };
    tokio::spawn(
        listening
            .clone()
            .accept(listener, Some(tls), router.clone()),
    );

    let insecure_port = match config.insecure_port {
        Some(port) => {
            let plain = TcpListener::bind(("127.0.0.1", port))
                .await
                .context(|| format!("listening on 127.0.0.1:{port}"))?;
            let bound = plain
                .local_addr()
                .context(|| format!("listening on 127.0.0.1:{port}"))?
                .port();
            let admin = router.layer(axum::Extension(crate::UserInfo::admin()));
            tokio::spawn(listening.accept(plain, None, admin));
            Some(bound)
        }
        None => None,
    };
    tracing::info!(port = secure_port, store = %config.store, "serving the Kubernetes API");
    Ok(Running {
        api,
        secure_port,
        insecure_port,
        kubeconfig,
        connections,
    })
}

/// What the accept loops share: the stop signal and the connection tracker.
#[derive(Clone)]
struct Listening {
    verifier: Arc<crate::auth::client_cert::RequestClientCert>,
    stopping: tokio_util::sync::CancellationToken,
    connections: Arc<std::sync::Mutex<Option<GracefulShutdown>>>,
}

impl Listening {
    /// Accepts connections (TLS when `tls` is given) until shutdown begins.
    async fn accept(self, listener: TcpListener, tls: Option<TlsAcceptor>, router: axum::Router) {
        loop {
            let (stream, peer) = tokio::select! {
                () = self.stopping.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let (this, tls, router) = (self.clone(), tls.clone(), router.clone());
            tokio::spawn(async move {
                let Some(tls) = tls else {
                    return this.serve(TokioIo::new(stream), router, peer).await;
                };
                match tokio::time::timeout(std::time::Duration::from_secs(10), tls.accept(stream))
                    .await
                {
                    Ok(Ok(stream)) => {
                        let peer_cert = crate::auth::client_cert::peer_certificate(
                            stream.get_ref().1,
                            &this.verifier,
                        );
                        let router = match peer_cert {
                            Some(cert) => router.layer(axum::Extension(cert)),
                            None => router,
                        };
                        this.serve(TokioIo::new(stream), router, peer).await
                    }
                    Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    }

    /// Serves one connection, tracked for graceful shutdown.
    async fn serve<I>(&self, io: I, router: axum::Router, peer: SocketAddr)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let service = TowerToHyperService::new(router);
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder
            .serve_connection_with_upgrades(io, service)
            .into_owned();
        let watched = {
            let guard = self.connections.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(graceful) => graceful.watch(conn),
                // Shutdown already began: refuse politely by dropping the connection.
                None => return,
            }
        };
        if let Err(e) = watched.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
