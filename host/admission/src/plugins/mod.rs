//! Kubernetes' built-in admission plugins, one file each.

mod namespace_lifecycle;

use std::sync::Arc;

use crate::Plugin;

/// Every built-in plugin, in chain order (ResourceQuota runs last regardless).
pub const ALL: &[&str] = &["NamespaceLifecycle"];

/// Kubernetes 1.33's default-enabled plugins that Keelson implements.
pub const DEFAULT: &[&str] = &["NamespaceLifecycle"];

/// Builds a plugin by name.
pub fn build(name: &str) -> Option<Arc<dyn Plugin>> {
    Some(match name {
        "NamespaceLifecycle" => Arc::new(namespace_lifecycle::NamespaceLifecycle),
        _ => return None,
    })
}
