//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`), as
//! sent by `kubectl apply` (client side), `edit`, `label`, `annotate` and `patch`.
//!
//! Semantics follow apimachinery's `strategicpatch` (v1.33) when applying a patch:
//! maps merge recursively and `null` deletes a key; lists with a merge key merge
//! item by item (patch items first in patch order, server-only items interleaved by
//! their live order); lists of primitives with the merge strategy are unioned; all
//! other lists are replaced. Directives: `$patch` (`replace`/`delete`/`merge`, on a
//! map or as a list element), `$retainKeys`, `$setElementOrder/<f>` and
//! `$deleteFromPrimitiveList/<f>`. No directive key survives into the result. Field
//! metadata comes from [`super::patch_meta`].

use super::patch_meta::{is_replace_map, list_strategy, ListStrategy};
use serde_json::{Map, Value};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER: &str = "$setElementOrder/";
const DELETE_PRIMITIVES: &str = "$deleteFromPrimitiveList/";

type Obj = Map<String, Value>;

struct Ctx<'a> {
    group: &'a str,
    kind: &'a str,
}

impl Ctx<'_> {
    fn strategy(&self, path: &[String]) -> ListStrategy {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        list_strategy(self.group, self.kind, &p)
    }

    fn replace_map(&self, path: &[String]) -> bool {
        let p: Vec<&str> = path.iter().map(String::as_str).collect();
        is_replace_map(self.group, self.kind, &p)
    }
}

/// Applies a strategic merge patch to `original` for an object of the given
/// group/kind. `original` may be `null` (treated as `{}`); the patch must be a JSON
/// object. Errors carry a human-readable reason (for a 422/400 status message).
pub(crate) fn strategic_merge(
    original: &Value,
    patch: &Value,
    group: &str,
    kind: &str,
) -> Result<Value, String> {
    let Value::Object(patch) = patch else {
        return Err("strategic merge patch must be a JSON object".into());
    };
    let original = match original {
        Value::Object(m) => m.clone(),
        Value::Null => Obj::new(),
        _ => return Err("object to patch must be a JSON object".into()),
    };
    let ctx = Ctx { group, kind };
    merge_map(original, patch, &ctx, &mut Vec::new()).map(Value::Object)
}

fn at(path: &[String]) -> String {
    if path.is_empty() {
        "<root>".into()
    } else {
        path.join(".")
    }
}

/// A patch value with all directives applied against nothing (used for values that
/// are new in the original).
fn clean(v: &Value, ctx: &Ctx, path: &mut Vec<String>) -> Result<Value, String> {
    Ok(match v {
        Value::Object(m) => Value::Object(merge_map(Obj::new(), m, ctx, path)?),
        Value::Array(a) => Value::Array(merge_list(Vec::new(), a, ctx, path)?),
        other => other.clone(),
    })
}

