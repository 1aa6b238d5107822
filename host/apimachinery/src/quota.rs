//! ResourceQuota accounting shared by the ResourceQuota admission plugin and the quota
//! controller (Kubernetes' quota evaluators): what one object uses of a quota — object counts
//! for every resource, compute resources for pods, storage for PersistentVolumeClaims, node
//! ports and load balancers for Services; which quota resources an evaluator tracks and which
//! resources a quota's `spec.hard` makes worth counting; quota scopes; and the pod rule that
//! containers must state what a quota constrains.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::quantity::{self, Milli};

/// Resource name → amount in milli-units (present keys matter: an absent key is not tracked).
pub type Usage = BTreeMap<String, Milli>;

/// The resources whose explicit requests/limits a pod must state when a quota constrains them.
const VALIDATION_SET: [&str; 6] = [
    "cpu",
    "memory",
    "requests.cpu",
    "requests.memory",
    "limits.cpu",
    "limits.memory",
];

/// The core (group `""`) resources with their own evaluators and legacy count names.
pub const CORE_EVALUATED: [&str; 7] = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// The resources (`(group, resource)`) whose objects the quota's `spec.hard` names: the core
/// evaluated ones it tracks and every `count/<resource>[.<group>]`.
pub fn counted_resources(hard: &BTreeMap<String, (Milli, String)>) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for name in hard.keys() {
        for r in CORE_EVALUATED {
            if tracks("", r, name) {
                out.insert((String::new(), r.to_string()));
            }
        }
        if let Some(rest) = name.strip_prefix("count/") {
            let (resource, group) = rest.split_once('.').unwrap_or((rest, ""));
            out.insert((group.to_string(), resource.to_string()));
        }
    }
    out
}

/// The quota's `spec.hard`: name → (amount, as written); unparsable values are skipped.
pub fn hard(quota: &Value) -> BTreeMap<String, (Milli, String)> {
    let mut out = BTreeMap::new();
    for (k, v) in quota
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => continue,
        };
        if let Ok(q) = quantity::parse(&text) {
            out.insert(k.clone(), (q, text));
        }
    }
    out
}

/// What `objects` (all of `group`/`resource`, in the quota's namespace) use of the quota's hard
/// resources: every hard resource the evaluator tracks gets an entry, zero when unused.
pub fn usage_of(
    quota: &Value,
    hard: &BTreeMap<String, (Milli, String)>,
    group: &str,
    resource: &str,
    objects: &[Value],
) -> Usage {
    let mut out: Usage = hard
        .keys()
        .filter(|k| tracks(group, resource, k))
        .map(|k| (k.clone(), 0))
        .collect();
    for obj in objects
        .iter()
        .filter(|o| scope_matches(quota, group, resource, o))
    {
        for (k, v) in object_usage(group, resource, obj) {
            if let Some(total) = out.get_mut(&k) {
                *total += v;
            }
        }
    }
    out
}

/// The object-count name of a resource: `count/pods`, `count/deployments.apps`.
fn count_name(group: &str, resource: &str) -> String {
    if group.is_empty() {
        format!("count/{resource}")
    } else {
        format!("count/{resource}.{group}")
    }
}

/// The legacy count name of a core resource (`pods`, `services`, …), if it has one.
fn legacy_count(group: &str, resource: &str) -> Option<&'static str> {
    if !group.is_empty() {
        return None;
    }
    Some(match resource {
        "pods" => "pods",
        "services" => "services",
        "configmaps" => "configmaps",
        "secrets" => "secrets",
        "persistentvolumeclaims" => "persistentvolumeclaims",
        "replicationcontrollers" => "replicationcontrollers",
        "resourcequotas" => "resourcequotas",
        _ => return None,
    })
}

/// Does the evaluator for `group`/`resource` track the quota resource `name`?
pub fn tracks(group: &str, resource: &str, name: &str) -> bool {
    if name == count_name(group, resource) || Some(name) == legacy_count(group, resource) {
        return true;
    }
    match (group, resource) {
        ("", "pods") => {
            matches!(name, "cpu" | "memory" | "ephemeral-storage")
                || name.starts_with("requests.")
                || name.starts_with("limits.")
                || name.starts_with("hugepages-")
        }
        ("", "services") => matches!(name, "services.nodeports" | "services.loadbalancers"),
        ("", "persistentvolumeclaims") => {
            name == "requests.storage"
                || name.ends_with(".storageclass.storage.k8s.io/requests.storage")
                || name.ends_with(".storageclass.storage.k8s.io/persistentvolumeclaims")
        }
        _ => false,
    }
}

