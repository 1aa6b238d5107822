//! Cluster DNS for Keelson (what CoreDNS with its kubernetes plugin does in k3s): an
//! authoritative server for the cluster domain (`cluster.local`) whose [`Zone`] is rebuilt
//! from Service and EndpointSlice reflectors on every change, forwarding other names to the
//! node's resolvers with a cache. Wire format by `hickory-proto`.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), keelson_dns::Error> {
//! let config = keelson_dns::Config {
//!     listen: "10.0.0.5:53".parse().unwrap(),
//!     domain: "cluster.local".into(),
//!     upstreams: keelson_dns::system_upstreams(std::path::Path::new("/etc/resolv.conf")),
//! };
//! keelson_dns::run(client, config).await
//! # }
//! ```

mod server;
mod zone;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Api;
use tokio::sync::Notify;

pub use server::{serve_tcp, serve_udp, Reply, Resolver};
pub use zone::{Lookup, Zone, TTL};

/// What can go wrong in the DNS server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address could not be bound.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving DNS")]
    Io(#[from] std::io::Error),
}

/// Where and what to serve.
#[derive(Debug, Clone)]
pub struct Config {
    /// UDP and TCP address to answer on.
    pub listen: SocketAddr,
    /// The cluster domain.
    pub domain: String,
    /// Resolvers for names outside the cluster domain.
    pub upstreams: Vec<SocketAddr>,
}

/// The `nameserver` lines of a resolv.conf (port 53), skipping loopback stubs such as
/// systemd-resolved's 127.0.0.53, which would loop back to a local forwarder.
pub fn system_upstreams(path: &Path) -> Vec<SocketAddr> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Serves DNS until the returned future is dropped.
pub async fn run(client: kube::Client, config: Config) -> Result<(), Error> {
    let udp = tokio::net::UdpSocket::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let tcp = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let resolver = Resolver::new(config.upstreams.clone());
    tracing::info!(listen = %config.listen, domain = %config.domain, upstreams = ?config.upstreams, "cluster DNS serving");
    tokio::select! {
        r = serve_udp(Arc::new(udp), resolver.clone()) => r?,
        r = serve_tcp(tcp, resolver.clone()) => r?,
        () = feed(client, config.domain.clone(), resolver) => {}
    }
    Ok(())
}

/// Keeps the resolver's zone equal to the cluster's Services and EndpointSlices.
async fn feed(client: kube::Client, domain: String, resolver: Arc<Resolver>) {
    let wake = Arc::new(Notify::new());
    let services: Store<Service> = reflect(Api::all(client.clone()), wake.clone());
    let slices: Store<EndpointSlice> = reflect(Api::all(client), wake.clone());
    let _ = services.wait_until_ready().await;
    let _ = slices.wait_until_ready().await;
    loop {
        let span = tracing::debug_span!("zone_rebuild");
        let zone = span.in_scope(|| {
            let (s, e) = (services.state(), slices.state());
            Zone::build(
                &domain,
                s.iter().map(|s| s.as_ref()),
                e.iter().map(|e| e.as_ref()),
            )
        });
        tracing::debug!(names = zone.len(), "zone rebuilt");
        resolver.set_zone(zone);
        wake.notified().await;
        // Let a burst of changes land in one rebuild.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn reflect<K>(api: Api<K>, wake: Arc<Notify>) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(_) => wake.notify_one(),
                Err(e) => tracing::warn!(error = %e, "DNS watch failed; retrying"),
            }
        }
    });
    store
}
