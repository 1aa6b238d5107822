//! ResourceQuota (validating, always last in the chain): a write that adds usage in a namespace
//! with ResourceQuota objects is refused when `status.used + delta` would exceed `spec.hard`
//! (`exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2`), and otherwise the
//! new usage is recorded in each quota's `status.used` with a conditional update on its
//! resourceVersion — on a conflict the quotas are re-read and the request re-evaluated, a bounded
//! number of times, so concurrent creates cannot both take the last unit.
//!
//! As in Kubernetes, this plugin only charges; the ResourceQuota controller
//! (`keelson-controllers`' `resourcequota`) recalculates `status.used` from the namespace's
//! objects, which is how deleted objects and pods that ended (Succeeded / Failed) give their
//! usage back. Until the controller has filled in a quota's usage of a resource, requests that
//! would use it are refused with Kubernetes' `status unknown for quota: q, resources: pods`.
//! (Before the controller existed this plugin released usage on delete and counted a
//! namespace's objects itself; it no longer does either.) Updates charge only increases of
//! usage (as Kubernetes); subresources are not evaluated. The accounting itself (evaluators,
//! scopes) is `keelson_apimachinery::quota`, shared with the controller.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Map, Value};

use keelson_apimachinery::quota::{self as usage, Usage};

use crate::quantity::{self, Milli};
use crate::{Api, Attributes, Denied, Operation, Plugin};

/// How many times a request re-reads the quotas after a conflicting status update.
const ATTEMPTS: usize = 8;

/// The ResourceQuota plugin.
pub(crate) struct ResourceQuota;

fn internal(message: impl std::fmt::Display) -> Denied {
    Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message: format!("Internal error occurred: {message}"),
    }
}

/// Is this an optimistic-concurrency failure of [`Api::update`]?
fn is_conflict(e: &str) -> bool {
    e.contains("was modified")
        || e.contains("onflict")
        || e.contains("the object has been modified")
}

/// `a=1,b=2` with canonical quantities, keys sorted (Kubernetes' `prettyPrint`).
fn pretty(list: &BTreeMap<&str, String>) -> String {
    list.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One quota's decision: the object to write back and what it charged.
struct Plan {
    name: String,
    updated: Value,
    requested: Usage,
}

/// The request being accounted.
struct Request<'a> {
    a: &'a Attributes,
    /// The object whose scope decides which quotas apply (the new object).
    obj: &'a Value,
    delta: Usage,
}

impl Request<'_> {
    /// Evaluates one quota; `Ok(None)` when it does not constrain this request.
    fn plan(&self, quota: &Value) -> Result<Option<Plan>, Denied> {
        let a = self.a;
        let name = quota
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if !usage::scope_matches(quota, &a.group, &a.resource, self.obj) {
            return Ok(None);
        }
        let hard = usage::hard(quota);
        let restricted: BTreeSet<String> = hard
            .keys()
            .filter(|k| usage::tracks(&a.group, &a.resource, k))
            .cloned()
            .collect();
        if restricted.is_empty() {
            return Ok(None);
        }
        if a.operation == Operation::Create && a.group.is_empty() && a.resource == "pods" {
            if let Some(why) = usage::pod_constraints(&restricted, self.obj) {
                return Err(Denied::forbidden(a, format!("failed quota: {name}: {why}")));
            }
        }
        let requested: Usage = self
            .delta
            .iter()
            .filter(|(k, v)| restricted.contains(*k) && **v != 0)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        if requested.is_empty() {
            return Ok(None);
        }
        let used_text: BTreeMap<String, String> = quota
            .pointer("/status/used")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
            .collect();
        let used = usage::resource_list(quota.pointer("/status/used"));
        let unknown: Vec<&str> = requested
            .keys()
            .filter(|k| !used.contains_key(*k))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(Denied::forbidden(
                a,
                format!(
                    "status unknown for quota: {name}, resources: {}",
                    unknown.join(",")
                ),
            ));
        }
        let mut new_used = used.clone();
        for (k, v) in &requested {
            new_used.insert(k.clone(), used[k] + v);
        }
        {
            let exceeded: Vec<&String> = requested
                .keys()
                .filter(|k| new_used[*k] > hard[*k].0)
                .collect();
            if !exceeded.is_empty() {
                let fmt = |k: &str, v: Milli| quantity::format(v, quantity::is_binary(&hard[k].1));
                let req = exceeded
                    .iter()
                    .map(|k| (k.as_str(), fmt(k, requested[*k])))
                    .collect();
                let usd = exceeded
                    .iter()
                    .map(|k| (k.as_str(), fmt(k, used.get(*k).copied().unwrap_or(0))))
                    .collect();
                let lim = exceeded
                    .iter()
                    .map(|k| (k.as_str(), fmt(k, hard[*k].0)))
                    .collect();
                return Err(Denied::forbidden(
                    a,
                    format!(
                        "exceeded quota: {name}, requested: {}, used: {}, limited: {}",
                        pretty(&req),
                        pretty(&usd),
                        pretty(&lim)
                    ),
                ));
            }
        }
        // The new status: every hard resource whose usage is known, in the hard value's format.
        let mut used_out = Map::new();
        for (k, (_, hard_text)) in &hard {
            let binary = quantity::is_binary(hard_text)
                || used_text.get(k).is_some_and(|u| quantity::is_binary(u));
            match (new_used.get(k), requested.contains_key(k), used_text.get(k)) {
                (Some(v), true, _) => {
                    used_out.insert(k.clone(), json!(quantity::format(*v, binary)));
                }
                (_, false, Some(text)) => {
                    used_out.insert(k.clone(), json!(text));
                }
                _ => {}
            }
        }
        let mut updated = quota.clone();
        if !updated["status"].is_object() {
            updated["status"] = json!({});
        }
        updated["status"]["hard"] = quota
            .pointer("/spec/hard")
            .cloned()
            .unwrap_or_else(|| json!({}));
        updated["status"]["used"] = Value::Object(used_out);
        Ok(Some(Plan {
            name,
            updated,
            requested,
        }))
    }
}

