//! One module per subcommand.

pub(crate) mod agent;
pub(crate) mod bench;
pub(crate) mod certificate;
pub(crate) mod completion;
pub(crate) mod controller_manager;
pub(crate) mod dns;
pub(crate) mod image;
pub(crate) mod kube_client;
pub(crate) mod leader;
pub(crate) mod plugin;
pub(crate) mod proxy;
pub(crate) mod scheduler;
pub(crate) mod server;
pub(crate) mod sim;
pub(crate) mod snapshot;
pub(crate) mod status;
pub(crate) mod store;

/// Resolves on the first SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
