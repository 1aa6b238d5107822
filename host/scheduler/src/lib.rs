//! Picks a node for each pending Pod: Kubernetes 1.33's scheduling framework with its built-in
//! filter and score plugins (the seed's predicates and priorities under their current names),
//! run as a component that watches Nodes and Pods through a `kube::Client` and binds pods
//! through the `pods/binding` subresource.
//!
//! The pure part needs no cluster:
//!
//! ```
//! use std::sync::Arc;
//! use k8s_openapi::api::core::v1::{Node, Pod};
//! use keelson_scheduler::{default_profile, PodInfo, Snapshot};
//!
//! let node: Node = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "n1"},
//!     "status": {"allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"}}
//! })).unwrap();
//! let mut snapshot = Snapshot::default();
//! snapshot.entry("n1").set_node(Arc::new(node));
//! let pod: Pod = serde_json::from_value(serde_json::json!({
//!     "metadata": {"name": "p", "namespace": "default"},
//!     "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "1"}}}]}
//! })).unwrap();
//! let profile = default_profile("default-scheduler", 0);
//! let placed = profile
//!     .schedule(&PodInfo::new(Arc::new(pod)), &snapshot, &mut 0, &mut rand::thread_rng())
//!     .unwrap();
//! assert_eq!(placed.node, "n1");
//! ```

pub mod config;
pub mod framework;
pub mod node_info;
pub mod plugins;
pub mod resources;
pub mod selectors;
#[cfg(test)]
mod testing;
pub mod wasm;

pub use config::KubeSchedulerConfiguration;
pub use framework::{FitError, Nomination, Profile, ScheduleError, ScheduleResult};
pub use node_info::{NodeInfo, PodInfo, Snapshot};
pub use plugins::{default_profile, DEFAULT_SCHEDULER_NAME};
pub use wasm::{WasmPlugins, WasmScheduler};
mod cache;
mod error;
mod preempt;
mod queue;
mod report;
mod run;
mod volume_binding;

pub use error::Error;
pub use run::{run, Config};
