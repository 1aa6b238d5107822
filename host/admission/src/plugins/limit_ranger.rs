//! LimitRanger: applies the `LimitRange`s of a namespace. The mutating phase gives each
//! container of a new Pod the `default` limits and `defaultRequest` requests it lacks (and
//! records what it set in the `kubernetes.io/limit-ranger` annotation); the validating phase
//! enforces `min`, `max` and `maxLimitRequestRatio` per Container and per Pod, and `min`/`max`
//! storage requests per PersistentVolumeClaim, refusing with Kubernetes' messages
//! (`maximum cpu usage per Container is 1, but limit is 2`).
//!
//! As in Kubernetes, pod updates are not checked (containers' resources cannot change through
//! the main resource), subresources are ignored, and objects being deleted pass.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::quantity::{self, Milli};
use crate::{Api, Attributes, Denied, Operation, Plugin};

/// Where LimitRanger records the defaults it applied.
const ANNOTATION: &str = "kubernetes.io/limit-ranger";

/// The LimitRanger plugin.
pub(crate) struct LimitRanger;

/// A quantity with its display format (Kubernetes keeps binary suffixes when printing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Q {
    milli: Milli,
    binary: bool,
}

impl Q {
    fn parse(v: &Value) -> Option<Q> {
        let s = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        quantity::parse(&s).ok().map(|milli| Q {
            milli,
            binary: quantity::is_binary(&s),
        })
    }
}

impl std::fmt::Display for Q {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&quantity::format(self.milli, self.binary))
    }
}

/// A resource list (`cpu` → quantity), ordered by name.
type List = BTreeMap<String, Q>;

fn list(v: Option<&Value>) -> List {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Q::parse(v).map(|q| (k.clone(), q)))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds `b` into `a` (the first quantity's format wins, as `Quantity.Add`).
fn add(a: &mut List, b: &List) {
    for (k, q) in b {
        a.entry(k.clone())
            .and_modify(|e| e.milli += q.milli)
            .or_insert(*q);
    }
}

/// Raises each of `a`'s entries to `b`'s where larger.
fn max(a: &mut List, b: &List) {
    for (k, q) in b {
        match a.get(k) {
            Some(e) if e.milli >= q.milli => {}
            _ => {
                a.insert(k.clone(), *q);
            }
        }
    }
}

fn internal(e: String) -> Denied {
    Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message: e,
    }
}

fn relevant(a: &Attributes) -> bool {
    a.subresource.is_empty()
        && a.group.is_empty()
        && matches!(
            (a.kind.as_str(), a.operation),
            ("Pod", Operation::Create)
                | (
                    "PersistentVolumeClaim",
                    Operation::Create | Operation::Update
                )
        )
}

fn being_deleted(a: &Attributes) -> bool {
    a.old_object
        .as_ref()
        .and_then(|o| o.pointer("/metadata/deletionTimestamp"))
        .is_some_and(|v| !v.is_null())
}

async fn limit_ranges(a: &Attributes, api: &dyn Api) -> Result<Vec<Value>, Denied> {
    api.list(&format!("/api/v1/namespaces/{}/limitranges", a.namespace))
        .await
        .map_err(|e| internal(e.0))
}

