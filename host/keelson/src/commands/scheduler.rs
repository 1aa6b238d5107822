//! `keelson scheduler`: the scheduler as its own process against any API server; with
//! `--leader-elect` (the default) only the holder of the Lease `kube-system/kube-scheduler`
//! schedules, so several can run side by side.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::kube_client;

/// The Lease schedulers elect their leader on (Kubernetes' name).
pub(crate) const LEASE_NAME: &str = "kube-scheduler";

/// Flags of `keelson scheduler`.
#[derive(Args, Debug)]
pub(crate) struct SchedulerCommand {
    /// kubeconfig of the API server [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    options: SchedulerOptions,
    #[command(flatten)]
    leader: super::leader::LeaderElectionArgs,
    /// Where compiled Wasm scheduler plugins (WasmPlugin objects of `spec.type: scheduler`)
    /// are cached [default: <temp dir>/keelson-scheduler-plugin-cache].
    #[arg(long, env = "KEELSON_PLUGIN_CACHE_DIR", help_heading = "Scheduler")]
    plugin_cache_dir: Option<PathBuf>,
}

/// Tuning shared by `keelson scheduler` and the scheduler inside `keelson server`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SchedulerOptions {
    /// A KubeSchedulerConfiguration (kubescheduler.config.k8s.io/v1) file: profiles by
    /// schedulerName, enabled/disabled plugins, score weights.
    #[arg(
        long = "scheduler-config",
        visible_alias = "config",
        env = "KEELSON_SCHEDULER_CONFIG",
        help_heading = "Scheduler"
    )]
    scheduler_config: Option<PathBuf>,
    /// Percentage of nodes to find feasible before scoring (0 = Kubernetes' adaptive default).
    #[arg(
        long,
        env = "KEELSON_PERCENTAGE_OF_NODES_TO_SCORE",
        default_value_t = 0,
        help_heading = "Scheduler"
    )]
    percentage_of_nodes_to_score: u32,
    /// Bindings in flight at once.
    #[arg(
        long,
        env = "KEELSON_SCHEDULER_BIND_CONCURRENCY",
        default_value_t = 64,
        help_heading = "Scheduler"
    )]
    bind_concurrency: usize,
}

impl SchedulerOptions {
    /// The scheduler configuration these flags (and the config file) describe.
    pub(crate) fn config(&self) -> anyhow::Result<keelson_scheduler::Config> {
        let profiles = match &self.scheduler_config {
            None => vec![keelson_scheduler::default_profile(
                keelson_scheduler::DEFAULT_SCHEDULER_NAME,
                self.percentage_of_nodes_to_score,
            )],
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let mut file: keelson_scheduler::KubeSchedulerConfiguration =
                    serde_saphyr::from_str(&text)
                        .with_context(|| format!("parsing {}", path.display()))?;
                if file.percentage_of_nodes_to_score.is_none() {
                    file.percentage_of_nodes_to_score = Some(self.percentage_of_nodes_to_score);
                }
                file.profiles()?
            }
        };
        Ok(keelson_scheduler::Config {
            profiles,
            bind_concurrency: self.bind_concurrency,
            ..Default::default()
        })
    }
}

impl SchedulerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let path = kube_client::kubeconfig_path(self.kubeconfig);
        let client = kube_client::from_kubeconfig(&path).await?;
        self.options.config()?; // refuse a bad configuration before campaigning
        let cache_dir = self
            .plugin_cache_dir
            .unwrap_or_else(|| std::env::temp_dir().join("keelson-scheduler-plugin-cache"));
        let wasm_host = keelson_plugin_host::PluginHost::new(&cache_dir)
            .with_context(|| format!("plugin cache {}", cache_dir.display()))?;
        let options = &self.options;
        self.leader
            .run(
                client.clone(),
                LEASE_NAME,
                || run_term(client.clone(), options.clone(), Some(wasm_host.clone())),
                super::leader::stop_on_signal(),
            )
            .await;
        Ok(())
    }
}

/// One term of scheduling: until the scheduler stops (logged) or the caller drops it.
pub(crate) async fn run_term(
    client: kube::Client,
    options: SchedulerOptions,
    wasm_host: Option<keelson_plugin_host::PluginHost>,
) {
    let result = match options.config() {
        Ok(config) => keelson_scheduler::run(
            client,
            keelson_scheduler::Config {
                wasm_host,
                ..config
            },
        )
        .await
        .map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "scheduler stopped");
    }
}
