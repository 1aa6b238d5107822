//! Service writes and the IP/NodePort allocators (`crate::allocator`): a create takes its
//! cluster IP and NodePorts (asked-for values checked, missing ones picked), an update takes
//! what a new type or new ports need and gives back what the Service no longer holds, a delete
//! gives back everything. Values taken for a write that then fails (admission, validation, a
//! conflict, dry-run) are given back when its [`Allocation`] is dropped uncommitted.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::allocator::{held, wants_node_ports, AllocError, Range};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::objects;
use crate::ApiServer;

/// Values taken for one write; released on drop unless committed.
#[must_use = "commit the allocation once the write is stored"]
pub(crate) struct Allocation {
    api: Option<Arc<ApiServer>>,
    ips: Vec<String>,
    ports: Vec<String>,
}

impl Allocation {
    /// Nothing taken.
    pub(crate) fn none() -> Self {
        Allocation {
            api: None,
            ips: Vec::new(),
            ports: Vec::new(),
        }
    }

    /// The write is stored: keep the values.
    pub(crate) fn commit(mut self) {
        self.ips.clear();
        self.ports.clear();
    }
}

impl Drop for Allocation {
    fn drop(&mut self) {
        let Some(api) = self.api.take() else { return };
        if self.ips.is_empty() && self.ports.is_empty() {
            return;
        }
        let (ips, ports) = (
            std::mem::take(&mut self.ips),
            std::mem::take(&mut self.ports),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { release(&api, &ips, &ports).await });
        }
    }
}

/// Gives values back to their ranges (errors are logged: the repair pass frees them later).
async fn release(api: &ApiServer, ips: &[String], ports: &[String]) {
    let alloc = &api.services;
    for (range, values) in [(&alloc.ips, ips), (&alloc.ports, ports)] {
        if let Err(e) = range.release(&api.store, values).await {
            tracing::warn!(error = %e, "releasing service allocations failed; the repair pass will");
        }
    }
}

/// Kubernetes' error for a value that cannot be had.
fn failed(obj: &Value, field: String, value: Value, what: &str, err: AllocError) -> ApiError {
    match err {
        AllocError::Full => {
            ApiError::internal(format!("failed to allocate a {what}: range is full"))
        }
        AllocError::Store(e) => ApiError::internal(e),
        AllocError::NotInRange(_) | AllocError::Taken(_) => {
            let why = match what {
                "serviceIP" => format!(
                    "failed to allocate IP {}: {err}",
                    value[0].as_str().unwrap_or_default()
                ),
                _ => err.to_string(),
            };
            ApiError::invalid(
                "",
                "Service",
                objects::name(obj),
                vec![FieldError::invalid(field, &value, why)],
            )
        }
    }
}

async fn take(
    api: &ApiServer,
    range: &Range,
    requested: Option<&str>,
) -> Result<String, AllocError> {
    range.allocate(&api.store, requested).await
}

