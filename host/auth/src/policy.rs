//! Kubernetes' bootstrap RBAC policy: the ClusterRoles and ClusterRoleBindings every cluster
//! starts with (cluster-admin, admin/edit/view through aggregation, system:discovery,
//! system:basic-user, system:public-info-viewer, the component roles, and one
//! `system:controller:<name>` role per built-in controller, bound to its ServiceAccount in
//! kube-system). The API server reconciles them at every start.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{
    AggregationRule, ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

const READ: &[&str] = &["get", "list", "watch"];
const WRITE: &[&str] = &["create", "delete", "deletecollection", "patch", "update"];
const RW: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const EVENTS: &[&str] = &["create", "patch", "update"];

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A resource rule.
pub fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(strings(groups)),
        resources: Some(strings(resources)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

/// A resource rule limited to named objects.
fn named(groups: &[&str], resources: &[&str], names: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        resource_names: Some(strings(names)),
        ..rule(groups, resources, verbs)
    }
}

/// A non-resource rule.
pub fn urls(urls: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        non_resource_urls: Some(strings(urls)),
        verbs: strings(verbs),
        ..Default::default()
    }
}

fn events() -> PolicyRule {
    rule(&["", "events.k8s.io"], &["events"], EVENTS)
}

fn meta(name: &str, extra_label: Option<&str>) -> ObjectMeta {
    let mut labels = BTreeMap::from([(
        "kubernetes.io/bootstrapping".to_string(),
        "rbac-defaults".to_string(),
    )]);
    if let Some(l) = extra_label {
        labels.insert(l.to_string(), "true".to_string());
    }
    ObjectMeta {
        name: Some(name.into()),
        labels: Some(labels),
        annotations: Some(BTreeMap::from([(
            "rbac.authorization.kubernetes.io/autoupdate".to_string(),
            "true".to_string(),
        )])),
        ..Default::default()
    }
}

fn role(name: &str, label: Option<&str>, rules: Vec<PolicyRule>) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, label),
        rules: Some(rules),
        ..Default::default()
    }
}

fn aggregate(name: &str, label: Option<&str>, from: &str) -> ClusterRole {
    ClusterRole {
        metadata: meta(name, label),
        aggregation_rule: Some(AggregationRule {
            cluster_role_selectors: Some(vec![LabelSelector {
                match_labels: Some(BTreeMap::from([(from.to_string(), "true".to_string())])),
                ..Default::default()
            }]),
        }),
        rules: None,
    }
}

const TO_ADMIN: &str = "rbac.authorization.k8s.io/aggregate-to-admin";
const TO_EDIT: &str = "rbac.authorization.k8s.io/aggregate-to-edit";
const TO_VIEW: &str = "rbac.authorization.k8s.io/aggregate-to-view";

fn view_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "configmaps",
                "endpoints",
                "persistentvolumeclaims",
                "persistentvolumeclaims/status",
                "pods",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "serviceaccounts",
                "services",
                "services/status",
            ],
            READ,
        ),
        rule(
            &[""],
            &[
                "bindings",
                "events",
                "limitranges",
                "namespaces/status",
                "pods/log",
                "pods/status",
                "replicationcontrollers/status",
                "resourcequotas",
                "resourcequotas/status",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
        rule(&["discovery.k8s.io"], &["endpointslices"], READ),
        rule(
            &["apps"],
            &[
                "controllerrevisions",
                "daemonsets",
                "daemonsets/status",
                "deployments",
                "deployments/scale",
                "deployments/status",
                "replicasets",
                "replicasets/scale",
                "replicasets/status",
                "statefulsets",
                "statefulsets/scale",
                "statefulsets/status",
            ],
            READ,
        ),
        rule(
            &["autoscaling"],
            &[
                "horizontalpodautoscalers",
                "horizontalpodautoscalers/status",
            ],
            READ,
        ),
        rule(
            &["batch"],
            &["cronjobs", "cronjobs/status", "jobs", "jobs/status"],
            READ,
        ),
        rule(
            &["policy"],
            &["poddisruptionbudgets", "poddisruptionbudgets/status"],
            READ,
        ),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "ingresses/status", "networkpolicies"],
            READ,
        ),
    ]
}

