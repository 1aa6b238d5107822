//! `keelson bench scheduler`: start the API server (embedded store) in this process, register
//! simulated nodes, run the scheduler against it over HTTPS (as `keelson server` does), create
//! pods through the API and time each from its create request to its binding, seen on a watch.
//! Two phases in one run: the built-in plugins alone (the baseline), then the same with one Wasm
//! score plugin (`prefer-nodes` from plugins/) loaded; plus the Wasm call cost per node.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use tokio::time::Instant;

use super::backend::{self, Backend, StartError};
use super::report::{self, Metric, Report, Unit};
use crate::commands::kube_client;

/// DESIGN.md: scheduling throughput at 5,000 nodes.
const PODS_PER_SEC_TARGET: f64 = 1500.0;
const NAMESPACE: &str = "bench-scheduler";

/// Flags of `keelson bench scheduler`.
#[derive(Args, Debug)]
pub(crate) struct SchedulerBench {
    /// Simulated nodes.
    #[arg(long, default_value_t = 5000)]
    nodes: usize,
    /// Pods to schedule.
    #[arg(long, default_value_t = 10000)]
    pods: usize,
    /// Concurrent pod creates.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// `percentageOfNodesToScore` (0 = Kubernetes' adaptive default).
    #[arg(long, default_value_t = 0)]
    percentage_of_nodes_to_score: u32,
    /// Seconds to wait for all pods to be bound.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// Parent of the temp data dir [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Directory with prefer_nodes.wasm [default: <repo>/target/wasm32-wasip2/release, built
    /// with `cargo build --release` in plugins/ when missing].
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// Skip the phase with the Wasm score plugin.
    #[arg(long)]
    no_wasm: bool,
}

/// The Wasm score plugin of the second phase.
const WASM_PLUGIN: &str = "prefer_nodes";

fn rss_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn pod(namespace: &str, name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36",
            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}
    }))
    .expect("pod literal")
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    Some(sorted[i.min(sorted.len() - 1)])
}

/// Registers `count` simulated nodes named `bench-<i>` (as `keelson sim nodes` does) and
/// returns their simulator settings, for [`keelson_sim::run`] to keep them alive.
pub(super) async fn register_sim_nodes(
    client: &kube::Client,
    count: usize,
) -> anyhow::Result<keelson_sim::Config> {
    let t = Instant::now();
    let sim = keelson_sim::Config {
        count,
        template: keelson_sim::NodeTemplate {
            name_prefix: "bench-".into(),
            ..Default::default()
        },
        concurrency: 64,
        ..Default::default()
    };
    keelson_sim::register_nodes(client, &sim)
        .await
        .context("registering nodes")?;
    println!(
        "   registered {count} nodes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(sim)
}

/// An in-memory snapshot of `nodes` simulated nodes (as `keelson sim nodes` registers them).
fn sim_snapshot(nodes: usize) -> keelson_scheduler::Snapshot {
    let template = keelson_sim::NodeTemplate::default();
    let mut snapshot = keelson_scheduler::Snapshot::default();
    for i in 0..nodes {
        let node = keelson_sim::node_object(&template, i);
        let name = node.metadata.name.clone().unwrap_or_default();
        snapshot.entry(&name).set_node(Arc::new(node));
    }
    snapshot
}

/// The Wasm plugin's own cost: `filter` and `score` called directly (no API, no scheduling
/// loop) over `batch` node records, as the scheduler batches them; returns µs per node for
/// each, the best of `rounds` calls (a fresh instance per call, as in the scheduler).
async fn wasm_cost_per_node(
    plugin: &keelson_scheduler::WasmScheduler,
    batch: usize,
    rounds: usize,
) -> anyhow::Result<(f64, f64)> {
    let snapshot = sim_snapshot(batch);
    let nodes: Vec<_> = snapshot
        .ready_nodes()
        .map(keelson_scheduler::wasm::node_input)
        .collect();
    let info = keelson_scheduler::PodInfo::new(Arc::new(pod(NAMESPACE, "cost")));
    let object = serde_json::to_string(&*info.pod)?;
    let mut input = keelson_scheduler::wasm::pod_input(&info, object);
    input.config = plugin.config.clone();
    let (mut filter, mut score) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = std::time::Instant::now();
        plugin
            .plugin
            .filter_async(input.clone(), nodes.clone())
            .await?;
        filter = filter.min(t.elapsed().as_secs_f64());
        let t = std::time::Instant::now();
        plugin
            .plugin
            .score_async(input.clone(), nodes.clone())
            .await?;
        score = score.min(t.elapsed().as_secs_f64());
    }
    let per_node = |secs: f64| secs * 1e6 / nodes.len().max(1) as f64;
    Ok((per_node(filter), per_node(score)))
}

