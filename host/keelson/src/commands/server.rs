//! `keelson server`: the API server with its store, built-in controllers, the scheduler and a
//! node agent (a one-node cluster, like k3s).

use std::path::PathBuf;

use clap::Args;

/// Flags of `keelson server`.
#[derive(Args, Debug)]
pub(crate) struct ServerCommand {
    /// Where credentials, kubeconfig.yaml and the embedded store live
    /// [default: /var/lib/keelson as root, else $XDG_DATA_HOME/keelson].
    #[arg(long, env = "KEELSON_DATA_DIR", help_heading = "Server")]
    data_dir: Option<PathBuf>,
    /// HTTPS port of the API (0 = pick a free port).
    #[arg(
        long,
        env = "KEELSON_SECURE_PORT",
        default_value_t = 6443,
        help_heading = "Server"
    )]
    secure_port: u16,
    /// Address the HTTPS port listens on.
    #[arg(
        long,
        env = "KEELSON_BIND_ADDRESS",
        default_value = "0.0.0.0",
        help_heading = "Server"
    )]
    bind_address: String,
    /// Plain-HTTP port without authentication, bound to 127.0.0.1 only (off unless given).
    #[arg(long, env = "KEELSON_INSECURE_PORT", help_heading = "Server")]
    insecure_port: Option<u16>,
    /// Storage: `embedded` (SQLite file in the data dir) or `etcd://host:port[,host:port…]`.
    #[arg(
        long,
        env = "KEELSON_STORE",
        default_value = "embedded",
        help_heading = "Storage"
    )]
    store: String,
    /// Also write the admin kubeconfig to this path (like k3s).
    #[arg(long, env = "KEELSON_WRITE_KUBECONFIG", help_heading = "Server")]
    write_kubeconfig: Option<PathBuf>,
    /// Seconds between compactions of old store revisions (watches older than the last
    /// compaction get 410 Expired).
    #[arg(
        long,
        env = "KEELSON_COMPACTION_INTERVAL",
        default_value_t = 300,
        help_heading = "Storage"
    )]
    compaction_interval: u64,
    /// Take snapshots of the store on this cron schedule (5 fields, or 6 with seconds), e.g.
    /// `0 */6 * * *`, into <data-dir>/snapshots/.
    #[arg(long, env = "KEELSON_SNAPSHOT_SCHEDULE", help_heading = "Storage")]
    snapshot_schedule: Option<String>,
    /// How many scheduled snapshots to keep.
    #[arg(
        long,
        env = "KEELSON_SNAPSHOT_RETENTION",
        default_value_t = 5,
        help_heading = "Storage"
    )]
    snapshot_retention: usize,
    /// Admission plugins to enable in addition to the defaults (comma-separated).
    #[arg(
        long,
        env = "KEELSON_ENABLE_ADMISSION_PLUGINS",
        value_delimiter = ',',
        help_heading = "Admission"
    )]
    enable_admission_plugins: Vec<String>,
    /// Admission plugins to disable (comma-separated).
    #[arg(
        long,
        env = "KEELSON_DISABLE_ADMISSION_PLUGINS",
        value_delimiter = ',',
        help_heading = "Admission"
    )]
    disable_admission_plugins: Vec<String>,
    /// The cluster's shared secret (like k3s's `--token`). With an etcd store, the first
    /// server seals its CA, signing keys and tokens into the store under it and every other
    /// server started with the same token adopts them, so one kubeconfig works against all.
    #[arg(
        long,
        env = "KEELSON_TOKEN",
        hide_env_values = true,
        help_heading = "Storage"
    )]
    token: Option<String>,
    /// Kubernetes' static token file: CSV lines `token,user,uid,"group1,group2"`.
    #[arg(long, env = "KEELSON_TOKEN_AUTH_FILE", help_heading = "Authentication")]
    token_auth_file: Option<PathBuf>,
    /// Requests without credentials run as `system:anonymous` (allowed only what RBAC grants).
    #[arg(long, env = "KEELSON_ANONYMOUS_AUTH", default_value_t = true, action = clap::ArgAction::Set, help_heading = "Authentication")]
    anonymous_auth: bool,
    /// The `iss` of ServiceAccount tokens.
    #[arg(
        long,
        env = "KEELSON_SERVICE_ACCOUNT_ISSUER",
        default_value = "https://kubernetes.default.svc.cluster.local",
        help_heading = "Authentication"
    )]
    service_account_issuer: String,
    /// `Node,RBAC` (Kubernetes' Node authorizer, then RBAC) or `AlwaysAllow`.
    #[arg(
        long,
        env = "KEELSON_AUTHORIZATION_MODE",
        default_value = "Node,RBAC",
        help_heading = "Authentication"
    )]
    authorization_mode: keelson_apiserver::AuthorizationMode,
    /// Kubernetes' EncryptionConfiguration: which resources are encrypted at rest, and how.
    #[arg(
        long,
        env = "KEELSON_ENCRYPTION_PROVIDER_CONFIG",
        help_heading = "Authentication"
    )]
    encryption_provider_config: Option<PathBuf>,
    /// Kubernetes' audit Policy (needs `--audit-log-path`).
    #[arg(
        long,
        env = "KEELSON_AUDIT_POLICY_FILE",
        help_heading = "Authentication"
    )]
    audit_policy_file: Option<PathBuf>,
    /// Where audit events go, one `audit.k8s.io/v1` Event per line.
    #[arg(long, env = "KEELSON_AUDIT_LOG_PATH", help_heading = "Authentication")]
    audit_log_path: Option<PathBuf>,
    /// Do not run the built-in controllers in this process (run `keelson controller-manager`
    /// elsewhere instead).
    #[arg(long, env = "KEELSON_DISABLE_CONTROLLERS", help_heading = "Components")]
    disable_controllers: bool,
    /// Do not run the scheduler in this process (run `keelson scheduler` elsewhere, or none).
    #[arg(long, env = "KEELSON_DISABLE_SCHEDULER", help_heading = "Scheduler")]
    disable_scheduler: bool,
    #[command(flatten)]
    scheduler: super::scheduler::SchedulerOptions,
    /// Do not run a node agent in this process (run `keelson agent` on nodes instead).
    #[arg(long, env = "KEELSON_DISABLE_AGENT", help_heading = "Agent")]
    disable_agent: bool,
    #[command(flatten)]
    agent: super::agent::AgentOptions,
    /// Run the cluster DNS server in this process, answering on this address (UDP and TCP;
    /// e.g. the node's address, port 53); creates `kube-system/kube-dns` at 10.43.0.10 with
    /// this address as its endpoint. Off by default.
    #[arg(long, env = "KEELSON_CLUSTER_DNS_LISTEN", help_heading = "DNS")]
    cluster_dns_listen: Option<std::net::SocketAddr>,
    #[command(flatten)]
    dns: super::dns::DnsOptions,
    #[command(flatten)]
    controllers: super::controller_manager::ControllerOptions,
    #[command(flatten)]
    leader: super::leader::LeaderElectionArgs,
    /// Print the bound ports as JSON on stdout once serving (for tests and scripts).
    #[arg(long, hide = true)]
    print_ports: bool,
}

