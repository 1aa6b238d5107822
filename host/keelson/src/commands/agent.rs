//! `keelson agent`: the node agent (kubelet core) joining a server from another machine, and
//! the agent flags `keelson server` shares for its in-process agent.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use clap::Args;

/// Agent flags, shared by `keelson agent` and `keelson server`.
#[derive(Args, Debug, Clone)]
pub(crate) struct AgentOptions {
    /// Name of this node [default: the host name].
    #[arg(long, env = "KEELSON_NODE_NAME", help_heading = "Agent")]
    node_name: Option<String>,
    /// Address the node reports (InternalIP; also the pod IP of Wasm pods)
    /// [default: the address of the default route].
    #[arg(long, env = "KEELSON_NODE_IP", help_heading = "Agent")]
    node_ip: Option<IpAddr>,
    /// HTTPS port of the agent's log endpoint, which the API server proxies `pods/log` to
    /// (0 = pick a free port).
    #[arg(
        long,
        env = "KEELSON_KUBELET_PORT",
        default_value_t = 10250,
        help_heading = "Agent"
    )]
    kubelet_port: u16,
    /// First CrashLoopBackOff delay in seconds (doubled per restart, at most 300).
    #[arg(
        long,
        env = "KEELSON_CRASH_LOOP_BACKOFF",
        default_value_t = 10.0,
        help_heading = "Agent"
    )]
    crash_loop_backoff: f64,
    /// Do not run the service proxy (the nftables table `ip keelson` for Services).
    #[arg(long, env = "KEELSON_DISABLE_PROXY", help_heading = "Agent")]
    disable_proxy: bool,
    /// Do not enforce NetworkPolicies in the proxy's table.
    #[arg(long, env = "KEELSON_DISABLE_NETWORK_POLICY", help_heading = "Agent")]
    disable_network_policy: bool,
    /// The pod network; the proxy masquerades traffic to ClusterIPs from outside it.
    #[arg(
        long,
        env = "KEELSON_CLUSTER_CIDR",
        default_value = "10.42.0.0/16",
        help_heading = "Agent"
    )]
    cluster_cidr: String,
    /// DNS servers of pods with `dnsPolicy: ClusterFirst` (repeatable; the `kube-dns`
    /// Service's address).
    #[arg(
        long,
        env = "KEELSON_CLUSTER_DNS",
        default_value = "10.43.0.10",
        help_heading = "Agent"
    )]
    cluster_dns: Vec<IpAddr>,
    /// The cluster domain.
    #[arg(
        long,
        env = "KEELSON_CLUSTER_DOMAIN",
        default_value = "cluster.local",
        help_heading = "Agent"
    )]
    pub(crate) cluster_domain: String,
    /// containerd's socket, for pods without a RuntimeClass ("none": Wasm pods only); a
    /// `unix://` URL is accepted, as the kubelet's `--container-runtime-endpoint` takes it.
    #[arg(
        long,
        alias = "container-runtime-endpoint",
        env = "KEELSON_CONTAINERD",
        default_value = "/run/containerd/containerd.sock",
        help_heading = "Agent"
    )]
    containerd: String,
    /// containerd namespace of pod images and containers.
    #[arg(
        long,
        env = "KEELSON_CONTAINERD_NAMESPACE",
        default_value = "k8s.io",
        help_heading = "Agent"
    )]
    containerd_namespace: String,
    /// CIDR the node's containerd pods get their IPs from ("none": they use the node's
    /// network).
    #[arg(
        long,
        env = "KEELSON_POD_CIDR",
        default_value = "10.42.0.0/24",
        help_heading = "Agent"
    )]
    pod_cidr: String,
    /// Directory of the CNI plugins (`bridge`, `host-local`, `loopback`).
    #[arg(
        long,
        env = "KEELSON_CNI_BIN_DIR",
        default_value = "/usr/lib/cni",
        help_heading = "Agent"
    )]
    cni_bin_dir: PathBuf,
    /// Linux bridge the pods' network interfaces attach to.
    #[arg(
        long,
        env = "KEELSON_CNI_BRIDGE",
        default_value = "keelson0",
        help_heading = "Agent"
    )]
    cni_bridge: String,
    /// A registry (`HOST:PORT`) that image pulls reach over plain HTTP (repeatable; `localhost`
    /// and loopback registries always are).
    #[arg(
        long = "insecure-registry",
        value_name = "HOST:PORT",
        help_heading = "Agent"
    )]
    insecure_registries: Vec<String>,
}

impl AgentOptions {
    /// The node name: the flag, else the host name.
    pub(crate) fn node_name(&self) -> String {
        self.node_name
            .clone()
            .unwrap_or_else(keelson_kubelet::hostname)
    }

    /// The service proxy's view of this node, unless `--disable-proxy`.
    pub(crate) fn proxy_node(&self) -> Option<keelson_proxy::Node> {
        if self.disable_proxy {
            return None;
        }
        let ips = match self.node_ip {
            Some(IpAddr::V4(ip)) => vec![ip],
            _ => Vec::new(),
        };
        Some(keelson_proxy::Node {
            name: self.node_name(),
            ips,
            cluster_cidr: Some(self.cluster_cidr.clone()),
            network_policy: !self.disable_network_policy,
        })
    }