/// A `ResourceList` map (`{"cpu": "100m"}`) parsed; unparsable values are skipped (the server's
/// validation refuses them before admission).
pub fn resource_list(v: Option<&Value>) -> Usage {
    let mut out = Usage::new();
    for (k, v) in v.and_then(Value::as_object).into_iter().flatten() {
        let q = match v {
            Value::String(s) => quantity::parse(s),
            Value::Number(n) => quantity::parse(&n.to_string()),
            _ => continue,
        };
        if let Ok(q) = q {
            out.insert(k.clone(), q);
        }
    }
    out
}

fn add(into: &mut Usage, from: &Usage) {
    for (k, v) in from {
        *into.entry(k.clone()).or_insert(0) += v;
    }
}

fn max(into: &mut Usage, from: &Usage) {
    for (k, v) in from {
        let e = into.entry(k.clone()).or_insert(*v);
        *e = (*e).max(*v);
    }
}

/// A container's requests (defaulted from its limits, as Kubernetes' defaulting does) and limits.
fn container_resources(c: &Value) -> (Usage, Usage) {
    let mut requests = resource_list(c.pointer("/resources/requests"));
    let limits = resource_list(c.pointer("/resources/limits"));
    for (k, v) in &limits {
        requests.entry(k.clone()).or_insert(*v);
    }
    (requests, limits)
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The pod's effective requests or limits (`limits` = false/true): the sum over containers and
/// restartable (sidecar) init containers, at least the largest init container step, plus the
/// pod overhead (Kubernetes' `PodRequests` / `PodLimits`).
fn pod_resources(pod: &Value, limits: bool) -> Usage {
    let pick = |c: &Value| {
        let (r, l) = container_resources(c);
        if limits {
            l
        } else {
            r
        }
    };
    let mut total = Usage::new();
    for c in containers(pod, "containers") {
        add(&mut total, &pick(c));
    }
    let mut sidecars = Usage::new();
    let mut init_max = Usage::new();
    for c in containers(pod, "initContainers") {
        let own = pick(c);
        let step = if c.get("restartPolicy").and_then(Value::as_str) == Some("Always") {
            add(&mut total, &own);
            add(&mut sidecars, &own);
            sidecars.clone()
        } else {
            let mut step = own;
            add(&mut step, &sidecars);
            step
        };
        max(&mut init_max, &step);
    }
    max(&mut total, &init_max);
    let overhead = resource_list(pod.pointer("/spec/overhead"));
    for (k, v) in overhead {
        if !limits || total.contains_key(&k) {
            *total.entry(k).or_insert(0) += v;
        }
    }
    total
}

/// Kubernetes' `podComputeUsageHelper`: quota resource names from requests and limits.
fn compute_usage(requests: &Usage, limits: &Usage) -> Usage {
    let mut out = Usage::new();
    out.insert("pods".into(), 1000);
    for (k, v) in requests {
        match k.as_str() {
            "cpu" | "memory" | "ephemeral-storage" => {
                out.insert(k.clone(), *v);
                out.insert(format!("requests.{k}"), *v);
            }
            _ if k.starts_with("hugepages-") => {
                out.insert(k.clone(), *v);
                out.insert(format!("requests.{k}"), *v);
            }
            _ => {
                out.insert(format!("requests.{k}"), *v);
            }
        }
    }
    for (k, v) in limits {
        if matches!(k.as_str(), "cpu" | "memory" | "ephemeral-storage") {
            out.insert(format!("limits.{k}"), *v);
        }
    }
    out
}

/// Has the pod ended (Succeeded/Failed, or deleted past its grace period)? Such pods use no
/// compute resources and do not count as `pods`, only as `count/pods`.
pub fn pod_terminal(pod: &Value) -> bool {
    if matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return true;
    }
    let deleted = pod
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str);
    let grace = pod
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if let (Some(ts), Some(grace)) = (deleted, grace) {
        if let Ok(ts) = chrono::DateTime::parse_from_rfc3339(ts) {
            return chrono::Utc::now() > ts + chrono::Duration::seconds(grace);
        }
    }
    false
}