/// The scheduling algorithm alone: every pod through the default profile against an in-memory
/// snapshot of the same nodes (no API, no binding); returns pods per second.
fn algorithm_only(nodes: usize, pods: usize, percentage: u32) -> f64 {
    use std::sync::Arc as A;
    let mut snapshot = sim_snapshot(nodes);
    let profile =
        keelson_scheduler::default_profile(keelson_scheduler::DEFAULT_SCHEDULER_NAME, percentage);
    let mut rng = rand::thread_rng();
    let mut next = 0;
    let start = std::time::Instant::now();
    for i in 0..pods {
        let info = A::new(keelson_scheduler::PodInfo::new(A::new(pod(
            NAMESPACE,
            &format!("p-{i}"),
        ))));
        if let Ok(placed) = profile.schedule(&info, &snapshot, &mut next, &mut rng) {
            snapshot.entry(&placed.node).add_pod(info);
        }
    }
    pods as f64 / start.elapsed().as_secs_f64()
}

impl SchedulerBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        report::banner(
            "scheduler",
            "the server, the scheduler and the load generator",
            &base,
        );
        // The plugin cache lives (and is removed) with this temp dir.
        let cache = tempfile::tempdir_in(&base)?;
        let wasm = match self.no_wasm {
            true => None,
            false => Some(self.load_wasm(cache.path()).await?),
        };
        let started = match backend::start(Backend::Embedded, &base).await {
            Ok(s) => s,
            Err(StartError::Skip(why)) => bail!("server unavailable: {why}"),
            Err(StartError::Failed(e)) => return Err(e),
        };
        let client = kube_client::from_kubeconfig(&started.kubeconfig).await?;

        register_sim_nodes(&client, self.nodes).await?;

        let mut builtin = self.phase(&client, NAMESPACE, None).await?;
        let algorithm = algorithm_only(self.nodes, self.pods, self.percentage_of_nodes_to_score);
        builtin.metrics.push(Metric::new(
            "algorithm",
            "scheduling cycles alone (no API) /s".into(),
            Some(algorithm),
            Unit::PerSec,
        ));
        print!("{}", report::table(&builtin));
        if let Some(plugin) = wasm {
            let ns = format!("{NAMESPACE}-wasm");
            let mut with = self.phase(&client, &ns, Some(plugin.clone())).await?;
            let batch = (self.nodes * self.percentage_used() as usize / 100).max(1);
            let (filter, score) = wasm_cost_per_node(&plugin, batch, 50).await?;
            with.metrics.push(Metric::new(
                "wasm-filter",
                format!("Wasm filter per node ({batch} nodes a call)"),
                Some(filter),
                Unit::Micros,
            ));
            with.metrics.push(Metric::new(
                "wasm-score",
                format!("Wasm score per node ({batch} nodes a call)"),
                Some(score),
                Unit::Micros,
            ));
            with.notes.push(format!(
                "Wasm calls: {} (plugin errors {}); target ≤1 µs per node: filter {}, score {}",
                plugin.plugin.metrics().calls,
                plugin.errors(),
                if filter <= 1.0 { "met" } else { "MISSED" },
                if score <= 1.0 { "met" } else { "MISSED" },
            ));
            with.notes.push(format!(
                "this phase starts with the {} pods of the built-in phase still bound",
                self.pods
            ));
            print!("{}", report::table(&with));
            print!("{}", report::comparison(&with, &builtin));
        }
        Ok(())
    }

    /// The `percentageOfNodesToScore` in effect (Kubernetes' adaptive default when 0).
    fn percentage_used(&self) -> i64 {
        if self.percentage_of_nodes_to_score == 0 {
            (50 - self.nodes as i64 / 125).max(5)
        } else {
            self.percentage_of_nodes_to_score as i64
        }
    }

    /// Loads the Wasm score plugin of the second phase (weight 1, every profile, Fail),
    /// caching its compiled code in `cache`.
    async fn load_wasm(
        &self,
        cache: &std::path::Path,
    ) -> anyhow::Result<Arc<keelson_scheduler::WasmScheduler>> {
        let (dir, how) = super::plugins::locate(self.plugins_dir.clone(), &[WASM_PLUGIN]).await?;
        println!(
            "   Wasm plugin: {WASM_PLUGIN}.wasm from {} ({how})",
            dir.display()
        );
        let wasm = std::fs::read(dir.join(format!("{WASM_PLUGIN}.wasm")))?;
        let host = keelson_plugin_host::PluginHost::new(cache)?;
        let plugin = host.load_scheduler(
            "prefer-nodes",
            &wasm,
            keelson_plugin_host::Limits::default(),
        )?;
        let config = r#"{"preferLabel":{"key":"keelson.dev/bench","value":"preferred"}}"#;
        Ok(Arc::new(keelson_scheduler::WasmScheduler::new(
            plugin,
            1,
            vec![],
            config.into(),
            false,
        )))
    }

    /// One measured run: `self.pods` pods created in `namespace` and bound by a scheduler
    /// with the built-in plugins and, when given, the Wasm plugin.
    async fn phase(
        &self,
        client: &kube::Client,
        namespace: &str,
        wasm: Option<Arc<keelson_scheduler::WasmScheduler>>,
    ) -> anyhow::Result<Report> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        namespaces
            .create(&PostParams::default(), &ns)
            .await
            .context("creating the namespace")?;

        // Binding times, from a watch on the namespace.
        let bound: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
        let watch = {
            let bound = bound.clone();
            let mut stream = watcher::watcher(pods.clone(), watcher::Config::default()).boxed();
            tokio::spawn(async move {
                while let Some(ev) = stream.next().await {
                    if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev {
                        if p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some() {
                            let name = p.metadata.name.unwrap_or_default();
                            bound
                                .lock()
                                .unwrap()
                                .entry(name)
                                .or_insert_with(Instant::now);
                        }
                    }
                }
            })
        };

        let wasm_plugins = keelson_scheduler::WasmPlugins::default();
        if let Some(plugin) = &wasm {
            wasm_plugins.insert(plugin.plugin.name(), plugin.clone());
        }
        let config = keelson_scheduler::Config {
            profiles: vec![keelson_scheduler::default_profile(
                keelson_scheduler::DEFAULT_SCHEDULER_NAME,
                self.percentage_of_nodes_to_score,
            )],
            wasm_plugins,
            ..Default::default()
        };
        let scheduler = tokio::spawn(keelson_scheduler::run(client.clone(), config));
        // Warm-up: one pod bound means the scheduler has its caches.
        pods.create(&PostParams::default(), &pod(namespace, "warmup"))
            .await?;
        let deadline = Instant::now() + Duration::from_secs(120);
        while !bound.lock().unwrap().contains_key("warmup") {
            if Instant::now() > deadline {
                bail!("the scheduler did not bind a warm-up pod within 120 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (rss_before, _) = rss_mib();

        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let start = Instant::now();
        let errors = futures::stream::iter(0..self.pods)
            .map(|i| {
                let pods = pods.clone();
                let created = created.clone();
                async move {
                    let name = format!("p-{i}");
                    created.lock().unwrap().insert(name.clone(), Instant::now());
                    pods.create(&PostParams::default(), &pod(namespace, &name))
                        .await
                        .is_err()
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let create_secs = start.elapsed().as_secs_f64();
        let deadline = Instant::now() + Duration::from_secs(self.timeout_secs);
        loop {
            let n = bound.lock().unwrap().len().saturating_sub(1);
            if n >= self.pods - errors || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let (rss_after, hwm) = rss_mib();
        watch.abort();
        scheduler.abort();

        let bound = bound.lock().unwrap().clone();
        let created = created.lock().unwrap().clone();
        let mut latencies: Vec<f64> = created
            .iter()
            .filter_map(|(name, c)| {
                bound
                    .get(name)
                    .map(|b| b.duration_since(*c).as_secs_f64() * 1000.0)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let last = created.keys().filter_map(|n| bound.get(n)).max().copied();
        let bound_count = latencies.len();
        let secs = last.map(|l| l.duration_since(start).as_secs_f64());
        let rate = secs.map(|s| bound_count as f64 / s);
        let what = match &wasm {
            None => "built-in plugins".to_string(),
            Some(p) => format!("built-ins + Wasm score plugin {}", p.plugin.name()),
        };
        let mut r = Report {
            backend: match wasm {
                None => "built-ins".into(),
                Some(_) => "with-wasm".into(),
            },
            title: format!("scheduler: {} nodes, {} pods ({what})", self.nodes, self.pods),
            setup: format!(
                "pods created over HTTPS by {} clients; scheduler over HTTPS (kube::Client); percentageOfNodesToScore = {}%",
                self.concurrency,
                self.percentage_used()
            ),
            ..Default::default()
        };
        r.metrics.push(Metric::new(
            "rate",
            "pods scheduled and bound /s".into(),
            rate,
            Unit::PerSec,
        ));
        r.metrics.push(Metric::new(
            "create",
            "pods created /s".into(),
            Some(self.pods as f64 / create_secs),
            Unit::PerSec,
        ));
        r.metrics.push(Metric::new(
            "p50",
            "create→bound p50".into(),
            percentile(&latencies, 50.0),
            Unit::Millis,
        ));
        r.metrics.push(Metric::new(
            "p99",
            "create→bound p99".into(),
            percentile(&latencies, 99.0),
            Unit::Millis,
        ));
        r.notes.push(format!(
            "bound {bound_count}/{} pods ({errors} create errors); target ≥{PODS_PER_SEC_TARGET:.0} pods/s: {}",
            self.pods,
            match rate {
                Some(v) if v >= PODS_PER_SEC_TARGET => "met",
                _ => "MISSED",
            }
        ));
        r.notes.push(format!(
            "process memory (server + scheduler + load generator): RSS {rss_before:.0} MiB before the pods, {rss_after:.0} MiB after, peak {hwm:.0} MiB"
        ));
        Ok(r)
    }
}
