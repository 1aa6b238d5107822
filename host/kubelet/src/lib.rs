//! Keelson's node agent (the kubelet core). [`run`] registers this machine as a Node (capacity
//! from the host, cgroup-aware; labels, addresses, pressure conditions), renews its Lease in
//! `kube-node-lease` every 10 s, and runs the pods bound to it: one worker per pod runs init
//! containers in order, then the containers, restarts them per `restartPolicy` with
//! exponential back-off (CrashLoopBackOff), writes the pod status, and on deletion stops them
//! within the grace period and deletes the object. Containers run on a [`runtime::Runtime`]
//! chosen by the pod's RuntimeClass handler: `wasmtime` (RuntimeClass `wasm`) runs WASI
//! command components in-process on the shared plugin-host engine; `runc` (pods without a
//! RuntimeClass) runs OCI images on containerd, each pod in its own CNI network namespace.
//! Container output goes to
//! log files that the agent serves over HTTPS (`/containerLogs/{ns}/{pod}/{container}`) to the
//! API server, which proxies `pods/log` to it.
//!
//! The agent is a client like any other: it talks to the API only through a `kube::Client`
//! (in-process as `system:node:<name>`, or remote from a kubeconfig).
//!
//! ```no_run
//! # async fn demo(client: kube::Client, host: keelson_plugin_host::PluginHost) -> Result<(), keelson_kubelet::Error> {
//! let config = keelson_kubelet::Config::new("node-1", "/var/lib/keelson/agent");
//! keelson_kubelet::run(client, host, config).await
//! # }
//! ```

mod backoff;
pub mod dns;
mod env;
mod events;
mod exec_server;
mod host_info;
pub mod images;
mod log_server;
mod logs;
mod node;
mod pod_worker;
mod pods;
mod port_forward;
mod probe;
pub mod runtime;
mod spdy;
mod stats;
mod status;
mod volumes;

use std::path::PathBuf;

/// This machine's host name (the default node name).
pub fn hostname() -> String {
    host_info::hostname()
}
use std::sync::Arc;
use std::time::Duration;

/// Settings for the plugin host an agent runs Wasm containers on: the defaults, with room in
/// the instance pool for a full node (110 pods of up to four running containers) besides the
/// admission plugins' 64 concurrent calls. Each running Wasm container holds one instance.
pub fn plugin_host_config() -> keelson_plugin_host::HostConfig {
    keelson_plugin_host::HostConfig {
        max_instances: 64 + 4 * 110,
        ..Default::default()
    }
}

/// How the agent runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// The Node's name (and `kubernetes.io/hostname`).
    pub node_name: String,
    /// Where images, pod logs and the serving certificate live.
    pub data_dir: PathBuf,
    /// The address the Node reports as InternalIP (and Wasm pods get as podIP); found from the
    /// default route when `None`.
    pub node_ip: Option<std::net::IpAddr>,
    /// HTTPS port of the log endpoint (0 = a free port).
    pub port: u16,
    /// PEM of the CA whose client certificates may read logs (the API server's).
    pub client_ca_pem: Option<String>,
    /// First CrashLoopBackOff delay (doubled per restart up to [`Config::backoff_max`]).
    pub backoff_base: Duration,
    /// Longest CrashLoopBackOff delay.
    pub backoff_max: Duration,
    /// Lease renewal period (the Lease lasts four times as long).
    pub lease_renew: Duration,
    /// Node status heartbeat period.
    pub status_interval: Duration,
    /// The cluster DNS servers pods with `dnsPolicy: ClusterFirst` use (kubelet's
    /// `--cluster-dns`); empty = the node's resolvers.
    pub cluster_dns: Vec<std::net::IpAddr>,
    /// The cluster domain (kubelet's `--cluster-domain`).
    pub cluster_domain: String,
    /// containerd's socket; `None` runs no containerd runtime (only Wasm pods).
    pub containerd_socket: Option<PathBuf>,
    /// containerd namespace of pod images and containers.
    pub containerd_namespace: String,
    /// The pod CIDR pod IPs come from; `None` runs containerd pods in the node's network.
    pub pod_cidr: Option<String>,
    /// Directory of the CNI plugins (`bridge`, `host-local`, `loopback`).
    pub cni_bin_dir: PathBuf,
    /// The Linux bridge pods attach to.
    pub cni_bridge: String,
    /// Registries (`host:port`) that image pulls reach over plain HTTP, besides `localhost`
    /// and loopback ones.
    pub insecure_registries: Vec<String>,
}

