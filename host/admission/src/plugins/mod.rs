//! Kubernetes' built-in admission plugins, one file each.

mod always_pull_images;
mod default_storage_class;
mod default_toleration_seconds;
#[cfg(test)]
pub(crate) mod fake_api;
mod limit_ranger;
mod namespace_lifecycle;
mod node_restriction;
mod pod_node_selector;
mod pod_toleration_restriction;
mod priority;
mod resource_quota;
mod service_account;
#[cfg(test)]
pub(crate) mod testing;
pub mod wasm;
mod webhook;

use std::sync::Arc;

use crate::Plugin;

/// Every built-in plugin, in chain order (ResourceQuota runs last regardless).
pub const ALL: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "NodeRestriction",
    "AlwaysPullImages",
    "PodNodeSelector",
    "Priority",
    "DefaultTolerationSeconds",
    "PodTolerationRestriction",
    "DefaultStorageClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// Kubernetes 1.33's default-enabled plugins that Keelson implements.
pub const DEFAULT: &[&str] = &[
    "NamespaceLifecycle",
    "LimitRanger",
    "ServiceAccount",
    "Priority",
    "DefaultTolerationSeconds",
    "DefaultStorageClass",
    "MutatingAdmissionWebhook",
    "ValidatingAdmissionWebhook",
    "ResourceQuota",
];

/// Builds a plugin by name.
pub fn build(name: &str) -> Option<Arc<dyn Plugin>> {
    Some(match name {
        "NamespaceLifecycle" => Arc::new(namespace_lifecycle::NamespaceLifecycle),
        "LimitRanger" => Arc::new(limit_ranger::LimitRanger),
        "ServiceAccount" => Arc::new(service_account::ServiceAccount::default()),
        "NodeRestriction" => Arc::new(node_restriction::NodeRestriction),
        "AlwaysPullImages" => Arc::new(always_pull_images::AlwaysPullImages),
        "PodNodeSelector" => Arc::new(pod_node_selector::PodNodeSelector),
        "Priority" => Arc::new(priority::Priority),
        "DefaultTolerationSeconds" => {
            Arc::new(default_toleration_seconds::DefaultTolerationSeconds)
        }
        "PodTolerationRestriction" => {
            Arc::new(pod_toleration_restriction::PodTolerationRestriction)
        }
        "DefaultStorageClass" => Arc::new(default_storage_class::DefaultStorageClass),
        "MutatingAdmissionWebhook" => Arc::new(webhook::Webhooks::new(webhook::Kind::Mutating)),
        "ValidatingAdmissionWebhook" => Arc::new(webhook::Webhooks::new(webhook::Kind::Validating)),
        "ResourceQuota" => Arc::new(resource_quota::ResourceQuota),
        _ => return None,
    })
}