    /// The kubelet configuration; files under `agent_dir`, client CA `ca_pem`.
    pub(crate) fn config(
        &self,
        agent_dir: PathBuf,
        ca_pem: Option<String>,
    ) -> keelson_kubelet::Config {
        let mut config = keelson_kubelet::Config::new(self.node_name(), agent_dir);
        config.node_ip = self.node_ip;
        config.port = self.kubelet_port;
        config.client_ca_pem = ca_pem;
        config.cluster_dns = self.cluster_dns.clone();
        config.cluster_domain = self.cluster_domain.clone();
        config.backoff_base = Duration::from_secs_f64(self.crash_loop_backoff.clamp(0.01, 300.0));
        config.containerd_socket = (self.containerd != "none").then(|| {
            let path = self.containerd.strip_prefix("unix://");
            path.unwrap_or(&self.containerd).into()
        });
        config.containerd_namespace = self.containerd_namespace.clone();
        config.pod_cidr = (self.pod_cidr != "none").then(|| self.pod_cidr.clone());
        config.cni_bin_dir = self.cni_bin_dir.clone();
        config.cni_bridge = self.cni_bridge.clone();
        config.insecure_registries = self.insecure_registries.clone();
        config
    }
}

/// Flags of `keelson agent`.
#[derive(Args, Debug)]
pub(crate) struct AgentCommand {
    /// URL of the API server, e.g. `https://10.0.0.1:6443` (with `--token`).
    #[arg(long, env = "KEELSON_SERVER", help_heading = "Cluster")]
    server: Option<String>,
    /// The server's node join token (its `<data-dir>/node-token`), with `--server`; the agent
    /// authenticates as `system:node:<node-name>`.
    #[arg(long, env = "KEELSON_TOKEN", help_heading = "Cluster")]
    token: Option<String>,
    /// PEM file of the cluster CA (with `--server`; the server's `<data-dir>/tls/ca.crt`).
    #[arg(long, env = "KEELSON_CERTIFICATE_AUTHORITY", help_heading = "Cluster")]
    certificate_authority: Option<PathBuf>,
    /// kubeconfig to join with instead of `--server`/`--token`
    /// [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG", help_heading = "Cluster")]
    kubeconfig: Option<PathBuf>,
    /// Where the agent keeps images, pod logs and its certificate (in `<data-dir>/agent`)
    /// [default: /var/lib/keelson as root, else $XDG_DATA_HOME/keelson].
    #[arg(long, env = "KEELSON_DATA_DIR", help_heading = "Agent")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    options: AgentOptions,
}

fn pem_to_der(pem: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut body = String::new();
    let mut inside = false;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE") {
            inside = true;
            body.clear();
        } else if line.starts_with("-----END CERTIFICATE") {
            inside = false;
            out.push(base64::engine::general_purpose::STANDARD.decode(body.trim())?);
        } else if inside {
            body.push_str(line.trim());
        }
    }
    anyhow::ensure!(!out.is_empty(), "no certificate in the CA file");
    Ok(out)
}

fn der_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

impl AgentCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let mut config = match (&self.server, &self.token) {
            (Some(server), Some(token)) => {
                let url = server.parse().context("--server is not a URL")?;
                let mut config = kube::Config::new(url);
                let ca = self
                    .certificate_authority
                    .as_ref()
                    .context("--server needs --certificate-authority (the cluster CA)")?;
                let pem = std::fs::read_to_string(ca)
                    .with_context(|| format!("reading {}", ca.display()))?;
                config.root_cert = Some(pem_to_der(&pem)?);
                let node = self.options.node_name();
                config.auth_info.token = Some(format!("{token}/{node}").into());
                config
            }
            (None, None) => {
                let path = super::kube_client::kubeconfig_path(self.kubeconfig.clone());
                keelson_client::config_from_kubeconfig(&path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))?
            }
            _ => anyhow::bail!("--server and --token go together"),
        };
        config.read_timeout = None;
        let ca_pem = config
            .root_cert
            .as_ref()
            .map(|certs| certs.iter().map(|c| der_to_pem(c)).collect::<String>());
        let client = keelson_client::multiplexed(&config)?;
        let data_dir = self
            .data_dir
            .unwrap_or_else(super::server::default_data_dir);
        let host = keelson_plugin_host::PluginHost::with_config(
            data_dir.join("plugin-cache"),
            keelson_kubelet::plugin_host_config(),
        )?;
        let agent = self.options.config(data_dir.join("agent"), ca_pem);
        tracing::info!(node = %agent.node_name, server = %config.cluster_url, "agent starting");
        if let Some(node) = self.options.proxy_node() {
            spawn_proxy(client.clone(), node);
        }
        tokio::select! {
            r = keelson_kubelet::run(client, host, agent) => r.context("agent failed"),
            r = super::shutdown_signal() => r,
        }
    }
}

/// Runs the service proxy beside the agent; its failure is logged, the agent goes on.
pub(crate) fn spawn_proxy(client: kube::Client, node: keelson_proxy::Node) {
    tokio::spawn(async move {
        tracing::info!(node = %node.name, "service proxy starting");
        if let Err(e) = keelson_proxy::run(client, node, keelson_proxy::Nft::default()).await {
            tracing::error!(error = %format!("{e:#}"), "service proxy stopped");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_round_trip() {
        let der = vec![0x30u8, 0x82, 1, 2, 3, 4, 5, 6, 7, 8, 9];
        let pem = der_to_pem(&der);
        assert_eq!(pem_to_der(&pem).unwrap(), vec![der]);
        assert!(pem_to_der("nothing").is_err());
    }
}
