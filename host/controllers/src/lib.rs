//! Keelson's built-in controllers. Each is a client of the API like any external component:
//! a [`kube::Client`] (in-process or from a kubeconfig, see `keelson-client`), typed
//! k8s-openapi objects and `kube::runtime` watchers, controllers and their queues — never the
//! store. So `keelson controller-manager --kubeconfig F` runs exactly what runs in-process.
//! - [`garbage_collector`]: ownerReferences with Background, Foreground and Orphan propagation;
//! - [`namespace`]: deletes a terminating namespace's contents, then finalizes it;
//! - [`serviceaccount`]: every namespace has a `default` ServiceAccount;
//! - [`replicaset`]: ReplicaSets and ReplicationControllers keep `spec.replicas` pods;
//! - [`deployment`]: Deployments roll out through ReplicaSets (RollingUpdate, Recreate);
//! - [`job`]: Jobs run pods to completion (parallelism, completions, Indexed, backoffLimit);
//! - [`daemonset`]: DaemonSets run one pod on every eligible node;
//! - [`statefulset`]: StatefulSets keep pods with stable names, claims and ordered rollouts;
//! - [`cronjob`]: CronJobs make Jobs on a cron schedule;
//! - [`endpoints`]: Services get Endpoints and EndpointSlices listing the pods they select;
//! - [`node_lifecycle`]: silent nodes turn Unknown, are tainted, and their pods evicted;
//! - [`disruption`]: PodDisruptionBudgets' status (what eviction and preemption read).
//!
//! [`run_elected`] runs them only while this process holds the Lease
//! `kube-system/kube-controller-manager`, so several managers can share one cluster.

pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
mod error;
mod events;
pub mod garbage_collector;
pub mod job;
pub mod namespace;
pub mod node_lifecycle;
mod ownership;
pub mod replicaset;
mod selector;
pub mod serviceaccount;
pub mod statefulset;

pub use error::Error;
use keelson_client::leader::{LeaderElector, Timing};

/// The Lease the controller managers elect their leader on (Kubernetes' name).
pub const LEASE_NAME: &str = "kube-controller-manager";

/// How the controllers are tuned (kube-controller-manager's flags).
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// The node lifecycle controller's periods.
    pub node_lifecycle: node_lifecycle::Config,
}

/// Runs every built-in controller until the process ends.
pub async fn run(client: kube::Client, options: Options) {
    tokio::join!(
        garbage_collector::run(client.clone()),
        namespace::run(client.clone()),
        replicaset::run(client.clone()),
        deployment::run(client.clone()),
        job::run(client.clone()),
        daemonset::run(client.clone()),
        statefulset::run(client.clone()),
        cronjob::run(client.clone()),
        endpoints::run(client.clone()),
        endpoints::slices::run(client.clone()),
        node_lifecycle::run(client.clone(), options.node_lifecycle),
        disruption::run(client.clone()),
        replicaset::run_rc(client.clone()),
        serviceaccount::run(client),
    );
}

/// Runs the controllers while this process (candidate `identity`) leads; on losing the Lease
/// they stop and the process campaigns again.
pub async fn run_elected(client: kube::Client, identity: &str, timing: Timing, options: Options) {
    let elector =
        LeaderElector::new(client.clone(), "kube-system", LEASE_NAME, identity).with_timing(timing);
    elector.run(|| run(client.clone(), options)).await;
}