fn edit_rules() -> Vec<PolicyRule> {
    vec![
        rule(
            &[""],
            &[
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
                "secrets",
                "services/proxy",
            ],
            READ,
        ),
        rule(&[""], &["serviceaccounts"], &["impersonate"]),
        rule(
            &[""],
            &[
                "pods",
                "pods/attach",
                "pods/exec",
                "pods/portforward",
                "pods/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(
            &[""],
            &[
                "configmaps",
                "events",
                "persistentvolumeclaims",
                "replicationcontrollers",
                "replicationcontrollers/scale",
                "secrets",
                "serviceaccounts",
                "services",
                "services/proxy",
            ],
            WRITE,
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &["apps"],
            &[
                "daemonsets",
                "deployments",
                "deployments/rollback",
                "deployments/scale",
                "replicasets",
                "replicasets/scale",
                "statefulsets",
                "statefulsets/scale",
            ],
            WRITE,
        ),
        rule(&["autoscaling"], &["horizontalpodautoscalers"], WRITE),
        rule(&["batch"], &["cronjobs", "jobs"], WRITE),
        rule(&["policy"], &["poddisruptionbudgets"], WRITE),
        rule(
            &["networking.k8s.io"],
            &["ingresses", "networkpolicies"],
            WRITE,
        ),
        rule(&["coordination.k8s.io"], &["leases"], RW),
    ]
}

fn component_common(lease: &str) -> Vec<PolicyRule> {
    vec![
        events(),
        rule(&["coordination.k8s.io"], &["leases"], &["create"]),
        named(
            &["coordination.k8s.io"],
            &["leases"],
            &[lease],
            &["get", "update"],
        ),
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["subjectaccessreviews"],
            &["create"],
        ),
    ]
}

/// The rules of `system:node`, which the Node authorizer applies to kubelets.
pub fn node_rules() -> Vec<PolicyRule> {
    vec![
        rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
        rule(
            &["authorization.k8s.io"],
            &["localsubjectaccessreviews", "subjectaccessreviews"],
            &["create"],
        ),
        rule(&[""], &["services"], READ),
        rule(&[""], &["nodes"], &["create", "get", "list", "watch"]),
        rule(&[""], &["nodes/status"], &["patch", "update"]),
        rule(&[""], &["nodes"], &["patch", "update"]),
        rule(&[""], &["events"], EVENTS),
        rule(&[""], &["pods"], READ),
        rule(&[""], &["pods"], &["create", "delete"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["pods/eviction"], &["create"]),
        rule(&[""], &["configmaps", "secrets"], READ),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            &["get"],
        ),
        rule(&[""], &["endpoints"], &["get"]),
        rule(
            &["certificates.k8s.io"],
            &["certificatesigningrequests"],
            &["create", "get", "list", "watch"],
        ),
        rule(
            &["coordination.k8s.io"],
            &["leases"],
            &["create", "delete", "get", "patch", "update"],
        ),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
        rule(
            &[""],
            &["persistentvolumeclaims/status"],
            &["get", "patch", "update"],
        ),
        rule(&["node.k8s.io"], &["runtimeclasses"], READ),
    ]
}

fn scheduler_rules() -> Vec<PolicyRule> {
    let mut rules = component_common("kube-scheduler");
    rules.extend([
        rule(&[""], &["nodes"], READ),
        rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
        rule(&[""], &["bindings", "pods/binding"], &["create"]),
        rule(&[""], &["pods/status"], &["patch", "update"]),
        rule(&[""], &["replicationcontrollers", "services"], READ),
        rule(&["apps", "extensions"], &["replicasets"], READ),
        rule(&["apps"], &["statefulsets"], READ),
        rule(&["policy"], &["poddisruptionbudgets"], READ),
        rule(
            &[""],
            &["persistentvolumeclaims", "persistentvolumes"],
            READ,
        ),
        // system:volume-scheduler: claims get the node of their first consumer.
        rule(&[""], &["persistentvolumeclaims"], &["patch", "update"]),
        rule(
            &["storage.k8s.io"],
            &[
                "csinodes",
                "csidrivers",
                "csistoragecapacities",
                "storageclasses",
            ],
            READ,
        ),
        rule(&[""], &["namespaces"], READ),
        rule(&["keelson.dev"], &["wasmplugins"], READ),
    ]);
    rules
}

