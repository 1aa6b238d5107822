//! NodeRestriction (opt-in): a kubelet, authenticated as user `system:node:<name>` in group
//! `system:nodes`, may only modify its own Node (not its taints, its configSource, nor labels
//! under `node-restriction.kubernetes.io/` or unknown `kubernetes.io` / `k8s.io` labels), only
//! create mirror pods bound to itself that reference no secrets, config maps, service accounts
//! or claims, only update the status of (and evict or delete) pods bound to it, only touch its
//! own Lease in `kube-node-lease` and its own CSINode, only update PVC status, and only request
//! service-account tokens bound to its own pods. Other users pass untouched. Messages are
//! Kubernetes'.
//!
//! Kubernetes runs these checks in its mutating phase; they change nothing, so Keelson runs them
//! in the validating phase, which also covers DELETE.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::plugins::service_account::{references_secrets, MIRROR_POD_ANNOTATION};
use crate::{Api, Attributes, Denied, Operation, Plugin};

/// The NodeRestriction plugin.
pub(crate) struct NodeRestriction;

/// Labels a kubelet may set on its Node although they are in the `kubernetes.io` namespace.
const KUBELET_LABELS: [&str; 11] = [
    "kubernetes.io/hostname",
    "topology.kubernetes.io/zone",
    "topology.kubernetes.io/region",
    "failure-domain.beta.kubernetes.io/zone",
    "failure-domain.beta.kubernetes.io/region",
    "beta.kubernetes.io/instance-type",
    "node.kubernetes.io/instance-type",
    "kubernetes.io/os",
    "kubernetes.io/arch",
    "beta.kubernetes.io/os",
    "beta.kubernetes.io/arch",
];
/// Label namespaces (and their subdomains) a kubelet may use.
const KUBELET_LABEL_NAMESPACES: [&str; 2] = ["kubelet.kubernetes.io", "node.kubernetes.io"];
/// Labels here are for the cluster admin only (e.g. to steer workloads to trusted nodes).
const NODE_RESTRICTION_NAMESPACE: &str = "node-restriction.kubernetes.io";

/// The node a request comes from: `Some(name)` for a node identity (`""` when the user is in
/// `system:nodes` but its name has no node), `None` for everyone else.
pub(crate) fn node_identity(a: &Attributes) -> Option<String> {
    if !a.user.groups.iter().any(|g| g == "system:nodes") {
        return None;
    }
    Some(
        a.user
            .name
            .strip_prefix("system:node:")
            .unwrap_or_default()
            .to_string(),
    )
}

fn label_namespace(key: &str) -> &str {
    key.split_once('/').map(|(ns, _)| ns).unwrap_or_default()
}

fn in_namespace(ns: &str, domain: &str) -> bool {
    ns == domain || ns.ends_with(&format!(".{domain}"))
}

fn is_kubelet_label(key: &str) -> bool {
    KUBELET_LABELS.contains(&key)
        || KUBELET_LABEL_NAMESPACES
            .iter()
            .any(|d| in_namespace(label_namespace(key), d))
}

