//! Helpers for the plugins' unit tests: request attributes for an object.

use serde_json::Value;

use crate::{Attributes, Operation, UserInfo};

/// Core and a few other kinds: (group, version, plural).
fn resource_of(kind: &str) -> (&'static str, &'static str, String) {
    match kind {
        "PriorityClass" => ("scheduling.k8s.io", "v1", "priorityclasses".into()),
        "StorageClass" | "CSINode" => ("storage.k8s.io", "v1", format!("{}s", kind.to_lowercase())),
        "Lease" => ("coordination.k8s.io", "v1", "leases".into()),
        "ServiceAccount" => ("", "v1", "serviceaccounts".into()),
        "PersistentVolumeClaim" => ("", "v1", "persistentvolumeclaims".into()),
        "Eviction" => ("", "v1", "pods".into()),
        "TokenRequest" => ("", "v1", "serviceaccounts".into()),
        other => ("", "v1", format!("{}s", other.to_lowercase())),
    }
}

/// Attributes of an admin's request on the main resource of `kind`; name and namespace come
/// from the object (or the old one), the namespace from `ns` when the object has none.
pub(crate) fn attrs(
    operation: Operation,
    kind: &str,
    ns: &str,
    object: Option<Value>,
    old: Option<Value>,
) -> Attributes {
    let (group, version, resource) = resource_of(kind);
    let any = object.as_ref().or(old.as_ref());
    let name = any
        .and_then(|o| o.pointer("/metadata/name"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Attributes {
        encoded: Default::default(),
        operation,
        group: group.into(),
        version: version.into(),
        kind: kind.into(),
        resource,
        subresource: String::new(),
        namespace: ns.into(),
        name,
        object,
        old_object: old,
        user: UserInfo {
            name: "admin".into(),
            groups: vec!["system:masters".into()],
        },
        dry_run: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::{build, ALL, DEFAULT};

    /// Kubernetes' chain order (`AllOrderedPlugins`) of the plugins this crate has.
    const K8S_ORDER: [&str; 10] = [
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
    ];

    #[test]
    fn plugins_in_kubernetes_order() {
        let pos = |n: &str| {
            ALL.iter()
                .position(|a| *a == n)
                .unwrap_or_else(|| panic!("{n} not in ALL"))
        };
        for pair in K8S_ORDER.windows(2) {
            assert!(
                pos(pair[0]) < pos(pair[1]),
                "{} must run before {}",
                pair[0],
                pair[1]
            );
        }
        for name in K8S_ORDER {
            assert_eq!(
                build(name).map(|p| p.name().to_string()),
                Some(name.to_string())
            );
        }
        // Kubernetes 1.33 enables these by default; the rest stay opt-in.
        let on: Vec<&str> = K8S_ORDER
            .iter()
            .copied()
            .filter(|n| DEFAULT.contains(n))
            .collect();
        assert_eq!(
            on,
            [
                "NamespaceLifecycle",
                "LimitRanger",
                "ServiceAccount",
                "Priority",
                "DefaultTolerationSeconds",
                "DefaultStorageClass"
            ]
        );
        for d in DEFAULT {
            assert!(ALL.contains(d), "{d} is default but not known");
        }
    }
}
