//! `keelson proxy`: the service proxy alone, against a server named by a kubeconfig (the
//! agent runs the same code unless `--disable-proxy`).

use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

/// Flags of `keelson proxy`.
#[derive(Args, Debug)]
pub(crate) struct ProxyCommand {
    /// kubeconfig of the API server [default: $KUBECONFIG, else the server's data dir
    /// kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG", help_heading = "Cluster")]
    kubeconfig: Option<PathBuf>,
    /// This node's name (for `Local` traffic policies) [default: the host name].
    #[arg(long, env = "KEELSON_NODE_NAME", help_heading = "Proxy")]
    node_name: Option<String>,
    /// Addresses NodePorts answer on (repeatable) [default: every local address but
    /// loopback].
    #[arg(long = "node-ip", env = "KEELSON_NODE_IP", help_heading = "Proxy")]
    node_ips: Vec<Ipv4Addr>,
    /// The pod network; traffic to a ClusterIP from outside it is masqueraded.
    #[arg(
        long,
        env = "KEELSON_CLUSTER_CIDR",
        default_value = "10.42.0.0/16",
        help_heading = "Proxy"
    )]
    cluster_cidr: String,
    /// Do not enforce NetworkPolicies.
    #[arg(long, env = "KEELSON_DISABLE_NETWORK_POLICY", help_heading = "Proxy")]
    disable_network_policy: bool,
}

impl ProxyCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let path = super::kube_client::kubeconfig_path(self.kubeconfig);
        let mut config = keelson_client::config_from_kubeconfig(&path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        config.read_timeout = None;
        let client = keelson_client::multiplexed(&config)?;
        let node = keelson_proxy::Node {
            name: self.node_name.unwrap_or_else(keelson_kubelet::hostname),
            ips: self.node_ips,
            cluster_cidr: Some(self.cluster_cidr),
            network_policy: !self.disable_network_policy,
        };
        tokio::select! {
            r = keelson_proxy::run(client, node, keelson_proxy::Nft::default()) => {
                r.context("proxy failed")
            }
            r = super::shutdown_signal() => r,
        }
    }
}
