//! The resource registry: one description per served kind (table-driven, not a handler per
//! kind), built-in kinds from the table below plus kinds served for CustomResourceDefinitions.

use std::sync::{Arc, RwLock};

use serde_json::Value;

/// Checks a JSON object against its typed (k8s-openapi) definition and returns the object as the
/// type reads it (unknown fields dropped). An error is a decoding error message.
pub(crate) type TypedCheck = fn(&Value) -> Result<Value, String>;

/// Adds a kind's JSON schema (and its dependencies) to an OpenAPI generator, returning a `$ref`.
pub(crate) type SchemaFn = fn(&mut schemars::SchemaGenerator) -> schemars::Schema;

/// How a kind is served and stored.
#[derive(Debug, Clone)]
pub struct ResourceDef {
    /// API group; empty for core.
    pub group: String,
    /// Served version.
    pub version: String,
    /// Plural resource name (`deployments`).
    pub plural: String,
    /// Singular name (`deployment`).
    pub singular: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// kubectl short names.
    pub short_names: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Has a `status` subresource (spec and status written separately).
    pub status: bool,
    /// Has a `scale` subresource: (specReplicasPath, statusReplicasPath, labelSelectorPath).
    pub scale: Option<(String, String, Option<String>)>,
    /// Typed decoding for built-in kinds.
    pub typed: Option<TypedCheck>,
    /// The typed schema for OpenAPI, for built-in kinds.
    pub openapi: Option<SchemaFn>,
    /// For custom resources: the CRD's OpenAPI schema of this version.
    pub schema: Option<Value>,
    /// For custom resources: additionalPrinterColumns of this version.
    pub printer_columns: Vec<Value>,
    /// Extra subresources served by handlers (`binding`, `eviction`, `finalize`, …).
    pub extra_subresources: Vec<&'static str>,
    /// A review kind (access or identity review): create-only, answered, never stored.
    pub review: bool,
}

impl ResourceDef {
    /// `apiVersion` of the served version: `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The store prefix of every object of this resource.
    pub fn prefix(&self) -> String {
        let g = if self.group.is_empty() {
            "core"
        } else {
            &self.group
        };
        format!("/registry/{g}/{}/", self.plural)
    }

    /// The store prefix of one namespace (or of everything when `ns` is None or cluster-scoped).
    pub fn prefix_in(&self, ns: Option<&str>) -> String {
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// The store key of one object.
    pub fn key(&self, ns: Option<&str>, name: &str) -> String {
        match (self.namespaced, ns) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    /// Is this a custom resource served for a CRD?
    pub fn is_custom(&self) -> bool {
        self.typed.is_none() && self.schema.is_some()
    }
}

fn roundtrip<T: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    let typed = T::deserialize(v).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

struct Row {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short: &'static [&'static str],
    all: bool,
    status: bool,
    scale: bool,
    extra: &'static [&'static str],
    typed: TypedCheck,
    openapi: SchemaFn,
}

macro_rules! rows {
    ($( $g:literal $v:literal $plural:literal $singular:literal $kind:ident ($t:ty) ns=$ns:literal short=[$($s:literal),*] all=$all:literal status=$st:literal scale=$sc:literal extra=[$($e:literal),*] ;)*) => {
        vec![$(Row {
            group: $g, version: $v, plural: $plural, singular: $singular, kind: stringify!($kind),
            namespaced: $ns, short: &[$($s),*], all: $all, status: $st, scale: $sc, extra: &[$($e),*],
            typed: roundtrip::<$t>,
            openapi: |g| g.subschema_for::<$t>(),
        },)*]
    };
}

