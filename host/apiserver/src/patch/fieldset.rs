//! Field sets for server-side apply, in the `FieldsV1` wire format of
//! structured-merge-diff: `{"f:spec":{"f:replicas":{}}}` with `f:<field>` for map
//! fields, `k:{"name":"x"}` for items of keyed lists, `v:<json>` for items of
//! primitive sets and `".":{}` marking a node that is itself a member while having
//! members below. Also owns the walks over objects that produce sets (fields set by
//! an apply configuration, differences between two objects) and removal of a path
//! from an object. List shapes come from [`super::patch_meta`].

use super::patch_meta::{list_strategy, ListStrategy};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A set of field paths; each path element is an encoded `FieldsV1` key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Decodes a `fieldsV1` value (anything not an object decodes as empty).
    pub(crate) fn from_fields_v1(v: &Value) -> FieldSet {
        let mut s = FieldSet::default();
        if let Value::Object(m) = v {
            for (k, child) in m {
                if k == "." {
                    s.member = true;
                } else {
                    let mut c = FieldSet::from_fields_v1(child);
                    if child.as_object().is_none_or(Map::is_empty) {
                        c.member = true;
                    }
                    s.children.insert(k.clone(), c);
                }
            }
        }
        s
    }

    /// Encodes the set as a `fieldsV1` value.
    pub(crate) fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_fields_v1());
        }
        Value::Object(m)
    }

    /// True when the set has no member.
    pub(crate) fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Adds `path` as a member (the empty path is the root and is never a member).
    pub(crate) fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for pe in path {
            node = node.children.entry(pe.clone()).or_default();
        }
        if !path.is_empty() {
            node.member = true;
        }
    }

    fn node(&self, path: &[String]) -> Option<&FieldSet> {
        path.iter().try_fold(self, |n, pe| n.children.get(pe))
    }

    /// True when `path` is a member.
    #[cfg(test)]
    pub(crate) fn contains(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| n.member)
    }

    /// True when `path` or any path below it is a member.
    pub(crate) fn has_member_under(&self, path: &[String]) -> bool {
        self.node(path).is_some_and(|n| !n.is_empty())
    }

    fn combine(&self, other: &FieldSet, f: &dyn Fn(bool, bool) -> bool) -> FieldSet {
        let empty = FieldSet::default();
        let mut out = FieldSet {
            member: f(self.member, other.member),
            children: BTreeMap::new(),
        };
        let keys = self.children.keys().chain(other.children.keys());
        for k in keys {
            if out.children.contains_key(k) {
                continue;
            }
            let a = self.children.get(k).unwrap_or(&empty);
            let b = other.children.get(k).unwrap_or(&empty);
            let c = a.combine(b, f);
            if !c.is_empty() {
                out.children.insert(k.clone(), c);
            }
        }
        out
    }

    /// Members of either set.
    pub(crate) fn union(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, &|a, b| a || b)
    }

    /// Members of `self` that are not members of `other` (non-recursive, like SMD's `Difference`).
    pub(crate) fn difference(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, &|a, b| a && !b)
    }

    /// Members of both sets.
    pub(crate) fn intersection(&self, other: &FieldSet) -> FieldSet {
        self.combine(other, &|a, b| a && b)
    }

    /// All member paths, parents before children.
    pub(crate) fn paths(&self) -> Vec<Vec<String>> {
        fn walk(n: &FieldSet, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
            if n.member && !prefix.is_empty() {
                out.push(prefix.clone());
            }
            for (k, c) in &n.children {
                prefix.push(k.clone());
                walk(c, prefix, out);
                prefix.pop();
            }
        }
        let mut out = Vec::new();
        walk(self, &mut Vec::new(), &mut out);
        out
    }
}

