//! `keelson dns`: the cluster DNS server against a server named by a kubeconfig (`keelson
//! server --cluster-dns-listen` runs the same in-process). It makes sure the `kube-dns`
//! Service exists at the cluster DNS address and publishes its own address as an endpoint
//! of it, so pods reach it through the service proxy.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;

/// The ClusterIP of `kube-system/kube-dns` (k3s's).
pub(crate) const CLUSTER_DNS_IP: &str = "10.43.0.10";

/// Flags shared by `keelson dns` and `keelson server`.
#[derive(Args, Debug, Clone)]
pub(crate) struct DnsOptions {
    /// Resolvers for names outside the cluster domain (repeatable, `ip:port`)
    /// [default: the nameservers of /etc/resolv.conf].
    #[arg(
        long = "dns-upstream",
        env = "KEELSON_DNS_UPSTREAM",
        help_heading = "DNS"
    )]
    pub(crate) upstreams: Vec<SocketAddr>,
}

impl DnsOptions {
    /// The server configuration for `listen`.
    pub(crate) fn config(&self, listen: SocketAddr, domain: &str) -> keelson_dns::Config {
        let upstreams = if self.upstreams.is_empty() {
            keelson_dns::system_upstreams(std::path::Path::new("/etc/resolv.conf"))
        } else {
            self.upstreams.clone()
        };
        keelson_dns::Config {
            listen,
            domain: domain.to_string(),
            upstreams,
        }
    }
}

/// Flags of `keelson dns`.
#[derive(Args, Debug)]
pub(crate) struct DnsCommand {
    /// kubeconfig of the API server [default: $KUBECONFIG, else the server's data dir
    /// kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG", help_heading = "Cluster")]
    kubeconfig: Option<PathBuf>,
    /// Address to answer on (UDP and TCP); published as an endpoint of `kube-dns`.
    #[arg(long, env = "KEELSON_DNS_LISTEN", help_heading = "DNS")]
    listen: SocketAddr,
    /// Name of the endpoint (and of its EndpointSlice) [default: the host name].
    #[arg(long, env = "KEELSON_NODE_NAME", help_heading = "DNS")]
    node_name: Option<String>,
    /// The cluster domain.
    #[arg(
        long,
        env = "KEELSON_CLUSTER_DOMAIN",
        default_value = "cluster.local",
        help_heading = "DNS"
    )]
    cluster_domain: String,
    #[command(flatten)]
    options: DnsOptions,
}

impl DnsCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let path = super::kube_client::kubeconfig_path(self.kubeconfig);
        let mut config = keelson_client::config_from_kubeconfig(&path)
            .await
            .with_context(|| format!("reading {}", path.display()))?;
        config.read_timeout = None;
        let client = keelson_client::multiplexed(&config)?;
        let node = self.node_name.unwrap_or_else(keelson_kubelet::hostname);
        publish(&client, &node, self.listen).await?;
        tokio::select! {
            r = keelson_dns::run(client, self.options.config(self.listen, &self.cluster_domain)) => r.context("DNS failed"),
            r = super::shutdown_signal() => r,
        }
    }
}

/// Creates `kube-system/kube-dns` at [`CLUSTER_DNS_IP`] unless it exists, and applies the
/// EndpointSlice `kube-dns-<node>` naming `listen` as a ready endpoint.
pub(crate) async fn publish(
    client: &kube::Client,
    node: &str,
    listen: SocketAddr,
) -> anyhow::Result<()> {
    let services: Api<Service> = Api::namespaced(client.clone(), "kube-system");
    let port = |name: &str, proto: &str| ServicePort {
        name: Some(name.into()),
        port: 53,
        protocol: Some(proto.into()),
        target_port: Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(53)),
        ..Default::default()
    };
    let svc = Service {
        metadata: ObjectMeta {
            name: Some("kube-dns".into()),
            labels: Some(BTreeMap::from([
                ("k8s-app".to_string(), "kube-dns".to_string()),
                ("kubernetes.io/name".to_string(), "CoreDNS".to_string()),
            ])),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            cluster_ip: Some(CLUSTER_DNS_IP.into()),
            ports: Some(vec![port("dns", "UDP"), port("dns-tcp", "TCP")]),
            ..Default::default()
        }),
        status: None,
    };
    match services.create(&PostParams::default(), &svc).await {
        Ok(_) => tracing::info!(ip = CLUSTER_DNS_IP, "created Service kube-system/kube-dns"),
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => return Err(e).context("creating Service kube-system/kube-dns"),
    }
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), "kube-system");
    let name = format!("kube-dns-{node}");
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".to_string(),
                "kube-dns".to_string(),
            )])),
            ..Default::default()
        },
        address_type: match listen.ip() {
            IpAddr::V4(_) => "IPv4".into(),
            IpAddr::V6(_) => "IPv6".into(),
        },
        endpoints: vec![Endpoint {
            addresses: vec![listen.ip().to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            node_name: Some(node.to_string()),
            ..Default::default()
        }],
        ports: Some(
            [("dns", "UDP"), ("dns-tcp", "TCP")]
                .iter()
                .map(|(n, p)| EndpointPort {
                    name: Some(n.to_string()),
                    port: Some(i32::from(listen.port())),
                    protocol: Some(p.to_string()),
                    ..Default::default()
                })
                .collect(),
        ),
    };
    slices
        .patch(
            &name,
            &PatchParams::apply("keelson-dns").force(),
            &Patch::Apply(&slice),
        )
        .await
        .with_context(|| format!("publishing EndpointSlice kube-system/{name}"))?;
    Ok(())
}
