//! Guest SDK for Keelson WebAssembly plugins.
//!
//! Plugins are components for `wasm32-wasip2` built against the WIT package
//! `keelson:plugin@0.1.0` (the repository's `wit/`). This crate generates the
//! guest bindings once (with `wit-bindgen`) and adds what every plugin needs:
//! an [`Admission`] trait with allow-everything defaults, the
//! [`export_admission!`] macro, a JSON [`Patch`] builder and typed access to
//! the request's object ([`Request::object`], [`Request::config`],
//! [`k8s::pod_specs`]), plus typed accessors for the hot paths that read only
//! what they return ([`Request::containers`], [`Request::labels`],
//! [`Request::annotations`]). The host leaves `metadata.managedFields` out of
//! the objects unless the WasmPlugin sets `spec.includeManagedFields`.
//!
//! ```ignore
//! use keelson_plugin_sdk::{export_admission, Admission, Request, Verdict};
//!
//! struct DenyDefaultNamespace;
//!
//! impl Admission for DenyDefaultNamespace {
//!     fn validate(req: Request) -> Verdict {
//!         if req.namespace == "default" {
//!             return Verdict::deny("use a team namespace, not default");
//!         }
//!         Verdict::allow()
//!     }
//! }
//!
//! export_admission!(DenyDefaultNamespace);
//! ```
//!
//! Scheduler plugins use [`scheduler`] ([`export_scheduler!`]); controller plugins use
//! [`controller`] ([`export_controller!`]).
//!
//! Build with `cargo build --release` in `plugins/`; the component is
//! `target/wasm32-wasip2/release/<crate_name>.wasm`.

pub mod controller;
pub mod k8s;
mod patch;
mod request;
pub mod scheduler;
mod typed;
mod verdict;

pub use patch::{escape_pointer_token, Patch};
pub use serde_json;
pub use typed::ContainerImage;
pub use wit_bindgen;

/// Generated bindings of world `keelson:plugin/admission`. Use the re-exports
/// at the crate root instead.
#[doc(hidden)]
#[allow(missing_docs, unreachable_pub)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "admission",
        pub_export_macro: true,
        export_macro_name: "__export_admission_world",
        default_bindings_module: "keelson_plugin_sdk::bindings",
    });
}

pub use bindings::keelson::plugin::admission_types::{MutateVerdict, Operation, Request, Verdict};
pub use bindings::keelson::plugin::types::UserInfo;

/// An admission plugin. Implement either function or both; the defaults
/// allow the request unchanged.
pub trait Admission {
    /// Decide whether the request may proceed (validating phase).
    fn validate(req: Request) -> Verdict {
        let _ = req;
        Verdict::allow()
    }

    /// Return a patch for the request's object, or refuse (mutating phase).
    fn mutate(req: Request) -> MutateVerdict {
        let _ = req;
        MutateVerdict::unchanged()
    }
}

/// Bridges an [`Admission`] implementation to the generated `Guest` trait.
#[doc(hidden)]
pub struct Adapter<T>(core::marker::PhantomData<T>);

impl<T: Admission> bindings::Guest for Adapter<T> {
    fn validate(req: Request) -> Verdict {
        T::validate(req)
    }

    fn mutate(req: Request) -> MutateVerdict {
        T::mutate(req)
    }
}

/// Exports a type implementing [`Admission`] as the component's
/// `validate` and `mutate` functions. Use once per plugin crate.
#[macro_export]
macro_rules! export_admission {
    ($plugin:ty) => {
        #[doc(hidden)]
        type __KeelsonAdmissionAdapter = $crate::Adapter<$plugin>;
        $crate::bindings::__export_admission_world!(
            __KeelsonAdmissionAdapter with_types_in $crate::bindings
        );
    };
}
