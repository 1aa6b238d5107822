//! Runs Keelson's WebAssembly plugins: components built against the WIT
//! package `keelson:plugin@0.1.0` in the repository's `wit/` directory.
//!
//! One [`PluginHost`] owns a wasmtime `Engine` (component model, pooling
//! allocator, epoch interruption, optional fuel), an epoch ticker thread and an
//! on-disk cache of precompiled components keyed by engine configuration and
//! the sha256 of the component. [`PluginHost::load`] turns component bytes into
//! an [`AdmissionPlugin`] holding a pre-linked `InstancePre`; every call gets a
//! fresh `Store` and instance (microseconds), with a memory cap, a deadline and
//! WASI p2 without filesystem or network access, so a call that trapped leaves
//! nothing behind. Guest output is checked before it is returned.
//!
//! Calls are async ([`AdmissionPlugin::validate_async`], `mutate_async`): the
//! guest runs on a fiber and, once it has run for an epoch tick, yields to the
//! executor at every tick, so a looping plugin holds an async worker for at
//! most about two ticks at a time and fails with [`Error::Deadline`] after its
//! timeout. Bound concurrent calls with a
//! semaphore sized at or below [`HostConfig::max_instances`]. The blocking
//! `validate`/`mutate` are for tools and tests.
//!
//! Three worlds are served: `admission` ([`PluginHost::load`] → [`AdmissionPlugin`]),
//! `scheduler` ([`PluginHost::load_scheduler`] → [`SchedulerPlugin`], filter
//! and score batched over candidate nodes) and `controller`
//! ([`PluginHost::load_controller`] → [`ControllerPlugin`], `reconcile(key)` reading a
//! [`ControllerCache`](controller::ControllerCache) the caller supplies). All are thin
//! layers over one world-generic core (`loaded.rs`: pre-linked component, per-call store
//! with limits, metrics).
//!
//! [`PluginHost::load_command`] runs WASI command components (the kubelet's `wasm` runtime)
//! on the same engine: see [`Command`].
//!
//! ```no_run
//! use keelson_plugin_host::{AdmissionRequest, Limits, Operation, PluginHost};
//!
//! # fn main() -> Result<(), keelson_plugin_host::Error> {
//! let host = PluginHost::new("/var/lib/keelson/plugin-cache")?;
//! let wasm = std::fs::read("target/wasm32-wasip2/release/require_labels.wasm")?;
//! let plugin = host.load("require-labels", &wasm, Limits::default())?;
//! let verdict = plugin.validate(&AdmissionRequest {
//!     operation: Operation::Create,
//!     version: "v1".into(),
//!     kind: "ConfigMap".into(),
//!     resource: "configmaps".into(),
//!     namespace: "default".into(),
//!     name: "settings".into(),
//!     object: r#"{"metadata":{"name":"settings","labels":{}}}"#.into(),
//!     config: r#"{"labels":["team"]}"#.into(),
//!     ..Default::default()
//! })?;
//! assert!(!verdict.allowed);
//! println!("{} ({}); {:?}", verdict.message, verdict.code, plugin.metrics());
//! # Ok(())
//! # }
//! ```

mod admission;
mod bench;
mod bindings;
mod cache;
mod command;
mod config;
pub mod controller;
mod error;
mod host;
mod loaded;
mod metrics;
mod output;
pub mod scheduler;
pub mod spec;
mod store;

pub use admission::{
    AdmissionPlugin, AdmissionRequest, MutateVerdict, Operation, UserInfo, Verdict,
};
pub use bench::{BenchReport, Percentiles};
pub use command::{Command, CommandRun, Exit, OutputSink, Preopen, Stream, Usage};
pub use config::{HostConfig, Limits};
pub use controller::ControllerPlugin;
pub use error::Error;
pub use host::PluginHost;
pub use metrics::{MetricsSnapshot, LATENCY_BUCKETS_MICROS};
pub use output::{MAX_MESSAGE_BYTES, MAX_PATCH_BYTES, MAX_WARNINGS, MAX_WARNING_BYTES};
pub use scheduler::SchedulerPlugin;

/// Re-exported so callers can apply [`MutateVerdict::patch`] without naming the crate.
pub use json_patch;
