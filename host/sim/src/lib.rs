//! Simulated nodes, like kwok: `run` registers fake Nodes with the capacity, labels and taints
//! it is given, keeps their Leases in `kube-node-lease` renewed, and plays the kubelet for pods
//! bound to them — Running and Ready with conditions, a pod IP from the node's range and start
//! times; graceful deletions finished; and pods annotated `keelson.dev/sim-duration-seconds`
//! ended after that long with `keelson.dev/sim-exit-code` (Succeeded for 0, Failed otherwise).
//! It talks to the API only through a `kube::Client`, so it runs in or out of the server.

mod lease;
mod node;
mod pods;

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::Taint;
use kube::Client;

pub use node::{node_object, register as register_nodes};

/// Annotation: seconds after the pod starts when it ends.
pub const DURATION_ANNOTATION: &str = "keelson.dev/sim-duration-seconds";
/// Annotation: the exit code it ends with (0 = Succeeded, else Failed).
pub const EXIT_CODE_ANNOTATION: &str = "keelson.dev/sim-exit-code";

/// What the simulated nodes look like.
#[derive(Clone, Debug)]
pub struct NodeTemplate {
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    /// Allocatable (= capacity) resources: `cpu`, `memory`, `pods`, `ephemeral-storage`, extended.
    pub resources: BTreeMap<String, String>,
    /// Extra labels (`kubernetes.io/hostname` is always set).
    pub labels: BTreeMap<String, String>,
    /// Taints.
    pub taints: Vec<Taint>,
}

impl Default for NodeTemplate {
    fn default() -> Self {
        let resources = [
            ("cpu", "4"),
            ("memory", "8Gi"),
            ("pods", "110"),
            ("ephemeral-storage", "100Gi"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        NodeTemplate {
            name_prefix: "sim-".into(),
            resources,
            labels: BTreeMap::new(),
            taints: Vec::new(),
        }
    }
}

/// How the simulator runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Number of nodes.
    pub count: usize,
    /// Index of the first node (so several simulators can share a cluster).
    pub first_index: usize,
    /// What they look like.
    pub template: NodeTemplate,
    /// How often Leases are renewed (their duration is four times this).
    pub lease_renew: Duration,
    /// API calls in flight at once.
    pub concurrency: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            count: 1,
            first_index: 0,
            template: NodeTemplate::default(),
            lease_renew: Duration::from_secs(10),
            concurrency: 32,
        }
    }
}

/// What can go wrong while simulating.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API call failed")]
    Kube(#[from] kube::Error),
}

/// The names of the simulated nodes.
pub fn node_names(config: &Config) -> Vec<String> {
    (config.first_index..config.first_index + config.count)
        .map(|i| format!("{}{i}", config.template.name_prefix))
        .collect()
}

/// Registers the nodes, then renews their Leases and runs their pods until the task is dropped.
pub async fn run(client: Client, config: Config) -> Result<(), Error> {
    node::register(&client, &config).await?;
    tracing::info!(nodes = config.count, "simulated nodes registered");
    tokio::select! {
        r = lease::renew_forever(client.clone(), config.clone()) => r,
        r = pods::run(client, config) => r,
    }
}
