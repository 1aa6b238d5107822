//! Host bindings for the `keelson:plugin` WIT package, generated once per
//! served world.
//!
//! Only this module sees the generated types; the rest of the crate converts to
//! and from its own public types. Generated functions return `wasmtime::Result`;
//! exports and WASI imports are async (a call runs on a fiber that can yield at
//! epoch ticks).

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "admission",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use keelson::plugin::admission_types::Operation;
pub(crate) use keelson::plugin::types::UserInfo;

/// World `keelson:plugin/scheduler`.
pub(crate) mod scheduler {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "scheduler",
        imports: { default: async },
        exports: { default: async },
    });

    pub(crate) use keelson::plugin::scheduler_types::{
        FilterCode, Resources, Taint, TaintEffect, Toleration, TolerationOperator,
    };
}

/// World `keelson:plugin/controller`: the host serves the `cache` import.
pub(crate) mod controller {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "controller",
        imports: { default: async },
        exports: { default: async },
    });

    pub(crate) use keelson::plugin::cache::CacheError;
    pub(crate) use keelson::plugin::controller_types::{ObjectRef, PatchType};
    pub(crate) use keelson::plugin::types::GroupVersionKind;
}
