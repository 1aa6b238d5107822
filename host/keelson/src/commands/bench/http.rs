//! The benchmark's HTTPS client: keelson-client's multiplexed `kube::Client` (HTTP/2 over
//! rustls, with the CA and admin token of the server's kubeconfig). It sends raw requests and
//! reads raw answers, so the load generator decodes no more than it must. Each [`Client`] is
//! one connection, so "16 clients" means 16 connections.

use std::path::Path;
use std::time::Duration;

use ::http::Method;
use anyhow::Context;
use http_body_util::BodyExt;
use serde_json::{json, Value};

/// Timeout of one ordinary request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A streamed answer (a watch).
pub(crate) type Streamed = ::http::Response<kube::client::Body>;

/// Where a server listens and how to authenticate to it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    config: kube::Config,
}

impl Endpoint {
    /// Reads the server's admin kubeconfig (URL, CA, token).
    pub(crate) async fn from_kubeconfig(path: &Path) -> anyhow::Result<Self> {
        let config = keelson_client::config_from_kubeconfig(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        Ok(Self { config })
    }

    /// The same server, authenticating with `token` instead of the kubeconfig's credentials.
    pub(crate) fn with_token(&self, token: &str) -> Self {
        let mut config = self.config.clone();
        config.auth_info = kube::config::AuthInfo {
            token: Some(token.to_string().into()),
            ..Default::default()
        };
        Self { config }
    }

    /// A new client (own connection); `timeout` bounds each whole request, None for watches.
    pub(crate) fn client(&self, timeout: Option<Duration>) -> anyhow::Result<Client> {
        Ok(Client {
            kube: keelson_client::multiplexed(&self.config).context("building the client")?,
            timeout,
        })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> String {
        self.config.cluster_url.to_string()
    }

    /// `n` clients with the ordinary request timeout.
    pub(crate) fn clients(&self, n: usize) -> anyhow::Result<Vec<Client>> {
        (0..n.max(1))
            .map(|_| self.client(Some(REQUEST_TIMEOUT)))
            .collect()
    }
}

/// One client of the API server.
#[derive(Clone)]
pub(crate) struct Client {
    kube: kube::Client,
    timeout: Option<Duration>,
}

impl Client {
    /// Wraps any `kube::Client` (e.g. keelson-client's in-process one), so every route of a
    /// benchmark sends the very same requests.
    pub(crate) fn wrap(kube: kube::Client) -> Self {
        Self {
            kube,
            timeout: Some(REQUEST_TIMEOUT),
        }
    }
}

/// The path of a namespace's ConfigMaps.
pub(crate) fn configmaps(ns: &str) -> String {
    format!("/api/v1/namespaces/{ns}/configmaps")
}

/// The small ConfigMap every create benchmark writes; it carries the `app` label.
pub(crate) fn configmap(name: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "keelson-bench"}},
        "data": {"key": "value", "payload": "0123456789abcdef0123456789abcdef"},
    })
}

impl Client {
    /// Sends a request and returns the response once its status is 2xx (the body unread).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Streamed, String> {
        let body = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let req = ::http::Request::builder()
            .method(method)
            .uri(path)
            .header(::http::header::ACCEPT, "application/json")
            .header(::http::header::CONTENT_TYPE, "application/json")
            .body(kube::client::Body::from(body))
            .map_err(|e| e.to_string())?;
        let sent = self.kube.send(req);
        let resp = match self.timeout {
            Some(t) => tokio::time::timeout(t, sent)
                .await
                .map_err(|_| format!("{path}: timed out after {t:?}"))?,
            None => sent.await,
        }
        .map_err(|e| error_chain(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = read_text(resp).await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(format!("{path}: HTTP {status}: {message}"))
    }

    /// Sends a request and reads the whole body.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(), String> {
        let resp = self.send(method, path, body).await?;
        read_text(resp).await.map(drop)
    }

    /// Sends a request and parses the JSON answer.
    async fn call_json(&self, method: Method, path: &str) -> Result<Value, String> {
        let text = read_text(self.send(method, path, None).await?).await?;
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }

    /// `GET /version`: warms the connection up and tells the negotiated protocol.
    pub(crate) async fn warm_up(&self) -> Result<String, String> {
        let resp = self.send(Method::GET, "/version", None).await?;
        let version = format!("{:?}", resp.version());
        read_text(resp).await?;
        Ok(version)
    }

    /// Creates a namespace (an existing one is fine).
    pub(crate) async fn ensure_namespace(&self, ns: &str) -> Result<(), String> {
        let body = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match self
            .call(Method::POST, "/api/v1/namespaces", Some(&body))
            .await
        {
            Err(e) if e.contains("HTTP 409") => Ok(()),
            other => other,
        }
    }

    /// Creates a small ConfigMap ([`configmap`]).
    pub(crate) async fn create_configmap(&self, ns: &str, name: &str) -> Result<(), String> {
        self.call(Method::POST, &configmaps(ns), Some(&configmap(name)))
            .await
    }

    /// POSTs `body` to `path` (a create), reading and dropping the answer.
    pub(crate) async fn post(&self, path: &str, body: &Value) -> Result<(), String> {
        self.call(Method::POST, path, Some(body)).await
    }

    /// DELETEs `path`.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), String> {
        self.call(Method::DELETE, path, None).await
    }

    /// GETs `path` and parses the JSON answer.
    pub(crate) async fn get_json(&self, path: &str) -> Result<Value, String> {
        self.call_json(Method::GET, path).await
    }

    /// GETs `path` as text (for `/metrics`).
    pub(crate) async fn get_text(&self, path: &str) -> Result<String, String> {
        read_text(self.send(Method::GET, path, None).await?).await
    }

    /// Reads one ConfigMap.
    pub(crate) async fn get_configmap(&self, ns: &str, name: &str) -> Result<(), String> {
        self.call(Method::GET, &format!("{}/{name}", configmaps(ns)), None)
            .await
    }

    /// Lists a namespace's ConfigMaps, reading (not parsing) the answer.
    pub(crate) async fn list_configmaps(&self, ns: &str) -> Result<(), String> {
        self.call(Method::GET, &configmaps(ns), None).await
    }

    /// Lists a namespace's ConfigMaps and returns (item count, list resourceVersion).
    pub(crate) async fn count_configmaps(&self, ns: &str) -> Result<(usize, String), String> {
        let list = self.call_json(Method::GET, &configmaps(ns)).await?;
        let count = list["items"].as_array().map_or(0, Vec::len);
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .ok_or("list without metadata.resourceVersion")?
            .to_string();
        Ok((count, rv))
    }

    /// Opens a watch on a namespace's ConfigMaps from `rv`; the response streams events.
    pub(crate) async fn watch_configmaps(&self, ns: &str, rv: &str) -> Result<Streamed, String> {
        let path = format!("{}?watch=true&resourceVersion={rv}", configmaps(ns));
        self.send(Method::GET, &path, None).await
    }
}

/// Reads a whole answer as text.
async fn read_text(resp: Streamed) -> Result<String, String> {
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| error_chain(&e))?
        .to_bytes();
    String::from_utf8(bytes.to_vec()).map_err(|e| e.to_string())
}

/// An error with its sources, on one line.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
