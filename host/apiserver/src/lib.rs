//! Kubernetes API server for Keelson: authentication, discovery, OpenAPI, CRUD, watch, the four
//! patch types, Table output and subresources, over the revision store. Every served kind is a
//! row in the [`registry`]; handlers are generic over it and only decode requests and encode
//! answers; the REST layer below them (`rest`) owns the write pipeline through admission to
//! the store. In-process components call [`router`] through keelson-client under their own
//! identity; [`Running::shutdown`] stops the server gracefully.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = keelson_apiserver::Config { data_dir: "/tmp/keelson".into(), ..Default::default() };
//! let host = keelson_plugin_host::PluginHost::new("/tmp/keelson/plugin-cache")?;
//! let server = keelson_apiserver::start(config, host).await?;
//! println!("serving on port {}", server.secure_port);
//! # Ok(()) }
//! ```

mod admission;
pub mod allocator;
mod audit;
mod auth;
mod bootstrap;
pub mod certs;
mod cluster_secrets;
mod codec;
mod computed;
mod data_dir;
mod decoded;
mod discovery;
mod discovery_v2;
mod encryption_config;
pub mod error;
mod gnostic;
mod handlers;
mod metrics;
mod objects;
mod openapi;
mod patch;
mod pki;
mod protobuf;
mod registry;
mod request;
mod rest;
pub use keelson_apimachinery::selector;
mod serve;
mod start_error;
mod strategy;
mod table;
mod validation;
mod wasm;

use std::path::PathBuf;
use std::sync::Arc;

pub use audit::AuditError;
pub use auth::{Auth, AuthConfig, AuthSetupError, AuthorizationMode};
pub use computed::InProcessComponents;
pub use encryption_config::EncryptionConfigError;
pub use error::{ApiError, ApiResult};
pub use metrics::Metrics;
pub use registry::{Registry, ResourceDef};
pub use serve::{start, Running};
pub use start_error::StartError;

/// How the server is configured (the `keelson server` flags).
#[derive(Debug, Clone)]
pub struct Config {
    /// Where credentials, the kubeconfig and the embedded store live.
    pub data_dir: PathBuf,
    /// HTTPS port (0 = pick a free one).
    pub secure_port: u16,
    /// Plain HTTP port on 127.0.0.1, no authentication (None = off).
    pub insecure_port: Option<u16>,
    /// Address the secure port binds to.
    pub bind_address: String,
    /// `embedded` or `etcd://host:port[,host:port]`.
    pub store: String,
    /// Copy the kubeconfig here too.
    pub write_kubeconfig: Option<PathBuf>,
    /// `--enable-admission-plugins` / `--disable-admission-plugins`.
    pub admission: keelson_admission::ChainConfig,
    /// How often old revisions are compacted away (Kubernetes' `--etcd-compaction-interval`).
    pub compaction_interval: std::time::Duration,
    /// Authentication and authorization.
    pub auth: AuthConfig,
    /// `--encryption-provider-config`: Kubernetes' EncryptionConfiguration for data at rest.
    pub encryption_provider_config: Option<PathBuf>,
    /// `--audit-policy-file` and `--audit-log-path`: Kubernetes' audit Policy and where the
    /// JSON-lines log goes (both needed to audit).
    pub audit: Option<(PathBuf, PathBuf)>,
    /// Lists served from the watch cache and each object decoded and encoded once for every
    /// list and watcher (default). Off: lists read the store and every list and watcher
    /// decodes and encodes each object itself, as before; benchmarks compare the two.
    pub shared_reads: bool,
    /// `--token`: the secret the servers of one cluster share. With a shared store (etcd), the
    /// first server publishes its CA, keys and tokens in the store sealed under it, and the
    /// others adopt them (see `cluster_secrets`), so every server answers alike.
    pub cluster_token: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/keelson"),
            secure_port: 6443,
            insecure_port: None,
            bind_address: "0.0.0.0".into(),
            store: "embedded".into(),
            write_kubeconfig: None,
            admission: Default::default(),
            compaction_interval: std::time::Duration::from_secs(300),
            auth: AuthConfig::default(),
            encryption_provider_config: None,
            audit: None,
            shared_reads: true,
            cluster_token: None,
        }
    }
}

