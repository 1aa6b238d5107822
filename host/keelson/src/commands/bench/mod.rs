//! `keelson bench`: benchmarks that print results against a baseline measured in the same run.
//!
//! `keelson bench api` starts the API server in this process once per store backend (the
//! embedded store, and etcd as the baseline) and drives it over real HTTPS with the admin
//! token. One generic measurement path ([`api`]) runs for every backend.
//!
//! `keelson bench admission` starts one server and measures what Wasm admission plugins add to
//! creates, over HTTPS and in-process, plus each example plugin's raw cost ([`admission`]).
//!
//! `keelson bench scheduler` registers simulated nodes, creates pods through the API server and
//! measures how fast the scheduler binds them ([`scheduler`]).
//!
//! `keelson bench kubelet` runs a node agent beside the server and times Wasm pods from create
//! to Running, and the idle memory of server + agent ([`kubelet`]).
//!
//! `keelson bench proxy` times the service proxy's nftables syncs in a namespace of its own
//! ([`proxy`]); `keelson bench dns` measures the cluster DNS server's answers/s ([`dns`]).
//! `keelson bench store` drives the store layer directly with 1,000 concurrent writers, on the
//! embedded store and on etcd in the same run ([`store`]).

mod admission;
mod admission_cpu;
mod api;
mod authz;
mod backend;
mod controllers;
mod dns;
mod http;
mod kubelet;
mod load;
mod plugins;
mod proxy;
mod report;
mod scheduler;
mod store;
mod wasm_controller;
mod watch;

use clap::{Args, Subcommand};

/// Flags of `keelson bench`.
#[derive(Args, Debug)]
pub(crate) struct BenchCommand {
    #[command(subcommand)]
    what: BenchWhat,
}

/// The benchmarks.
#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// API server: create/get/list throughput and latency, paced creates, watch fan-out; per
    /// store backend, embedded vs etcd.
    Api(api::ApiBench),
    /// Wasm admission plugins: create latency with 0, 1 and 5 plugins (HTTPS and in-process),
    /// the added latency per plugin, and each example plugin's raw instantiate/call cost.
    Admission(admission::AdmissionBench),
    /// Scheduler: simulated nodes, pods created through the API server and bound by the
    /// scheduler; pods/s, create→bound latency and memory.
    Scheduler(scheduler::SchedulerBench),
    /// Controllers: a Deployment's pods created and rolled on simulated nodes, against a
    /// baseline with kube-controller-manager's client rate limits, in one run.
    Controllers(controllers::ControllersBench),
    /// Node agent: Wasm pods bound to the agent's node, create→Running latency and memory.
    Kubelet(kubelet::KubeletBench),
    /// Authorization: the API load as an ordinary user under RBAC with ~200 bindings, against
    /// the same run under AlwaysAllow.
    Authz(authz::AuthzBench),
    /// Service proxy: nftables sync time for N Services × M endpoints (full, and a
    /// one-endpoint change as a diff vs as a full replacement), in a namespace of its own.
    Proxy(proxy::ProxyBench),
    /// Cluster DNS: answers/s and latency from the cache and from the zone, on one core.
    Dns(dns::DnsBench),
    /// Store layer: 1,000 concurrent writers creating keys, durable writes/s and p50/p99, on
    /// the embedded store and etcd in one run (like `etcdctl check perf`).
    Store(store::StoreBench),
}

impl BenchCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        match self.what {
            BenchWhat::Api(bench) => bench.execute().await,
            BenchWhat::Admission(bench) => bench.execute().await,
            BenchWhat::Scheduler(bench) => bench.execute().await,
            BenchWhat::Controllers(bench) => bench.execute().await,
            BenchWhat::Kubelet(bench) => bench.execute().await,
            BenchWhat::Authz(bench) => bench.execute().await,
            BenchWhat::Proxy(bench) => bench.execute().await,
            BenchWhat::Dns(bench) => bench.execute().await,
            BenchWhat::Store(bench) => bench.execute().await,
        }
    }
}