fn merge_map(
    mut original: Obj,
    patch: &Obj,
    ctx: &Ctx,
    path: &mut Vec<String>,
) -> Result<Obj, String> {
    if let Some(d) = patch.get(DIRECTIVE) {
        match d.as_str() {
            Some("replace") => {
                let mut rest = patch.clone();
                rest.shift_remove(DIRECTIVE);
                return merge_map(Obj::new(), &rest, ctx, path);
            }
            Some("delete") => return Ok(Obj::new()),
            Some("merge") => {}
            _ => return Err(format!("unknown patch type {d} in map at {}", at(path))),
        }
    }
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        let keys: Vec<&str> = match retain {
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("$retainKeys at {} must be a list", at(path))),
        };
        for (k, v) in patch {
            if !v.is_null() && !k.starts_with('$') && !keys.contains(&k.as_str()) {
                return Err(format!(
                    "field {k:?} at {} is not present in $retainKeys",
                    at(path)
                ));
            }
        }
        original.retain(|k, _| keys.contains(&k.as_str()));
    }

    let mut handled: Vec<&str> = Vec::new();
    for (key, order) in patch {
        let Some(field) = key.strip_prefix(SET_ORDER) else {
            continue;
        };
        let Value::Array(order) = order else {
            return Err(format!("{key} at {} must be a list", at(path)));
        };
        path.push(field.to_string());
        let orig = match original.get(field) {
            Some(Value::Array(a)) => Some(a.clone()),
            None | Some(Value::Null) => None,
            Some(_) => return Err(format!("{} is not a list", at(path))),
        };
        let merged = match (&orig, patch.get(field)) {
            (_, Some(p)) if !p.is_array() => {
                return Err(format!("{} must be a list to use {key}", at(path)))
            }
            (Some(o), None) => o.clone(),
            (o, Some(Value::Array(p))) => merge_list(o.clone().unwrap_or_default(), p, ctx, path)?,
            _ => {
                path.pop();
                continue;
            }
        };
        let key_field = merge_key_of(ctx.strategy(path));
        let order: Vec<&Value> = order.iter().collect();
        let result = normalize(merged, &order, &orig.unwrap_or_default(), key_field);
        original.insert(field.to_string(), Value::Array(result));
        handled.push(field);
        path.pop();
    }

    let mut deletions = Vec::new();
    for (k, pv) in patch {
        if k == DIRECTIVE || k == RETAIN_KEYS || k.starts_with(SET_ORDER) {
            continue;
        }
        if handled.contains(&k.as_str()) {
            continue;
        }
        if let Some(field) = k.strip_prefix(DELETE_PRIMITIVES) {
            deletions.push((field, pv));
            continue;
        }
        if k.starts_with('$') {
            return Err(format!("unknown directive {k:?} at {}", at(path)));
        }
        if pv.is_null() {
            original.shift_remove(k);
            continue;
        }
        path.push(k.clone());
        let value = match original.get_mut(k) {
            None => clean(pv, ctx, path)?,
            Some(slot) => match (std::mem::take(slot), pv) {
                (Value::Object(o), Value::Object(p)) if !ctx.replace_map(path) => {
                    Value::Object(merge_map(o, p, ctx, path)?)
                }
                (Value::Array(o), Value::Array(p)) => Value::Array(merge_list(o, p, ctx, path)?),
                (_, p) => clean(p, ctx, path)?,
            },
        };
        path.pop();
        original.insert(k.clone(), value);
    }

    for (field, pv) in deletions {
        let Value::Array(del) = pv else {
            return Err(format!(
                "{DELETE_PRIMITIVES}{field} at {} must be a list",
                at(path)
            ));
        };
        if let Some(Value::Array(list)) = original.get_mut(field) {
            list.retain(|x| !del.contains(x));
        }
    }
    Ok(original)
}

fn merge_key_of(s: ListStrategy) -> Option<&'static str> {
    match s {
        ListStrategy::MergeKey(k) => Some(k),
        _ => None,
    }
}

/// The identity of a list item: its merge key value for objects, itself otherwise.
fn ident<'v>(item: &'v Value, key: Option<&str>) -> Option<&'v Value> {
    match (key, item) {
        (Some(k), Value::Object(m)) => m.get(k),
        (_, v) => Some(v),
    }
}

fn index_in<'a>(
    list: impl IntoIterator<Item = &'a Value>,
    item: &Value,
    key: Option<&str>,
) -> Option<usize> {
    let id = ident(item, key)?;
    list.into_iter().position(|x| ident(x, key) == Some(id))
}

/// Orders `merged`: items present in `patch_order` follow that order, the others
/// keep their `server_order` order and are interleaved before the first patch item
/// that comes after them in `server_order`.
fn normalize(
    merged: Vec<Value>,
    patch_order: &[&Value],
    server_order: &[Value],
    key: Option<&str>,
) -> Vec<Value> {
    let (mut in_patch, mut server_only): (Vec<Value>, Vec<Value>) = merged
        .into_iter()
        .partition(|v| index_in(patch_order.iter().copied(), v, key).is_some());
    in_patch.sort_by_key(|v| index_in(patch_order.iter().copied(), v, key).unwrap_or(usize::MAX));
    server_only.sort_by_key(|v| index_in(server_order, v, key).unwrap_or(usize::MAX));
    let mut out = Vec::with_capacity(in_patch.len() + server_only.len());
    let mut left = server_only.into_iter().peekable();
    let mut right = in_patch.into_iter().peekable();
    loop {
        let take_left = match (left.peek(), right.peek()) {
            (Some(l), Some(r)) => matches!(
                (index_in(server_order, l, key), index_in(server_order, r, key)),
                (Some(li), Some(ri)) if li < ri
            ),
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => break,
        };
        out.extend(if take_left { left.next() } else { right.next() });
    }
    out
}