/// Everything `obj` (of `group`/`resource`) uses, under every name a quota may track.
pub fn object_usage(group: &str, resource: &str, obj: &Value) -> Usage {
    let mut out = Usage::new();
    out.insert(count_name(group, resource), 1000);
    if let Some(legacy) = legacy_count(group, resource) {
        out.insert(legacy.into(), 1000);
    }
    match (group, resource) {
        ("", "pods") => {
            out.remove("pods");
            if !pod_terminal(obj) {
                out.extend(compute_usage(
                    &pod_resources(obj, false),
                    &pod_resources(obj, true),
                ));
            }
        }
        ("", "services") => {
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let all = ports.len() as Milli * 1000;
            match obj.pointer("/spec/type").and_then(Value::as_str) {
                Some("NodePort") => {
                    out.insert("services.nodeports".into(), all);
                }
                Some("LoadBalancer") => {
                    let allocate = obj
                        .pointer("/spec/allocateLoadBalancerNodePorts")
                        .and_then(Value::as_bool)
                        != Some(false);
                    let explicit = ports
                        .iter()
                        .filter(|p| {
                            p.get("nodePort")
                                .and_then(Value::as_i64)
                                .is_some_and(|n| n != 0)
                        })
                        .count();
                    out.insert(
                        "services.nodeports".into(),
                        if allocate {
                            all
                        } else {
                            explicit as Milli * 1000
                        },
                    );
                    out.insert("services.loadbalancers".into(), 1000);
                }
                _ => {}
            }
        }
        ("", "persistentvolumeclaims") => {
            let class = obj
                .pointer("/spec/storageClassName")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty());
            if let Some(class) = class {
                out.insert(
                    format!("{class}.storageclass.storage.k8s.io/persistentvolumeclaims"),
                    1000,
                );
            }
            if let Some(storage) =
                resource_list(obj.pointer("/spec/resources/requests")).get("storage")
            {
                out.insert("requests.storage".into(), *storage);
                if let Some(class) = class {
                    out.insert(
                        format!("{class}.storageclass.storage.k8s.io/requests.storage"),
                        *storage,
                    );
                }
            }
        }
        _ => {}
    }
    out
}

/// Kubernetes' pod `Constraints`: when a quota constrains cpu/memory requests or limits, every
/// container must state them. Returns `must specify limits.cpu for: c1; …` when some do not.
pub fn pod_constraints(required: &BTreeSet<String>, pod: &Value) -> Option<String> {
    let required: BTreeSet<&str> = required
        .iter()
        .map(String::as_str)
        .filter(|r| VALIDATION_SET.contains(r))
        .collect();
    if required.is_empty() {
        return None;
    }
    let mut missing: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for c in containers(pod, "containers").chain(containers(pod, "initContainers")) {
        let (requests, limits) = container_resources(c);
        let has = compute_usage(&requests, &limits);
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        for r in &required {
            if !has.contains_key(*r) {
                missing.entry(r).or_default().insert(name.to_string());
            }
        }
    }
    if missing.is_empty() {
        return None;
    }
    let parts: Vec<String> = missing
        .iter()
        .map(|(r, names)| {
            format!(
                "must specify {r} for: {}",
                names.iter().cloned().collect::<Vec<_>>().join(",")
            )
        })
        .collect();
    Some(parts.join("; "))
}

/// Is the pod BestEffort (no cpu/memory requests or limits in any container)?
fn best_effort(pod: &Value) -> bool {
    containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .all(|c| {
            let (r, l) = container_resources(c);
            !["cpu", "memory"]
                .iter()
                .any(|k| r.contains_key(*k) || l.contains_key(*k))
        })
}

fn cross_namespace_affinity(pod: &Value) -> bool {
    ["podAffinity", "podAntiAffinity"].iter().any(|kind| {
        let Some(a) = pod.pointer(&format!("/spec/affinity/{kind}")) else {
            return false;
        };
        let required = a
            .get("requiredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten();
        let preferred = a
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|w| w.get("podAffinityTerm"));
        required.chain(preferred).any(|t| {
            t.get("namespaces")
                .and_then(Value::as_array)
                .is_some_and(|n| !n.is_empty())
                || t.get("namespaceSelector").is_some_and(|s| !s.is_null())
        })
    })
}

/// Does one scope (with an optional selector operator and values) match the pod?
fn pod_scope(scope: &str, operator: &str, values: &[&str], pod: &Value) -> bool {
    let matched = match scope {
        "Terminating" => pod
            .pointer("/spec/activeDeadlineSeconds")
            .and_then(Value::as_i64)
            .is_some_and(|s| s >= 0),
        "NotTerminating" => !pod_scope("Terminating", "Exists", &[], pod),
        "BestEffort" => best_effort(pod),
        "NotBestEffort" => !best_effort(pod),
        "CrossNamespacePodAffinity" => cross_namespace_affinity(pod),
        "PriorityClass" => {
            let class = pod
                .pointer("/spec/priorityClassName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            return match operator {
                "In" => values.contains(&class),
                "NotIn" => !values.contains(&class),
                "DoesNotExist" => class.is_empty(),
                _ => !class.is_empty(),
            };
        }
        _ => false,
    };
    match operator {
        "DoesNotExist" => !matched,
        _ => matched,
    }
}

