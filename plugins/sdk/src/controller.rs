//! Controller plugins (world `keelson:plugin/controller`): the [`Controller`] trait, the
//! [`export_controller!`](crate::export_controller) macro, typed reads of the host's cache
//! ([`get`], [`list`], [`config`]) and builders for the actions `reconcile` returns. The host
//! applies the actions through the API server as the plugin's ServiceAccount, so admission
//! and RBAC apply to them; an `Err` requeues the key with back-off.
//!
//! ```ignore
//! use keelson_plugin_sdk::controller::{self, export_controller, Action, Controller, Gvk, ReconcileKey};
//! use keelson_plugin_sdk::serde_json::json;
//!
//! struct Hello;
//!
//! impl Controller for Hello {
//!     fn reconcile(key: ReconcileKey) -> Result<Vec<Action>, String> {
//!         let cm = Gvk::core("ConfigMap");
//!         if controller::get(&cm, &key.name, "hello")?.is_some() {
//!             return Ok(vec![]);
//!         }
//!         Ok(vec![Action::create(&json!({"apiVersion": "v1", "kind": "ConfigMap",
//!             "metadata": {"name": "hello", "namespace": key.name}}))])
//!     }
//! }
//!
//! export_controller!(Hello);
//! ```

use serde_json::Value;

/// Generated bindings of world `keelson:plugin/controller`. Use the re-exports in this
/// module instead.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub, clippy::too_many_arguments)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "controller",
        pub_export_macro: true,
        export_macro_name: "__export_controller_world",
        default_bindings_module: "keelson_plugin_sdk::controller::bindings",
    });
}

pub use crate::export_controller;
pub use bindings::keelson::plugin::cache::CacheError;
pub use bindings::keelson::plugin::controller_types::{
    Action, ObjectRef, Patch, PatchType, ReconcileKey,
};
pub use bindings::keelson::plugin::types::GroupVersionKind as Gvk;

/// A controller plugin.
pub trait Controller {
    /// Drives the object named by `key` towards its desired state; returns the actions to
    /// apply in order, or an error (the key is retried with back-off).
    fn reconcile(key: ReconcileKey) -> Result<Vec<Action>, String>;
}

impl Gvk {
    /// A kind of the core group (`v1`).
    pub fn core(kind: &str) -> Self {
        Self::new("", "v1", kind)
    }

    /// A kind of `group`/`version`.
    pub fn new(group: &str, version: &str, kind: &str) -> Self {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }
}

fn parse(json: &str) -> Result<Value, String> {
    serde_json::from_str(json).map_err(|e| format!("the cache returned bad JSON: {e}"))
}

/// One object from the cache (`namespace` empty for cluster-scoped kinds).
pub fn get(kind: &Gvk, namespace: &str, name: &str) -> Result<Option<Value>, String> {
    match bindings::keelson::plugin::cache::get(kind, namespace, name) {
        Ok(Some(json)) => parse(&json).map(Some),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("cache get {}: {e}", kind.kind)),
    }
}

/// Objects of a kind in `namespace` (all for `None`) matching `label_selector`.
pub fn list(
    kind: &Gvk,
    namespace: Option<&str>,
    label_selector: &str,
) -> Result<Vec<Value>, String> {
    bindings::keelson::plugin::cache::list(kind, namespace, label_selector)
        .map_err(|e| format!("cache list {}: {e}", kind.kind))?
        .iter()
        .map(|j| parse(j))
        .collect()
}

/// The plugin's `spec.config`, deserialized.
pub fn config<T: serde::de::DeserializeOwned>() -> Result<T, String> {
    serde_json::from_str(&bindings::keelson::plugin::cache::config())
        .map_err(|e| format!("plugin config: {e}"))
}

impl ObjectRef {
    /// The object of `kind` named `name` in `namespace` (empty for cluster-scoped kinds).
    pub fn new(kind: Gvk, namespace: &str, name: &str) -> Self {
        ObjectRef {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl Action {
    /// Create `object` (with `apiVersion`, `kind` and `metadata`).
    pub fn create(object: &Value) -> Self {
        Action::Create(object.to_string())
    }

    /// Merge-patch (RFC 7386) `target` with `body`.
    pub fn merge_patch(target: ObjectRef, body: &Value) -> Self {
        Action::Patch(Patch {
            target,
            patch_type: PatchType::MergePatch,
            body: body.to_string(),
        })
    }

    /// Delete `target`.
    pub fn delete(target: ObjectRef) -> Self {
        Action::Delete(target)
    }

    /// Replace the status of `object` (with `apiVersion`, `kind`, `metadata` and `status`).
    pub fn update_status(object: &Value) -> Self {
        Action::UpdateStatus(object.to_string())
    }

    /// Reconcile the same key again after `millis` milliseconds.
    pub fn requeue_after(millis: u64) -> Self {
        Action::RequeueAfter(millis)
    }
}

/// Bridges a [`Controller`] implementation to the generated `Guest` trait.
#[doc(hidden)]
pub struct Adapter<T>(core::marker::PhantomData<T>);

impl<T: Controller> bindings::Guest for Adapter<T> {
    fn reconcile(key: ReconcileKey) -> Result<Vec<Action>, String> {
        T::reconcile(key)
    }
}

/// Exports a type implementing [`Controller`] as the component's `reconcile` function. Use
/// once per plugin crate.
#[macro_export]
macro_rules! export_controller {
    ($plugin:ty) => {
        #[doc(hidden)]
        type __KeelsonControllerAdapter = $crate::controller::Adapter<$plugin>;
        $crate::controller::bindings::__export_controller_world!(
            __KeelsonControllerAdapter with_types_in $crate::controller::bindings
        );
    };
}
