//! Object plumbing shared by the handlers: reading stored objects (resourceVersion comes from the
//! store revision, never from the stored bytes), metadata accessors, timestamps and UIDs.

use keelson_store::KeyValue;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;

/// Decodes a stored object and stamps its resourceVersion and served apiVersion.
pub(crate) fn from_store(def: &ResourceDef, kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value).map_err(ApiError::internal)?;
    set_rv(&mut obj, kv.mod_revision);
    obj["apiVersion"] = json!(def.api_version());
    Ok(obj)
}

/// ObjectMeta's fields after `resourceVersion`, in Kubernetes' order.
const AFTER_RV: [&str; 9] = [
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Sets `metadata.resourceVersion`, in its Kubernetes position (after `uid`) when it is new.
pub(crate) fn set_rv(obj: &mut Value, rev: i64) {
    let meta = meta_mut(obj);
    let rv = json!(rev.to_string());
    if let Some(v) = meta.get_mut("resourceVersion") {
        *v = rv;
        return;
    }
    match meta.keys().position(|k| AFTER_RV.contains(&k.as_str())) {
        Some(at) => {
            meta.shift_insert(at, "resourceVersion".into(), rv);
        }
        None => {
            meta.insert("resourceVersion".into(), rv);
        }
    }
}

/// Bytes to store: the object without its resourceVersion, in Kubernetes' field order, so
/// reads serve it as stored without reordering ([`crate::codec::json_response_as_stored`]).
pub(crate) fn to_store(obj: &Value) -> Vec<u8> {
    let mut copy = obj.clone();
    if let Some(m) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        m.shift_remove("resourceVersion");
    }
    crate::protobuf::kubernetes_order(&mut copy);
    serde_json::to_vec(&copy).unwrap_or_default()
}

/// `metadata` as a mutable map, created when missing or not an object.
pub(crate) fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["metadata"]
        .as_object_mut()
        .expect("metadata is an object")
}

/// A string field of `metadata`.
pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.name`.
pub(crate) fn name(obj: &Value) -> &str {
    meta_str(obj, "name").unwrap_or_default()
}

/// `metadata.finalizers`.
pub(crate) fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|f| f.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Is `metadata.deletionTimestamp` set?
pub(crate) fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// The resourceVersion a client sent, parsed; 0 when absent or empty.
pub(crate) fn sent_rv(obj: &Value) -> ApiResult<i64> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(0),
        Some(s) => s.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {s:?}: must be a number"))
        }),
    }
}

/// Now as an RFC 3339 timestamp with second precision (`metav1.Time`).
pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A fresh UID.
pub(crate) fn uid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A `generateName` suffix: five lowercase alphanumerics (no vowels, like Kubernetes).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5)
        .map(|_| ALPHABET[rand::random::<usize>() % ALPHABET.len()] as char)
        .collect()
}

/// The list kind of a kind (`ConfigMap` → `ConfigMapList`).
pub(crate) fn list_kind(def: &ResourceDef) -> String {
    format!("{}List", def.kind)
}

/// An object reduced to `PartialObjectMetadata`.
pub(crate) fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}
