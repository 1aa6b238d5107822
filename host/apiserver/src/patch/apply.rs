//! Server-side apply (`application/apply-patch+yaml`, decoded to JSON) and
//! `metadata.managedFields` bookkeeping for ordinary writes, following
//! structured-merge-diff: apply merges the configuration into the live object,
//! removes fields the manager applied before but no longer applies (unless someone
//! else owns them), reports conflicts with other managers on changed fields unless
//! forced, and records ownership per manager in `FieldsV1` sets (see
//! [`super::fieldset`]). Identity/system fields (`apiVersion`, `kind`,
//! `metadata.name/namespace/uid/resourceVersion/generation/creationTimestamp/
//! managedFields`…) are never owned, nor is `status` of kinds with a status
//! subresource when applied through the main resource.

use super::fieldset::{display_path, get_path, remove_path, FieldSet, Walker};
use super::patch_meta::has_status_subresource;
use serde_json::{Map, Value};

/// Manager name that owns every pre-existing field of an object first applied to
/// without any `managedFields`.
const BEFORE_FIRST_APPLY: &str = "before-first-apply";

const IGNORED_META: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
    "managedFields",
];

/// A field whose value the applier would change while another manager owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApplyConflict {
    /// Name of the manager owning the field.
    pub manager: String,
    /// The field, e.g. `.spec.replicas` or `.data.key`.
    pub field: String,
}

#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    time: Option<String>,
    subresource: String,
    set: FieldSet,
}