/// Does the quota's scope (`spec.scopes`, `spec.scopeSelector`) cover this object? Only pods
/// have scopes; a scoped quota never covers other kinds.
pub fn scope_matches(quota: &Value, group: &str, resource: &str, obj: &Value) -> bool {
    let scopes: Vec<&str> = quota
        .pointer("/spec/scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let exprs: Vec<&Value> = quota
        .pointer("/spec/scopeSelector/matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    if scopes.is_empty() && exprs.is_empty() {
        return true;
    }
    if (group, resource) != ("", "pods") {
        return false;
    }
    scopes.iter().all(|s| pod_scope(s, "Exists", &[], obj))
        && exprs.iter().all(|e| {
            let scope = e
                .get("scopeName")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let op = e
                .get("operator")
                .and_then(Value::as_str)
                .unwrap_or("Exists");
            let values: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            pod_scope(scope, op, &values, obj)
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn pod(containers: Value, init: Value) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": containers, "initContainers": init}})
    }

    #[test]
    fn pod_usage_sums_containers_and_takes_init_max() {
        let p = pod(
            json!([
                {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "200m"}}},
                {"name": "b", "resources": {"limits": {"cpu": "300m", "memory": "128Mi"}}},
            ]),
            json!([{"name": "i", "resources": {"requests": {"cpu": "1"}}}]),
        );
        let u = object_usage("", "pods", &p);
        assert_eq!(u["pods"], 1000);
        assert_eq!(u["count/pods"], 1000);
        assert_eq!(u["requests.cpu"], 1000, "init container 1 > 100m+300m");
        assert_eq!(u["cpu"], 1000);
        assert_eq!(u["limits.cpu"], 500);
        assert_eq!(u["requests.memory"], (64 + 128) * 1024 * 1024 * 1000);
        assert_eq!(u["limits.memory"], 128 * 1024 * 1024 * 1000);
    }

    #[test]
    fn sidecars_add_up_and_terminal_pods_use_nothing() {
        let p = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "100m"}}}]),
            json!([{"name": "s", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}}]),
        );
        assert_eq!(object_usage("", "pods", &p)["requests.cpu"], 150);
        let mut done = p.clone();
        done["status"] = json!({"phase": "Succeeded"});
        let u = object_usage("", "pods", &done);
        assert_eq!(u.get("pods"), None);
        assert_eq!(u.get("requests.cpu"), None);
        assert_eq!(u["count/pods"], 1000);
    }

    #[test]
    fn services_pvcs_and_generic_counts() {
        let svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}, {"port": 443}]}});
        let u = object_usage("", "services", &svc);
        assert_eq!(
            (
                u["services"],
                u["services.nodeports"],
                u["services.loadbalancers"]
            ),
            (1000, 2000, 1000)
        );
        let pvc = json!({"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "1Gi"}}}});
        let u = object_usage("", "persistentvolumeclaims", &pvc);
        assert_eq!(u["requests.storage"], (1 << 30) * 1000);
        assert_eq!(
            u["fast.storageclass.storage.k8s.io/requests.storage"],
            (1 << 30) * 1000
        );
        assert_eq!(u["persistentvolumeclaims"], 1000);
        let u = object_usage("apps", "deployments", &json!({}));
        assert_eq!(u.keys().collect::<Vec<_>>(), ["count/deployments.apps"]);
        assert!(tracks("apps", "deployments", "count/deployments.apps"));
        assert!(!tracks("apps", "deployments", "pods"));
        assert!(tracks("", "pods", "limits.cpu") && !tracks("", "configmaps", "limits.cpu"));
    }

    #[test]
    fn constraints_name_the_containers() {
        let p = pod(
            json!([
                {"name": "c1", "resources": {"requests": {"cpu": "1"}}},
                {"name": "c2", "resources": {"limits": {"cpu": "1", "memory": "1Gi"}}},
            ]),
            json!([]),
        );
        let required: BTreeSet<String> = ["limits.cpu", "requests.memory", "pods"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            pod_constraints(&required, &p).as_deref(),
            Some("must specify limits.cpu for: c1; must specify requests.memory for: c1")
        );
        let only_requests: BTreeSet<String> = ["requests.cpu".to_string()].into();
        assert_eq!(
            pod_constraints(&only_requests, &p),
            None,
            "c2's request defaults from its limit"
        );
    }

    #[test]
    fn scopes() {
        let be = pod(json!([{"name": "a"}]), json!([]));
        let burst = pod(
            json!([{"name": "a", "resources": {"requests": {"cpu": "1"}}}]),
            json!([]),
        );
        let q = json!({"spec": {"scopes": ["BestEffort"]}});
        assert!(scope_matches(&q, "", "pods", &be));
        assert!(!scope_matches(&q, "", "pods", &burst));
        assert!(!scope_matches(&q, "", "configmaps", &json!({})));
        let mut high = burst.clone();
        high["spec"]["priorityClassName"] = json!("high");
        let q = json!({"spec": {"scopeSelector": {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}}});
        assert!(scope_matches(&q, "", "pods", &high));
        assert!(!scope_matches(&q, "", "pods", &burst));
        assert!(scope_matches(
            &json!({"spec": {}}),
            "",
            "configmaps",
            &json!({})
        ));
    }
}