/// Takes the cluster IP and NodePorts `obj` needs that `old` (on update) does not hold yet,
/// writing picked values into `obj`.
pub(crate) async fn allocate(
    api: &Arc<ApiServer>,
    obj: &mut Value,
    old: Option<&Value>,
) -> ApiResult<Allocation> {
    let mut taken = Allocation {
        api: Some(api.clone()),
        ips: Vec::new(),
        ports: Vec::new(),
    };
    let (old_ip, old_ports) = old.map(held).unwrap_or_default();
    let old_ports: HashSet<String> = old_ports.into_iter().collect();
    let ty = obj["spec"]["type"]
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    // Cluster IP: ExternalName Services have none, headless ones "None".
    if ty == "ExternalName" {
        if let Some(spec) = obj["spec"].as_object_mut() {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    } else {
        let asked = obj["spec"]["clusterIP"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .map(String::from);
        let ip = match (asked, &old_ip) {
            (Some(ip), _) if ip == "None" => ip,
            (Some(ip), Some(o)) if &ip == o => ip,
            (None, Some(o)) => o.clone(),
            (asked, _) => {
                let got = take(api, &api.services.ips, asked.as_deref())
                    .await
                    .map_err(|e| {
                        let shown = json!([asked.clone().unwrap_or_default()]);
                        failed(obj, "spec.clusterIPs".into(), shown, "serviceIP", e)
                    })?;
                taken.ips.push(got.clone());
                got
            }
        };
        obj["spec"]["clusterIP"] = json!(ip);
        obj["spec"]["clusterIPs"] = json!([ip]);
    }
    // NodePorts for NodePort and LoadBalancer Services.
    let node_ports = wants_node_ports(&obj["spec"]);
    let count = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
    for i in 0..count {
        let asked = obj["spec"]["ports"][i]["nodePort"].as_i64();
        if !node_ports {
            if let Some(p) = asked {
                if !old_ports.contains(&p.to_string()) || old.is_none() {
                    return Err(ApiError::invalid(
                        "",
                        "Service",
                        objects::name(obj),
                        vec![FieldError::forbidden(
                            format!("spec.ports[{i}].nodePort"),
                            format!("may not be used when `type` is '{ty}'"),
                        )],
                    ));
                }
                // A type change away from NodePort drops the ports (given back after the write).
                if let Some(port) = obj["spec"]["ports"][i].as_object_mut() {
                    port.remove("nodePort");
                }
            }
            continue;
        }
        if asked.is_some_and(|p| old_ports.contains(&p.to_string())) {
            continue;
        }
        let wanted = asked.map(|p| p.to_string());
        let got = take(api, &api.services.ports, wanted.as_deref())
            .await
            .map_err(|e| {
                let field = format!("spec.ports[{i}].nodePort");
                failed(obj, field, json!(asked.unwrap_or(0)), "nodePort", e)
            })?;
        obj["spec"]["ports"][i]["nodePort"] = json!(got.parse::<i64>().unwrap_or(0));
        taken.ports.push(got);
    }
    Ok(taken)
}

/// After a stored update: gives back what `old` held and `new` does not.
pub(crate) async fn release_dropped(api: &ApiServer, old: &Value, new: &Value) {
    let (old_ip, old_ports) = held(old);
    let (new_ip, new_ports) = held(new);
    let ips: Vec<String> = old_ip
        .into_iter()
        .filter(|ip| Some(ip) != new_ip.as_ref())
        .collect();
    let ports: Vec<String> = old_ports
        .into_iter()
        .filter(|p| !new_ports.contains(p))
        .collect();
    release(api, &ips, &ports).await;
}

/// After a delete: gives back everything the Service held.
pub(crate) async fn release_all(api: &ApiServer, obj: &Value) {
    let (ip, ports) = held(obj);
    release(api, &ip.into_iter().collect::<Vec<_>>(), &ports).await;
}

/// One repair pass over every Service (at start and every three minutes).
pub(crate) async fn repair(api: &ApiServer) -> Result<(), String> {
    let Some(def) = api.registry.lookup("", "v1", "services") else {
        return Ok(());
    };
    let (items, _) = api
        .store
        .list(&def.prefix())
        .await
        .map_err(|e| e.to_string())?;
    let (mut ips, mut ports) = (Vec::new(), Vec::new());
    for kv in items {
        if let Ok(service) = serde_json::from_slice::<Value>(&kv.value) {
            let (ip, p) = held(&service);
            ips.extend(ip);
            ports.extend(p);
        }
    }
    api.services
        .ips
        .repair(&api.store, &ips)
        .await
        .map_err(|e| e.to_string())?;
    api.services
        .ports
        .repair(&api.store, &ports)
        .await
        .map_err(|e| e.to_string())
}

/// Repairs the ranges every three minutes (kube-apiserver's repair interval).
pub(crate) fn spawn_repair(api: &Arc<ApiServer>) {
    let api = Arc::downgrade(api);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(180));
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(api) = api.upgrade() else { return };
            if let Err(e) = repair(&api).await {
                tracing::warn!(error = %e, "repairing the Service IP and NodePort ranges failed");
            }
        }
    });
}
