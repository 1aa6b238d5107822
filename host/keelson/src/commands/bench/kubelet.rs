//! `keelson bench kubelet`: the API server (embedded store, with the controllers) and a node
//! agent in this process; a WASI image imported into the agent's store; then Wasm pods created
//! through the API already bound to the node (so the scheduler is not measured), each timed
//! from its create request to `phase: Running` seen on a watch. Also the process's idle RSS
//! with the server and the agent up and no pods. With `--containerd SOCKET`, the same for
//! containerd pods of an image already imported there, against a baseline from the same run:
//! containerd's own `ctr run -d` of that image, one container after another.

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
    /// Concurrent pod creates (1: one pod at a time, the next created once the previous runs,
    /// which measures each pod's own latency; more measure a burst, where pods queue behind
    /// each other in the API server and the agent). The containerd pods always go one at a
    /// time, like their `ctr run` baseline.
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
    /// containerd's socket: also run `--containerd-pods` pods of `--containerd-image` there
    /// (the image must be imported in `--containerd-namespace`; they share the node's network).
    #[arg(long)]
    containerd: Option<PathBuf>,
    /// containerd namespace of the image and containers.
    #[arg(long, default_value = "k8s.io")]
    containerd_namespace: String,
    /// The image of the containerd pods (it must have `sleep`).
    #[arg(long, default_value = "docker.io/library/busybox:latest")]
    containerd_image: String,
    /// containerd pods to run.
    #[arg(long, default_value_t = 20)]
    containerd_pods: usize,
}

/// Issue 14's target for containerd pods whose image is present.
const CONTAINERD_P99_TARGET_MS: f64 = 1000.0;

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