fn controller_manager_rules() -> Vec<PolicyRule> {
    let mut rules = component_common("kube-controller-manager");
    rules.extend([
        rule(&[""], &["secrets", "serviceaccounts"], &["create"]),
        rule(&[""], &["secrets"], &["delete"]),
        rule(
            &[""],
            &["configmaps", "namespaces", "secrets", "serviceaccounts"],
            &["get"],
        ),
        rule(&[""], &["secrets", "serviceaccounts"], &["update"]),
        rule(&["*"], &["*"], &["list", "watch"]),
        rule(&[""], &["serviceaccounts/token"], &["create"]),
    ]);
    rules
}

/// The built-in controllers and their rules (`system:controller:<name>`, bound to the
/// ServiceAccount `kube-system/<name>` that the controller acts as). Each holds what
/// Kubernetes' role grants plus the reads its own watches need (Keelson's controllers watch
/// with their own identity rather than the controller manager's).
pub fn controller_roles() -> Vec<(&'static str, Vec<PolicyRule>)> {
    let pods_rw = rule(
        &[""],
        &["pods"],
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
    );
    let revisions = rule(&["apps"], &["controllerrevisions"], RW);
    let owned = |group: &str, kind: &str| {
        let sub = |s: &str| format!("{kind}/{s}");
        let (status, finalizers) = (sub("status"), sub("finalizers"));
        vec![
            rule(
                &[group],
                &[kind],
                &["get", "list", "update", "watch", "patch"],
            ),
            rule(
                &[group],
                &[status.as_str(), finalizers.as_str()],
                &["update", "patch"],
            ),
        ]
    };
    let with = |mut base: Vec<PolicyRule>, more: Vec<PolicyRule>| {
        base.extend(more);
        base.push(events());
        base
    };
    vec![
        (
            "replicaset-controller",
            with(owned("apps", "replicasets"), vec![pods_rw.clone()]),
        ),
        (
            "replication-controller",
            with(owned("", "replicationcontrollers"), vec![pods_rw.clone()]),
        ),
        (
            "deployment-controller",
            with(
                owned("apps", "deployments"),
                vec![
                    rule(&["apps"], &["replicasets"], RW),
                    rule(&[""], &["pods"], &["get", "list", "update", "watch"]),
                ],
            ),
        ),
        (
            "job-controller",
            with(owned("batch", "jobs"), vec![pods_rw.clone()]),
        ),
        (
            "daemon-set-controller",
            with(
                owned("apps", "daemonsets"),
                vec![
                    rule(&[""], &["nodes"], READ),
                    pods_rw.clone(),
                    rule(&[""], &["pods/binding"], &["create"]),
                    revisions.clone(),
                ],
            ),
        ),
        (
            "statefulset-controller",
            with(
                owned("apps", "statefulsets"),
                vec![
                    pods_rw.clone(),
                    revisions,
                    rule(
                        &[""],
                        &["persistentvolumeclaims"],
                        &["create", "delete", "get", "list", "update", "watch"],
                    ),
                ],
            ),
        ),
        (
            "cronjob-controller",
            with(
                owned("batch", "cronjobs"),
                vec![
                    rule(&["batch"], &["jobs"], RW),
                    rule(&[""], &["pods"], &["delete", "list"]),
                ],
            ),
        ),
        (
            "endpoint-controller",
            with(
                vec![rule(&[""], &["services", "pods"], READ)],
                vec![
                    rule(
                        &[""],
                        &["endpoints"],
                        &["create", "delete", "get", "list", "update", "watch"],
                    ),
                    rule(&[""], &["endpoints/restricted"], &["create"]),
                ],
            ),
        ),
        (
            "endpointslice-controller",
            with(
                vec![rule(&[""], &["services", "pods", "nodes"], READ)],
                vec![rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["create", "delete", "get", "list", "update", "watch"],
                )],
            ),
        ),
        (
            "node-controller",
            with(
                vec![rule(
                    &[""],
                    &["nodes"],
                    &["delete", "get", "list", "patch", "update", "watch"],
                )],
                vec![
                    rule(
                        &[""],
                        &["nodes/status", "pods/status"],
                        &["patch", "update"],
                    ),
                    rule(&[""], &["pods"], &["delete", "get", "list", "watch"]),
                    rule(&["coordination.k8s.io"], &["leases"], READ),
                ],
            ),
        ),
        (
            "disruption-controller",
            with(
                vec![
                    rule(
                        &["apps", "extensions"],
                        &["deployments", "replicasets", "statefulsets"],
                        READ,
                    ),
                    rule(&[""], &["replicationcontrollers", "pods"], READ),
                    rule(&["policy"], &["poddisruptionbudgets"], READ),
                ],
                vec![
                    rule(
                        &["policy"],
                        &["poddisruptionbudgets/status"],
                        &["update", "patch"],
                    ),
                    rule(&["*"], &["*/scale"], &["get"]),
                ],
            ),
        ),
        (
            "namespace-controller",
            with(
                vec![rule(
                    &[""],
                    &["namespaces"],
                    &["delete", "get", "list", "watch"],
                )],
                vec![
                    rule(
                        &[""],
                        &["namespaces/finalize", "namespaces/status"],
                        &["update"],
                    ),
                    rule(
                        &["*"],
                        &["*"],
                        &["delete", "deletecollection", "get", "list"],
                    ),
                ],
            ),
        ),
        (
            "generic-garbage-collector",
            with(
                vec![rule(
                    &["*"],
                    &["*"],
                    &["delete", "get", "list", "patch", "update", "watch"],
                )],
                vec![],
            ),
        ),
        (
            "ttl-after-finished-controller",
            with(
                vec![rule(
                    &["batch"],
                    &["jobs"],
                    &["delete", "get", "list", "watch"],
                )],
                vec![],
            ),
        ),
        (
            // Keelson's: runs WasmPlugins of type controller (each acts as its own
            // ServiceAccount) and writes their status.
            "wasmplugin-controller",
            with(
                vec![
                    rule(&["keelson.dev"], &["wasmplugins"], READ),
                    rule(
                        &["keelson.dev"],
                        &["wasmplugins/status"],
                        &["patch", "update"],
                    ),
                ],
                vec![],
            ),
        ),
        (
            "pod-garbage-collector",
            with(
                vec![
                    rule(&[""], &["pods"], &["delete", "list", "watch"]),
                    rule(&[""], &["nodes"], READ),
                ],
                vec![rule(&[""], &["pods/status"], &["patch"])],
            ),
        ),
        (
            "local-path-provisioner",
            with(
                vec![
                    rule(
                        &[""],
                        &["persistentvolumes"],
                        &["create", "delete", "get", "list", "watch"],
                    ),
                    rule(&[""], &["persistentvolumeclaims", "nodes"], READ),
                ],
                vec![rule(&["storage.k8s.io"], &["storageclasses"], READ)],
            ),
        ),
        (
            "resourcequota-controller",
            with(
                vec![rule(&["*"], &["*"], &["list", "watch"])],
                vec![rule(&[""], &["resourcequotas/status"], &["update"])],
            ),
        ),
        (
            "event-ttl-controller",
            with(
                vec![rule(
                    &["", "events.k8s.io"],
                    &["events"],
                    &["delete", "get", "list", "watch"],
                )],
                vec![],
            ),
        ),
        (
            "persistent-volume-binder",
            with(
                vec![
                    rule(
                        &[""],
                        &["persistentvolumes"],
                        &["create", "delete", "get", "list", "update", "watch"],
                    ),
                    rule(
                        &[""],
                        &["persistentvolumeclaims"],
                        &["get", "list", "update", "patch", "watch"],
                    ),
                ],
                vec![
                    rule(
                        &[""],
                        &["persistentvolumes/status", "persistentvolumeclaims/status"],
                        &["update", "patch"],
                    ),
                    rule(&["storage.k8s.io"], &["storageclasses"], READ),
                ],
            ),
        ),
        (
            "service-account-controller",
            with(
                vec![rule(
                    &[""],
                    &["serviceaccounts"],
                    &["create", "get", "list", "watch"],
                )],
                vec![rule(&[""], &["namespaces"], READ)],
            ),
        ),
        (
            "clusterrole-aggregation-controller",
            with(
                vec![rule(
                    &["rbac.authorization.k8s.io"],
                    &["clusterroles"],
                    &["escalate", "get", "list", "patch", "update", "watch"],
                )],
                vec![],
            ),
        ),
    ]
}

