//! Kubernetes API machinery shared by Keelson's components (the API server, admission, the
//! client, the scheduler and controllers): label and field [`selector`]s, resource
//! [`quantity`] arithmetic, the [`rules`] that scope webhooks and Wasm admission plugins, and
//! the [`user`] a request runs as.

pub mod quantity;
pub mod rules;
pub mod selector;
pub mod user;

pub use user::UserInfo;
