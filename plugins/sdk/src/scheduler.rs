//! Scheduler plugins (world `keelson:plugin/scheduler`): the [`Scheduler`]
//! trait with pass-everything defaults, the [`export_scheduler!`](crate::export_scheduler)
//! macro and helpers on the pod and node records.
//!
//! ```ignore
//! use keelson_plugin_sdk::scheduler::{export_scheduler, FilterResult, NodeInfo, PodInfo, Scheduler};
//!
//! struct NoGpu;
//!
//! impl Scheduler for NoGpu {
//!     fn filter(_pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<FilterResult> {
//!         nodes.iter().map(|n| match n.label("gpu") {
//!             Some(_) => FilterResult::unschedulable("node(s) have a GPU"),
//!             None => FilterResult::success(),
//!         }).collect()
//!     }
//! }
//!
//! export_scheduler!(NoGpu);
//! ```

/// Generated bindings of world `keelson:plugin/scheduler`. Use the re-exports
/// in this module instead.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "scheduler",
        pub_export_macro: true,
        export_macro_name: "__export_scheduler_world",
        default_bindings_module: "keelson_plugin_sdk::scheduler::bindings",
    });
}

pub use crate::export_scheduler;
pub use bindings::keelson::plugin::scheduler_types::{
    FilterCode, FilterResult, NodeInfo, PodInfo, Resources, Taint, TaintEffect, Toleration,
    TolerationOperator,
};

/// A scheduler plugin. Implement either function or both; the defaults let
/// every node pass and score every node 0.
pub trait Scheduler {
    /// For each node, whether `pod` may run on it (same order as `nodes`).
    fn filter(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<FilterResult> {
        let _ = pod;
        nodes.iter().map(|_| FilterResult::success()).collect()
    }

    /// For each node, a score from 0 (worst) to 100 (best), same order as `nodes`.
    fn score(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<u32> {
        let _ = pod;
        vec![0; nodes.len()]
    }
}

impl FilterResult {
    /// The pod fits the node.
    pub fn success() -> Self {
        FilterResult {
            code: FilterCode::Success,
            reason: String::new(),
        }
    }

    /// The pod does not fit; `reason` is counted in the pod's `FailedScheduling` event.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        FilterResult {
            code: FilterCode::Unschedulable,
            reason: reason.into(),
        }
    }

    /// The pod does not fit and preemption would not help.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        FilterResult {
            code: FilterCode::UnschedulableAndUnresolvable,
            reason: reason.into(),
        }
    }
}

impl NodeInfo {
    /// The value of label `key`, if the node has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }
}

impl PodInfo {
    /// The value of the pod's label `key`, if it has it.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.key == key)
            .map(|l| l.value.as_str())
    }

    /// The plugin's `spec.config`, deserialized.
    pub fn config<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_str(&self.config).map_err(|e| format!("plugin config: {e}"))
    }
}

/// Bridges a [`Scheduler`] implementation to the generated `Guest` trait.
#[doc(hidden)]
pub struct Adapter<T>(core::marker::PhantomData<T>);

impl<T: Scheduler> bindings::Guest for Adapter<T> {
    fn filter(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<FilterResult> {
        T::filter(pod, nodes)
    }

    fn score(pod: PodInfo, nodes: Vec<NodeInfo>) -> Vec<u32> {
        T::score(pod, nodes)
    }
}

/// Exports a type implementing [`Scheduler`] as the component's `filter` and
/// `score` functions. Use once per plugin crate.
#[macro_export]
macro_rules! export_scheduler {
    ($plugin:ty) => {
        #[doc(hidden)]
        type __KeelsonSchedulerAdapter = $crate::scheduler::Adapter<$plugin>;
        $crate::scheduler::bindings::__export_scheduler_world!(
            __KeelsonSchedulerAdapter with_types_in $crate::scheduler::bindings
        );
    };
}
