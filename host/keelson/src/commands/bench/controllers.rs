//! `keelson bench controllers`: the API server (embedded store), the scheduler and simulated
//! nodes in this process; a Deployment of `--replicas` pods is created and timed until every
//! replica is available, then its template changes and the rolling update is timed until every
//! replica is new and available. Two phases in one run: first the controllers behind clients
//! limited like kube-controller-manager's (`--kube-api-qps 20 --kube-api-burst 30` per
//! controller: the baseline), then Keelson's unlimited in-process clients. Last, a Wasm
//! controller's reconcile cost ([`super::wasm_controller`]).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use tokio::sync::Mutex;
use tokio::time::Instant;
use tower::ServiceExt;

use super::backend::{self, Backend, StartError};
use super::report::{self, Metric, Report, Unit};

/// Issue targets: 1,000 pods available ≤ 10 s, rolled ≤ 30 s.
const RUNNING_TARGET_SECS: f64 = 10.0;
const ROLLED_TARGET_SECS: f64 = 30.0;

/// Flags of `keelson bench controllers`.
#[derive(Args, Debug)]
pub(crate) struct ControllersBench {
    /// Replicas of the Deployment.
    #[arg(long, default_value_t = 1000)]
    replicas: i32,
    /// Simulated nodes.
    #[arg(long, default_value_t = 100)]
    nodes: usize,
    /// Per-controller request rate of the baseline (kube-controller-manager's default
    /// `--kube-api-qps`); 0 skips the baseline.
    #[arg(long, default_value_t = 20)]
    baseline_qps: u32,
    /// Seconds each wait may take.
    #[arg(long, default_value_t = 600)]
    timeout_secs: u64,
    /// Parent of the temp data dir [default: the system temp dir].
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Reconciles of the namespace-defaults Wasm controller timed (0 skips them).
    #[arg(long, default_value_t = 1000)]
    wasm_reconciles: usize,
    /// Directory with namespace_defaults.wasm [default: <repo>/target/wasm32-wasip2/release,
    /// built with `cargo build --release` in plugins/ when missing].
    #[arg(long)]
    plugins_dir: Option<std::path::PathBuf>,
}

/// A token bucket: `qps` requests a second after a burst of `burst` (client-go's flowcontrol),
/// as the generic cell rate algorithm: `tat` is when the bucket would be full again.
struct Bucket {
    interval: Duration,
    burst: u32,
    tat: Mutex<Instant>,
}

impl Bucket {
    fn new(qps: u32, burst: u32) -> Self {
        Bucket {
            interval: Duration::from_secs_f64(1.0 / qps.max(1) as f64),
            burst: burst.max(1),
            tat: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a token.
    async fn take(&self) {
        let wait = {
            let mut tat = self.tat.lock().await;
            let now = Instant::now();
            let due = (*tat).max(now);
            let allowed_at = due
                .checked_sub(self.interval * (self.burst - 1))
                .unwrap_or(now);
            *tat = due + self.interval;
            allowed_at.saturating_duration_since(now)
        };
        tokio::time::sleep(wait).await;
    }
}

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// The controllers' clients: in-process per ServiceAccount, rate-limited per controller when
/// `qps` is set.
fn credentials(
    api: &Arc<keelson_apiserver::ApiServer>,
    qps: Option<u32>,
) -> keelson_controllers::Credentials {
    let router = keelson_apiserver::router(api.clone());
    keelson_controllers::Credentials::per_service_account(move |ns, name| {
        let user = keelson_client::UserInfo::service_account(ns, name);
        match qps {
            None => keelson_client::in_process(router.clone(), user),
            Some(qps) => {
                let bucket = Arc::new(Bucket::new(qps, qps * 3 / 2));
                let router = router.clone();
                let limited = tower::service_fn(move |req| {
                    let (bucket, router) = (bucket.clone(), router.clone());
                    async move {
                        bucket.take().await;
                        router.oneshot(req).await
                    }
                });
                keelson_client::in_process(limited, user)
            }
        }
    })
}

fn deployment(namespace: &str, replicas: i32) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(serde_json::json!({
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27",
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
            }
        }
    }))?)
}