/// How long shutdown waits for in-flight requests.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(30);

pub(crate) fn default_data_dir() -> PathBuf {
    // SAFETY-free check of the effective user: root owns /var/lib/keelson.
    let is_root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if is_root {
        return PathBuf::from("/var/lib/keelson");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("keelson")
}

/// Runs the scheduler in the background on `client`; it logs and stops if it fails.
/// With `elect` (several servers sharing a store) only the holder of the Lease
/// `kube-system/kube-scheduler` schedules.
fn spawn_scheduler(
    client: kube::Client,
    options: super::scheduler::SchedulerOptions,
    election: Option<keelson_client::leader::Timing>,
    wasm_host: keelson_plugin_host::PluginHost,
    stop: Stop,
) -> tokio::task::JoinHandle<()> {
    use super::scheduler::{run_term, LEASE_NAME};
    let wasm_host = Some(wasm_host);
    tokio::spawn(async move {
        let Some(timing) = election else {
            return run_term(client, options, wasm_host).await;
        };
        let identity = keelson_client::leader::process_identity();
        keelson_client::leader::LeaderElector::new(
            client.clone(),
            "kube-system",
            LEASE_NAME,
            &identity,
        )
        .with_timing(timing)
        .run_until(
            || run_term(client.clone(), options.clone(), wasm_host.clone()),
            stop.wait(),
        )
        .await;
    })
}

/// Tells the elected components to stop and give their Leases up before the server drains.
#[derive(Clone)]
struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// In-process controllers: each acts as its own ServiceAccount in kube-system, with its
/// bootstrap role's rights (Kubernetes' `--use-service-account-credentials`).
pub(crate) fn controller_credentials(
    api: &std::sync::Arc<keelson_apiserver::ApiServer>,
) -> keelson_controllers::Credentials {
    let router = keelson_apiserver::router(api.clone());
    keelson_controllers::Credentials::per_service_account(move |ns, name| {
        keelson_client::in_process(
            router.clone(),
            keelson_client::UserInfo::service_account(ns, name),
        )
    })
}

impl ServerCommand {
    pub(crate) async fn execute(self) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let config = keelson_apiserver::Config {
            data_dir: self.data_dir.unwrap_or_else(default_data_dir),
            secure_port: self.secure_port,
            insecure_port: self.insecure_port,
            bind_address: self.bind_address,
            store: self.store,
            write_kubeconfig: self.write_kubeconfig,
            compaction_interval: std::time::Duration::from_secs(self.compaction_interval.max(1)),
            admission: keelson_admission::ChainConfig {
                enable: self.enable_admission_plugins,
                disable: self.disable_admission_plugins,
            },
            encryption_provider_config: self.encryption_provider_config,
            audit: match (self.audit_policy_file, self.audit_log_path) {
                (Some(policy), Some(log)) => Some((policy, log)),
                (None, None) => None,
                _ => anyhow::bail!("--audit-policy-file and --audit-log-path go together"),
            },
            auth: keelson_apiserver::AuthConfig {
                token_auth_file: self.token_auth_file,
                authorization_mode: self.authorization_mode,
                anonymous_auth: self.anonymous_auth,
                service_account_issuer: self.service_account_issuer,
            },
            shared_reads: true,
            cluster_token: self.token,
        };
        // Several servers may share an etcd: then components elect leaders on their Leases.
        // The embedded store has one server, which leads without an election.
        let election =
            (config.store != "embedded" && self.leader.enabled()).then(|| self.leader.timing());
        let data_dir = config.data_dir.clone();
        // One wasmtime engine and precompiled cache for every part that loads plugins.
        // With an in-process agent, its Wasm containers share the engine's instance pool.
        let host_config = match self.disable_agent {
            true => keelson_plugin_host::HostConfig::default(),
            false => keelson_kubelet::plugin_host_config(),
        };
        let plugin_host = keelson_plugin_host::PluginHost::with_config(
            config.data_dir.join("plugin-cache"),
            host_config,
        )?;
        let running = keelson_apiserver::start(config, plugin_host.clone()).await?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut elected = Vec::new();
        if let Some(schedule) = &self.snapshot_schedule {
            super::snapshot::spawn_schedule(
                running.api.store.clone(),
                data_dir.clone(),
                schedule,
                self.snapshot_retention.max(1),
            )?;
        }
        if !self.disable_controllers {
            let client = keelson_client::in_process(
                keelson_apiserver::router(running.api.clone()),
                keelson_client::UserInfo::controller_manager(),
            );
            let creds = controller_credentials(&running.api);
            let options = keelson_controllers::Options {
                wasm: Some(plugin_host.clone()),
                ..self.controllers.options()
            };
            if let Some(timing) = election {
                let identity = keelson_client::leader::process_identity();
                let stop = Stop(stop_rx.clone());
                elected.push(tokio::spawn(async move {
                    keelson_controllers::run_elected(
                        client,
                        creds,
                        &identity,
                        timing,
                        options,
                        stop.wait(),
                    )
                    .await
                }));
            } else {
                tokio::spawn(keelson_controllers::run(creds, options));
            }
            running.api.components.set_running("controller-manager");
        }
        if !self.disable_scheduler {
            let client = keelson_client::in_process(
                keelson_apiserver::router(running.api.clone()),
                keelson_client::UserInfo::scheduler(),
            );
            self.scheduler.config()?; // refuse a bad configuration at startup
            elected.push(spawn_scheduler(
                client,
                self.scheduler.clone(),
                election,
                plugin_host.clone(),
                Stop(stop_rx.clone()),
            ));
            running.api.components.set_running("scheduler");
        }
        if !self.disable_agent {
            let ca = std::fs::read_to_string(data_dir.join("tls/ca.crt"))?;
            let agent = self.agent.config(data_dir.join("agent"), Some(ca));
            let client = keelson_client::in_process(
                keelson_apiserver::router(running.api.clone()),
                keelson_client::UserInfo::node(&agent.node_name),
            );
            if let Some(node) = self.agent.proxy_node() {
                let proxy = keelson_client::in_process(
                    keelson_apiserver::router(running.api.clone()),
                    keelson_client::UserInfo::new("system:kube-proxy", &["system:authenticated"]),
                );
                super::agent::spawn_proxy(proxy, node);
            }
            let node = agent.node_name.clone();
            tokio::spawn(async move {
                if let Err(e) = keelson_kubelet::run(client, plugin_host, agent).await {
                    tracing::error!(node = %node, error = %format!("{e:#}"), "node agent stopped");
                }
            });
        }
        if let Some(listen) = self.cluster_dns_listen {
            let router = keelson_apiserver::router(running.api.clone());
            // Creating the kube-dns Service and its slice is the server's own bootstrap.
            let admin =
                keelson_client::in_process(router.clone(), keelson_client::UserInfo::admin());
            let reader = keelson_client::in_process(
                router,
                keelson_client::UserInfo::service_account("kube-system", "coredns"),
            );
            let node = self.agent.node_name();
            let config = self.dns.config(listen, &self.agent.cluster_domain);
            tokio::spawn(async move {
                if let Err(e) = super::dns::publish(&admin, &node, listen).await {
                    tracing::error!(error = %format!("{e:#}"), "publishing kube-dns");
                }
                if let Err(e) = keelson_dns::run(reader, config).await {
                    tracing::error!(error = %format!("{e:#}"), "cluster DNS stopped");
                }
            });
        }
        if self.print_ports {
            println!(
                "{}",
                serde_json::json!({"securePort": running.secure_port, "insecurePort": running.insecure_port})
            );
        }
        tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            kubeconfig = %running.kubeconfig.display(),
            "ready: export KUBECONFIG={}",
            running.kubeconfig.display()
        );
        super::shutdown_signal().await?;
        // Leases first, so the other servers' components take over within a retry period.
        let _ = stop_tx.send(true);
        let released =
            futures::future::join_all(elected.into_iter().filter(|_| election.is_some()));
        let _ = tokio::time::timeout(std::time::Duration::from_secs(3), released).await;
        tracing::info!("shutting down: draining requests (a second signal exits at once)");
        tokio::select! {
            done = running.shutdown(DRAIN) => done?,
            _ = super::shutdown_signal() => {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(1);
            }
        }
        Ok(())
    }
}