/// Every bootstrap ClusterRole.
pub fn cluster_roles() -> Vec<ClusterRole> {
    let mut roles = vec![
        aggregate("admin", None, TO_ADMIN),
        role(
            "cluster-admin",
            None,
            vec![rule(&["*"], &["*"], &["*"]), urls(&["*"], &["*"])],
        ),
        aggregate("edit", Some(TO_ADMIN), TO_EDIT),
        aggregate("view", Some(TO_EDIT), TO_VIEW),
        role(
            "system:aggregate-to-admin",
            Some(TO_ADMIN),
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["localsubjectaccessreviews"],
                    &["create"],
                ),
                rule(
                    &["rbac.authorization.k8s.io"],
                    &["rolebindings", "roles"],
                    RW,
                ),
            ],
        ),
        role("system:aggregate-to-edit", Some(TO_EDIT), edit_rules()),
        role("system:aggregate-to-view", Some(TO_VIEW), view_rules()),
        role(
            "system:auth-delegator",
            None,
            vec![
                rule(&["authentication.k8s.io"], &["tokenreviews"], &["create"]),
                rule(
                    &["authorization.k8s.io"],
                    &["subjectaccessreviews"],
                    &["create"],
                ),
            ],
        ),
        role(
            "system:basic-user",
            None,
            vec![
                rule(
                    &["authorization.k8s.io"],
                    &["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                    &["create"],
                ),
                rule(
                    &["authentication.k8s.io"],
                    &["selfsubjectreviews"],
                    &["create"],
                ),
            ],
        ),
        role(
            "system:discovery",
            None,
            vec![urls(
                &[
                    "/api",
                    "/api/*",
                    "/apis",
                    "/apis/*",
                    "/healthz",
                    "/livez",
                    "/openapi",
                    "/openapi/*",
                    "/readyz",
                    "/version",
                    "/version/",
                ],
                &["get"],
            )],
        ),
        role(
            "system:public-info-viewer",
            None,
            vec![urls(
                &["/healthz", "/livez", "/readyz", "/version", "/version/"],
                &["get"],
            )],
        ),
        role(
            "system:monitoring",
            None,
            vec![urls(
                &[
                    "/healthz",
                    "/healthz/*",
                    "/livez",
                    "/livez/*",
                    "/metrics",
                    "/metrics/slis",
                    "/readyz",
                    "/readyz/*",
                ],
                &["get"],
            )],
        ),
        role(
            "system:service-account-issuer-discovery",
            None,
            vec![urls(
                &["/.well-known/openid-configuration", "/openid/v1/jwks"],
                &["get"],
            )],
        ),
        role("system:node", None, node_rules()),
        role(
            "system:node-proxier",
            None,
            vec![
                rule(&[""], &["endpoints", "services"], &["list", "watch"]),
                rule(&[""], &["nodes"], READ),
                events(),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
        role("system:kube-scheduler", None, scheduler_rules()),
        role(
            "system:volume-scheduler",
            None,
            vec![
                rule(
                    &[""],
                    &["persistentvolumes"],
                    &["get", "list", "patch", "update", "watch"],
                ),
                rule(&["storage.k8s.io"], &["storageclasses"], READ),
                rule(
                    &[""],
                    &["persistentvolumeclaims"],
                    &["get", "list", "patch", "update", "watch"],
                ),
            ],
        ),
        role(
            "system:kube-controller-manager",
            None,
            controller_manager_rules(),
        ),
        role(
            "system:kube-dns",
            None,
            vec![rule(&[""], &["endpoints", "services"], &["list", "watch"])],
        ),
        // What the service proxy reads besides system:node-proxier's rights, to enforce
        // NetworkPolicies (kube-router's rights in k3s).
        role(
            "keelson:network-policy",
            None,
            vec![
                rule(&[""], &["pods", "namespaces"], &["list", "watch"]),
                rule(
                    &["networking.k8s.io"],
                    &["networkpolicies"],
                    &["list", "watch"],
                ),
            ],
        ),
        // The cluster DNS server's reader, as k3s's CoreDNS manifest grants it.
        role(
            "system:coredns",
            None,
            vec![
                rule(
                    &[""],
                    &["endpoints", "services", "pods", "namespaces"],
                    &["list", "watch"],
                ),
                rule(
                    &["discovery.k8s.io"],
                    &["endpointslices"],
                    &["list", "watch"],
                ),
            ],
        ),
    ];
    for (name, rules) in controller_roles() {
        roles.push(role(&format!("system:controller:{name}"), None, rules));
    }
    roles
}

fn binding(name: &str, role: &str, subjects: Vec<Subject>) -> ClusterRoleBinding {
    ClusterRoleBinding {
        metadata: meta(name, None),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role.into(),
        },
        subjects: Some(subjects),
    }
}