/// Renders a path the way apiserver conflict messages do: `.spec.containers[name="a"].image`.
pub(crate) fn display_path(path: &[String]) -> String {
    let mut s = String::new();
    for pe in path {
        if let Some(f) = pe.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = pe.strip_prefix("k:") {
            let fields: Vec<String> = match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                Err(_) => vec![k.to_string()],
            };
            s.push_str(&format!("[{}]", fields.join(",")));
        } else if let Some(v) = pe.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = pe.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// Field names holding free-form string maps (Go `map[string]…`), which count as
/// members themselves when created, unlike structs. Without a full schema this is a
/// name-based approximation.
const MAP_FIELDS: &[&str] = &[
    "labels",
    "annotations",
    "data",
    "binaryData",
    "stringData",
    "nodeSelector",
    "limits",
    "requests",
    "matchLabels",
    "capacity",
    "allocatable",
    "hard",
    "used",
    "parameters",
    "overhead",
    "allocatedResources",
];

fn is_map_field(name: Option<&String>, value: &Map<String, Value>) -> bool {
    match name.map(String::as_str) {
        Some("selector") => {
            !value.contains_key("matchLabels") && !value.contains_key("matchExpressions")
        }
        Some(n) => MAP_FIELDS.contains(&n),
        None => false,
    }
}

/// How the items of one list are identified.
enum ListMode {
    Keyed(&'static str),
    Set,
    Atomic,
}

/// Old/new difference of two objects: paths added, changed in value, and removed
/// (added/removed cover whole subtrees, including newly created maps and items).
#[derive(Debug, Default)]
pub(crate) struct Comparison {
    /// Paths present only in the new object.
    pub(crate) added: FieldSet,
    /// Leaf or atomic paths present in both with different values.
    pub(crate) modified: FieldSet,
    /// Paths present only in the old object.
    pub(crate) removed: FieldSet,
}

/// Schema context (group/kind) for walking objects of one kind.
pub(crate) struct Walker<'a> {
    /// API group of the object ("" for core).
    pub(crate) group: &'a str,
    /// Kind of the object.
    pub(crate) kind: &'a str,
}

impl Walker<'_> {
    fn mode<'v>(&self, names: &[String], items: impl Iterator<Item = &'v Value>) -> ListMode {
        let p: Vec<&str> = names.iter().map(String::as_str).collect();
        let strategy = list_strategy(self.group, self.kind, &p);
        let items: Vec<&Value> = items.collect();
        let all_primitive = items.iter().all(|v| !v.is_object() && !v.is_array());
        match strategy {
            ListStrategy::MergeKey(k) if items.iter().all(|v| v.get(k).is_some()) => {
                ListMode::Keyed(k)
            }
            ListStrategy::MergeKey(_) | ListStrategy::Set if all_primitive => ListMode::Set,
            _ => ListMode::Atomic,
        }
    }

    /// The path element naming `item` in a list of the given mode.
    fn item_pe(mode: &ListMode, item: &Value) -> String {
        match mode {
            ListMode::Keyed(k) => {
                let mut m = Map::new();
                m.insert(
                    (*k).to_string(),
                    item.get(*k).cloned().unwrap_or(Value::Null),
                );
                format!("k:{}", Value::Object(m))
            }
            _ => format!("v:{item}"),
        }
    }

    /// The list's items keyed by path element, or `None` for atomic lists.
    pub(crate) fn list_items<'v>(
        &self,
        names: &[String],
        items: &'v [Value],
        other: &'v [Value],
    ) -> Option<Vec<(String, &'v Value)>> {
        let mode = self.mode(names, items.iter().chain(other));
        if matches!(mode, ListMode::Atomic) {
            return None;
        }
        Some(items.iter().map(|v| (Self::item_pe(&mode, v), v)).collect())
    }

    /// Fields set by an apply configuration: leaves, empty maps, atomic lists and
    /// keyed/set list items (structured-merge-diff's `ToFieldSet`).
    pub(crate) fn leaves(&self, v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        self.leaves_at(v, &mut Vec::new(), &mut Vec::new(), &mut set);
        set
    }

    fn leaves_at(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut Vec<String>,
        set: &mut FieldSet,
    ) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, c) in m {
                    names.push(k.clone());
                    path.push(format!("f:{k}"));
                    self.leaves_at(c, names, path, set);
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(a) => match self.list_items(names, a, &[]) {
                Some(items) => {
                    for (pe, item) in items {
                        path.push(pe);
                        set.insert(path);
                        if item.is_object() {
                            self.leaves_at(item, names, path, set);
                        }
                        path.pop();
                    }
                }
                None => set.insert(path),
            },
            _ => set.insert(path),
        }
    }

    /// Every path of `v`, maps and items included (a subtree that appeared or vanished).
    pub(crate) fn full(&self, v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        self.full_at(v, &mut Vec::new(), &mut Vec::new(), &mut set);
        set
    }

    fn full_at(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut Vec<String>,
        set: &mut FieldSet,
    ) {
        let is_item = path.last().is_some_and(|pe| !pe.starts_with("f:"));
        let struct_like = match v {
            Value::Object(m) => !m.is_empty() && !is_item && !is_map_field(names.last(), m),
            _ => false,
        };
        if !struct_like {
            set.insert(path);
        }
        match v {
            Value::Object(m) => {
                for (k, c) in m {
                    names.push(k.clone());
                    path.push(format!("f:{k}"));
                    self.full_at(c, names, path, set);
                    path.pop();
                    names.pop();
                }
            }
            Value::Array(a) => {
                for (pe, item) in self.list_items(names, a, &[]).unwrap_or_default() {
                    path.push(pe);
                    if item.is_object() {
                        self.full_at(item, names, path, set);
                    } else {
                        set.insert(path);
                    }
                    path.pop();
                }
            }
            _ => {}
        }
    }

    /// Compares `old` with `new`.
    pub(crate) fn compare(&self, old: &Value, new: &Value) -> Comparison {
        let mut out = Comparison::default();
        self.compare_at(old, new, &mut Vec::new(), &mut Vec::new(), &mut out);
        out
    }

    fn subtree(
        &self,
        v: &Value,
        names: &mut Vec<String>,
        path: &mut Vec<String>,
        set: &mut FieldSet,
    ) {
        if v.is_object() || v.is_array() {
            self.full_at(v, names, path, set);
        } else {
            set.insert(path);
        }
    }

    fn compare_at(
        &self,
        old: &Value,
        new: &Value,
        names: &mut Vec<String>,
        path: &mut Vec<String>,
        out: &mut Comparison,
    ) {
        match (old, new) {
            (Value::Object(o), Value::Object(n)) => {
                for k in o.keys().chain(n.keys().filter(|k| !o.contains_key(*k))) {
                    names.push(k.clone());
                    path.push(format!("f:{k}"));
                    match (o.get(k), n.get(k)) {
                        (Some(a), Some(b)) => self.compare_at(a, b, names, path, out),
                        (Some(a), None) => self.subtree(a, names, path, &mut out.removed),
                        (None, Some(b)) => self.subtree(b, names, path, &mut out.added),
                        (None, None) => {}
                    }
                    path.pop();
                    names.pop();
                }
            }
            (Value::Array(o), Value::Array(n)) => {
                match (self.list_items(names, o, n), self.list_items(names, n, o)) {
                    (Some(oi), Some(ni)) => {
                        for (pe, a) in &oi {
                            path.push(pe.clone());
                            match ni.iter().find(|(p, _)| p == pe) {
                                Some((_, b)) => self.compare_at(a, b, names, path, out),
                                None => self.subtree(a, names, path, &mut out.removed),
                            }
                            path.pop();
                        }
                        for (pe, b) in ni.iter().filter(|(p, _)| !oi.iter().any(|(q, _)| q == p)) {
                            path.push(pe.clone());
                            self.subtree(b, names, path, &mut out.added);
                            path.pop();
                        }
                    }
                    _ if o != n => out.modified.insert(path),
                    _ => {}
                }
            }
            _ if old != new => out.modified.insert(path),
            _ => {}
        }
    }
}