fn merge_list(
    mut original: Vec<Value>,
    patch: &[Value],
    ctx: &Ctx,
    path: &mut Vec<String>,
) -> Result<Vec<Value>, String> {
    let strategy = ctx.strategy(path);
    let mut replace = false;
    let mut deletes = Vec::new();
    let mut items: Vec<&Value> = Vec::new();
    for item in patch {
        if let Some(d) = item.as_object().and_then(|m| m.get(DIRECTIVE)) {
            match d.as_str() {
                Some("replace") => replace = true,
                Some("delete") => deletes.push(item),
                Some("merge") => {}
                _ => return Err(format!("unknown patch type {d} in list {}", at(path))),
            }
            continue;
        }
        items.push(item);
    }
    if replace || strategy == ListStrategy::Atomic {
        return items.into_iter().map(|i| clean(i, ctx, path)).collect();
    }
    let objects = original
        .iter()
        .chain(items.iter().copied())
        .filter(|v| v.is_object())
        .count();
    if objects != 0 && objects != original.len() + items.len() {
        return Err(format!(
            "list element types are not identical in {}",
            at(path)
        ));
    }
    let key = merge_key_of(strategy);
    if objects == 0 {
        // Lists of primitives: union, keeping the first occurrence.
        let server_order = original.clone();
        let mut merged: Vec<Value> = Vec::with_capacity(original.len() + items.len());
        for v in original
            .into_iter()
            .chain(items.iter().map(|v| (*v).clone()))
        {
            if !merged.contains(&v) {
                merged.push(v);
            }
        }
        return Ok(normalize(merged, &items, &server_order, None));
    }
    let Some(key) = key else {
        return Err(format!(
            "cannot merge lists without merge key for {}",
            at(path)
        ));
    };
    for d in deletes {
        let kv = d
            .get(key)
            .ok_or_else(|| format!("delete directive in {} lacks merge key {key:?}", at(path)))?;
        original.retain(|o| o.get(key) != Some(kv));
    }
    let server_order = original.clone();
    for item in &items {
        let kv = item
            .get(key)
            .ok_or_else(|| format!("map: {item} does not contain declared merge key: {key}"))?;
        match original.iter().position(|o| o.get(key) == Some(kv)) {
            Some(pos) => {
                let cur = match std::mem::take(&mut original[pos]) {
                    Value::Object(m) => m,
                    _ => Obj::new(),
                };
                let patch_item = item.as_object().expect("checked above");
                original[pos] = Value::Object(merge_map(cur, patch_item, ctx, path)?);
            }
            None => original.push(clean(item, ctx, path)?),
        }
    }
    Ok(normalize(original, &items, &server_order, Some(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(name: &str, image: &str) -> Value {
        json!({"name": name, "image": image})
    }

    fn pod(containers: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": containers}})
    }

    #[test]
    fn table() {
        let deploy =
            |containers: Value| json!({"spec": {"template": {"spec": {"containers": containers}}}});
        #[rustfmt::skip]
        let cases: Vec<(&str, &str, &str, Value, Value, Value)> = vec![
            ("labels merge, null deletes", "", "ConfigMap",
             json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "data": {"k": "v"}}),
             json!({"metadata": {"labels": {"b": null, "c": "3"}}}),
             json!({"metadata": {"labels": {"a": "1", "c": "3"}}, "data": {"k": "v"}})),
            ("containers merged by name", "", "Pod",
             pod(json!([c("a", "a:1"), c("b", "b:1")])),
             json!({"spec": {"containers": [{"name": "b", "image": "b:2"}]}}),
             pod(json!([c("a", "a:1"), c("b", "b:2")]))),
            ("new item goes before server-only items (upstream order)", "", "Pod",
             pod(json!([c("a", "a:1"), c("b", "b:1")])),
             json!({"spec": {"containers": [c("z", "z:1")]}}),
             pod(json!([c("z", "z:1"), c("a", "a:1"), c("b", "b:1")]))),
            ("$patch: delete by merge key", "", "Pod",
             pod(json!([c("a", "a:1"), c("b", "b:1")])),
             json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
             pod(json!([c("b", "b:1")]))),
            ("$patch: replace in list", "", "Pod",
             pod(json!([c("a", "a:1"), c("b", "b:1")])),
             json!({"spec": {"containers": [c("x", "x:1"), {"$patch": "replace"}]}}),
             pod(json!([c("x", "x:1")]))),
            ("$patch: replace on map", "", "ConfigMap",
             json!({"data": {"a": "1", "b": "2"}}),
             json!({"data": {"$patch": "replace", "c": "3"}}),
             json!({"data": {"c": "3"}})),
            ("$patch: delete on map empties it", "", "ConfigMap",
             json!({"data": {"a": "1"}, "x": 1}),
             json!({"data": {"$patch": "delete"}}),
             json!({"data": {}, "x": 1})),
            ("$patch: merge is a plain merge", "", "ConfigMap",
             json!({"data": {"a": "1"}}),
             json!({"data": {"$patch": "merge", "b": "2"}}),
             json!({"data": {"a": "1", "b": "2"}})),
            ("setElementOrder reorders", "", "Pod",
             pod(json!([c("a", "1"), c("b", "1"), c("c", "1")])),
             json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}}),
             pod(json!([c("c", "1"), c("a", "1"), c("b", "1")]))),
            ("setElementOrder places new item (kubectl apply)", "apps", "Deployment",
             deploy(json!([c("a", "1"), c("b", "1")])),
             json!({"spec": {"template": {"spec": {
                 "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "n"}],
                 "containers": [c("n", "1")]}}}}),
             deploy(json!([c("a", "1"), c("b", "1"), c("n", "1")]))),
            ("setElementOrder keeps server-only items in place", "", "Pod",
             pod(json!([c("a", "1"), c("s", "1"), c("b", "1")])),
             json!({"spec": {"$setElementOrder/containers": [{"name": "a"}, {"name": "b"}],
                             "containers": [c("b", "2")]}}),
             pod(json!([c("a", "1"), c("s", "1"), c("b", "2")]))),
            ("finalizers union", "", "ConfigMap",
             json!({"metadata": {"finalizers": ["a", "b"]}}),
             json!({"metadata": {"finalizers": ["b", "c"]}}),
             json!({"metadata": {"finalizers": ["a", "b", "c"]}})),
            ("finalizers union, new first without order", "", "ConfigMap",
             json!({"metadata": {"finalizers": ["a"]}}),
             json!({"metadata": {"finalizers": ["z"]}}),
             json!({"metadata": {"finalizers": ["z", "a"]}})),
            ("finalizers with order and deleteFromPrimitiveList", "", "ConfigMap",
             json!({"metadata": {"finalizers": ["a", "b"]}}),
             json!({"metadata": {"$setElementOrder/finalizers": ["a", "c"],
                                 "$deleteFromPrimitiveList/finalizers": ["b"],
                                 "finalizers": ["c"]}}),
             json!({"metadata": {"finalizers": ["a", "c"]}})),
            ("service ports by port", "", "Service",
             json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}}),
             json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}}),
             json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443, "targetPort": 8443}]}})),
            ("env merged inside container of deployment", "apps", "Deployment",
             deploy(json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "2"}]}])),
             deploy(json!([{"name": "a", "env": [{"name": "Y", "value": "3"}]}])),
             deploy(json!([{"name": "a", "env": [{"name": "X", "value": "1"}, {"name": "Y", "value": "3"}]}]))),
            ("cronjob containers by name", "batch", "CronJob",
             json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", "1"), c("b", "1")]}}}}}}),
             json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", "2")]}}}}}}),
             json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [c("a", "2"), c("b", "1")]}}}}}})),
            ("tolerations are atomic", "", "Pod",
             json!({"spec": {"tolerations": [{"key": "a"}, {"key": "b"}]}}),
             json!({"spec": {"tolerations": [{"key": "c"}]}}),
             json!({"spec": {"tolerations": [{"key": "c"}]}})),
            ("container args are atomic", "", "Pod",
             pod(json!([{"name": "a", "args": ["1", "2"]}])),
             json!({"spec": {"containers": [{"name": "a", "args": ["3"]}]}}),
             pod(json!([{"name": "a", "args": ["3"]}]))),
            ("empty patch list leaves merge list alone", "", "Pod",
             pod(json!([c("a", "1")])),
             json!({"spec": {"containers": []}}),
             pod(json!([c("a", "1")]))),
            ("unknown kinds replace lists", "example.com", "Widget",
             json!({"spec": {"containers": [c("a", "1")]}, "metadata": {"finalizers": ["x"]}}),
             json!({"spec": {"containers": [c("b", "1")]}, "metadata": {"finalizers": ["y"]}}),
             json!({"spec": {"containers": [c("b", "1")]}, "metadata": {"finalizers": ["y", "x"]}})),
            ("retainKeys clears other keys", "apps", "Deployment",
             json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}),
             json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
             json!({"spec": {"strategy": {"type": "Recreate"}}})),
            ("new subtree is cleaned of nulls and directives", "", "ConfigMap",
             json!({"a": 1}),
             json!({"b": {"x": null, "y": {"$patch": "replace", "z": 1}}}),
             json!({"a": 1, "b": {"y": {"z": 1}}})),
            ("type change replaces", "", "ConfigMap",
             json!({"a": "str", "b": {"c": 1}}),
             json!({"a": {"n": 1}, "b": [1]}),
             json!({"a": {"n": 1}, "b": [1]})),
            ("ownerReferences by uid", "apps", "ReplicaSet",
             json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b"}]}}),
             json!({"metadata": {"ownerReferences": [{"uid": "2", "controller": true}]}}),
             json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}, {"uid": "2", "name": "b", "controller": true}]}})),
            ("node addresses by type", "", "Node",
             json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}, {"type": "Hostname", "address": "n"}]}}),
             json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}}),
             json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}, {"type": "Hostname", "address": "n"}]}})),
            ("deployment conditions by type", "apps", "Deployment",
             json!({"status": {"conditions": [{"type": "Available", "status": "False"}, {"type": "Progressing", "status": "True"}]}}),
             json!({"status": {"conditions": [{"type": "Available", "status": "True"}]}}),
             json!({"status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}})),
            ("volume mounts by mountPath and ports by containerPort", "", "Pod",
             pod(json!([{"name": "a", "ports": [{"containerPort": 80}], "volumeMounts": [{"mountPath": "/a", "name": "v"}]}])),
             json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80, "name": "http"}],
                                             "volumeMounts": [{"mountPath": "/a", "readOnly": true}]}]}}),
             pod(json!([{"name": "a", "ports": [{"containerPort": 80, "name": "http"}],
                         "volumeMounts": [{"mountPath": "/a", "name": "v", "readOnly": true}]}]))),
            ("pdb selector is replaced", "policy", "PodDisruptionBudget",
             json!({"spec": {"selector": {"matchLabels": {"a": "1"}}}}),
             json!({"spec": {"selector": {"matchExpressions": []}}}),
             json!({"spec": {"selector": {"matchExpressions": []}}})),
        ];
        for (name, group, kind, original, patch, want) in cases {
            let got = strategic_merge(&original, &patch, group, kind)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn errors() {
        let cases: Vec<(&str, Value, Value)> = vec![
            ("non-object patch", json!({}), json!([1])),
            ("string patch", json!({}), json!("x")),
            (
                "missing merge key",
                pod(json!([c("a", "1")])),
                json!({"spec": {"containers": [{"image": "x"}]}}),
            ),
            (
                "retainKeys violation",
                json!({"spec": {"strategy": {}}}),
                json!({"spec": {"strategy": {"$retainKeys": ["type"], "other": 1}}}),
            ),
            (
                "bad $patch",
                json!({"a": {}}),
                json!({"a": {"$patch": "bogus"}}),
            ),
            ("unknown directive", json!({}), json!({"$bogus": 1})),
            (
                "mixed list",
                pod(json!([c("a", "1")])),
                json!({"spec": {"containers": ["x"]}}),
            ),
        ];
        for (name, original, patch) in cases {
            assert!(
                strategic_merge(&original, &patch, "", "Pod").is_err(),
                "{name} should fail"
            );
        }
    }

    #[test]
    fn key_order_preserved_and_null_original() {
        let got = strategic_merge(
            &json!({"b": 1, "a": {"y": 1, "x": 2}}),
            &json!({"a": {"y": 5}}),
            "",
            "ConfigMap",
        )
        .unwrap();
        assert_eq!(got.to_string(), r#"{"b":1,"a":{"y":5,"x":2}}"#);
        let got = strategic_merge(&Value::Null, &json!({"a": {"b": null}}), "", "X").unwrap();
        assert_eq!(got, json!({"a": {}}));
    }
}
