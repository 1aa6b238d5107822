//! Kubernetes' JSON field order for response objects. Go's encoder writes a struct's fields in
//! declaration order, and k8s-pb declares each message's fields in that same Go order, so the
//! generated table (its `order`) yields Kubernetes' bytes: `kind`, `apiVersion`, `metadata`,
//! `spec`, `status`, then inside each the order of Kubernetes' own types (k8s-openapi's serde
//! code sorts fields alphabetically, so a typed round trip would not). Objects of kinds the
//! table lacks (custom resources) are unstructured maps in Kubernetes, which Go encodes with
//! sorted keys: they are sorted too.

use serde_json::{Map, Value};

use super::special::{self, Kind};
use super::table::{self, Rep, Ty, MESSAGES};

/// Deepest nesting reordered; anything deeper keeps its order.
const MAX_DEPTH: u32 = 64;

/// Puts an API object (or a list of them) into Kubernetes' field order. Values that are not
/// objects with an `apiVersion` and a `kind` (OpenAPI documents, …) are left as they are.
pub(crate) fn kubernetes_order(value: &mut Value) {
    let kind_of = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let (Some(api_version), Some(kind)) = (kind_of(value, "apiVersion"), kind_of(value, "kind"))
    else {
        return;
    };
    match table::by_type(&api_version, &kind) {
        Some(msg) => *value = reorder(std::mem::take(value), msg, 0),
        None => sort_keys(value, 0),
    }
}

/// The message's fields in declaration order, its top-level `kind` and `apiVersion` (Go's inlined
/// `TypeMeta`, which protobuf leaves out) first, unknown fields last in their own order.
fn reorder(value: Value, msg: u16, depth: u32) -> Value {
    if depth > MAX_DEPTH {
        return value;
    }
    let message = &MESSAGES[usize::from(msg)];
    match special::kind(message.name) {
        None => {}
        Some(Kind::SchemaOr(_)) => {
            return match table::field(msg, 1).map(|f| f.ty) {
                Some(Ty::Message(schema)) if value.is_object() => reorder(value, schema, depth + 1),
                _ => value,
            }
        }
        Some(_) => return value,
    }
    let Value::Object(mut map) = value else {
        return value;
    };
    let mut out = Map::new();
    let has_type_meta = !message.fields.iter().any(|f| f.json == "kind");
    if has_type_meta {
        for key in ["kind", "apiVersion"] {
            if let Some(v) = map.remove(key) {
                out.insert(key.to_string(), v);
            }
        }
    }
    place(&mut map, &mut out, msg, depth);
    out.extend(map);
    Value::Object(out)
}

/// Moves the fields of `msg` from `map` to `out`, in order; inlined structs in place.
fn place(map: &mut Map<String, Value>, out: &mut Map<String, Value>, msg: u16, depth: u32) {
    let message = &MESSAGES[usize::from(msg)];
    for &i in message.order {
        let f = &message.fields[usize::from(i)];
        if f.rep == Rep::Inline {
            if let Ty::Message(inner) = f.ty {
                place(map, out, inner, depth + 1);
            }
            continue;
        }
        let Some(v) = map.remove(f.json) else {
            continue;
        };
        let Ty::Message(child) = f.ty else {
            out.insert(f.json.to_string(), v);
            continue;
        };
        let v = match (f.rep, v) {
            (Rep::Repeated, Value::Array(items)) => Value::Array(
                items
                    .into_iter()
                    .map(|x| reorder(x, child, depth + 1))
                    .collect(),
            ),
            (Rep::Map, Value::Object(entries)) => Value::Object(
                entries
                    .into_iter()
                    .map(|(k, x)| (k, reorder(x, child, depth + 1)))
                    .collect(),
            ),
            (_, v) => reorder(v, child, depth + 1),
        };
        out.insert(f.json.to_string(), v);
    }
}

/// Sorts object keys at every level, as Go encodes `map[string]interface{}`.
fn sort_keys(value: &mut Value, depth: u32) {
    if depth > MAX_DEPTH {
        return;
    }
    match value {
        Value::Object(map) => {
            map.sort_keys();
            map.values_mut().for_each(|v| sort_keys(v, depth + 1));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| sort_keys(v, depth + 1)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(v: &Value) -> Vec<&str> {
        v.as_object().unwrap().keys().map(String::as_str).collect()
    }

    #[test]
    fn built_in_kinds_follow_the_go_structs() {
        let mut svc = json!({
            "status": {"loadBalancer": {}},
            "spec": {"type": "ClusterIP", "selector": {"app": "x"}, "ports": [{"targetPort": 80, "port": 80, "protocol": "TCP", "name": "http"}]},
            "metadata": {"uid": "u", "namespace": "default", "name": "s", "creationTimestamp": "2026-01-01T00:00:00Z", "resourceVersion": "5"},
            "apiVersion": "v1",
            "kind": "Service",
        });
        kubernetes_order(&mut svc);
        assert!(serde_json::to_string(&svc)
            .unwrap()
            .starts_with(r#"{"kind":"Service","apiVersion":"v1","metadata":"#));
        assert_eq!(
            keys(&svc),
            ["kind", "apiVersion", "metadata", "spec", "status"]
        );
        assert_eq!(
            keys(&svc["metadata"]),
            [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "creationTimestamp"
            ]
        );
        assert_eq!(keys(&svc["spec"]), ["ports", "selector", "type"]);
        assert_eq!(
            keys(&svc["spec"]["ports"][0]),
            ["name", "protocol", "port", "targetPort"]
        );
    }

    #[test]
    fn inlined_structs_lists_and_owner_references() {
        let mut pod = json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"ownerReferences": [{"uid": "u", "name": "rs", "kind": "ReplicaSet", "apiVersion": "apps/v1"}]},
            "spec": {"containers": [{"readinessProbe": {"periodSeconds": 1, "httpGet": {"port": 80}}, "image": "i", "name": "c"}],
                     "volumes": []}});
        kubernetes_order(&mut pod);
        assert_eq!(
            keys(&pod["metadata"]["ownerReferences"][0]),
            ["apiVersion", "kind", "name", "uid"]
        );
        assert_eq!(keys(&pod["spec"]), ["volumes", "containers"]);
        assert_eq!(
            keys(&pod["spec"]["containers"][0]),
            ["name", "image", "readinessProbe"]
        );
        assert_eq!(
            keys(&pod["spec"]["containers"][0]["readinessProbe"]),
            ["httpGet", "periodSeconds"]
        );
        let mut list = json!({"kind": "ConfigMapList", "apiVersion": "v1", "metadata": {}, "items": [
            {"data": {"b": "1", "a": "2"}, "metadata": {"name": "x"}, "kind": "ConfigMap", "apiVersion": "v1"}]});
        kubernetes_order(&mut list);
        assert_eq!(
            keys(&list["items"][0]),
            ["kind", "apiVersion", "metadata", "data"]
        );
    }

    #[test]
    fn custom_resources_are_sorted_like_unstructured_maps() {
        let mut w = json!({"kind": "Widget", "apiVersion": "example.com/v1",
            "spec": {"size": 1, "color": "red"}, "metadata": {"name": "w"}});
        kubernetes_order(&mut w);
        assert_eq!(keys(&w), ["apiVersion", "kind", "metadata", "spec"]);
        assert_eq!(keys(&w["spec"]), ["color", "size"]);
        let mut doc = json!({"paths": {}, "openapi": "3.0.0"});
        kubernetes_order(&mut doc);
        assert_eq!(keys(&doc), ["paths", "openapi"]);
    }
}