pub use cluster_secrets::SecretsError;
pub use keelson_apimachinery::UserInfo;

/// The shared state behind every request.
pub struct ApiServer {
    /// The revision store.
    pub store: keelson_store::Store,
    /// Served kinds.
    pub registry: Registry,
    /// The admission chain.
    pub admission: Arc<keelson_admission::Chain>,
    /// The running Wasm admission plugins (fed by the WasmPlugin reconciler).
    pub wasm: Arc<keelson_admission::plugins::wasm::WasmPlugins>,
    /// `/metrics`.
    pub metrics: Metrics,
    /// Components running in this process (for `componentstatuses`).
    pub components: InProcessComponents,
    /// The HTTPS client `pods/log` reaches agents with (set once the credentials are loaded).
    pub(crate) kubelet_client: std::sync::OnceLock<reqwest::Client>,
    /// The node join token (`<data-dir>/node-token`): `<token>/<node-name>` authenticates as
    /// `system:node:<node-name>`.
    pub(crate) node_token: std::sync::OnceLock<String>,
    /// Authenticators and authorizers.
    pub auth: Auth,
    /// The audit log, when configured.
    pub(crate) audit: std::sync::OnceLock<audit::Audit>,
    /// The server's own in-process client (`system:apiserver`), set once serving begins.
    pub(crate) loopback: std::sync::OnceLock<kube::Client>,
    /// The data dir (snapshots go to `<data_dir>/snapshots`).
    pub data_dir: PathBuf,
    /// Service cluster IP and NodePort ranges.
    pub services: allocator::ServiceAllocators,
    /// Cancelled when the server begins shutting down: listeners stop accepting and open
    /// watches end, so connections drain.
    pub(crate) stopping: tokio_util::sync::CancellationToken,
    /// [`Config::shared_reads`].
    pub(crate) shared_reads: std::sync::atomic::AtomicBool,
}

impl ApiServer {
    /// Builds the state over a store, with the given authentication and admission chain;
    /// Wasm plugins load through `plugin_host`.
    pub fn new(
        store: keelson_store::Store,
        auth: Auth,
        admission: keelson_admission::Chain,
        plugin_host: keelson_plugin_host::PluginHost,
        data_dir: PathBuf,
    ) -> Arc<Self> {
        let admission = Arc::new(admission);
        let wasm = Arc::new(keelson_admission::plugins::wasm::WasmPlugins::new(
            plugin_host,
            admission.clone(),
        ));
        Arc::new(Self {
            store,
            registry: Registry::builtin(),
            admission,
            wasm,
            metrics: Metrics::default(),
            components: InProcessComponents::default(),
            auth,
            audit: Default::default(),
            loopback: Default::default(),
            data_dir,
            services: Default::default(),
            kubelet_client: Default::default(),
            node_token: Default::default(),
            stopping: Default::default(),
            shared_reads: std::sync::atomic::AtomicBool::new(true),
        })
    }

    /// The node named by a node join token (`<node-token>/<node-name>`; like k3s's join
    /// token, any agent holding it may register any node name).
    pub fn authenticate_node_token(&self, token: &str) -> Option<UserInfo> {
        let (secret, node) = token.rsplit_once('/')?;
        let expected = self.node_token.get()?;
        let valid_name = !node.is_empty()
            && node.len() <= 253
            && node
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        (valid_name && constant_time_eq(secret.as_bytes(), expected.as_bytes()))
            .then(|| UserInfo::node(node))
    }
}

/// Compares secrets without leaking where they differ through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The HTTP router (no TLS), for tests and the in-process client (`keelson-client`).
pub fn router(api: Arc<ApiServer>) -> axum::Router {
    handlers::router(api)
}

/// Decodes a protobuf request body, mapping errors to 400.
fn protobuf_body(body: &[u8]) -> ApiResult<serde_json::Value> {
    protobuf::decode(body).map_err(ApiError::bad_request)
}