/// Labels added, removed or changed between `a` and `b` that a node may not touch.
fn forbidden_labels(new: &Value, old: Option<&Value>) -> BTreeSet<String> {
    let labels = |o: Option<&Value>| {
        o.and_then(|o| o.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (n, o) = (labels(Some(new)), labels(old));
    let modified = n
        .iter()
        .filter(|(k, v)| o.get(*k) != Some(*v))
        .chain(o.iter().filter(|(k, v)| n.get(*k) != Some(*v)))
        .map(|(k, _)| k.clone());
    modified
        .filter(|k| {
            let ns = label_namespace(k);
            let kubernetes = in_namespace(ns, "kubernetes.io") || in_namespace(ns, "k8s.io");
            in_namespace(ns, NODE_RESTRICTION_NAMESPACE) || (kubernetes && !is_kubelet_label(k))
        })
        .collect()
}

fn not_found(what: &str, name: &str) -> Denied {
    Denied {
        code: 404,
        reason: crate::Reason::NotFound,
        message: format!("{what} \"{name}\" not found"),
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

async fn get_pod(a: &Attributes, name: &str, api: &dyn Api) -> Result<Value, Denied> {
    match api
        .get(&format!("/api/v1/namespaces/{}/pods/{name}", a.namespace))
        .await
    {
        Ok(Some(p)) => Ok(p),
        Ok(None) => Err(not_found("pods", name)),
        Err(e) => Err(Denied::forbidden(a, e)),
    }
}

async fn admit_pod_create(node: &str, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
    let forbid = |why: String| Err(Denied::forbidden(a, why));
    let Some(pod) = a.object.as_ref() else {
        return Ok(());
    };
    if pod
        .pointer("/metadata/annotations")
        .and_then(|m| m.get(MIRROR_POD_ANNOTATION))
        .is_none()
    {
        return forbid(format!("pod does not have \"{MIRROR_POD_ANNOTATION}\" annotation, node \"{node}\" can only create mirror pods"));
    }
    if str_at(pod, "/spec/nodeName") != node {
        return forbid(format!(
            "node \"{node}\" can only create pods with spec.nodeName set to itself"
        ));
    }
    let owners = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if owners.len() > 1 {
        return forbid(format!(
            "node \"{node}\" can only create pods with a single owner reference set to itself"
        ));
    }
    let Some(owner) = owners.first() else {
        return forbid(format!(
            "node \"{node}\" can only create pods with an owner reference set to itself"
        ));
    };
    if owner["apiVersion"] != "v1" || owner["kind"] != "Node" || owner["name"] != node {
        return forbid(format!(
            "node \"{node}\" can only create pods with an owner reference set to itself"
        ));
    }
    if owner["controller"] != true {
        return forbid(format!(
            "node \"{node}\" can only create pods with a controller owner reference set to itself"
        ));
    }
    if owner["blockOwnerDeletion"] == true {
        return forbid(format!(
            "node \"{node}\" must not set blockOwnerDeletion on an owner reference"
        ));
    }
    let node_obj = match api.get(&format!("/api/v1/nodes/{node}")).await {
        Ok(Some(n)) => n,
        Ok(None) => return Err(not_found("nodes", node)),
        Err(e) => return forbid(format!("error looking up node {node} to verify uid: {e}")),
    };
    let (want, got) = (
        str_at(&node_obj, "/metadata/uid"),
        owner["uid"].as_str().unwrap_or_default(),
    );
    if want != got {
        return forbid(format!(
            "node {node} UID mismatch: expected {want} got {got}"
        ));
    }
    if !str_at(pod, "/spec/serviceAccountName").is_empty() {
        return forbid(format!(
            "node \"{node}\" can not create pods that reference a service account"
        ));
    }
    if references_secrets(pod) {
        return forbid(format!(
            "node \"{node}\" can not create pods that reference secrets"
        ));
    }
    if references_configmaps(pod) {
        return forbid(format!(
            "node \"{node}\" can not create pods that reference configmaps"
        ));
    }
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let projected = |kind: &str| {
        volumes
            .iter()
            .flat_map(|v| {
                v.pointer("/projected/sources")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|s| s.get(kind).is_some())
    };
    if projected("clusterTrustBundle") {
        return forbid(format!(
            "node \"{node}\" can not create pods that use clustertrustbundles"
        ));
    }
    if volumes
        .iter()
        .any(|v| v.get("persistentVolumeClaim").is_some())
    {
        return forbid(format!(
            "node \"{node}\" can not create pods that reference persistentvolumeclaims"
        ));
    }
    if pod
        .pointer("/spec/resourceClaims")
        .and_then(Value::as_array)
        .is_some_and(|c| !c.is_empty())
    {
        return forbid(format!(
            "node \"{node}\" can not create pods that reference resourceclaims"
        ));
    }
    Ok(())
}

fn references_configmaps(pod: &Value) -> bool {
    let volumes = pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let in_volumes = volumes.clone().any(|v| v.get("configMap").is_some())
        || volumes
            .flat_map(|v| {
                v.pointer("/projected/sources")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            })
            .any(|s| s.get("configMap").is_some());
    in_volumes
        || crate::plugins::service_account::all_containers(pod).any(|(_, c)| {
            c["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e.pointer("/valueFrom/configMapKeyRef").is_some())
                || c["envFrom"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|e| e.get("configMapRef").is_some())
        })
}

async fn admit_pod(node: &str, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
    match (a.subresource.as_str(), a.operation) {
        ("", Operation::Create) => admit_pod_create(node, a, api).await,
        ("", Operation::Delete) => {
            let pod = get_pod(a, &a.name, api).await?;
            if str_at(&pod, "/spec/nodeName") != node {
                return Err(Denied::forbidden(a, format!("node \"{node}\" can only delete pods with spec.nodeName set to itself")));
            }
            Ok(())
        }
        ("", op) => Err(Denied::forbidden(a, format!("unexpected operation \"{}\", node \"{node}\" can only create and delete mirror pods", op.as_str()))),
        ("status", Operation::Update) => {
            let old = a.old_object.clone().unwrap_or_default();
            if str_at(&old, "/spec/nodeName") != node {
                return Err(Denied::forbidden(a, format!("node \"{node}\" can only update pod status for pods with spec.nodeName set to itself")));
            }
            let labels = |o: Option<&Value>| o.and_then(|o| o.pointer("/metadata/labels")).filter(|l| !l.is_null()).cloned().unwrap_or(Value::Object(Default::default()));
            if labels(Some(&old)) != labels(a.object.as_ref()) {
                return Err(Denied::forbidden(a, format!("node \"{node}\" cannot update labels through pod status")));
            }
            let claims = |o: Option<&Value>| o.and_then(|o| o.pointer("/status/resourceClaimStatuses")).cloned().unwrap_or_default();
            if claims(Some(&old)) != claims(a.object.as_ref()) {
                return Err(Denied::forbidden(a, format!("node \"{node}\" cannot update resource claim statues")));
            }
            Ok(())
        }
        ("status", op) => Err(Denied::forbidden(a, format!("unexpected operation \"{}\"", op.as_str()))),
        ("eviction", Operation::Create) => {
            let mut name = a.name.clone();
            if name.is_empty() {
                return Err(Denied::forbidden(a, "could not determine pod from request data"));
            }
            if let Some(n) = a.object.as_ref().map(|e| str_at(e, "/metadata/name")).filter(|n| !n.is_empty() && a.name.is_empty()) {
                name = n.to_string();
            }
            let pod = get_pod(a, &name, api).await?;
            if str_at(&pod, "/spec/nodeName") != node {
                return Err(Denied::forbidden(a, format!("node {node} can only evict pods with spec.nodeName set to itself")));
            }
            Ok(())
        }
        ("eviction", op) => Err(Denied::forbidden(a, format!("unexpected operation {}", op.as_str()))),
        (sub, _) => Err(Denied::forbidden(a, format!("unexpected pod subresource \"{sub}\", only 'status' and 'eviction' are allowed"))),
    }
}

fn admit_node(node: &str, a: &Attributes) -> Result<(), Denied> {
    if a.name != node {
        return Err(Denied::forbidden(
            a,
            format!(
                "node \"{node}\" is not allowed to modify node \"{}\"",
                a.name
            ),
        ));
    }
    let Some(obj) = a.object.as_ref() else {
        return Ok(());
    };
    let config_source = |o: Option<&Value>| {
        o.and_then(|o| o.pointer("/spec/configSource"))
            .filter(|v| !v.is_null())
            .cloned()
    };
    match a.operation {
        Operation::Create => {
            if config_source(Some(obj)).is_some() {
                return Err(Denied::forbidden(
                    a,
                    format!(
                        "node \"{node}\" is not allowed to create pods with a non-nil configSource"
                    ),
                ));
            }
            let bad = forbidden_labels(obj, None);
            if !bad.is_empty() {
                let list: Vec<String> = bad.into_iter().collect();
                return Err(Denied::forbidden(
                    a,
                    format!(
                        "node \"{node}\" is not allowed to set the following labels: {}",
                        list.join(", ")
                    ),
                ));
            }
        }
        Operation::Update => {
            let old = a.old_object.as_ref();
            let new_source = config_source(Some(obj));
            if new_source.is_some() && new_source != config_source(old) {
                return Err(Denied::forbidden(a, format!("node \"{node}\" is not allowed to update configSource to a new non-nil configSource")));
            }
            let taints = |o: Option<&Value>| {
                o.and_then(|o| o.pointer("/spec/taints"))
                    .filter(|t| t.as_array().is_some_and(|t| !t.is_empty()))
                    .cloned()
            };
            if taints(Some(obj)) != taints(old) {
                return Err(Denied::forbidden(
                    a,
                    format!("node \"{node}\" is not allowed to modify taints"),
                ));
            }
            let bad = forbidden_labels(obj, old);
            if !bad.is_empty() {
                let list: Vec<String> = bad.into_iter().collect();
                return Err(Denied::forbidden(
                    a,
                    format!("is not allowed to modify labels: {}", list.join(", ")),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A node may only change a claim's status capacity, conditions and allocation.
fn admit_pvc(node: &str, a: &Attributes) -> Result<(), Denied> {
    if a.subresource != "status" {
        return Err(Denied::forbidden(a, "may only update PVC status"));
    }
    if a.operation != Operation::Update {
        return Err(Denied::forbidden(
            a,
            format!("unexpected operation \"{}\"", a.operation.as_str()),
        ));
    }
    let strip = |o: Option<&Value>| {
        let mut o = o.cloned().unwrap_or_default();
        if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
            m.remove("resourceVersion");
            m.remove("managedFields");
        }
        if let Some(s) = o.get_mut("status").and_then(Value::as_object_mut) {
            for f in [
                "capacity",
                "conditions",
                "allocatedResourceStatuses",
                "allocatedResources",
            ] {
                s.remove(f);
            }
        }
        o
    };
    let (old, new) = (strip(a.old_object.as_ref()), strip(a.object.as_ref()));
    if old != new {
        return Err(Denied::forbidden(a, format!("node \"{node}\" is not allowed to update fields other than status.capacity and status.conditions")));
    }
    Ok(())
}

async fn admit_token_request(node: &str, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
    if a.operation != Operation::Create || a.subresource != "token" {
        return Ok(());
    }
    let r = a
        .object
        .as_ref()
        .and_then(|t| t.pointer("/spec/boundObjectRef"))
        .filter(|r| !r.is_null());
    let Some(r) = r.filter(|r| {
        r["apiVersion"] == "v1" && r["kind"] == "Pod" && !str_at(r, "/name").is_empty()
    }) else {
        return Err(Denied::forbidden(
            a,
            "node requested token not bound to a pod",
        ));
    };
    let uid = str_at(r, "/uid");
    if uid.is_empty() {
        return Err(Denied::forbidden(
            a,
            "node requested token with a pod binding without a uid",
        ));
    }
    let pod = get_pod(a, str_at(r, "/name"), api).await?;
    if str_at(&pod, "/metadata/uid") != uid {
        return Err(Denied::forbidden(
            a,
            format!("the UID in the bound object reference ({uid}) does not match the UID in record. The object might have been deleted and then recreated"),
        ));
    }
    if str_at(&pod, "/spec/nodeName") != node {
        return Err(Denied::forbidden(
            a,
            "node requested token bound to a pod scheduled on a different node",
        ));
    }
    Ok(())
}

/// The name a request is about: on create, the proposed object's.
fn target_name(a: &Attributes) -> &str {
    if a.operation == Operation::Create {
        if let Some(n) = a
            .object
            .as_ref()
            .and_then(|o| o.pointer("/metadata/name"))
            .and_then(Value::as_str)
        {
            return n;
        }
    }
    &a.name
}

#[async_trait::async_trait]
impl Plugin for NodeRestriction {
    fn name(&self) -> &str {
        "NodeRestriction"
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        let Some(node) = node_identity(a) else {
            return Ok(());
        };
        if node.is_empty() {
            return Err(Denied::forbidden(
                a,
                format!("could not determine node from user \"{}\"", a.user.name),
            ));
        }
        match (a.group.as_str(), a.resource.as_str()) {
            ("", "pods") => admit_pod(&node, a, api).await,
            ("", "nodes") => admit_node(&node, a),
            ("", "persistentvolumeclaims") => admit_pvc(&node, a),
            ("", "serviceaccounts") => admit_token_request(&node, a, api).await,
            ("coordination.k8s.io", "leases") => {
                if a.namespace != "kube-node-lease" {
                    return Err(Denied::forbidden(
                        a,
                        "can only access leases in the \"kube-node-lease\" system namespace",
                    ));
                }
                if target_name(a) != node {
                    return Err(Denied::forbidden(
                        a,
                        "can only access node lease with the same name as the requesting node",
                    ));
                }
                Ok(())
            }
            ("storage.k8s.io", "csinodes") => {
                if target_name(a) != node {
                    return Err(Denied::forbidden(
                        a,
                        "can only access CSINode with the same name as the requesting node",
                    ));
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
