//! `keelson controller-manager`: the built-in controllers as a process of their own, against any
//! server named by a kubeconfig — the same code `keelson server` runs in-process. With
//! `--leader-elect` (the default, as in Kubernetes) only the holder of the Lease
//! `kube-system/kube-controller-manager` acts, so several managers can run side by side.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

/// Flags of `keelson controller-manager`.
#[derive(Args, Debug)]
pub(crate) struct ControllerManagerCommand {
    /// Kubeconfig of the server to manage (its current context).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    #[command(flatten)]
    leader: super::leader::LeaderElectionArgs,
    #[command(flatten)]
    controllers: ControllerOptions,
    /// Where Wasm controllers' precompiled components are cached (mode 0700).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("keelson-controller-manager-plugins"))]
    plugin_cache_dir: PathBuf,
}

/// Tuning of the built-in controllers (kube-controller-manager's flag names), shared by
/// `keelson server` and `keelson controller-manager`.
#[derive(Args, Debug, Clone)]
pub(crate) struct ControllerOptions {
    /// Seconds between the node lifecycle controller's checks of node heartbeats.
    #[arg(
        long,
        env = "KEELSON_NODE_MONITOR_PERIOD",
        default_value_t = 5,
        help_heading = "Controllers"
    )]
    node_monitor_period: u64,
    /// Seconds a node may go without a heartbeat (Lease renewal or status) before it is
    /// marked Unknown, tainted unreachable and its pods evicted after their tolerationSeconds.
    #[arg(
        long,
        env = "KEELSON_NODE_MONITOR_GRACE_PERIOD",
        default_value_t = 50,
        help_heading = "Controllers"
    )]
    node_monitor_grace_period: u64,
    /// Finished pods kept before the pod garbage collector deletes the oldest; 0 keeps all.
    #[arg(long, default_value_t = 12500, help_heading = "Controllers")]
    terminated_pod_gc_threshold: usize,
    /// How long Events are kept after their last update (`1h`, `90s`, `1h30m`; Kubernetes'
    /// `--event-ttl`).
    #[arg(
        long,
        env = "KEELSON_EVENT_TTL",
        default_value = "1h",
        value_parser = parse_duration,
        help_heading = "Controllers"
    )]
    event_ttl: Duration,
}

/// A Go-style duration (`1h`, `90s`, `1h30m`, `500ms`), as Kubernetes' flags take.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let d: jiff::SignedDuration = s
        .parse()
        .map_err(|e| format!("invalid duration {s:?}: {e}"))?;
    Duration::try_from(d).map_err(|_| format!("invalid duration {s:?}: negative"))
}

impl ControllerOptions {
    /// The options the controllers run with.
    pub(crate) fn options(&self) -> keelson_controllers::Options {
        keelson_controllers::Options {
            node_lifecycle: keelson_controllers::node_lifecycle::Config {
                monitor_period: Duration::from_secs(self.node_monitor_period.max(1)),
                grace_period: Duration::from_secs(self.node_monitor_grace_period),
            },
            pod_gc: keelson_controllers::pod_gc::Config {
                terminated_threshold: self.terminated_pod_gc_threshold,
                ..Default::default()
            },
            event_ttl: keelson_controllers::event_ttl::Config {
                ttl: self.event_ttl,
            },
            wasm: None,
        }
    }
}

impl ControllerManagerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let client = keelson_client::from_kubeconfig(&self.kubeconfig)
            .await
            .with_context(|| format!("connecting with {}", self.kubeconfig.display()))?;
        // Wasm controllers act as their ServiceAccounts through impersonation, so the
        // kubeconfig's user needs the `impersonate` verb on serviceaccounts.
        let plugin_host = keelson_plugin_host::PluginHost::new(&self.plugin_cache_dir)
            .with_context(|| format!("plugin cache {}", self.plugin_cache_dir.display()))?;
        let options = keelson_controllers::Options {
            wasm: Some(plugin_host),
            ..self.controllers.options()
        };
        self.leader
            .run(
                client.clone(),
                keelson_controllers::LEASE_NAME,
                || {
                    keelson_controllers::run(
                        keelson_controllers::Credentials::shared(client.clone()),
                        options.clone(),
                    )
                },
                super::leader::stop_on_signal(),
            )
            .await;
        tracing::info!("shutting down");
        Ok(())
    }
}
