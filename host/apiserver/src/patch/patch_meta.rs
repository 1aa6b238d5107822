//! Patch metadata for the Kubernetes 1.33 built-in types: which lists merge by
//! which key (`x-kubernetes-patch-merge-key` / `patchMergeKey`), which lists of
//! primitives merge as sets (`patchStrategy: merge` without a key), which maps are
//! replaced whole, and which kinds have a status subresource. Everything not in the
//! tables is treated as a plain map (merged) or an atomic list (replaced), which is
//! also what custom resources get.
//!
//! The tables describe a tiny schema: each object kind maps to a root type name,
//! and `(parent type, field)` rows give the child type and list strategy. A path
//! of field names (list indexes omitted) is resolved by walking the rows.

/// How a list field is merged by strategic merge patch and tracked by server-side apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListStrategy {
    /// Replaced wholesale (no patch strategy, `listType=atomic`).
    Atomic,
    /// List of objects merged by the given key field.
    MergeKey(&'static str),
    /// List of primitives merged as a set (e.g. `metadata.finalizers`).
    Set,
}

use ListStrategy::{Atomic, MergeKey, Set};

/// `(group, kind, root type)`.
const ROOTS: &[(&str, &str, &str)] = &[
    ("", "Pod", "Pod"),
    ("", "PodTemplate", "PodTemplate"),
    ("", "ReplicationController", "ReplicationController"),
    ("", "Service", "Service"),
    ("", "ServiceAccount", "ServiceAccount"),
    ("", "Node", "Node"),
    ("", "Namespace", "Namespace"),
    ("", "PersistentVolumeClaim", "PersistentVolumeClaim"),
    ("", "ComponentStatus", "ComponentStatus"),
    ("apps", "Deployment", "Workload"),
    ("apps", "StatefulSet", "Workload"),
    ("apps", "DaemonSet", "Workload"),
    ("apps", "ReplicaSet", "Workload"),
    ("batch", "Job", "Job"),
    ("batch", "CronJob", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler", "ConditionsHolder"),
    ("policy", "PodDisruptionBudget", "PodDisruptionBudget"),
    (
        "flowcontrol.apiserver.k8s.io",
        "FlowSchema",
        "ConditionsHolder",
    ),
    (
        "flowcontrol.apiserver.k8s.io",
        "PriorityLevelConfiguration",
        "ConditionsHolder",
    ),
    ("networking.k8s.io", "ServiceCIDR", "ConditionsHolder"),
    ("apiregistration.k8s.io", "APIService", "ConditionsHolder"),
    ("resource.k8s.io", "ResourceClaim", "ResourceClaim"),
    ("storage.k8s.io", "CSINode", "CSINode"),
    (
        "admissionregistration.k8s.io",
        "ValidatingWebhookConfiguration",
        "WebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingWebhookConfiguration",
        "WebhookConfiguration",
    ),
    (
        "admissionregistration.k8s.io",
        "ValidatingAdmissionPolicy",
        "AdmissionPolicy",
    ),
    (
        "admissionregistration.k8s.io",
        "MutatingAdmissionPolicy",
        "AdmissionPolicy",
    ),
];

/// `(parent type, field, child type, list strategy)`. For a list field the child
/// type is the type of its items. `""` as child type means "no further metadata".
const FIELDS: &[(&str, &str, &str, ListStrategy)] = &[
    // metav1.ObjectMeta
    ("ObjectMeta", "finalizers", "", Set),
    ("ObjectMeta", "ownerReferences", "", MergeKey("uid")),
    // Pod and templates
    ("Pod", "spec", "PodSpec", Atomic),
    ("Pod", "status", "PodStatus", Atomic),
    ("PodTemplate", "template", "PodTemplateSpec", Atomic),
    ("PodTemplateSpec", "metadata", "ObjectMeta", Atomic),
    ("PodTemplateSpec", "spec", "PodSpec", Atomic),
    ("PodSpec", "containers", "Container", MergeKey("name")),
    ("PodSpec", "initContainers", "Container", MergeKey("name")),
    (
        "PodSpec",
        "ephemeralContainers",
        "Container",
        MergeKey("name"),
    ),
    ("PodSpec", "volumes", "", MergeKey("name")),
    ("PodSpec", "imagePullSecrets", "", MergeKey("name")),
    ("PodSpec", "hostAliases", "", MergeKey("ip")),
    (
        "PodSpec",
        "topologySpreadConstraints",
        "",
        MergeKey("topologyKey"),
    ),
    ("PodSpec", "schedulingGates", "", MergeKey("name")),
    ("PodSpec", "resourceClaims", "", MergeKey("name")),
    ("Container", "ports", "", MergeKey("containerPort")),
    ("Container", "env", "", MergeKey("name")),
    ("Container", "volumeMounts", "", MergeKey("mountPath")),
    ("Container", "volumeDevices", "", MergeKey("devicePath")),
    ("PodStatus", "conditions", "", MergeKey("type")),
    ("PodStatus", "hostIPs", "", MergeKey("ip")),
    ("PodStatus", "podIPs", "", MergeKey("ip")),
    ("PodStatus", "resourceClaimStatuses", "", MergeKey("name")),
    // Workload controllers
    ("ReplicationController", "spec", "TemplateSpec", Atomic),
    ("ReplicationController", "status", "Conditions", Atomic),
    ("Workload", "spec", "TemplateSpec", Atomic),
    ("Workload", "status", "Conditions", Atomic),
    ("Job", "spec", "TemplateSpec", Atomic),
    ("Job", "status", "Conditions", Atomic),
    ("CronJob", "spec", "CronJobSpec", Atomic),
    ("CronJobSpec", "jobTemplate", "JobTemplateSpec", Atomic),
    ("JobTemplateSpec", "metadata", "ObjectMeta", Atomic),
    ("JobTemplateSpec", "spec", "TemplateSpec", Atomic),
    ("TemplateSpec", "template", "PodTemplateSpec", Atomic),
    ("Conditions", "conditions", "", MergeKey("type")),
    ("ConditionsHolder", "status", "Conditions", Atomic),
    ("PodDisruptionBudget", "status", "Conditions", Atomic),
    ("ComponentStatus", "conditions", "", MergeKey("type")),
    // Core networking / nodes
    ("Service", "spec", "ServiceSpec", Atomic),
    ("Service", "status", "Conditions", Atomic),
    ("ServiceSpec", "ports", "", MergeKey("port")),
    ("ServiceAccount", "secrets", "", MergeKey("name")),
    ("Node", "spec", "NodeSpec", Atomic),
    ("Node", "status", "NodeStatus", Atomic),
    ("NodeSpec", "podCIDRs", "", Set),
    ("NodeStatus", "conditions", "", MergeKey("type")),
    ("NodeStatus", "addresses", "", MergeKey("type")),
    ("Namespace", "status", "Conditions", Atomic),
    ("PersistentVolumeClaim", "status", "Conditions", Atomic),
    // Other groups
    ("ResourceClaim", "status", "ResourceClaimStatus", Atomic),
    ("ResourceClaimStatus", "reservedFor", "", MergeKey("uid")),
    ("CSINode", "spec", "CSINodeSpec", Atomic),
    ("CSINodeSpec", "drivers", "", MergeKey("name")),
    (
        "WebhookConfiguration",
        "webhooks",
        "Webhook",
        MergeKey("name"),
    ),
    ("Webhook", "matchConditions", "", MergeKey("name")),
    ("AdmissionPolicy", "spec", "AdmissionPolicySpec", Atomic),
    (
        "AdmissionPolicySpec",
        "matchConditions",
        "",
        MergeKey("name"),
    ),
    ("AdmissionPolicySpec", "variables", "", MergeKey("name")),
];

/// Map fields carrying `patchStrategy: replace`: `(group, kind, path)`.
const REPLACE_MAPS: &[(&str, &str, &[&str])] =
    &[("policy", "PodDisruptionBudget", &["spec", "selector"])];

/// Kinds served with a `/status` subresource (their `status` is not written by the
/// main resource, so apply and update tracking ignore it there).
const STATUS_SUBRESOURCE: &[(&str, &str)] = &[
    ("", "Pod"),
    ("", "Node"),
    ("", "Namespace"),
    ("", "Service"),
    ("", "PersistentVolume"),
    ("", "PersistentVolumeClaim"),
    ("", "ReplicationController"),
    ("", "ResourceQuota"),
    ("apps", "Deployment"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("apps", "ReplicaSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("autoscaling", "HorizontalPodAutoscaler"),
    ("policy", "PodDisruptionBudget"),
    ("networking.k8s.io", "Ingress"),
    ("networking.k8s.io", "ServiceCIDR"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("apiregistration.k8s.io", "APIService"),
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("flowcontrol.apiserver.k8s.io", "FlowSchema"),
    ("flowcontrol.apiserver.k8s.io", "PriorityLevelConfiguration"),
    ("resource.k8s.io", "ResourceClaim"),
    ("storage.k8s.io", "VolumeAttachment"),
    ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy"),
    ("admissionregistration.k8s.io", "MutatingAdmissionPolicy"),
];

/// Walks `path` (field names, list indexes omitted) through the tables and returns
/// `(type holding the last field, last field)`; `None` once the path leaves them.
fn resolve<'a>(group: &str, kind: &str, path: &[&'a str]) -> Option<(&'static str, &'a str)> {
    let (last, parents) = path.split_last()?;
    let mut ty: &'static str = ROOTS
        .iter()
        .find(|(g, k, _)| *g == group && *k == kind)
        .map(|r| r.2)
        .unwrap_or("Object");
    for (depth, field) in parents.iter().enumerate() {
        ty = if depth == 0 && *field == "metadata" {
            "ObjectMeta"
        } else {
            let row = FIELDS.iter().find(|r| r.0 == ty && r.1 == *field)?;
            if row.2.is_empty() {
                return None;
            }
            row.2
        };
    }
    Some((ty, last))
}

/// Strategy of the list at `path` (field names from the object root, list indexes
/// omitted) for an object of the given group/kind.
pub(crate) fn list_strategy(group: &str, kind: &str, path: &[&str]) -> ListStrategy {
    match resolve(group, kind, path) {
        Some((ty, field)) => FIELDS
            .iter()
            .find(|r| r.0 == ty && r.1 == field)
            .map(|r| r.3)
            .unwrap_or(Atomic),
        None => Atomic,
    }
}

/// Patch metadata for a field path: the merge key of a list of objects, or `None`
/// for an atomic/replace list (and for merged lists of primitives, see
/// [`list_strategy`]). `path` = field names from the object root, list indexes
/// omitted, e.g. `["spec","template","spec","containers","ports"]`.
#[cfg(test)]
pub(crate) fn merge_key(group: &str, kind: &str, path: &[&str]) -> Option<&'static str> {
    match list_strategy(group, kind, path) {
        MergeKey(k) => Some(k),
        _ => None,
    }
}

/// True when the map at `path` carries `patchStrategy: replace` (replaced, not merged).
pub(crate) fn is_replace_map(group: &str, kind: &str, path: &[&str]) -> bool {
    REPLACE_MAPS
        .iter()
        .any(|(g, k, p)| *g == group && *k == kind && *p == path)
}

/// True when the kind is served with a `/status` subresource.
pub(crate) fn has_status_subresource(group: &str, kind: &str) -> bool {
    STATUS_SUBRESOURCE
        .iter()
        .any(|(g, k)| *g == group && *k == kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases: &[(&str, &str, &[&str], ListStrategy)] = &[
            ("", "Pod", &["spec", "containers"], MergeKey("name")),
            ("", "Pod", &["spec", "initContainers"], MergeKey("name")),
            (
                "",
                "Pod",
                &["spec", "ephemeralContainers"],
                MergeKey("name"),
            ),
            ("", "Pod", &["spec", "containers", "env"], MergeKey("name")),
            (
                "",
                "Pod",
                &["spec", "containers", "ports"],
                MergeKey("containerPort"),
            ),
            (
                "",
                "Pod",
                &["spec", "containers", "volumeMounts"],
                MergeKey("mountPath"),
            ),
            (
                "",
                "Pod",
                &["spec", "containers", "volumeDevices"],
                MergeKey("devicePath"),
            ),
            ("", "Pod", &["spec", "containers", "resizePolicy"], Atomic),
            ("", "Pod", &["spec", "containers", "args"], Atomic),
            ("", "Pod", &["spec", "volumes"], MergeKey("name")),
            ("", "Pod", &["spec", "tolerations"], Atomic),
            ("", "Pod", &["spec", "hostAliases"], MergeKey("ip")),
            ("", "Pod", &["spec", "imagePullSecrets"], MergeKey("name")),
            ("", "Pod", &["spec", "schedulingGates"], MergeKey("name")),
            ("", "Pod", &["spec", "resourceClaims"], MergeKey("name")),
            (
                "",
                "Pod",
                &["spec", "topologySpreadConstraints"],
                MergeKey("topologyKey"),
            ),
            ("", "Pod", &["status", "conditions"], MergeKey("type")),
            ("", "Pod", &["status", "podIPs"], MergeKey("ip")),
            ("", "Pod", &["status", "containerStatuses"], Atomic),
            ("", "Pod", &["metadata", "finalizers"], Set),
            ("", "Pod", &["metadata", "ownerReferences"], MergeKey("uid")),
            ("", "ConfigMap", &["metadata", "finalizers"], Set),
            (
                "example.com",
                "Widget",
                &["metadata", "ownerReferences"],
                MergeKey("uid"),
            ),
            ("example.com", "Widget", &["spec", "containers"], Atomic),
            (
                "apps",
                "Deployment",
                &["spec", "template", "spec", "containers"],
                MergeKey("name"),
            ),
            (
                "apps",
                "Deployment",
                &["spec", "template", "metadata", "finalizers"],
                Set,
            ),
            (
                "apps",
                "StatefulSet",
                &["spec", "template", "spec", "volumes"],
                MergeKey("name"),
            ),
            (
                "apps",
                "StatefulSet",
                &["spec", "volumeClaimTemplates"],
                Atomic,
            ),
            (
                "apps",
                "DaemonSet",
                &["status", "conditions"],
                MergeKey("type"),
            ),
            (
                "apps",
                "ReplicaSet",
                &["spec", "template", "spec", "containers", "env"],
                MergeKey("name"),
            ),
            (
                "",
                "ReplicationController",
                &["spec", "template", "spec", "containers"],
                MergeKey("name"),
            ),
            (
                "",
                "PodTemplate",
                &["template", "spec", "containers", "ports"],
                MergeKey("containerPort"),
            ),
            (
                "batch",
                "Job",
                &["spec", "template", "spec", "initContainers"],
                MergeKey("name"),
            ),
            (
                "batch",
                "CronJob",
                &[
                    "spec",
                    "jobTemplate",
                    "spec",
                    "template",
                    "spec",
                    "containers",
                ],
                MergeKey("name"),
            ),
            ("", "Service", &["spec", "ports"], MergeKey("port")),
            (
                "",
                "Service",
                &["status", "loadBalancer", "ingress"],
                Atomic,
            ),
            ("", "Node", &["status", "addresses"], MergeKey("type")),
            ("", "Node", &["spec", "podCIDRs"], Set),
            ("", "Node", &["spec", "taints"], Atomic),
            ("", "Endpoints", &["subsets"], Atomic),
            ("", "ServiceAccount", &["secrets"], MergeKey("name")),
            ("", "Namespace", &["status", "conditions"], MergeKey("type")),
            (
                "admissionregistration.k8s.io",
                "ValidatingWebhookConfiguration",
                &["webhooks", "matchConditions"],
                MergeKey("name"),
            ),
        ];
        for (g, k, p, want) in cases {
            assert_eq!(list_strategy(g, k, p), *want, "{g}/{k} {p:?}");
        }
        assert_eq!(merge_key("", "Service", &["spec", "ports"]), Some("port"));
        assert_eq!(merge_key("", "Pod", &["metadata", "finalizers"]), None);
        assert!(is_replace_map(
            "policy",
            "PodDisruptionBudget",
            &["spec", "selector"]
        ));
        assert!(has_status_subresource("apps", "Deployment"));
        assert!(!has_status_subresource("", "ConfigMap"));
    }
}
