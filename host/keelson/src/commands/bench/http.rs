//! The benchmark's HTTPS client: reqwest over rustls, trusting only the server's CA, sending the
//! admin bearer token. Each [`Client`] is one connection pool (with HTTP/2, one connection), so
//! "16 clients" means 16 connections.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use reqwest::Method;
use serde_json::{json, Value};

/// Timeout of one ordinary request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// Where a server listens and how to authenticate to it.
#[derive(Clone)]
pub(crate) struct Endpoint {
    base: Arc<str>,
    auth: Arc<str>,
    ca: reqwest::Certificate,
}

impl Endpoint {
    /// Reads the admin token and CA that the server wrote into its data dir.
    pub(crate) fn from_data_dir(data_dir: &Path, port: u16) -> anyhow::Result<Self> {
        let token = std::fs::read_to_string(data_dir.join("token")).context("reading the token")?;
        let ca = std::fs::read(data_dir.join("tls/ca.crt")).context("reading the CA")?;
        Ok(Self {
            base: format!("https://127.0.0.1:{port}").into(),
            auth: format!("Bearer {}", token.trim()).into(),
            ca: reqwest::Certificate::from_pem(&ca).context("parsing the CA")?,
        })
    }

    /// A new client (own connection); `timeout` bounds each whole request, None for watches.
    pub(crate) fn client(&self, timeout: Option<Duration>) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(self.ca.clone())
            .connect_timeout(Duration::from_secs(10))
            .no_proxy();
        if let Some(t) = timeout {
            builder = builder.timeout(t);
        }
        Ok(Client {
            http: builder.build().context("building the HTTPS client")?,
            base: self.base.clone(),
            auth: self.auth.clone(),
        })
    }

    /// The server's base URL.
    pub(crate) fn base(&self) -> &str {
        &self.base
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
    http: reqwest::Client,
    base: Arc<str>,
    auth: Arc<str>,
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
    ) -> Result<reqwest::Response, String> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, &*self.auth)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|e| error_chain(&e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or(text);
        Err(format!("{path}: HTTP {status}: {message}"))
    }

    /// Sends a request and reads the whole body.
    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(), String> {
        let resp = self.send(method, path, body).await?;
        resp.bytes().await.map_err(|e| error_chain(&e))?;
        Ok(())
    }

    /// Sends a request and parses the JSON answer.
    async fn call_json(&self, method: Method, path: &str) -> Result<Value, String> {
        let resp = self.send(method, path, None).await?;
        resp.json().await.map_err(|e| error_chain(&e))
    }

    /// `GET /version`: warms the connection up and tells the negotiated protocol.
    pub(crate) async fn warm_up(&self) -> Result<String, String> {
        let resp = self.send(Method::GET, "/version", None).await?;
        let version = format!("{:?}", resp.version());
        resp.bytes().await.map_err(|e| error_chain(&e))?;
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
        let resp = self.send(Method::GET, path, None).await?;
        resp.text().await.map_err(|e| error_chain(&e))
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
    pub(crate) async fn watch_configmaps(
        &self,
        ns: &str,
        rv: &str,
    ) -> Result<reqwest::Response, String> {
        let path = format!("{}?watch=true&resourceVersion={rv}", configmaps(ns));
        self.send(Method::GET, &path, None).await
    }
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