impl Config {
    /// Kubernetes' defaults for a node called `node_name` keeping its files in `data_dir`.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Config {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            node_ip: None,
            port: 10250,
            client_ca_pem: None,
            backoff_base: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            lease_renew: Duration::from_secs(10),
            status_interval: Duration::from_secs(60),
            cluster_dns: Vec::new(),
            cluster_domain: "cluster.local".into(),
            containerd_socket: Some("/run/containerd/containerd.sock".into()),
            containerd_namespace: "k8s.io".into(),
            pod_cidr: Some("10.42.0.0/24".into()),
            cni_bin_dir: "/usr/lib/cni".into(),
            cni_bridge: "keelson0".into(),
            insecure_registries: Vec::new(),
        }
    }
}

/// What can go wrong in the agent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API call failed")]
    Kube(#[from] kube::Error),
    /// Local files (images, logs, certificates) could not be read or written.
    #[error("agent file i/o")]
    Io(#[from] std::io::Error),
    /// An image reference does not resolve to an image in the local store.
    #[error("image {0:?} is not in the local image store (import it with `keelson image import`)")]
    ImageNotFound(String),
    /// An image could not be pulled from its registry.
    #[error("{0}")]
    ImagePull(String),
    /// The image store holds something unreadable.
    #[error("bad image {image:?}: {message}")]
    BadImage {
        /// The reference.
        image: String,
        /// What is wrong.
        message: String,
    },
    /// The runtime could not start a container.
    #[error("runtime: {0}")]
    Runtime(String),
    /// A container refers to something (ConfigMap, Secret, field) that cannot be resolved.
    #[error("{0}")]
    Config(String),
    /// A volume cannot be mounted yet (e.g. its PersistentVolumeClaim is not bound); the
    /// container waits in ContainerCreating and is retried.
    #[error("{0}")]
    VolumeNotReady(String),
    /// The runtime cannot do what was asked (e.g. exec in a Wasm container).
    #[error("{0}")]
    Unsupported(String),
    /// The TLS setup of the log endpoint failed.
    #[error("tls: {0}")]
    Tls(String),
}

/// The containerd runtime, when configured and reachable (else a warning: Wasm pods still run).
async fn containerd_runtime(config: &Config) -> Option<runtime::containerd::Containerd> {
    let socket = config.containerd_socket.clone()?;
    let network = config
        .pod_cidr
        .clone()
        .map(|pod_cidr| runtime::network::NetworkConfig {
            cni_bin_dir: config.cni_bin_dir.clone(),
            pod_cidr,
            bridge: config.cni_bridge.clone(),
            ipam_dir: config.data_dir.join("cni"),
        });
    let rc = runtime::containerd::ContainerdConfig {
        socket: socket.clone(),
        namespace: config.containerd_namespace.clone(),
        snapshotter: "overlayfs".into(),
        network,
        state_dir: config.data_dir.join("containerd"),
        node_name: config.node_name.clone(),
        insecure_registries: config.insecure_registries.clone(),
    };
    match runtime::containerd::Containerd::connect(rc).await {
        Ok(c) => {
            tracing::info!(socket = %socket.display(), "containerd runtime ready");
            Some(c)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no containerd runtime: pods without a RuntimeClass will wait");
            None
        }
    }
}

/// Registers the node and runs it until the returned future is dropped (or a part fails).
pub async fn run(
    client: kube::Client,
    plugin_host: keelson_plugin_host::PluginHost,
    config: Config,
) -> Result<(), Error> {
    std::fs::create_dir_all(&config.data_dir)?;
    let ip = config.node_ip.unwrap_or_else(host_info::default_ip);
    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.port)).await?;
    let port = listener.local_addr()?.port();
    let logs = Arc::new(logs::LogStore::new(config.data_dir.join("pods")));
    let images = images::ImageStore::new(config.data_dir.join("images"));
    let mut runtimes: Vec<Arc<dyn runtime::Runtime>> = vec![Arc::new(
        runtime::wasm::WasmRuntime::new(plugin_host, images),
    )];
    if let Some(containerd) = containerd_runtime(&config).await {
        runtimes.push(Arc::new(containerd));
    }
    let runtimes = runtime::Runtimes::new(runtimes);
    let tls = log_server::tls_config(&config)?;
    node::register(&client, &config, ip, port).await?;
    tracing::info!(node = %config.node_name, %ip, port, "node registered");
    let ctx = Arc::new(pods::Agent {
        client: client.clone(),
        config: config.clone(),
        ip: ip.to_string(),
        logs: logs.clone(),
        runtimes,
        handlers: Default::default(),
        running: Default::default(),
        cpu_readings: Default::default(),
    });
    tokio::select! {
        r = node::heartbeat(client.clone(), config.clone(), ip, port) => r,
        r = pods::run(ctx.clone()) => r,
        r = log_server::serve(listener, tls, ctx.clone()) => r,
    }
}