fn subject(kind: &str, name: &str) -> Subject {
    Subject {
        api_group: (kind != "ServiceAccount").then(|| "rbac.authorization.k8s.io".to_string()),
        kind: kind.into(),
        name: name.into(),
        namespace: (kind == "ServiceAccount").then(|| "kube-system".to_string()),
    }
}

/// Every bootstrap ClusterRoleBinding.
pub fn cluster_role_bindings() -> Vec<ClusterRoleBinding> {
    let mut out = vec![
        binding(
            "cluster-admin",
            "cluster-admin",
            vec![subject("Group", "system:masters")],
        ),
        binding(
            "system:basic-user",
            "system:basic-user",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:discovery",
            "system:discovery",
            vec![subject("Group", "system:authenticated")],
        ),
        binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            vec![
                subject("Group", "system:authenticated"),
                subject("Group", "system:unauthenticated"),
            ],
        ),
        binding(
            "system:monitoring",
            "system:monitoring",
            vec![subject("Group", "system:monitoring")],
        ),
        binding(
            "system:service-account-issuer-discovery",
            "system:service-account-issuer-discovery",
            vec![subject("Group", "system:serviceaccounts")],
        ),
        binding(
            "system:kube-scheduler",
            "system:kube-scheduler",
            vec![subject("User", "system:kube-scheduler")],
        ),
        binding(
            "system:volume-scheduler",
            "system:volume-scheduler",
            vec![subject("User", "system:kube-scheduler")],
        ),
        binding(
            "system:kube-controller-manager",
            "system:kube-controller-manager",
            vec![subject("User", "system:kube-controller-manager")],
        ),
        binding(
            "system:node-proxier",
            "system:node-proxier",
            vec![subject("User", "system:kube-proxy")],
        ),
        binding(
            "system:kube-dns",
            "system:kube-dns",
            vec![subject("ServiceAccount", "kube-dns")],
        ),
        binding(
            "keelson:network-policy",
            "keelson:network-policy",
            vec![subject("User", "system:kube-proxy")],
        ),
        binding(
            "system:coredns",
            "system:coredns",
            vec![subject("ServiceAccount", "coredns")],
        ),
        binding("system:node", "system:node", vec![]),
    ];
    for (name, _) in controller_roles() {
        let role = format!("system:controller:{name}");
        out.push(binding(&role, &role, vec![subject("ServiceAccount", name)]));
    }
    out
}