/// Looks up the value at `path` in `v`.
pub(crate) fn get_path<'v>(w: &Walker, v: &'v Value, path: &[String]) -> Option<&'v Value> {
    let mut names = Vec::new();
    let mut cur = v;
    for pe in path {
        cur = match (pe.strip_prefix("f:"), cur) {
            (Some(f), Value::Object(m)) => {
                names.push(f.to_string());
                m.get(f)?
            }
            (None, Value::Array(a)) => {
                let items = w.list_items(&names, a, &[])?;
                items.into_iter().find(|(p, _)| p == pe)?.1
            }
            _ => return None,
        };
    }
    Some(cur)
}

/// Removes the value at `path` from `v` (a map key or a list item); returns whether
/// anything was removed.
pub(crate) fn remove_path(w: &Walker, v: &mut Value, path: &[String]) -> bool {
    let Some((last, parent)) = path.split_last() else {
        return false;
    };
    let names: Vec<String> = parent
        .iter()
        .filter_map(|pe| pe.strip_prefix("f:").map(str::to_string))
        .collect();
    let Some(container) = get_path(w, v, parent).cloned() else {
        return false;
    };
    let replacement = match (last.strip_prefix("f:"), container) {
        (Some(f), Value::Object(mut m)) => {
            if m.shift_remove(f).is_none() {
                return false;
            }
            Value::Object(m)
        }
        (None, Value::Array(a)) => {
            let Some(items) = w.list_items(&names, &a, &[]) else {
                return false;
            };
            let kept: Vec<Value> = items
                .into_iter()
                .filter(|(p, _)| p != last)
                .map(|(_, v)| v.clone())
                .collect();
            if kept.len() == a.len() {
                return false;
            }
            Value::Array(kept)
        }
        _ => return false,
    };
    set_path(v, parent, replacement);
    true
}

