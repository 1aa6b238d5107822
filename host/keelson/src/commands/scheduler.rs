//! `keelson scheduler`: the scheduler as its own process against any API server.

use std::path::PathBuf;

use clap::Args;

use super::kube_client;

/// Flags of `keelson scheduler`.
#[derive(Args, Debug)]
pub(crate) struct SchedulerCommand {
    /// kubeconfig of the API server [default: $KUBECONFIG, else the server's data dir kubeconfig.yaml].
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    #[command(flatten)]
    options: SchedulerOptions,
}

/// Tuning shared by `keelson scheduler` and the scheduler inside `keelson server`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SchedulerOptions {
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
    /// The scheduler configuration these flags describe.
    pub(crate) fn config(&self) -> keelson_scheduler::Config {
        keelson_scheduler::Config {
            profiles: vec![keelson_scheduler::default_profile(
                keelson_scheduler::DEFAULT_SCHEDULER_NAME,
                self.percentage_of_nodes_to_score,
            )],
            bind_concurrency: self.bind_concurrency,
            ..Default::default()
        }
    }
}

impl SchedulerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let path = kube_client::kubeconfig_path(self.kubeconfig);
        let client = kube_client::from_kubeconfig(&path).await?;
        tokio::select! {
            r = keelson_scheduler::run(client, self.options.config()) => Ok(r?),
            r = tokio::signal::ctrl_c() => Ok(r?),
        }
    }
}