fn builtin_rows() -> Vec<Row> {
    use k8s_openapi::api::*;
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
    use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1 as aggregator;
    rows![
        "" "v1" "namespaces" "namespace" Namespace (core::v1::Namespace) ns=false short=["ns"] all=false status=true scale=false extra=["finalize"];
        "" "v1" "pods" "pod" Pod (core::v1::Pod) ns=true short=["po"] all=true status=true scale=false extra=["binding", "eviction", "ephemeralcontainers", "log", "exec", "attach", "portforward"];
        "" "v1" "services" "service" Service (core::v1::Service) ns=true short=["svc"] all=true status=true scale=false extra=[];
        "" "v1" "endpoints" "endpoints" Endpoints (core::v1::Endpoints) ns=true short=["ep"] all=false status=false scale=false extra=[];
        "" "v1" "configmaps" "configmap" ConfigMap (core::v1::ConfigMap) ns=true short=["cm"] all=false status=false scale=false extra=[];
        "" "v1" "secrets" "secret" Secret (core::v1::Secret) ns=true short=[] all=false status=false scale=false extra=[];
        "" "v1" "serviceaccounts" "serviceaccount" ServiceAccount (core::v1::ServiceAccount) ns=true short=["sa"] all=false status=false scale=false extra=["token"];
        "" "v1" "events" "event" Event (core::v1::Event) ns=true short=["ev"] all=false status=false scale=false extra=[];
        "" "v1" "nodes" "node" Node (core::v1::Node) ns=false short=["no"] all=false status=true scale=false extra=[];
        "" "v1" "persistentvolumes" "persistentvolume" PersistentVolume (core::v1::PersistentVolume) ns=false short=["pv"] all=false status=true scale=false extra=[];
        "" "v1" "persistentvolumeclaims" "persistentvolumeclaim" PersistentVolumeClaim (core::v1::PersistentVolumeClaim) ns=true short=["pvc"] all=false status=true scale=false extra=[];
        "" "v1" "resourcequotas" "resourcequota" ResourceQuota (core::v1::ResourceQuota) ns=true short=["quota"] all=false status=true scale=false extra=[];
        "" "v1" "limitranges" "limitrange" LimitRange (core::v1::LimitRange) ns=true short=["limits"] all=false status=false scale=false extra=[];
        "" "v1" "replicationcontrollers" "replicationcontroller" ReplicationController (core::v1::ReplicationController) ns=true short=["rc"] all=true status=true scale=true extra=[];
        "" "v1" "podtemplates" "podtemplate" PodTemplate (core::v1::PodTemplate) ns=true short=[] all=false status=false scale=false extra=[];
        "" "v1" "componentstatuses" "componentstatus" ComponentStatus (core::v1::ComponentStatus) ns=false short=["cs"] all=false status=false scale=false extra=[];
        "metrics.k8s.io" "v1beta1" "nodes" "" NodeMetrics (crate::computed::metrics::NodeMetrics) ns=false short=[] all=false status=false scale=false extra=[];
        "metrics.k8s.io" "v1beta1" "pods" "" PodMetrics (crate::computed::metrics::PodMetrics) ns=true short=[] all=false status=false scale=false extra=[];
        "apps" "v1" "deployments" "deployment" Deployment (apps::v1::Deployment) ns=true short=["deploy"] all=true status=true scale=true extra=[];
        "apps" "v1" "replicasets" "replicaset" ReplicaSet (apps::v1::ReplicaSet) ns=true short=["rs"] all=true status=true scale=true extra=[];
        "apps" "v1" "daemonsets" "daemonset" DaemonSet (apps::v1::DaemonSet) ns=true short=["ds"] all=true status=true scale=false extra=[];
        "apps" "v1" "statefulsets" "statefulset" StatefulSet (apps::v1::StatefulSet) ns=true short=["sts"] all=true status=true scale=true extra=[];
        "apps" "v1" "controllerrevisions" "controllerrevision" ControllerRevision (apps::v1::ControllerRevision) ns=true short=[] all=false status=false scale=false extra=[];
        "batch" "v1" "jobs" "job" Job (batch::v1::Job) ns=true short=[] all=true status=true scale=false extra=[];
        "batch" "v1" "cronjobs" "cronjob" CronJob (batch::v1::CronJob) ns=true short=["cj"] all=true status=true scale=false extra=[];
        "autoscaling" "v2" "horizontalpodautoscalers" "horizontalpodautoscaler" HorizontalPodAutoscaler (autoscaling::v2::HorizontalPodAutoscaler) ns=true short=["hpa"] all=true status=true scale=false extra=[];
        "coordination.k8s.io" "v1" "leases" "lease" Lease (coordination::v1::Lease) ns=true short=[] all=false status=false scale=false extra=[];
        "discovery.k8s.io" "v1" "endpointslices" "endpointslice" EndpointSlice (discovery::v1::EndpointSlice) ns=true short=[] all=false status=false scale=false extra=[];
        "events.k8s.io" "v1" "events" "event" Event (events::v1::Event) ns=true short=["ev"] all=false status=false scale=false extra=[];
        "networking.k8s.io" "v1" "ingresses" "ingress" Ingress (networking::v1::Ingress) ns=true short=["ing"] all=false status=true scale=false extra=[];
        "networking.k8s.io" "v1" "ingressclasses" "ingressclass" IngressClass (networking::v1::IngressClass) ns=false short=[] all=false status=false scale=false extra=[];
        "networking.k8s.io" "v1" "networkpolicies" "networkpolicy" NetworkPolicy (networking::v1::NetworkPolicy) ns=true short=["netpol"] all=false status=false scale=false extra=[];
        "certificates.k8s.io" "v1" "certificatesigningrequests" "certificatesigningrequest" CertificateSigningRequest (certificates::v1::CertificateSigningRequest) ns=false short=["csr"] all=false status=true scale=false extra=["approval"];
        "policy" "v1" "poddisruptionbudgets" "poddisruptionbudget" PodDisruptionBudget (policy::v1::PodDisruptionBudget) ns=true short=["pdb"] all=false status=true scale=false extra=[];
        "storage.k8s.io" "v1" "storageclasses" "storageclass" StorageClass (storage::v1::StorageClass) ns=false short=["sc"] all=false status=false scale=false extra=[];
        "scheduling.k8s.io" "v1" "priorityclasses" "priorityclass" PriorityClass (scheduling::v1::PriorityClass) ns=false short=["pc"] all=false status=false scale=false extra=[];
        "node.k8s.io" "v1" "runtimeclasses" "runtimeclass" RuntimeClass (node::v1::RuntimeClass) ns=false short=[] all=false status=false scale=false extra=[];
        "rbac.authorization.k8s.io" "v1" "roles" "role" Role (rbac::v1::Role) ns=true short=[] all=false status=false scale=false extra=[];
        "rbac.authorization.k8s.io" "v1" "rolebindings" "rolebinding" RoleBinding (rbac::v1::RoleBinding) ns=true short=[] all=false status=false scale=false extra=[];
        "rbac.authorization.k8s.io" "v1" "clusterroles" "clusterrole" ClusterRole (rbac::v1::ClusterRole) ns=false short=[] all=false status=false scale=false extra=[];
        "rbac.authorization.k8s.io" "v1" "clusterrolebindings" "clusterrolebinding" ClusterRoleBinding (rbac::v1::ClusterRoleBinding) ns=false short=[] all=false status=false scale=false extra=[];
        "admissionregistration.k8s.io" "v1" "mutatingwebhookconfigurations" "mutatingwebhookconfiguration" MutatingWebhookConfiguration (admissionregistration::v1::MutatingWebhookConfiguration) ns=false short=[] all=false status=false scale=false extra=[];
        "admissionregistration.k8s.io" "v1" "validatingwebhookconfigurations" "validatingwebhookconfiguration" ValidatingWebhookConfiguration (admissionregistration::v1::ValidatingWebhookConfiguration) ns=false short=[] all=false status=false scale=false extra=[];
        "authorization.k8s.io" "v1" "selfsubjectaccessreviews" "" SelfSubjectAccessReview (authorization::v1::SelfSubjectAccessReview) ns=false short=[] all=false status=false scale=false extra=[];
        "authorization.k8s.io" "v1" "subjectaccessreviews" "" SubjectAccessReview (authorization::v1::SubjectAccessReview) ns=false short=[] all=false status=false scale=false extra=[];
        "authorization.k8s.io" "v1" "localsubjectaccessreviews" "" LocalSubjectAccessReview (authorization::v1::LocalSubjectAccessReview) ns=true short=[] all=false status=false scale=false extra=[];
        "authentication.k8s.io" "v1" "tokenreviews" "" TokenReview (authentication::v1::TokenReview) ns=false short=[] all=false status=false scale=false extra=[];
        "authorization.k8s.io" "v1" "selfsubjectrulesreviews" "" SelfSubjectRulesReview (authorization::v1::SelfSubjectRulesReview) ns=false short=[] all=false status=false scale=false extra=[];
        "authentication.k8s.io" "v1" "selfsubjectreviews" "" SelfSubjectReview (authentication::v1::SelfSubjectReview) ns=false short=[] all=false status=false scale=false extra=[];
        "apiregistration.k8s.io" "v1" "apiservices" "apiservice" APIService (aggregator::APIService) ns=false short=[] all=false status=false scale=false extra=[];
        "apiextensions.k8s.io" "v1" "customresourcedefinitions" "customresourcedefinition" CustomResourceDefinition (apiext::CustomResourceDefinition) ns=false short=["crd", "crds"] all=false status=true scale=false extra=[];
    ]
}

