//! Kubernetes API machinery shared by Keelson's components (the API server, admission, the
//! scheduler and controllers): label and field [`selector`]s, resource [`quantity`] arithmetic,
//! and the [`rules`] that scope webhooks and Wasm admission plugins.

pub mod quantity;
pub mod rules;
pub mod selector;