fn set_path(v: &mut Value, path: &[String], new: Value) {
    // Only ever called with a path that get_path resolved, so walking by position is safe.
    let Some((first, rest)) = path.split_first() else {
        *v = new;
        return;
    };
    match (first.strip_prefix("f:"), v) {
        (Some(f), Value::Object(m)) => {
            if let Some(c) = m.get_mut(f) {
                set_path(c, rest, new);
            }
        }
        (None, Value::Array(a)) => {
            for item in a.iter_mut() {
                if item_matches(item, first) {
                    set_path(item, rest, new);
                    return;
                }
            }
        }
        _ => {}
    }
}

fn item_matches(item: &Value, pe: &str) -> bool {
    if let Some(k) = pe.strip_prefix("k:") {
        match serde_json::from_str::<Map<String, Value>>(k) {
            Ok(keys) => keys.iter().all(|(f, kv)| item.get(f) == Some(kv)),
            Err(_) => false,
        }
    } else if let Some(val) = pe.strip_prefix("v:") {
        serde_json::from_str::<Value>(val).is_ok_and(|x| &x == item)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn p(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn roundtrip_and_ops() {
        let wire = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}}}});
        let s = FieldSet::from_fields_v1(&wire);
        assert_eq!(s.to_fields_v1(), wire);
        assert!(s.contains(&p(&["f:metadata", "f:labels"])));
        assert!(!s.contains(&p(&["f:metadata"])));
        assert!(s.has_member_under(&p(&["f:spec"])));
        let mut t = FieldSet::default();
        t.insert(&p(&["f:metadata", "f:labels", "f:app"]));
        let d = s.difference(&t);
        assert!(!d.contains(&p(&["f:metadata", "f:labels", "f:app"])));
        assert!(d.contains(&p(&["f:metadata", "f:labels"])));
        assert_eq!(s.intersection(&t), t);
        assert_eq!(t.union(&s), s);
        assert_eq!(s.paths().len(), 4);
        assert_eq!(
            display_path(&p(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"a\"}",
                "f:image"
            ])),
            ".spec.containers[name=\"a\"].image"
        );
    }

    #[test]
    fn walks() {
        let w = Walker {
            group: "",
            kind: "Pod",
        };
        let pod = json!({"metadata": {"labels": {"a": "1"}, "finalizers": ["x"]},
                         "spec": {"containers": [{"name": "c", "image": "i"}], "tolerations": [{"key": "k"}]}});
        let leaves = w.leaves(&pod);
        let want = json!({"f:metadata": {"f:finalizers": {"v:\"x\"": {}}, "f:labels": {"f:a": {}}},
                          "f:spec": {"f:containers": {"k:{\"name\":\"c\"}": {".": {}, "f:image": {}, "f:name": {}}},
                                     "f:tolerations": {}}});
        assert_eq!(leaves.to_fields_v1(), want);
        let mut new = pod.clone();
        new["spec"]["containers"][0]["image"] = json!("j");
        new["metadata"]["labels"] = json!({"b": "2"});
        let cmp = w.compare(&pod, &new);
        assert!(cmp.modified.contains(&p(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"c\"}",
            "f:image"
        ])));
        assert!(cmp.added.contains(&p(&["f:metadata", "f:labels", "f:b"])));
        assert!(cmp.removed.contains(&p(&["f:metadata", "f:labels", "f:a"])));
        let path = p(&["f:spec", "f:containers", "k:{\"name\":\"c\"}", "f:image"]);
        assert_eq!(get_path(&w, &new, &path), Some(&json!("j")));
        assert!(remove_path(&w, &mut new, &path));
        assert_eq!(new["spec"]["containers"], json!([{"name": "c"}]));
        assert!(remove_path(
            &w,
            &mut new,
            &p(&["f:metadata", "f:finalizers", "v:\"x\""])
        ));
        assert_eq!(new["metadata"]["finalizers"], json!([]));
        assert!(!remove_path(&w, &mut new, &p(&["f:nope"])));
    }
}