/// A containerd pod of `image`, sleeping, bound to the node.
fn containerd_pod(name: &str, image: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "bench-kubelet"}},
        "spec": {"nodeName": NODE, "terminationGracePeriodSeconds": 0, "containers": [{
            "name": "c", "image": image, "imagePullPolicy": "Never",
            "command": ["sleep", "600"]}]}
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
        config.containerd_socket = self.containerd.clone();
        config.containerd_namespace = self.containerd_namespace.clone();
        config.pod_cidr = None;
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

        let timeout = Duration::from_secs(self.timeout_secs);
        let wasm_pods = (0..self.pods).map(|i| pod(&format!("w-{i}"))).collect();
        let burst = Burst::run(&pods, &running, wasm_pods, self.concurrency, timeout).await;
        let busy_rss = rss_mib();
        let mut reports = vec![self.wasm_report(&burst, idle_rss, busy_rss)];
        if let Some(socket) = &self.containerd {
            let ctr_pods = (0..self.containerd_pods)
                .map(|i| containerd_pod(&format!("c-{i}"), &self.containerd_image))
                .collect();
            let ours = Burst::run(&pods, &running, ctr_pods, 1, timeout).await;
            let baseline = self.ctr_baseline(socket).await;
            reports.push(self.containerd_report(&ours));
            reports.push(self.ctr_report(&baseline));
            // The agent stops the containers it started before it goes.
            let _ = pods
                .delete_collection(&Default::default(), &Default::default())
                .await;
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline
                && !pods
                    .list(&Default::default())
                    .await
                    .map(|l| l.items.is_empty())
                    .unwrap_or(true)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        watch.abort();
        agent.abort();
        for r in &reports {
            print!("{}", report::table(r));
        }
        if let [_, ours, baseline] = reports.as_slice() {
            print!("{}", report::comparison(ours, baseline));
        }
        Ok(())
    }

    fn wasm_report(&self, b: &Burst, idle_rss: f64, busy_rss: f64) -> Report {
        let mut r = b.report(
            "embedded",
            format!("kubelet: {} Wasm pods on one node", self.pods),
            format!(
                "pods created in-process by {} clients with spec.nodeName set; agent in-process; wasi-demo sleeping",
                self.concurrency
            ),
            P99_TARGET_MS,
        );
        r.notes.push(format!(
            "process RSS (server + controllers + agent): idle {idle_rss:.0} MiB (target ≤ {IDLE_RSS_TARGET_MIB:.0} MiB: {}), with the pods {busy_rss:.0} MiB",
            if idle_rss <= IDLE_RSS_TARGET_MIB { "met" } else { "MISSED" }
        ));
        r
    }

    fn containerd_report(&self, b: &Burst) -> Report {
        b.report(
            "keelson",
            format!(
                "kubelet: {} containerd pods on one node (image present)",
                self.containerd_pods
            ),
            format!(
                "pods of {} created one at a time in-process with spec.nodeName set; sleep 600; node network",
                self.containerd_image
            ),
            CONTAINERD_P99_TARGET_MS,
        )
    }

    /// `ctr run -d` of the image, one container after another, each removed afterwards:
    /// milliseconds each took to return (the task is started when it does).
    async fn ctr_baseline(&self, socket: &std::path::Path) -> Result<Vec<f64>, String> {
        let ctr = |args: Vec<String>| {
            let mut c = tokio::process::Command::new("ctr");
            c.arg("--address")
                .arg(socket)
                .args(["--namespace", &self.containerd_namespace])
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            c
        };
        let mut took = Vec::new();
        for i in 0..self.containerd_pods {
            let id = format!("bench-ctr-{}-{i}", std::process::id());
            let t = Instant::now();
            let out = ctr(vec![
                "run".into(),
                "-d".into(),
                self.containerd_image.clone(),
                id.clone(),
                "sleep".into(),
                "600".into(),
            ])
            .output()
            .await
            .map_err(|e| format!("running ctr: {e}"))?;
            let ms = t.elapsed().as_secs_f64() * 1e3;
            for cleanup in [
                vec!["task", "kill", "-s", "SIGKILL", &id],
                vec!["task", "rm", "-f", &id],
                vec!["container", "rm", &id],
            ] {
                let args = cleanup.into_iter().map(String::from).collect();
                let _ = ctr(args).output().await;
            }
            if !out.status.success() {
                return Err(format!(
                    "ctr run: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            took.push(ms);
        }
        took.sort_by(f64::total_cmp);
        Ok(took)
    }

    fn ctr_report(&self, baseline: &Result<Vec<f64>, String>) -> Report {
        let mut r = Report {
            backend: "ctr".into(),
            title: format!(
                "baseline: containerd's ctr run -d, {} containers",
                self.containerd_pods
            ),
            setup: format!(
                "{} sleeping, started and removed one after another",
                self.containerd_image
            ),
            ..Default::default()
        };
        let (latencies, note) = match baseline {
            Ok(l) => (l.as_slice(), None),
            Err(e) => (&[][..], Some(e.clone())),
        };
        for (key, p) in [("p50", 50.0), ("p99", 99.0)] {
            r.metrics.push(Metric::new(
                key,
                format!("ctr run -d p{p:.0}"),
                percentile(latencies, p),
                Unit::Millis,
            ));
        }
        r.notes.extend(note);
        r
    }
}

/// Pods created and timed from their create request until a watch saw them Running.
struct Burst {
    /// Milliseconds, sorted, of the pods that ran.
    latencies: Vec<f64>,
    /// Pods asked for.
    asked: usize,
    /// Failed creates.
    errors: usize,
    /// Seconds from the first create until the last pod ran (or the timeout).
    total_secs: f64,
}

impl Burst {
    async fn run(
        pods: &Api<Pod>,
        running: &Mutex<HashMap<String, Instant>>,
        batch: Vec<Pod>,
        concurrency: usize,
        timeout: Duration,
    ) -> Burst {
        let asked = batch.len();
        let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let start = Instant::now();
        let names: Vec<String> = batch
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        let errors = futures::stream::iter(batch)
            .map(|p| {
                let (pods, created) = (pods.clone(), created.clone());
                async move {
                    let name = p.metadata.name.clone().unwrap_or_default();
                    created.lock().unwrap().insert(name.clone(), Instant::now());
                    let failed = pods.create(&PostParams::default(), &p).await.is_err();
                    // One at a time: the next pod is created once this one runs.
                    let deadline = Instant::now() + timeout;
                    while concurrency <= 1
                        && !failed
                        && !running.lock().unwrap().contains_key(&name)
                        && Instant::now() < deadline
                    {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    failed
                }
            })
            .buffer_unordered(concurrency.max(1))
            .filter(|failed| std::future::ready(*failed))
            .count()
            .await;
        let deadline = Instant::now() + timeout;
        let ran = || {
            let running = running.lock().unwrap();
            names.iter().filter(|n| running.contains_key(*n)).count()
        };
        while ran() < asked - errors && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let total_secs = start.elapsed().as_secs_f64();
        let running = running.lock().unwrap();
        let created = created.lock().unwrap();
        let mut latencies: Vec<f64> = created
            .iter()
            .filter_map(|(n, c)| {
                running
                    .get(n)
                    .map(|r| r.duration_since(*c).as_secs_f64() * 1e3)
            })
            .collect();
        latencies.sort_by(f64::total_cmp);
        Burst {
            latencies,
            asked,
            errors,
            total_secs,
        }
    }

    /// The table of this burst: p50, p99 (held to `target_ms`) and pods/s.
    fn report(&self, backend: &str, title: String, setup: String, target_ms: f64) -> Report {
        let p99 = percentile(&self.latencies, 99.0);
        let n = self.latencies.len();
        let mut r = Report {
            backend: backend.into(),
            title,
            setup,
            ..Default::default()
        };
        r.metrics.push(Metric::new(
            "p50",
            "create→Running p50".into(),
            percentile(&self.latencies, 50.0),
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
            Some(n as f64 / self.total_secs),
            Unit::PerSec,
        ));
        r.notes.push(format!(
            "running {n}/{} pods ({} create errors); target p99 ≤ {target_ms:.0} ms: {}",
            self.asked,
            self.errors,
            if p99.is_some_and(|p| p <= target_ms) {
                "met"
            } else {
                "MISSED"
            }
        ));
        r
    }
}
