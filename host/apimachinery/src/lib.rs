//! Kubernetes API machinery shared by Keelson's components (the API server, admission, the
//! client, the scheduler and controllers): label and field [`selector`]s, resource
//! [`quantity`] arithmetic, ResourceQuota [`quota`] accounting, the [`rules`] that scope webhooks and Wasm admission plugins, and
//! the [`user`] a request runs as, and the [`status`] reason of a failure.

pub mod quantity;
pub mod quota;
pub mod rules;
pub mod selector;
pub mod status;
pub mod user;

pub use status::Reason;
pub use user::UserInfo;
