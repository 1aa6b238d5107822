//! What can go wrong while running the scheduler.

/// Errors of the running scheduler (the pure framework reports `ScheduleError` instead).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("kubernetes API call failed")]
    Kube(#[from] kube::Error),
    /// A watch on Nodes, Pods or Namespaces ended with an error.
    #[error("watch failed")]
    Watch(#[from] kube::runtime::watcher::Error),
    /// The configuration names no profile.
    #[error("scheduler configuration: {0}")]
    Config(String),
    /// A WasmPlugin's component could not be read or loaded, or its settings are invalid.
    #[error("wasm scheduler plugin: {0}")]
    Plugin(String),
}