/// Every served kind; CRD-served kinds come and go at runtime.
#[derive(Default)]
pub struct Registry {
    defs: RwLock<Vec<Arc<ResourceDef>>>,
}

impl Registry {
    /// The built-in kinds.
    pub fn builtin() -> Self {
        let defs = builtin_rows()
            .into_iter()
            .map(|r| {
                Arc::new(ResourceDef {
                    group: r.group.into(),
                    version: r.version.into(),
                    plural: r.plural.into(),
                    singular: r.singular.into(),
                    kind: r.kind.into(),
                    namespaced: r.namespaced,
                    short_names: r.short.iter().map(|s| s.to_string()).collect(),
                    categories: if r.all { vec!["all".into()] } else { vec![] },
                    status: r.status,
                    scale: r.scale.then(|| {
                        (
                            "spec.replicas".to_string(),
                            "status.replicas".to_string(),
                            Some("status.selector".to_string()),
                        )
                    }),
                    typed: Some(r.typed),
                    openapi: Some(r.openapi),
                    schema: None,
                    printer_columns: vec![],
                    extra_subresources: r.extra.to_vec(),
                    review: r.plural.ends_with("reviews"),
                })
            })
            .collect();
        Self {
            defs: RwLock::new(defs),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<ResourceDef>>> {
        self.defs.read().unwrap_or_else(|e| e.into_inner())
    }

    /// All served kinds.
    pub fn all(&self) -> Vec<Arc<ResourceDef>> {
        self.read().clone()
    }

    /// Looks up a resource by group, version and plural name.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.read()
            .iter()
            .find(|d| d.group == group && d.version == version && d.plural == plural)
            .cloned()
    }

    /// Every kind served in one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Arc<ResourceDef>> {
        self.read()
            .iter()
            .filter(|d| d.group == group && d.version == version)
            .cloned()
            .collect()
    }

    /// Looks up the served definition of a kind.
    pub fn by_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        self.read()
            .iter()
            .find(|d| d.group == group && d.kind == kind)
            .cloned()
    }

    /// Group/versions served, in discovery order (core first).
    pub fn group_versions(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for d in self.read().iter() {
            match out.iter_mut().find(|(g, _)| *g == d.group) {
                Some((_, vs)) => {
                    if !vs.contains(&d.version) {
                        vs.push(d.version.clone());
                    }
                }
                None => out.push((d.group.clone(), vec![d.version.clone()])),
            }
        }
        out
    }

    /// Replaces the kinds served for one CRD (by its name) with `defs` (empty = stop serving).
    pub fn set_custom(&self, crd_name: &str, defs: Vec<ResourceDef>) {
        let mut all = self.defs.write().unwrap_or_else(|e| e.into_inner());
        all.retain(|d| !(d.is_custom() && format!("{}.{}", d.plural, d.group) == crd_name));
        all.extend(defs.into_iter().map(Arc::new));
    }
}
