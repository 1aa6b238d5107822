//! The service proxy of a Keelson node (kube-proxy's nftables mode): it watches Services
//! and EndpointSlices through the node's `kube::Client` and keeps one nftables table,
//! `ip keelson`, equal to what they describe — ClusterIPs, NodePorts on the node's
//! addresses, externalIPs and load-balancer IPs, `sessionAffinity: ClientIP`,
//! `internalTrafficPolicy`/`externalTrafficPolicy: Local`, ready endpoints (terminating ones
//! while nothing else serves), masquerading where Kubernetes does, and a reject for
//! service ports without endpoints. NetworkPolicies are enforced in the same table
//! ([`build_policies`]).
//!
//! Every change is one `nft -f` transaction. The first sync and any sync after the table was
//! changed by someone else replace the whole table atomically; later ones apply only the
//! difference to what was last written (a changed endpoint rewrites its service's chain),
//! so traffic never sees a table without rules, and restarts leave nothing stale.
//!
//! ```no_run
//! # async fn demo(client: kube::Client) -> Result<(), keelson_proxy::Error> {
//! let node = keelson_proxy::Node { name: "node-1".into(), ..Default::default() };
//! keelson_proxy::run(client, node, keelson_proxy::Nft::default()).await
//! # }
//! ```

mod model;
mod netpol;
mod nft;
mod proxier;
mod ruleset;

pub use model::{build, Node, SERVICE_NAME_LABEL};
pub use netpol::build as build_policies;
pub use nft::Nft;
pub use proxier::run;
pub use ruleset::{Ruleset, TABLE};

/// What can go wrong in the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `nft` could not be started (is the `nftables` package installed?).
    #[error("running nft")]
    Spawn(#[source] std::io::Error),
    /// `nft` refused a script.
    #[error("nft: {0}")]
    Nft(String),
    /// The watches ended.
    #[error("watch of {0} ended")]
    WatchEnded(&'static str),
}
