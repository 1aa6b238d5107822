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
//! - [`disruption`]: PodDisruptionBudgets' status (what eviction and preemption read);
//! - [`resourcequota`]: ResourceQuotas' `status.used`, recalculated from their namespace;
//! - [`event_ttl`]: Events are deleted an hour (`--event-ttl`) after their last update;
//! - [`volume_binder`]: PersistentVolumeClaims bind to matching PersistentVolumes, released
//!   volumes are reclaimed;
//! - [`local_path`]: claims of the `local-path` StorageClass get a volume on their pod's node;
//! - [`clusterrole_aggregation`]: aggregated ClusterRoles (`admin`, `edit`, `view`) get the
//!   union of the roles they select;
//! - [`wasm`]: Wasm controllers, WasmPlugins of type `controller`, each as its ServiceAccount.
//!
//! [`run_elected`] runs them only while this process holds the Lease
//! `kube-system/kube-controller-manager`, so several managers can share one cluster.

pub mod clusterrole_aggregation;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod discovery;
pub mod disruption;
pub mod endpoints;
mod error;
pub mod event_ttl;
mod events;
pub mod garbage_collector;
pub mod job;
pub mod local_path;
pub mod namespace;
pub mod node_lifecycle;
mod ownership;
pub mod pod_gc;
pub mod replicaset;
pub mod resourcequota;
mod selector;
pub mod serviceaccount;
pub mod statefulset;
pub mod ttl_after_finished;
pub mod volume_binder;
pub mod wasm;

pub use error::Error;
use keelson_client::leader::{LeaderElector, Timing};

/// The Lease the controller managers elect their leader on (Kubernetes' name).
pub const LEASE_NAME: &str = "kube-controller-manager";

/// How the controllers are tuned (kube-controller-manager's flags).
#[derive(Clone, Default)]
pub struct Options {
    /// The node lifecycle controller's periods.
    pub node_lifecycle: node_lifecycle::Config,
    /// The pod garbage collector's threshold and periods.
    pub pod_gc: pod_gc::Config,
    /// How long Events live after their last update.
    pub event_ttl: event_ttl::Config,
    /// Runs Wasm controllers (WasmPlugins of type `controller`) on this host; `None`: none.
    pub wasm: Option<keelson_plugin_host::PluginHost>,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("node_lifecycle", &self.node_lifecycle)
            .field("pod_gc", &self.pod_gc)
            .field("event_ttl", &self.event_ttl)
            .field("wasm", &self.wasm.is_some())
            .finish()
    }
}

/// The client each controller acts through. In-process, each controller gets its own
/// ServiceAccount identity `system:serviceaccount:kube-system:<controller>` (Kubernetes'
/// `--use-service-account-credentials`), bound by the bootstrap policy to the role
/// `system:controller:<controller>`; a remote manager may share its kubeconfig's client.
/// Wasm controllers act as the ServiceAccount their WasmPlugin names
/// ([`service_account`](Self::service_account)).
#[derive(Clone)]
pub struct Credentials {
    controllers: std::sync::Arc<dyn Fn(&str) -> kube::Client + Send + Sync>,
    accounts: std::sync::Arc<AccountClient>,
}

/// Makes the client of ServiceAccount (namespace, name).
type AccountClient = dyn Fn(&str, &str) -> kube::Client + Send + Sync;

impl Credentials {
    /// One client for every built-in controller; the ServiceAccounts of Wasm controllers
    /// are impersonated through it (`Impersonate-User`), so its user needs the
    /// `impersonate` verb on them (a cluster admin's kubeconfig has it).
    pub fn shared(client: kube::Client) -> Self {
        let base = client.clone();
        Self {
            controllers: std::sync::Arc::new(move |_| client.clone()),
            accounts: std::sync::Arc::new(move |ns, name| {
                keelson_client::impersonating(
                    base.clone(),
                    &keelson_client::UserInfo::service_account(ns, name),
                )
            }),
        }
    }

    /// A client per ServiceAccount, made from its namespace and name; built-in controllers
    /// act as `kube-system/<controller>`.
    pub fn per_service_account(
        f: impl Fn(&str, &str) -> kube::Client + Send + Sync + 'static,
    ) -> Self {
        let f = std::sync::Arc::new(f);
        let accounts = f.clone();
        Self {
            controllers: std::sync::Arc::new(move |name| f("kube-system", name)),
            accounts: std::sync::Arc::new(move |ns, name| accounts(ns, name)),
        }
    }

    /// The client of `controller` (its ServiceAccount name, e.g. `replicaset-controller`).
    pub fn client(&self, controller: &str) -> kube::Client {
        (self.controllers)(controller)
    }

    /// The client acting as ServiceAccount `namespace/name` (a Wasm controller's).
    pub fn service_account(&self, namespace: &str, name: &str) -> kube::Client {
        (self.accounts)(namespace, name)
    }
}

/// Runs every built-in controller until the process ends.
pub async fn run(creds: Credentials, options: Options) {
    let c = |name: &str| creds.client(name);
    tokio::join!(
        garbage_collector::run(c("generic-garbage-collector")),
        namespace::run(c("namespace-controller")),
        replicaset::run(c("replicaset-controller")),
        deployment::run(c("deployment-controller")),
        job::run(c("job-controller")),
        daemonset::run(c("daemon-set-controller")),
        statefulset::run(c("statefulset-controller")),
        cronjob::run(c("cronjob-controller")),
        endpoints::run(c("endpoint-controller")),
        endpoints::slices::run(c("endpointslice-controller")),
        node_lifecycle::run(c("node-controller"), options.node_lifecycle),
        disruption::run(c("disruption-controller")),
        replicaset::run_rc(c("replication-controller")),
        serviceaccount::run(c("service-account-controller")),
        clusterrole_aggregation::run(c("clusterrole-aggregation-controller")),
        ttl_after_finished::run(c("ttl-after-finished-controller")),
        pod_gc::run(c("pod-garbage-collector"), options.pod_gc),
        resourcequota::run(c("resourcequota-controller")),
        event_ttl::run(c("event-ttl-controller"), options.event_ttl),
        volume_binder::run(c("persistent-volume-binder")),
        local_path::run(c("local-path-provisioner")),
        async {
            if let Some(host) = options.wasm.clone() {
                wasm::run(creds.clone(), host).await
            }
        },
    );
}

/// Runs the controllers while this process (candidate `identity`) leads, campaigning with
/// `lease_client`; on losing the Lease they stop and the process campaigns again.
pub async fn run_elected(
    lease_client: kube::Client,
    creds: Credentials,
    identity: &str,
    timing: Timing,
    options: Options,
    stop: impl std::future::Future<Output = ()>,
) {
    let elector =
        LeaderElector::new(lease_client, "kube-system", LEASE_NAME, identity).with_timing(timing);
    elector
        .run_until(|| run(creds.clone(), options.clone()), stop)
        .await;
}