impl Entry {
    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

fn str_field(m: &Map<String, Value>, k: &str) -> String {
    m.get(k)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn managed_fields(obj: &Value) -> Option<&Vec<Value>> {
    obj.get("metadata")?.get("managedFields")?.as_array()
}

fn decode(obj: Option<&Value>) -> Vec<Entry> {
    let Some(list) = obj.and_then(managed_fields) else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_object)
        .filter(|m| m.get("manager").and_then(Value::as_str).is_some())
        .map(|m| Entry {
            manager: str_field(m, "manager"),
            operation: str_field(m, "operation"),
            api_version: str_field(m, "apiVersion"),
            time: m.get("time").and_then(Value::as_str).map(str::to_string),
            subresource: str_field(m, "subresource"),
            set: FieldSet::from_fields_v1(m.get("fieldsV1").unwrap_or(&Value::Null)),
        })
        .filter(|e| !e.set.is_empty())
        .collect()
}

fn encode(mut entries: Vec<Entry>) -> Value {
    entries.retain(|e| !e.set.is_empty());
    entries.sort_by(|a, b| {
        (
            &a.operation,
            &a.time,
            &a.manager,
            &a.api_version,
            &a.subresource,
        )
            .cmp(&(
                &b.operation,
                &b.time,
                &b.manager,
                &b.api_version,
                &b.subresource,
            ))
    });
    let list = entries
        .into_iter()
        .map(|e| {
            let mut m = Map::new();
            m.insert("manager".into(), e.manager.into());
            m.insert("operation".into(), e.operation.into());
            m.insert("apiVersion".into(), e.api_version.into());
            if let Some(t) = e.time {
                m.insert("time".into(), t.into());
            }
            m.insert("fieldsType".into(), "FieldsV1".into());
            m.insert("fieldsV1".into(), e.set.to_fields_v1());
            if !e.subresource.is_empty() {
                m.insert("subresource".into(), e.subresource.into());
            }
            Value::Object(m)
        })
        .collect();
    Value::Array(list)
}

/// A copy of `obj` without the fields nobody owns.
fn strip(obj: &Value, ignore_status: bool) -> Value {
    let mut out = match obj {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    out.shift_remove("apiVersion");
    out.shift_remove("kind");
    if ignore_status {
        out.shift_remove("status");
    }
    if let Some(Value::Object(meta)) = out.get_mut("metadata") {
        meta.retain(|k, _| !IGNORED_META.contains(&k.as_str()));
        if meta.is_empty() {
            out.shift_remove("metadata");
        }
    }
    Value::Object(out)
}

fn set_managed_fields(obj: &mut Value, mf: Value) {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let meta = obj
        .as_object_mut()
        .expect("object")
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    let meta = meta.as_object_mut().expect("object");
    if mf.as_array().is_some_and(|a| a.is_empty()) {
        meta.shift_remove("managedFields");
    } else {
        meta.insert("managedFields".into(), mf);
    }
}

/// True for `…k:{"name":"x"}.f:name`: a key field of a list item, which goes only
/// with its item.
fn is_key_field(path: &[String]) -> bool {
    let [.., item, field] = path else {
        return false;
    };
    let (Some(keys), Some(field)) = (item.strip_prefix("k:"), field.strip_prefix("f:")) else {
        return false;
    };
    serde_json::from_str::<Map<String, Value>>(keys).is_ok_and(|m| m.contains_key(field))
}

/// Merges an apply configuration into the live object: maps recursively, keyed
/// lists and sets item by item (configuration order, live-only items kept in
/// place), atomic lists and scalars replaced; `null` removes the field.
fn merge(w: &Walker, lhs: &Value, rhs: &Value, names: &mut Vec<String>) -> Value {
    match (lhs, rhs) {
        (Value::Object(l), Value::Object(r)) => {
            let mut out = l.clone();
            for (k, rv) in r {
                if rv.is_null() {
                    out.shift_remove(k);
                    continue;
                }
                names.push(k.clone());
                let v = match l.get(k) {
                    Some(lv) => merge(w, lv, rv, names),
                    None => rv.clone(),
                };
                names.pop();
                out.insert(k.clone(), v);
            }
            Value::Object(out)
        }
        (Value::Array(l), Value::Array(r)) => {
            let (Some(li), Some(ri)) = (w.list_items(names, l, r), w.list_items(names, r, l))
            else {
                return rhs.clone();
            };
            let find_l = |pe: &str| li.iter().find(|(p, _)| p == pe).map(|(_, v)| *v);
            let mut out = Vec::with_capacity(l.len() + r.len());
            let mut emitted = vec![false; ri.len()];
            let mut next = 0;
            let mut emit = |upto: usize, out: &mut Vec<Value>, names: &mut Vec<String>| {
                while next <= upto && next < ri.len() {
                    if !emitted[next] {
                        let (pe, rv) = &ri[next];
                        out.push(match find_l(pe) {
                            Some(lv) => merge(w, lv, rv, names),
                            None => (*rv).clone(),
                        });
                        emitted[next] = true;
                    }
                    next += 1;
                }
            };
            for (pe, lv) in &li {
                match ri.iter().position(|(p, _)| p == pe) {
                    None => out.push((*lv).clone()),
                    Some(pos) => emit(pos, &mut out, names),
                }
            }
            emit(usize::MAX, &mut out, names);
            Value::Array(out)
        }
        _ => rhs.clone(),
    }
}

/// Server-side apply. `live`: current object (`None` = create); `applied`: the
/// user's configuration (a non-object counts as `{}`). Returns the new object with
/// `metadata.managedFields` updated (entry for `manager` with operation `Apply`,
/// the configuration's `apiVersion`, `fieldsType: FieldsV1`, the fields set by
/// `applied`, `time: now`), or the conflicts with other managers when not `force`d.
pub(crate) fn apply(
    live: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
    group: &str,
    kind: &str,
    now: &str,
) -> Result<Value, Vec<ApplyConflict>> {
    let w = Walker { group, kind };
    let ignore_status = has_status_subresource(group, kind);
    let mut config = match applied {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    if ignore_status {
        config.shift_remove("status");
    }
    if let Some(Value::Object(meta)) = config.get_mut("metadata") {
        meta.shift_remove("managedFields");
    }
    let config = Value::Object(config);
    let api_version = config
        .get("apiVersion")
        .or_else(|| live.and_then(|l| l.get("apiVersion")))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let live_obj = live.cloned().unwrap_or_else(|| Value::Object(Map::new()));
    let mut entries = decode(live);
    if live.is_some() && entries.is_empty() {
        let set = w.full(&strip(&live_obj, ignore_status));
        entries.push(Entry {
            manager: BEFORE_FIRST_APPLY.into(),
            operation: "Update".into(),
            api_version: api_version.clone(),
            time: Some(now.to_string()),
            subresource: String::new(),
            set,
        });
    }
    let new_set = w.leaves(&strip(&config, ignore_status));
    let own = entries.iter().position(|e| e.is(manager, "Apply", ""));
    let last_set = own.map(|i| entries.remove(i).set).unwrap_or_default();

    let mut merged = merge(&w, &live_obj, &config, &mut Vec::new());

    // Prune what this manager stopped applying, unless still owned by anyone.
    let owned = entries
        .iter()
        .fold(new_set.clone(), |acc, e| acc.union(&e.set));
    for path in last_set.difference(&new_set).paths() {
        if owned.has_member_under(&path) || is_key_field(&path) {
            continue;
        }
        if !remove_path(&w, &mut merged, &path) {
            continue;
        }
        // Drop maps emptied by the removal (as Go's omitempty would).
        let mut parent = path.clone();
        parent.pop();
        while parent.last().is_some_and(|pe| pe.starts_with("f:"))
            && !owned.has_member_under(&parent)
            && get_path(&w, &merged, &parent)
                .is_some_and(|v| v.as_object().is_some_and(Map::is_empty))
        {
            remove_path(&w, &mut merged, &parent);
            parent.pop();
        }
    }

    let cmp = w.compare(
        &strip(&live_obj, ignore_status),
        &strip(&merged, ignore_status),
    );
    let changed = cmp.added.union(&cmp.modified);
    let mut conflicts = Vec::new();
    for e in &mut entries {
        let clash = e.set.intersection(&changed);
        for p in clash.paths() {
            conflicts.push(ApplyConflict {
                manager: e.manager.clone(),
                field: display_path(&p),
            });
        }
        e.set = e.set.difference(&changed).difference(&cmp.removed);
    }
    if !force && !conflicts.is_empty() {
        return Err(conflicts);
    }
    entries.push(Entry {
        manager: manager.into(),
        operation: "Apply".into(),
        api_version,
        time: Some(now.to_string()),
        subresource: String::new(),
        set: new_set,
    });
    set_managed_fields(&mut merged, encode(entries));
    Ok(merged)
}

/// For ordinary writes (create/update/patch) of the main resource: records that
/// `manager` (operation `Update`) now owns every field it changed between `old`
/// and `new`, removing those fields from other managers' sets. Returns the
/// `managedFields` array to store (an empty array means "store none"). The group
/// comes from `api_version` and the kind from `new.kind` (for list merge keys).
pub(crate) fn track_update(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Value {
    track_update_subresource(old, new, manager, api_version, "", now)
}

/// [`track_update`] for a write through a subresource (e.g. `"status"`); the entry
/// carries that `subresource`.
pub(crate) fn track_update_subresource(
    old: Option<&Value>,
    new: &Value,
    manager: &str,
    api_version: &str,
    subresource: &str,
    now: &str,
) -> Value {
    // A writer that explicitly sends different managedFields replaces them.
    let new_mf = managed_fields(new).filter(|a| !a.is_empty());
    let mut entries = match old {
        Some(o) if new_mf.is_none() || new_mf == managed_fields(o) => decode(Some(o)),
        _ => decode(Some(new)),
    };
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = new.get("kind").and_then(Value::as_str).unwrap_or_default();
    let w = Walker { group, kind };
    let empty = Value::Object(Map::new());
    let cmp = w.compare(&strip(old.unwrap_or(&empty), false), &strip(new, false));
    let own = entries
        .iter()
        .position(|e| e.is(manager, "Update", subresource) && e.api_version == api_version);
    let mut mine = own.map(|i| entries.remove(i));
    for e in &mut entries {
        e.set = e.set.difference(&cmp.modified).difference(&cmp.removed);
    }
    let prev = mine.as_ref().map(|e| e.set.clone()).unwrap_or_default();
    let set = prev
        .union(&cmp.modified)
        .union(&cmp.added)
        .difference(&cmp.removed);
    let time = match mine.take() {
        Some(e) if e.set == set => e.time,
        _ => Some(now.to_string()),
    };
    entries.push(Entry {
        manager: manager.into(),
        operation: "Update".into(),
        api_version: api_version.into(),
        time,
        subresource: subresource.into(),
        set,
    });
    encode(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const T1: &str = "2025-01-01T00:00:00Z";
    const T2: &str = "2025-01-02T00:00:00Z";

    fn cm(data: Value, labels: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": "c", "namespace": "default", "labels": labels}, "data": data})
    }

    fn deploy(replicas: i64, image: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
               "spec": {"replicas": replicas, "template": {"spec": {"containers": [{"name": "nginx", "image": image}]}}}})
    }

    fn entry<'a>(obj: &'a Value, manager: &str) -> Option<&'a Value> {
        managed_fields(obj)?
            .iter()
            .find(|e| e["manager"] == manager)
    }

    fn ssa(
        live: Option<&Value>,
        cfg: &Value,
        mgr: &str,
        force: bool,
    ) -> Result<Value, Vec<ApplyConflict>> {
        let kind = cfg["kind"].as_str().unwrap();
        let group = if kind == "Deployment" { "apps" } else { "" };
        apply(live, cfg, mgr, force, group, kind, T1)
    }

    #[test]
    fn create_records_applied_fields() {
        let obj = ssa(
            None,
            &cm(json!({"key": "v"}), json!({"app": "a"})),
            "kubectl",
            false,
        )
        .unwrap();
        assert_eq!(obj["data"], json!({"key": "v"}));
        let e = entry(&obj, "kubectl").unwrap();
        assert_eq!(
            e,
            &json!({"manager": "kubectl", "operation": "Apply", "apiVersion": "v1", "time": T1,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {"f:key": {}}, "f:metadata": {"f:labels": {"f:app": {}}}}})
        );
    }

