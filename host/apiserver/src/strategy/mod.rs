//! Per-kind behaviour around writes (Kubernetes' "strategies"): what create resets and defaults,
//! what an update may change (spec vs. status subresource), generation bumps, kind-specific
//! validation, namespace-lifecycle admission, and the side effects of CRD writes.

mod crd;
mod defaults;
mod ephemeral;
mod kinds;
pub(crate) mod service;

use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::FieldError;
use crate::objects::{self, meta_mut};
use crate::registry::ResourceDef;
use crate::{ApiServer, UserInfo};

pub(crate) use crd::custom_resource_check;
pub(crate) use crd::sync_crd;

/// Fills server-owned metadata, resets status, applies defaults.
pub(crate) fn prepare_create(def: &ResourceDef, obj: &mut Value, user: &UserInfo) {
    if def.kind == "CertificateSigningRequest" {
        // The requester is whoever posts it, whatever the body claims (as Kubernetes).
        obj["spec"]["username"] = json!(user.name);
        obj["spec"]["groups"] = json!(user.groups);
    }
    let has_spec = obj.get("spec").is_some() || def.is_custom();
    let meta = meta_mut(obj);
    meta.insert("uid".into(), json!(objects::uid()));
    meta.insert("creationTimestamp".into(), json!(objects::now()));
    for k in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
    ] {
        meta.remove(k);
    }
    if has_spec {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    if def.status && !matches!(def.kind.as_str(), "Node" | "Event") {
        if let Some(o) = obj.as_object_mut() {
            o.remove("status");
        }
    }
    defaults::apply(def, obj);
    kinds::on_create(def, obj);
}

/// Carries server-owned state from `old` into `new` for an update through `subresource`.
pub(crate) fn prepare_update(
    def: &ResourceDef,
    subresource: Option<&str>,
    old: &Value,
    new: &mut Value,
) {
    match subresource {
        Some("status") => {
            let status = new.get("status").cloned();
            *new = with_status(old, status);
        }
        Some("finalize") => {
            let finalizers = new
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            let mut merged = old.clone();
            merged["spec"]["finalizers"] = finalizers;
            *new = merged;
        }
        // A CSR's approval writes only its Approved/Denied conditions.
        Some("approval") => {
            let conditions = new.pointer("/status/conditions").cloned();
            let mut merged = old.clone();
            if let Some(c) = conditions {
                merged["status"]["conditions"] = c;
            }
            *new = merged;
        }
        Some("binding") => {}
        _ => {
            if def.status {
                match old.get("status") {
                    Some(s) => new["status"] = s.clone(),
                    None => {
                        if let Some(o) = new.as_object_mut() {
                            o.remove("status");
                        }
                    }
                }
            }
        }
    }
    if def.group.is_empty() && def.kind == "Pod" {
        ephemeral::prepare_update(subresource, old, new);
    }
    let old_meta = old.get("metadata").cloned().unwrap_or(json!({}));
    let meta = meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => meta.insert(k.into(), v.clone()),
            None => meta.remove(k),
        };
    }
    if !meta.contains_key("managedFields") {
        if let Some(m) = old_meta.get("managedFields") {
            meta.insert("managedFields".into(), m.clone());
        }
    }
    if def.kind == "Service" && new.pointer("/spec/clusterIP").is_none() {
        for k in ["clusterIP", "clusterIPs"] {
            if let Some(v) = old.pointer(&format!("/spec/{k}")) {
                new["spec"][k] = v.clone();
            }
        }
    }
    defaults::apply(def, new);
    if spec_of(old) != spec_of(new) {
        if let Some(g) = old_meta.get("generation").and_then(Value::as_i64) {
            meta_mut(new).insert("generation".into(), json!(g + 1));
        }
    }
}

fn with_status(old: &Value, status: Option<Value>) -> Value {
    let mut out = old.clone();
    match status {
        Some(s) => out["status"] = s,
        None => {
            if let Some(o) = out.as_object_mut() {
                o.remove("status");
            }
        }
    }
    out
}

/// Everything but metadata and status: a change here bumps `metadata.generation`.
fn spec_of(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            o.remove(k);
        }
    }
    v
}

/// Kind-independent and kind-specific validation; empty = valid.
pub(crate) fn validate(def: &ResourceDef, obj: &Value, old: Option<&Value>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = objects::name(obj);
    let name_problem = match def.kind.as_str() {
        "Namespace" | "Service" => crate::validation::dns_label(name),
        "Role" | "ClusterRole" | "RoleBinding" | "ClusterRoleBinding" => path_segment(name),
        _ => crate::validation::dns_subdomain(name),
    };
    if let Some(why) = name_problem {
        errors.push(FieldError::invalid("metadata.name", &json!(name), why));
    }
    crate::validation::labels(obj, &mut errors);
    if let Some(old) = old {
        let old_fin = objects::finalizers(old);
        if objects::is_deleting(old) {
            for f in objects::finalizers(obj) {
                if !old_fin.contains(&f) {
                    errors.push(FieldError::forbidden("metadata.finalizers", format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{f:?}}}")));
                }
            }
        }
    }
    if def.group.is_empty() && def.kind == "Pod" {
        ephemeral::validate(obj, old, &mut errors);
    }
    kinds::validate(def, obj, old, &mut errors);
    errors
}

fn path_segment(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("name or generateName is required".into());
    }
    if name == "." || name == ".." || name.contains('/') || name.contains('%') {
        return Some("may not be '.' or '..' or contain '/' or '%'".into());
    }
    None
}

/// Core v1 Services (their writes allocate cluster IPs and NodePorts).
pub(crate) fn is_service(def: &ResourceDef) -> bool {
    def.kind == "Service" && def.group.is_empty()
}

/// Side effects after a successful write: CRDs start or stop serving their kinds; a deleted
/// Service gives back its cluster IP and NodePorts.
pub(crate) async fn after_write(
    api: &Arc<ApiServer>,
    def: &ResourceDef,
    obj: &Value,
    deleted: bool,
) {
    if def.kind == "CustomResourceDefinition" && def.group == "apiextensions.k8s.io" {
        sync_crd(api, obj, deleted);
    }
    if deleted && is_service(def) {
        service::release_all(api, obj).await;
    }
}
