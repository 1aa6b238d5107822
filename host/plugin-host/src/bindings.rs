//! Host bindings for the `keelson:plugin` WIT package, generated once.
//!
//! Only this module sees the generated types; the rest of the crate converts to
//! and from its own public types. Generated functions return `wasmtime::Result`.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "admission",
});

pub(crate) use keelson::plugin::admission_types::Operation;
pub(crate) use keelson::plugin::types::UserInfo;