    #[test]
    fn reapply_prunes_fields_no_longer_applied() {
        let v1 = ssa(
            None,
            &cm(json!({"a": "1", "b": "2"}), json!({"x": "1", "y": "2"})),
            "m",
            false,
        )
        .unwrap();
        let v2 = ssa(
            Some(&v1),
            &cm(json!({"a": "1"}), json!({"x": "1"})),
            "m",
            false,
        )
        .unwrap();
        assert_eq!(v2["data"], json!({"a": "1"}));
        assert_eq!(v2["metadata"]["labels"], json!({"x": "1"}));
        assert_eq!(v2["metadata"]["name"], "c");
        // Dropping the last label removes the emptied map too.
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let v3 = ssa(Some(&v2), &cfg, "m", false).unwrap();
        assert!(v3["metadata"].get("labels").is_none());
        assert_eq!(
            entry(&v3, "m").unwrap()["fieldsV1"],
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn prune_keeps_fields_owned_by_others() {
        let v1 = ssa(None, &cm(json!({"a": "1"}), json!({"x": "1"})), "m1", false).unwrap();
        let m2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
        let v2 = ssa(Some(&v1), &m2, "m2", false).unwrap();
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"x": "1"}}});
        let v3 = ssa(Some(&v2), &cfg, "m1", false).unwrap();
        assert_eq!(v3["data"], json!({"a": "1"}), "m2 still owns data.a");
        assert_eq!(
            entry(&v3, "m2").unwrap()["fieldsV1"],
            json!({"f:data": {"f:a": {}}})
        );
    }

    #[test]
    fn conflict_and_force() {
        let v1 = ssa(None, &deploy(1, "nginx:1"), "kubectl", false).unwrap();
        // Another writer (e.g. `kubectl scale`) changes replicas with an Update.
        let mut scaled = v1.clone();
        scaled["spec"]["replicas"] = json!(5);
        let mf = track_update(Some(&v1), &scaled, "kube-scale", "apps/v1", T2);
        set_managed_fields(&mut scaled, mf);
        let scale_entry = entry(&scaled, "kube-scale").unwrap();
        assert_eq!(
            scale_entry["fieldsV1"],
            json!({"f:spec": {"f:replicas": {}}})
        );
        assert_eq!(scale_entry["operation"], "Update");
        assert!(!entry(&scaled, "kubectl").unwrap()["fieldsV1"]["f:spec"]
            .as_object()
            .unwrap()
            .contains_key("f:replicas"));

        let err = ssa(Some(&scaled), &deploy(3, "nginx:1"), "kubectl", false).unwrap_err();
        assert_eq!(
            err,
            vec![ApplyConflict {
                manager: "kube-scale".into(),
                field: ".spec.replicas".into()
            }]
        );
        // Re-applying the live value is not a conflict: ownership is shared.
        let shared = ssa(Some(&scaled), &deploy(5, "nginx:1"), "kubectl", false).unwrap();
        assert!(entry(&shared, "kube-scale").is_some());
        // Force moves ownership; the other manager's now-empty entry disappears.
        let forced = ssa(Some(&scaled), &deploy(3, "nginx:1"), "kubectl", true).unwrap();
        assert_eq!(forced["spec"]["replicas"], 3);
        assert!(entry(&forced, "kube-scale").is_none());
        assert_eq!(managed_fields(&forced).unwrap().len(), 1);
    }

    #[test]
    fn keyed_lists() {
        let v1 = ssa(None, &deploy(1, "nginx:1"), "kubectl", false).unwrap();
        let f = &entry(&v1, "kubectl").unwrap()["fieldsV1"];
        assert_eq!(
            f["f:spec"]["f:template"]["f:spec"]["f:containers"],
            json!({"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {}}})
        );
        // A second manager adds a sidecar; the first updates its image.
        let mut side = deploy(1, "x");
        side["spec"] =
            json!({"template": {"spec": {"containers": [{"name": "side", "image": "s"}]}}});
        let v2 = ssa(Some(&v1), &side, "other", false).unwrap();
        let v3 = ssa(Some(&v2), &deploy(1, "nginx:2"), "kubectl", false).unwrap();
        assert_eq!(
            v3["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:2"}, {"name": "side", "image": "s"}])
        );
        // The sidecar's manager stops applying it: the item is pruned.
        let mut none = deploy(1, "x");
        none["spec"] = json!({"paused": false});
        let v4 = ssa(Some(&v3), &none, "other", false).unwrap();
        assert_eq!(
            v4["spec"]["template"]["spec"]["containers"],
            json!([{"name": "nginx", "image": "nginx:2"}])
        );
    }

    #[test]
    fn before_first_apply_and_status() {
        let mut live = deploy(2, "nginx:1");
        live["status"] = json!({"replicas": 2});
        let err = ssa(Some(&live), &deploy(4, "nginx:1"), "kubectl", false).unwrap_err();
        assert_eq!(err[0].manager, BEFORE_FIRST_APPLY);
        assert_eq!(err[0].field, ".spec.replicas");
        let mut cfg = deploy(2, "nginx:1");
        cfg["status"] = json!({"replicas": 9});
        let ok = ssa(Some(&live), &cfg, "kubectl", false).unwrap();
        assert_eq!(
            ok["status"],
            json!({"replicas": 2}),
            "status is not applied"
        );
        assert!(entry(&ok, "kubectl").unwrap()["fieldsV1"]
            .get("f:status")
            .is_none());
    }

    #[test]
    fn track_update_ownership() {
        let created = cm(json!({"a": "1"}), json!({"x": "1"}));
        let mf = track_update(None, &created, "kubectl-create", "v1", T1);
        assert_eq!(
            mf,
            json!([{"manager": "kubectl-create", "operation": "Update", "apiVersion": "v1", "time": T1,
                    "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}}}])
        );
        let mut v1 = created.clone();
        set_managed_fields(&mut v1, mf);
        let mut v2 = v1.clone();
        v2["data"] = json!({"a": "2"});
        v2["metadata"]["labels"] = json!({});
        let mf2 = track_update(Some(&v1), &v2, "kubectl-edit", "v1", T2);
        let list = mf2.as_array().unwrap();
        assert_eq!(list.len(), 2);
        assert_eq!(list[0]["manager"], "kubectl-create");
        assert_eq!(
            list[0]["fieldsV1"],
            json!({"f:data": {}, "f:metadata": {"f:labels": {}}})
        );
        assert_eq!(list[1]["fieldsV1"], json!({"f:data": {"f:a": {}}}));
        assert_eq!(list[1]["time"], T2);
        // A no-op update by the same manager keeps its time.
        let mut v3 = v2.clone();
        set_managed_fields(&mut v3, mf2.clone());
        let mf3 = track_update(Some(&v3), &v3, "kubectl-edit", "v1", "2030-01-01T00:00:00Z");
        assert_eq!(mf3, mf2);
        // Apply entries sort before Update entries.
        let applied = ssa(
            Some(&v3),
            &cm(json!({"a": "2"}), json!({})),
            "kubectl",
            false,
        )
        .unwrap();
        let ops: Vec<&str> = managed_fields(&applied)
            .unwrap()
            .iter()
            .map(|e| e["operation"].as_str().unwrap())
            .collect();
        assert_eq!(ops, ["Apply", "Update", "Update"]);
    }

    #[test]
    fn explicit_managed_fields_reset() {
        let v1 = ssa(None, &cm(json!({"a": "1"}), json!({})), "m", false).unwrap();
        let mut v2 = v1.clone();
        v2["metadata"]["managedFields"] = json!([{}]);
        let mf = track_update(Some(&v1), &v2, "x", "v1", T2);
        assert_eq!(
            mf,
            json!([]),
            "[{{}}] clears, and a no-op write adds nothing"
        );
    }
}