fn items(lr: &Value) -> impl Iterator<Item = &Value> {
    lr.pointer("/spec/limits")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The default requests and limits of a LimitRange's `Container` items, with the API's
/// defaulting of LimitRange items applied (default ← max, defaultRequest ← default ← min) so a
/// LimitRange stored without it behaves the same.
fn container_defaults(lr: &Value) -> (Map<String, Value>, Map<String, Value>) {
    let mut requests = Map::new();
    let mut limits = Map::new();
    for item in items(lr).filter(|i| i["type"] == "Container") {
        let field = |name: &str| {
            item.get(name)
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        };
        let mut default = field("default");
        let mut default_request = field("defaultRequest");
        for (k, v) in field("max") {
            default.entry(k).or_insert(v);
        }
        for (k, v) in &default {
            default_request.entry(k.clone()).or_insert(v.clone());
        }
        for (k, v) in field("min") {
            default_request.entry(k).or_insert(v);
        }
        requests.extend(default_request);
        limits.extend(default);
    }
    (requests, limits)
}

/// Sets missing requests/limits of one container; returns the annotation fragments.
fn merge_container(
    c: &mut Value,
    requests: &Map<String, Value>,
    limits: &Map<String, Value>,
    what: &str,
    notes: &mut Vec<String>,
) {
    let Some(c) = c.as_object_mut() else { return };
    let name = c
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut set = |field: &str, defaults: &Map<String, Value>| -> Vec<String> {
        let current = c
            .get("resources")
            .and_then(|r| r.get(field))
            .and_then(Value::as_object);
        let missing: Vec<(String, Value)> = defaults
            .iter()
            .filter(|(k, _)| !current.is_some_and(|m| m.contains_key(*k)))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if missing.is_empty() {
            return Vec::new();
        }
        let resources = c.entry("resources").or_insert_with(|| json!({}));
        if !resources.is_object() {
            *resources = json!({});
        }
        let target = &mut resources[field];
        if !target.is_object() {
            *target = json!({});
        }
        let mut set: Vec<String> = Vec::new();
        for (k, v) in missing {
            target[&k] = v;
            set.push(k);
        }
        set.sort();
        set
    };
    let set_limits = set("limits", limits);
    let set_requests = set("requests", requests);
    if !set_requests.is_empty() {
        notes.push(format!(
            "{} request for {what} {name}",
            set_requests.join(", ")
        ));
    }
    if !set_limits.is_empty() {
        notes.push(format!("{} limit for {what} {name}", set_limits.join(", ")));
    }
}

fn mutate_pod(pod: &mut Value, lr: &Value) {
    let (requests, limits) = container_defaults(lr);
    let mut notes = Vec::new();
    for (field, what) in [
        ("containers", "container"),
        ("initContainers", "init container"),
    ] {
        if let Some(cs) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        {
            for c in cs {
                merge_container(c, &requests, &limits, what, &mut notes);
            }
        }
    }
    if notes.is_empty() {
        return;
    }
    let Some(meta) = pod.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let ann = meta.entry("annotations").or_insert_with(|| json!({}));
    if !ann.is_object() {
        *ann = json!({});
    }
    ann[ANNOTATION] = json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
}

/// Kubernetes compares milli-values (they fit here); `Value()` would only matter beyond 2^63.
fn min_constraint(
    kind: &str,
    res: &str,
    enforced: Q,
    req: &List,
    lim: &List,
) -> Result<(), String> {
    let Some(r) = req.get(res) else {
        return Err(format!(
            "minimum {res} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if r.milli < enforced.milli {
        return Err(format!(
            "minimum {res} usage per {kind} is {enforced}, but request is {r}"
        ));
    }
    if let Some(l) = lim.get(res) {
        if l.milli < enforced.milli {
            return Err(format!(
                "minimum {res} usage per {kind} is {enforced}, but limit is {l}"
            ));
        }
    }
    Ok(())
}

fn max_constraint(
    kind: &str,
    res: &str,
    enforced: Q,
    req: &List,
    lim: &List,
) -> Result<(), String> {
    let Some(l) = lim.get(res) else {
        return Err(format!(
            "maximum {res} usage per {kind} is {enforced}.  No limit is specified"
        ));
    };
    if l.milli > enforced.milli {
        return Err(format!(
            "maximum {res} usage per {kind} is {enforced}, but limit is {l}"
        ));
    }
    if let Some(r) = req.get(res) {
        if r.milli > enforced.milli {
            return Err(format!(
                "maximum {res} usage per {kind} is {enforced}, but request is {r}"
            ));
        }
    }
    Ok(())
}

/// The max constraint on requests only (PersistentVolumeClaims have no limits).
fn max_request_constraint(kind: &str, res: &str, enforced: Q, req: &List) -> Result<(), String> {
    let Some(r) = req.get(res) else {
        return Err(format!(
            "maximum {res} usage per {kind} is {enforced}.  No request is specified"
        ));
    };
    if r.milli > enforced.milli {
        return Err(format!(
            "maximum {res} usage per {kind} is {enforced}, but request is {r}"
        ));
    }
    Ok(())
}

fn ratio_constraint(
    kind: &str,
    res: &str,
    enforced: Q,
    req: &List,
    lim: &List,
) -> Result<(), String> {
    let r = req.get(res).map(|q| q.milli).unwrap_or(0);
    let l = lim.get(res).map(|q| q.milli).unwrap_or(0);
    if r == 0 {
        return Err(format!("{res} max limit to request ratio per {kind} is {enforced}, but no request is specified or request is 0"));
    }
    if l == 0 {
        return Err(format!("{res} max limit to request ratio per {kind} is {enforced}, but no limit is specified or limit is 0"));
    }
    let observed = l as f64 / r as f64;
    if observed * 1000.0 > enforced.milli as f64 {
        return Err(format!("{res} max limit to request ratio per {kind} is {enforced}, but provided ratio is {observed:.6}"));
    }
    Ok(())
}

/// Checks one (requests, limits) pair against an item's min/max/maxLimitRequestRatio.
fn check(item: &Value, kind: &str, req: &List, lim: &List, errs: &mut Vec<String>) {
    for (res, q) in list(item.get("min")) {
        errs.extend(min_constraint(kind, &res, q, req, lim).err());
    }
    for (res, q) in list(item.get("max")) {
        errs.extend(max_constraint(kind, &res, q, req, lim).err());
    }
    for (res, q) in list(item.get("maxLimitRequestRatio")) {
        errs.extend(ratio_constraint(kind, &res, q, req, lim).err());
    }
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The pod's effective requests or limits (`field`): containers and sidecars (restartable init
/// containers) add up, and each regular init container (plus the sidecars started before it)
/// raises the total to its own size.
fn pod_total(pod: &Value, field: &str) -> List {
    let mut total = List::new();
    for c in containers(pod, "containers") {
        add(&mut total, &list(c.pointer(&format!("/resources/{field}"))));
    }
    let mut sidecars = List::new();
    let mut init = List::new();
    for c in containers(pod, "initContainers") {
        let own = list(c.pointer(&format!("/resources/{field}")));
        if c["restartPolicy"] == "Always" {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            max(&mut init, &sidecars);
        } else {
            let mut with_sidecars = own;
            add(&mut with_sidecars, &sidecars);
            max(&mut init, &with_sidecars);
        }
    }
    max(&mut total, &init);
    total
}

fn validate_pod(pod: &Value, lr: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    for item in items(lr) {
        match item["type"].as_str() {
            Some("Container") => {
                for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
                    let req = list(c.pointer("/resources/requests"));
                    let lim = list(c.pointer("/resources/limits"));
                    check(item, "Container", &req, &lim, &mut errs);
                }
            }
            Some("Pod") => check(
                item,
                "Pod",
                &pod_total(pod, "requests"),
                &pod_total(pod, "limits"),
                &mut errs,
            ),
            _ => {}
        }
    }
    errs
}

fn validate_pvc(pvc: &Value, lr: &Value) -> Vec<String> {
    let mut errs = Vec::new();
    let req = list(pvc.pointer("/spec/resources/requests"));
    for item in items(lr).filter(|i| i["type"] == "PersistentVolumeClaim") {
        for (res, q) in list(item.get("min")) {
            errs.extend(min_constraint("PersistentVolumeClaim", &res, q, &req, &List::new()).err());
        }
        for (res, q) in list(item.get("max")) {
            errs.extend(max_request_constraint("PersistentVolumeClaim", &res, q, &req).err());
        }
    }
    errs
}

/// Kubernetes' `utilerrors.NewAggregate` wording.
fn aggregate(errs: Vec<String>) -> Option<String> {
    match errs.len() {
        0 => None,
        1 => errs.into_iter().next(),
        _ => Some(format!("[{}]", errs.join(", "))),
    }
}

#[async_trait::async_trait]
impl Plugin for LimitRanger {
    fn name(&self) -> &str {
        "LimitRanger"
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) || a.kind != "Pod" || being_deleted(a) || a.object.is_none() {
            return Ok(());
        }
        let ranges = limit_ranges(a, api).await?;
        if let Some(pod) = a.object.as_mut() {
            for lr in &ranges {
                mutate_pod(pod, lr);
            }
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if !relevant(a) || being_deleted(a) {
            return Ok(());
        }
        let Some(obj) = a.object.as_ref() else {
            return Ok(());
        };
        for lr in limit_ranges(a, api).await? {
            let errs = if a.kind == "Pod" {
                validate_pod(obj, &lr)
            } else {
                validate_pvc(obj, &lr)
            };
            if let Some(why) = aggregate(errs) {
                return Err(Denied::forbidden(a, why));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
