//! The Keelson binary: `keelson server` runs the API server, the store and the built-in
//! controllers in one process (with the scheduler and a node agent); `keelson agent`,
//! `keelson scheduler` and `keelson sim nodes` run a node agent, the scheduler and simulated
//! nodes against any API server; `keelson image` loads Wasm images; `keelson bench` measures;
//! `snapshot`, `store migrate`, `certificate` and `status` are the operator's tools.

mod commands;

use clap::{Parser, Subcommand};

/// Keelson: a compact, Kubernetes-compatible orchestrator.
#[derive(Parser)]
#[command(name = "keelson", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server, store and controllers.
    Server(Box<commands::server::ServerCommand>),
    /// Run a node agent (kubelet) that joins an API server.
    Agent(commands::agent::AgentCommand),
    /// Load WebAssembly images into the agent's local image store.
    Image(commands::image::ImageCommand),
    /// Run the built-in controllers against a server named by a kubeconfig.
    ControllerManager(commands::controller_manager::ControllerManagerCommand),
    /// Run benchmarks and print results against a baseline measured in the same run.
    Bench(commands::bench::BenchCommand),
    /// Build, test, install, list and remove Wasm plugins.
    Plugin(commands::plugin::PluginCommand),
    /// Run the scheduler against an API server.
    Scheduler(commands::scheduler::SchedulerCommand),
    /// Simulate nodes (like kwok) against an API server.
    Sim(commands::sim::SimCommand),
    /// Take, list, prune and restore store snapshots.
    Snapshot(commands::snapshot::SnapshotCommand),
    /// Move the embedded store into etcd.
    Store(commands::store::StoreCommand),
    /// Check and rotate the data dir's certificates.
    Certificate(commands::certificate::CertificateCommand),
    /// Summarise the cluster: store, last snapshot, leaders, nodes, Wasm plugins.
    Status(commands::status::StatusCommand),
    /// Print a shell completion script.
    Completion(commands::completion::CompletionCommand),
}

/// Colour the log only on a terminal, and never when `NO_COLOR` is set to a non-empty value
/// (<https://no-color.org>).
fn colour_logs(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The server logs its progress; the CLI tools only warnings.
    let default_level = if matches!(
        cli.command,
        Command::Server(_)
            | Command::Agent(_)
            | Command::ControllerManager(_)
            | Command::Scheduler(_)
            | Command::Sim(_)
    ) {
        "info"
    } else {
        "warn"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEELSON_LOG")
                .unwrap_or_else(|_| default_level.into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_logs(
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
            std::env::var_os("NO_COLOR"),
        ))
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Server(c) => c.execute().await,
            Command::Agent(c) => c.execute().await,
            Command::Image(c) => c.execute().await,
            Command::Bench(c) => c.execute().await,
            Command::ControllerManager(c) => c.execute().await,
            Command::Plugin(c) => c.execute().await,
            Command::Scheduler(c) => c.execute().await,
            Command::Sim(c) => c.execute().await,
            Command::Snapshot(c) => c.execute().await,
            Command::Store(c) => c.execute().await,
            Command::Certificate(c) => c.execute().await,
            Command::Status(c) => c.execute().await,
            Command::Completion(c) => c.execute(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::colour_logs;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(colour_logs(true, None));
        assert!(colour_logs(true, Some("".into())));
        assert!(!colour_logs(true, Some("1".into())));
        assert!(!colour_logs(false, None));
    }
}