/// Gives back what this request already charged (after a later quota refused it).
async fn roll_back(api: &dyn Api, a: &Attributes, charged: &BTreeMap<String, Usage>) {
    for (name, requested) in charged {
        let path = format!("/api/v1/namespaces/{}/resourcequotas/{name}", a.namespace);
        for _ in 0..ATTEMPTS {
            let Ok(Some(mut quota)) = api.get(&path).await else {
                break;
            };
            let used = usage::resource_list(quota.pointer("/status/used"));
            for (k, v) in requested {
                if let Some(u) = used.get(k) {
                    let binary = quota
                        .pointer(&format!(
                            "/status/used/{}",
                            k.replace('~', "~0").replace('/', "~1")
                        ))
                        .and_then(Value::as_str)
                        .is_some_and(quantity::is_binary);
                    quota["status"]["used"][k] = json!(quantity::format((u - v).max(0), binary));
                }
            }
            match api.update(&path, &quota).await {
                Ok(_) => break,
                Err(e) if is_conflict(&e.0) => continue,
                Err(e) => {
                    tracing::warn!(quota = %name, error = %e, "resourcequota: could not roll back usage");
                    break;
                }
            }
        }
    }
}

#[async_trait::async_trait]
impl Plugin for ResourceQuota {
    fn name(&self) -> &str {
        "ResourceQuota"
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if a.namespace.is_empty() || !a.subresource.is_empty() {
            return Ok(());
        }
        let (obj, delta) = match (a.operation, &a.object, &a.old_object) {
            (Operation::Create, Some(new), _) => {
                (new, usage::object_usage(&a.group, &a.resource, new))
            }
            (Operation::Update, Some(new), Some(old)) => {
                let before = usage::object_usage(&a.group, &a.resource, old);
                let mut delta = usage::object_usage(&a.group, &a.resource, new);
                for (k, v) in delta.iter_mut() {
                    *v = (*v - before.get(k).copied().unwrap_or(0)).max(0);
                }
                (new, delta)
            }
            // Deletes release nothing here: the quota controller recalculates.
            _ => return Ok(()),
        };
        if delta.values().all(|v| *v == 0) {
            return Ok(());
        }
        let req = Request { a, obj, delta };
        let list_path = format!("/api/v1/namespaces/{}/resourcequotas", a.namespace);
        let mut charged: BTreeMap<String, Usage> = BTreeMap::new();
        for _ in 0..ATTEMPTS {
            let mut quotas = api.list(&list_path).await.map_err(|e| internal(e.0))?;
            quotas.sort_by(|x, y| {
                x.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .cmp(&y.pointer("/metadata/name").and_then(Value::as_str))
            });
            let mut plans = Vec::new();
            for quota in &quotas {
                let name = quota
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if charged.contains_key(name) {
                    continue;
                }
                match req.plan(quota) {
                    Ok(Some(plan)) => plans.push(plan),
                    Ok(None) => {}
                    Err(denied) => {
                        roll_back(api, a, &charged).await;
                        return Err(denied);
                    }
                }
            }
            if a.dry_run {
                return Ok(());
            }
            let mut conflicted = false;
            for plan in plans {
                let path = format!(
                    "/api/v1/namespaces/{}/resourcequotas/{}",
                    a.namespace, plan.name
                );
                match api.update(&path, &plan.updated).await {
                    Ok(_) => {
                        charged.insert(plan.name, plan.requested);
                    }
                    Err(e) if is_conflict(&e.0) => conflicted = true,
                    Err(e) => {
                        roll_back(api, a, &charged).await;
                        return Err(internal(format!("resourcequota {}: {e}", plan.name)));
                    }
                }
            }
            if !conflicted {
                return Ok(());
            }
        }
        roll_back(api, a, &charged).await;
        Err(internal(
            "resource quota evaluation: too many conflicts updating quota usage, please retry",
        ))
    }
}

#[cfg(test)]
mod tests;