/// Polls the Deployment until `done` holds for its status; returns the seconds it took.
async fn wait_until(
    api: &Api<Deployment>,
    since: Instant,
    timeout: Duration,
    done: impl Fn(&Deployment) -> bool,
) -> anyhow::Result<f64> {
    loop {
        let d = api.get("web").await?;
        if done(&d) {
            return Ok(since.elapsed().as_secs_f64());
        }
        if since.elapsed() > timeout {
            bail!("timed out after {timeout:?}: status {:?}", d.status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl ControllersBench {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let base = self.dir.clone().unwrap_or_else(std::env::temp_dir);
        report::banner(
            "controllers",
            "the server, the controllers, the scheduler, the simulated nodes and the load generator",
            &base,
        );
        let started = match backend::start_without_controllers(Backend::Embedded, &base).await {
            Ok(s) => s,
            Err(StartError::Skip(why)) => bail!("server unavailable: {why}"),
            Err(StartError::Failed(e)) => return Err(e),
        };
        let router = keelson_apiserver::router(started.api.clone());
        let admin = started.in_process.clone();
        let sim_client =
            keelson_client::in_process(router.clone(), keelson_client::UserInfo::admin());
        let sim = super::scheduler::register_sim_nodes(&sim_client, self.nodes).await?;
        // Not spawned: the simulator's future is not `Send`; it runs beside the phases below.
        let simulated = keelson_sim::run(sim_client, sim);
        let scheduler_client =
            keelson_client::in_process(router, keelson_client::UserInfo::scheduler());
        tokio::spawn(keelson_scheduler::run(
            scheduler_client,
            keelson_scheduler::Config::default(),
        ));

        let phases = async {
            let mut reports = Vec::new();
            if self.baseline_qps > 0 {
                let qps = Some(self.baseline_qps);
                reports.push(self.phase(&started.api, &admin, "bench-qps", qps).await?);
            }
            reports.push(self.phase(&started.api, &admin, "bench-free", None).await?);
            let wasm = match self.wasm_reconciles {
                0 => None,
                n => Some(
                    super::wasm_controller::measure(self.plugins_dir.clone(), &admin, n).await?,
                ),
            };
            anyhow::Ok((reports, wasm))
        };
        let (reports, wasm) = tokio::select! {
            reports = phases => reports?,
            stopped = simulated => bail!("the simulated nodes stopped: {stopped:?}"),
        };
        for r in &reports {
            print!("{}", report::table(r));
        }
        if let [baseline, ours] = reports.as_slice() {
            print!("{}", report::comparison(ours, baseline));
        }
        if let Some(wasm) = wasm {
            print!("{}", report::table(&wasm));
        }
        Ok(())
    }

    /// One Deployment created, then rolled, with the controllers on `qps`-limited clients.
    async fn phase(
        &self,
        api: &Arc<keelson_apiserver::ApiServer>,
        admin: &kube::Client,
        namespace: &str,
        qps: Option<u32>,
    ) -> anyhow::Result<Report> {
        let ns: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": namespace}}))?;
        Api::<Namespace>::all(admin.clone())
            .create(&PostParams::default(), &ns)
            .await
            .context("creating the namespace")?;
        let controllers = tokio::spawn(keelson_controllers::run(
            credentials(api, qps),
            Default::default(),
        ));
        let deployments: Api<Deployment> = Api::namespaced(admin.clone(), namespace);
        let timeout = Duration::from_secs(self.timeout_secs);
        let n = self.replicas;
        let rss_before = rss_mib();

        let start = Instant::now();
        deployments
            .create(&PostParams::default(), &deployment(namespace, n)?)
            .await?;
        let available = |d: &Deployment| {
            d.status
                .as_ref()
                .is_some_and(|s| s.available_replicas == Some(n))
        };
        let running = wait_until(&deployments, start, timeout, available).await?;

        let start = Instant::now();
        let patch = serde_json::json!({"spec": {"template": {"spec": {"containers": [
            {"name": "web", "image": "nginx:1.28"}]}}}});
        let rolled_to = deployments
            .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
            .await?
            .metadata
            .generation
            .unwrap_or(0);
        let rolled = wait_until(&deployments, start, timeout, |d| {
            let s = d.status.clone().unwrap_or_default();
            s.observed_generation.unwrap_or(0) >= rolled_to
                && s.updated_replicas == Some(n)
                && s.available_replicas == Some(n)
                && s.replicas == Some(n)
        })
        .await?;
        controllers.abort();
        let rss_after = rss_mib();

        let (name, setup) = match qps {
            Some(q) => (
                "qps-limited",
                format!("controllers' clients limited to {q} QPS (burst {}) each, as kube-controller-manager's defaults", q * 3 / 2),
            ),
            None => (
                "keelson",
                "controllers' in-process clients, unlimited (Keelson's default)".to_string(),
            ),
        };
        let mut r = Report {
            backend: name.into(),
            title: format!(
                "controllers: Deployment of {n} replicas on {} simulated nodes ({name})",
                self.nodes
            ),
            setup,
            ..Default::default()
        };
        r.metrics.push(Metric::new(
            "running",
            format!("create → {n} available"),
            Some(running * 1000.0),
            Unit::Millis,
        ));
        r.metrics.push(Metric::new(
            "rolled",
            format!("template change → {n} new and available"),
            Some(rolled * 1000.0),
            Unit::Millis,
        ));
        let verdict = |secs: f64, target: f64| if secs <= target { "met" } else { "MISSED" };
        r.notes.push(format!(
            "targets: available ≤{RUNNING_TARGET_SECS:.0} s {}, rolled ≤{ROLLED_TARGET_SECS:.0} s {}",
            verdict(running, RUNNING_TARGET_SECS),
            verdict(rolled, ROLLED_TARGET_SECS)
        ));
        r.notes.push(format!(
            "process memory (server + controllers + scheduler + simulated nodes): RSS {rss_before:.0} MiB before, {rss_after:.0} MiB after"
        ));
        Ok(r)
    }
}
