//! Connecting to a Keelson (or any Kubernetes) API server the way kubectl does: the current
//! context of a kubeconfig (`--kubeconfig`, `$KUBECONFIG`, or the server's data dir), with its
//! CA and bearer token.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine;
use clap::Args;
use serde_json::Value;

/// Where the API server is.
#[derive(Args, Debug, Clone)]
pub(crate) struct ConnectArgs {
    /// kubeconfig to use [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// An authenticated HTTPS client for one server.
pub(crate) struct Connection {
    pub(crate) server: String,
    pub(crate) client: reqwest::Client,
}

impl ConnectArgs {
    pub(crate) fn connect(&self) -> anyhow::Result<Connection> {
        let path = self.kubeconfig.clone().unwrap_or_else(|| {
            let root = if std::env::var("USER").as_deref() == Ok("root") {
                PathBuf::from("/var/lib/keelson")
            } else {
                PathBuf::from(std::env::var("HOME").unwrap_or_default())
                    .join(".local/share/keelson")
            };
            root.join("kubeconfig.yaml")
        });
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        let doc: Value =
            serde_saphyr::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let context_name = doc["current-context"].as_str().unwrap_or_default();
        let named = |list: &str, name: &str| {
            doc[list]
                .as_array()
                .and_then(|a| a.iter().find(|e| e["name"] == name).cloned())
                .unwrap_or(Value::Null)
        };
        let context = named("contexts", context_name);
        let cluster = named(
            "clusters",
            context["context"]["cluster"].as_str().unwrap_or_default(),
        );
        let user = named(
            "users",
            context["context"]["user"].as_str().unwrap_or_default(),
        );
        let server = cluster["cluster"]["server"]
            .as_str()
            .context("kubeconfig has no server for the current context")?
            .trim_end_matches('/')
            .to_string();
        let mut builder = reqwest::Client::builder();
        if let Some(ca) = cluster["cluster"]["certificate-authority-data"].as_str() {
            let pem = base64::engine::general_purpose::STANDARD
                .decode(ca)
                .context("certificate-authority-data is not base64")?;
            builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
        }
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(token) = user["user"]["token"].as_str() {
            headers.insert(
                reqwest::header::AUTHORIZATION,
                format!("Bearer {token}").parse()?,
            );
        }
        let client = builder.default_headers(headers).build()?;
        Ok(Connection { server, client })
    }
}
