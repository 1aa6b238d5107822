//! The agent's HTTPS endpoint (the kubelet port, 10250 by default), which the API server's
//! `pods/log` proxies to: `GET /containerLogs/{namespace}/{pod}/{container}` with the kubelet's
//! query parameters (`follow`, `previous`, `tailLines`, `sinceSeconds`, `sinceTime`,
//! `timestamps`, `limitBytes`), and `/exec/{namespace}/{pod}/{container}` (WebSocket, see
//! [`crate::exec_server`]), `/portForward/{namespace}/{pod}` (SPDY, see [`crate::port_forward`])
//! and `/stats/summary` ([`crate::stats`]). It serves a self-signed certificate made on first start (as the
//! kubelet does) and only answers clients presenting a certificate signed by the cluster CA,
//! which only the API server holds; agents themselves authenticate with tokens.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::logs::{render, run_file, LogOptions};
use crate::{Config, Error};

/// The TLS settings of the endpoint: the agent's serving certificate (made and kept in
/// `<data-dir>/tls/`), and client certificates required when a CA is configured.
pub(crate) fn tls_config(config: &Config) -> Result<Arc<rustls::ServerConfig>, Error> {
    let dir = config.data_dir.join("tls");
    std::fs::create_dir_all(&dir)?;
    let (cert_path, key_path) = (dir.join("agent.crt"), dir.join("agent.key"));
    if !(cert_path.exists() && key_path.exists()) {
        let mut names = vec![config.node_name.clone(), "localhost".into()];
        names.extend(config.node_ip.map(|ip| ip.to_string()));
        let made =
            rcgen::generate_simple_self_signed(names).map_err(|e| Error::Tls(e.to_string()))?;
        std::fs::write(&cert_path, made.cert.pem())?;
        std::fs::write(&key_path, made.signing_key.serialize_pem())?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    let certs = rustls_pemfile::certs(&mut std::fs::read(&cert_path)?.as_slice())
        .collect::<Result<Vec<_>, _>>()?;
    let key = rustls_pemfile::private_key(&mut std::fs::read(&key_path)?.as_slice())?
        .ok_or_else(|| Error::Tls("no private key in agent.key".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?;
    let builder = match &config.client_ca_pem {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut pem.as_bytes()) {
                roots.add(cert?).map_err(|e| Error::Tls(e.to_string()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| Error::Tls(e.to_string()))?;
            builder.with_client_cert_verifier(Arc::new(ApiServerOnly { inner: verifier }))
        }
        None => {
            tracing::warn!("no client CA: the log endpoint refuses every client");
            builder.with_client_cert_verifier(Arc::new(RefuseAll))
        }
    };
    let mut tls = builder
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// The API server's own certificate (CN `keelson-apiserver`, signed by the cluster CA) and no
/// other: a node's serving certificate from the same CA must not read another node's logs.
#[derive(Debug)]
struct ApiServerOnly {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
}

/// The common name the API server's certificate carries.
const API_SERVER_CN: &str = "keelson-apiserver";

impl rustls::server::danger::ClientCertVerifier for ApiServerOnly {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        match keelson_auth::authn::x509::user_from_der(end_entity) {
            Ok(user) if user.name == API_SERVER_CN => Ok(verified),
            _ => Err(rustls::Error::General(format!(
                "only the API server ({API_SERVER_CN}) may read logs"
            ))),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A client verifier that accepts nobody (no CA configured).
#[derive(Debug)]
struct RefuseAll;

impl rustls::server::danger::ClientCertVerifier for RefuseAll {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Err(rustls::Error::General("no client CA configured".into()))
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no client CA configured".into()))
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &rustls::pki_types::CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("no client CA configured".into()))
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn options(q: &HashMap<String, String>) -> LogOptions {
    let flag = |k: &str| q.get(k).is_some_and(|v| v == "true" || v == "1");
    LogOptions {
        previous: flag("previous"),
        follow: flag("follow"),
        timestamps: flag("timestamps"),
        tail_lines: q.get("tailLines").and_then(|v| v.parse().ok()),
        since_seconds: q.get("sinceSeconds").and_then(|v| v.parse().ok()),
        since_time: q.get("sinceTime").and_then(|v| v.parse().ok()),
        limit_bytes: q.get("limitBytes").and_then(|v| v.parse().ok()),
    }
}

fn text(code: StatusCode, message: String) -> Response {
    (code, message).into_response()
}

async fn container_logs(
    State(agent): State<Arc<crate::pods::Agent>>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let logs = agent.logs.clone();
    let opts = options(&q);
    let key = (ns, pod.clone(), container.clone());
    let Some(run) = logs.run(&key) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
            ),
        );
    };
    let restart = if opts.previous {
        run.restart - 1
    } else {
        run.restart
    };
    let path = run_file(&run.dir, restart);
    let Ok(content) = tokio::fs::read_to_string(&path).await else {
        let message = match opts.previous {
            true => {
                format!("previous terminated container \"{container}\" in pod \"{pod}\" not found")
            }
            false => format!("container \"{container}\" in pod \"{pod}\" has no log yet"),
        };
        return text(StatusCode::BAD_REQUEST, message);
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    let first = render(&content, &opts, now);
    if !opts.follow || opts.previous {
        return ([(http::header::CONTENT_TYPE, "text/plain")], first).into_response();
    }
    // Follow: send what is there, then new complete lines until this run has ended.
    let offset = content.len();
    let state = (logs, key, path, offset, restart, Some(first), opts);
    let stream = futures::stream::unfold(
        state,
        |(logs, key, path, mut offset, restart, first, opts)| async move {
            if let Some(first) = first {
                return Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(first)),
                    (logs, key, path, offset, restart, None, opts),
                ));
            }
            loop {
                let ended = logs
                    .run(&key)
                    .is_none_or(|r| !r.running || r.restart != restart);
                let content = tokio::fs::read(&path).await.unwrap_or_default();
                let complete = content[offset.min(content.len())..]
                    .iter()
                    .rposition(|b| *b == b'\n')
                    .map(|i| offset + i + 1);
                if let Some(end) = complete {
                    let chunk = String::from_utf8_lossy(&content[offset..end]).into_owned();
                    offset = end;
                    let opts = LogOptions {
                        tail_lines: None,
                        since_seconds: None,
                        since_time: None,
                        ..opts.clone()
                    };
                    let bytes = render(&chunk, &opts, k8s_openapi::jiff::Timestamp::now());
                    return Some((
                        Ok(bytes::Bytes::from(bytes)),
                        (logs, key, path, offset, restart, None, opts),
                    ));
                }
                if ended {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    );
    (
        [(http::header::CONTENT_TYPE, "text/plain")],
        axum::body::Body::from_stream(stream),
    )
        .into_response()
}

/// Serves the endpoint on `listener` until dropped.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    agent: Arc<crate::pods::Agent>,
) -> Result<(), Error> {
    let router = axum::Router::new()
        .route(
            "/containerLogs/{ns}/{pod}/{container}",
            axum::routing::get(container_logs),
        )
        .route(
            "/portForward/{ns}/{pod}",
            axum::routing::get(crate::port_forward::handle).post(crate::port_forward::handle),
        )
        .route(
            // `exec` and `attach`.
            "/{verb}/{ns}/{pod}/{container}",
            axum::routing::get(crate::exec_server::stream).post(crate::exec_server::stream),
        )
        .route(
            "/stats/summary",
            axum::routing::get(|State(agent): State<Arc<crate::pods::Agent>>| async move {
                let body = crate::stats::summary(&agent).await.to_string();
                ([(http::header::CONTENT_TYPE, "application/json")], body)
            }),
        )
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(agent);
    let acceptor = TlsAcceptor::from(tls);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, router) = (acceptor.clone(), router.clone());
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(
                Duration::from_secs(10),
                acceptor.accept(stream),
            )
            .await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
            };
            let service = TowerToHyperService::new(router);
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection_with_upgrades(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "log connection ended with an error");
            }
        });
    }
}
