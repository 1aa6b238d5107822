//! `keelson bench kubelet`: the API server (embedded store, with the controllers) and a node
//! agent in this process; a WASI image imported into the agent's store; then Wasm pods created
//! through the API already bound to the node (so the scheduler is not measured), each timed
//! from its create request to `phase: Running` seen on a watch. Also the process's idle RSS
//! with the server and the agent up and no pods.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::watcher::{self, Event};
use kube::Api;
use tokio::time::Instant;

use super::backend::{self, Backend, StartError};
use super::report::{self, Metric, Report, Unit};

/// Issue 14's targets.
const P99_TARGET_MS: f64 = 50.0;
const IDLE_RSS_TARGET_MIB: f64 = 50.0;
const NODE: &str = "bench-node";

/// Flags of `keelson bench kubelet`.
#[derive(Args, Debug)]
pub(crate) struct KubeletBench {
    /// Wasm pods to run.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Concurrent pod creates (1 measures each pod's own latency; more measure a burst, where
    /// pods queue behind each other in the API server and the agent).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// The WASI command to run [default: target/wasm32-wasip2/release/wasi-demo.wasm, built
    /// with `cargo build --release --manifest-path plugins/Cargo.toml -p wasi-demo`].
    #[arg(long)]
    wasm: Option<PathBuf>,
    /// Seconds to wait for all pods to run.
    #[arg(long, default_value_t = 120)]
    timeout_secs: u64,
    /// Parent of the temp data dir [default: the system temp dir].
    #[arg(long)]
    dir: Option<PathBuf>,
}

pub(super) fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench-kubelet"}},
        "spec": {"nodeName": NODE, "runtimeClassName": "wasm", "containers": [{
            "name": "c", "image": "demo:1", "args": ["--sleep-ms", "600000"],
            "resources": {"limits": {"memory": "8Mi"}}}]}
    }))
    .expect("pod literal")
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    let i = ((sorted.len() as f64 - 1.0) * p / 100.0).round() as usize;
    sorted.get(i.min(sorted.len().saturating_sub(1))).copied()
}

impl KubeletBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        report::banner(
            "kubelet",
            "the server, the agent and the load generator",
            &base,
        );
        let wasm = self
            .wasm
            .clone()
            .unwrap_or_else(|| PathBuf::from("target/wasm32-wasip2/release/wasi-demo.wasm"));
        let bytes = std::fs::read(&wasm).with_context(|| {
            format!(
                "reading {} (build it with `cargo build --release --manifest-path plugins/Cargo.toml -p wasi-demo`)",
                wasm.display()
            )
        })?;
        let started = match backend::start(Backend::Embedded, &base).await {
            Ok(s) => s,
            Err(StartError::Skip(why)) => bail!("server unavailable: {why}"),
            Err(StartError::Failed(e)) => return Err(e),
        };
        let agent_dir = started.kubeconfig.with_file_name("agent");
        keelson_kubelet::images::ImageStore::new(agent_dir.join("images"))
            .import(&bytes, "demo:1")?;
        let host = keelson_plugin_host::PluginHost::with_config(
            agent_dir.join("plugin-cache"),
            keelson_kubelet::plugin_host_config(),
        )?;
        let mut config = keelson_kubelet::Config::new(NODE, agent_dir);
        config.port = 0;
        config.node_ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        let client = started.in_process.clone();
        let agent = tokio::spawn(keelson_kubelet::run(client.clone(), host, config));

        let running: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let watch = {
            let running = running.clone();
            let config = watcher::Config::default().labels("app=bench-kubelet");
            let mut stream = watcher::watcher(pods.clone(), config).boxed();
            tokio::spawn(async move {
                while let Some(ev) = stream.next().await {
                    if let Ok(Event::Apply(p) | Event::InitApply(p)) = ev {
                        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
                        if phase == Some("Running") {
                            let name = p.metadata.name.unwrap_or_default();
                            running
                                .lock()
                                .unwrap()
                                .entry(name)
                                .or_insert_with(Instant::now);
                        }
                    }
                }
            })
        };
        // Warm-up: the node registered and the image compiled.
        let deadline = Instant::now() + Duration::from_secs(120);
        while pods
            .create(&PostParams::default(), &pod("warmup"))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("could not create the warm-up pod");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while !running.lock().unwrap().contains_key("warmup") {
            if Instant::now() > deadline || agent.is_finished() {
                bail!("the warm-up pod did not run within 120 s (or the agent stopped)");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle_rss = rss_mib();

        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let start = Instant::now();
        let errors = futures::stream::iter(0..self.pods)
            .map(|i| {
                let (pods, created) = (pods.clone(), created.clone());
                async move {
                    let name = format!("w-{i}");
                    created.lock().unwrap().insert(name.clone(), Instant::now());
                    pods.create(&PostParams::default(), &pod(&name))
                        .await
                        .is_err()
                }
            })
            .buffer_unordered(self.concurrency.max(1))
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let deadline = Instant::now() + Duration::from_secs(self.timeout_secs);
        while running.lock().unwrap().len().saturating_sub(1) < self.pods - errors
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let busy_rss = rss_mib();
        watch.abort();
        agent.abort();

        let running = running.lock().unwrap().clone();
        let created = created.lock().unwrap().clone();
        let mut latencies: Vec<f64> = created
            .iter()
            .filter_map(|(n, c)| {
                running
                    .get(n)
                    .map(|r| r.duration_since(*c).as_secs_f64() * 1e3)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        let total = start.elapsed().as_secs_f64();
        let p99 = percentile(&latencies, 99.0);
        let mut r = Report {
            backend: "embedded".into(),
            title: format!("kubelet: {} Wasm pods on one node", self.pods),
            setup: format!(
                "pods created in-process by {} clients with spec.nodeName set; agent in-process; wasi-demo sleeping",
                self.concurrency
            ),
            ..Default::default()
        };
        let n = latencies.len();
        r.metrics.push(Metric::new(
            "p50",
            "create→Running p50".into(),
            percentile(&latencies, 50.0),
            Unit::Millis,
        ));
        r.metrics.push(Metric::new(
            "p99",
            "create→Running p99".into(),
            p99,
            Unit::Millis,
        ));
        r.metrics.push(Metric::new(
            "rate",
            "pods running /s".into(),
            Some(n as f64 / total),
            Unit::PerSec,
        ));
        r.notes.push(format!(
            "running {n}/{} pods ({errors} create errors); target p99 ≤ {P99_TARGET_MS:.0} ms: {}",
            self.pods,
            if p99.is_some_and(|p| p <= P99_TARGET_MS) {
                "met"
            } else {
                "MISSED"
            }
        ));
        r.notes.push(format!(
            "process RSS (server + controllers + agent): idle {idle_rss:.0} MiB (target ≤ {IDLE_RSS_TARGET_MIB:.0} MiB: {}), with the pods {busy_rss:.0} MiB",
            if idle_rss <= IDLE_RSS_TARGET_MIB { "met" } else { "MISSED" }
        ));
        print!("{}", report::table(&r));
        Ok(())
    }
}
