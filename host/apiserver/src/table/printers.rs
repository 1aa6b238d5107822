//! The per-kind printer columns of `kubectl get`, following Kubernetes' internal printers.

use serde_json::{json, Value};

use super::{age, age_of, col, Column};

type Cells = fn(&Value) -> Vec<Value>;

fn s<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}
fn n(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}
fn name(o: &Value) -> Value {
    json!(crate::objects::name(o))
}
fn or_none(v: &str) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v.into()
    }
}
fn count(o: &Value, p: &str) -> i64 {
    match o.pointer(p) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}
fn containers(o: &Value, p: &str) -> (String, String) {
    let cs = o
        .pointer(p)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let names: Vec<&str> = cs.iter().map(|c| s(c, "/name")).collect();
    let images: Vec<&str> = cs.iter().map(|c| s(c, "/image")).collect();
    (names.join(","), images.join(","))
}
fn selector(o: &Value, p: &str) -> String {
    let Some(sel) = o.pointer(p) else {
        return "<none>".into();
    };
    let labels = sel
        .get("matchLabels")
        .and_then(Value::as_object)
        .or_else(|| sel.as_object().filter(|m| m.values().all(Value::is_string)));
    let mut parts: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vals: Vec<&str> = e["values"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        parts.push(match s(e, "/operator") {
            "In" => format!("{} in ({})", s(e, "/key"), vals.join(",")),
            "NotIn" => format!("{} notin ({})", s(e, "/key"), vals.join(",")),
            "Exists" => s(e, "/key").to_string(),
            _ => format!("!{}", s(e, "/key")),
        });
    }
    or_none(&parts.join(","))
}

/// Columns and the cell function of a kind.
pub(super) fn for_kind(kind: &str) -> (Vec<Column>, Cells) {
    match kind {
        "Namespace" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Age", "string", 0),
            ],
            |o| vec![name(o), json!(s(o, "/status/phase")), json!(age(o))],
        ),
        "Pod" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Status", "string", 0),
                col("Restarts", "string", 0),
                col("Age", "string", 0),
                col("IP", "string", 1),
                col("Node", "string", 1),
                col("Nominated Node", "string", 1),
                col("Readiness Gates", "string", 1),
            ],
            pod,
        ),
        "ConfigMap" => (
            vec![
                col("Name", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    name(o),
                    json!(count(o, "/data") + count(o, "/binaryData")),
                    json!(age(o)),
                ]
            },
        ),
        "Secret" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Data", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    name(o),
                    json!(s(o, "/type")),
                    json!(count(o, "/data")),
                    json!(age(o)),
                ]
            },
        ),
        "ServiceAccount" => (
            vec![
                col("Name", "string", 0),
                col("Secrets", "string", 0),
                col("Age", "string", 0),
            ],
            |o| vec![name(o), json!(count(o, "/secrets")), json!(age(o))],
        ),
        "Service" => (
            vec![
                col("Name", "string", 0),
                col("Type", "string", 0),
                col("Cluster-IP", "string", 0),
                col("External-IP", "string", 0),
                col("Port(s)", "string", 0),
                col("Age", "string", 0),
                col("Selector", "string", 1),
            ],
            service,
        ),
        "Endpoints" => (
            vec![
                col("Name", "string", 0),
                col("Endpoints", "string", 0),
                col("Age", "string", 0),
            ],
            endpoints,
        ),
        "Node" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Roles", "string", 0),
                col("Age", "string", 0),
                col("Version", "string", 0),
                col("Internal-IP", "string", 1),
                col("External-IP", "string", 1),
                col("OS-Image", "string", 1),
                col("Kernel-Version", "string", 1),
                col("Container-Runtime", "string", 1),
            ],
            node,
        ),
        "Deployment" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Up-to-date", "string", 0),
                col("Available", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            |o| {
                let (c, i) = containers(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        n(o, "/spec/replicas")
                    )),
                    json!(n(o, "/status/updatedReplicas")),
                    json!(n(o, "/status/availableReplicas")),
                    json!(age(o)),
                    json!(c),
                    json!(i),
                    json!(selector(o, "/spec/selector")),
                ]
            },
        ),
        "ReplicaSet" | "ReplicationController" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            |o| {
                let (c, i) = containers(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    json!(n(o, "/spec/replicas")),
                    json!(n(o, "/status/replicas")),
                    json!(n(o, "/status/readyReplicas")),
                    json!(age(o)),
                    json!(c),
                    json!(i),
                    json!(selector(o, "/spec/selector")),
                ]
            },
        ),
        "StatefulSet" => (
            vec![
                col("Name", "string", 0),
                col("Ready", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
            ],
            |o| {
                let (c, i) = containers(o, "/spec/template/spec/containers");
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        n(o, "/spec/replicas")
                    )),
                    json!(age(o)),
                    json!(c),
                    json!(i),
                ]
            },
        ),
        "DaemonSet" => (
            vec![
                col("Name", "string", 0),
                col("Desired", "integer", 0),
                col("Current", "integer", 0),
                col("Ready", "integer", 0),
                col("Up-to-date", "integer", 0),
                col("Available", "integer", 0),
                col("Node Selector", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            |o| {
                let (c, i) = containers(o, "/spec/template/spec/containers");
                let ns = selector(o, "/spec/template/spec/nodeSelector");
                vec![
                    name(o),
                    json!(n(o, "/status/desiredNumberScheduled")),
                    json!(n(o, "/status/currentNumberScheduled")),
                    json!(n(o, "/status/numberReady")),
                    json!(n(o, "/status/updatedNumberScheduled")),
                    json!(n(o, "/status/numberAvailable")),
                    json!(ns),
                    json!(age(o)),
                    json!(c),
                    json!(i),
                    json!(selector(o, "/spec/selector")),
                ]
            },
        ),
        "Job" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Completions", "string", 0),
                col("Duration", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            job,
        ),
        "CronJob" => (
            vec![
                col("Name", "string", 0),
                col("Schedule", "string", 0),
                col("Timezone", "string", 0),
                col("Suspend", "boolean", 0),
                col("Active", "integer", 0),
                col("Last Schedule", "string", 0),
                col("Age", "string", 0),
                col("Containers", "string", 1),
                col("Images", "string", 1),
                col("Selector", "string", 1),
            ],
            |o| {
                let (c, i) = containers(o, "/spec/jobTemplate/spec/template/spec/containers");
                let last = o
                    .pointer("/status/lastScheduleTime")
                    .and_then(Value::as_str)
                    .map(age_of)
                    .unwrap_or_else(|| "<none>".into());
                vec![
                    name(o),
                    json!(s(o, "/spec/schedule")),
                    json!(or_none(s(o, "/spec/timeZone"))),
                    json!(o
                        .pointer("/spec/suspend")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)),
                    json!(count(o, "/status/active")),
                    json!(last),
                    json!(age(o)),
                    json!(c),
                    json!(i),
                    json!(selector(o, "/spec/jobTemplate/spec/selector")),
                ]
            },
        ),
        "Event" => (
            vec![
                col("Last Seen", "string", 0),
                col("Type", "string", 0),
                col("Reason", "string", 0),
                col("Object", "string", 0),
                col("Message", "string", 0),
            ],
            |o| {
                let last = [
                    s(o, "/lastTimestamp"),
                    s(o, "/eventTime"),
                    s(o, "/metadata/creationTimestamp"),
                ]
                .into_iter()
                .find(|t| !t.is_empty())
                .map(age_of)
                .unwrap_or_default();
                let obj = format!(
                    "{}/{}",
                    s(o, "/involvedObject/kind").to_lowercase(),
                    s(o, "/involvedObject/name")
                );
                vec![
                    json!(last),
                    json!(s(o, "/type")),
                    json!(s(o, "/reason")),
                    json!(obj),
                    json!(s(o, "/message")),
                ]
            },
        ),
        "PersistentVolumeClaim" => (
            vec![
                col("Name", "string", 0),
                col("Status", "string", 0),
                col("Volume", "string", 0),
                col("Capacity", "string", 0),
                col("Access Modes", "string", 0),
                col("StorageClass", "string", 0),
                col("VolumeAttributesClass", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    name(o),
                    json!(s(o, "/status/phase")),
                    json!(s(o, "/spec/volumeName")),
                    json!(s(o, "/status/capacity/storage")),
                    json!(access_modes(o)),
                    json!(s(o, "/spec/storageClassName")),
                    json!("<unset>"),
                    json!(age(o)),
                ]
            },
        ),
        "PersistentVolume" => (
            vec![
                col("Name", "string", 0),
                col("Capacity", "string", 0),
                col("Access Modes", "string", 0),
                col("Reclaim Policy", "string", 0),
                col("Status", "string", 0),
                col("Claim", "string", 0),
                col("StorageClass", "string", 0),
                col("VolumeAttributesClass", "string", 0),
                col("Reason", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let claim = if s(o, "/spec/claimRef/name").is_empty() {
                    String::new()
                } else {
                    format!(
                        "{}/{}",
                        s(o, "/spec/claimRef/namespace"),
                        s(o, "/spec/claimRef/name")
                    )
                };
                vec![
                    name(o),
                    json!(s(o, "/spec/capacity/storage")),
                    json!(access_modes(o)),
                    json!(s(o, "/spec/persistentVolumeReclaimPolicy")),
                    json!(s(o, "/status/phase")),
                    json!(claim),
                    json!(s(o, "/spec/storageClassName")),
                    json!("<unset>"),
                    json!(s(o, "/status/reason")),
                    json!(age(o)),
                ]
            },
        ),
        "ResourceQuota" => (
            vec![
                col("Name", "string", 0),
                col("Age", "string", 0),
                col("Request", "string", 0),
                col("Limit", "string", 0),
            ],
            quota,
        ),
        "Lease" => (
            vec![
                col("Name", "string", 0),
                col("Holder", "string", 0),
                col("Age", "string", 0),
            ],
            |o| vec![name(o), json!(s(o, "/spec/holderIdentity")), json!(age(o))],
        ),
        "StorageClass" => (
            vec![
                col("Name", "string", 0),
                col("Provisioner", "string", 0),
                col("ReclaimPolicy", "string", 0),
                col("VolumeBindingMode", "string", 0),
                col("AllowVolumeExpansion", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let default = o
                    .pointer("/metadata/annotations/storageclass.kubernetes.io~1is-default-class")
                    .and_then(Value::as_str)
                    == Some("true");
                let nm = if default {
                    format!("{} (default)", crate::objects::name(o))
                } else {
                    crate::objects::name(o).to_string()
                };
                vec![
                    json!(nm),
                    json!(s(o, "/provisioner")),
                    json!(s(o, "/reclaimPolicy")),
                    json!(s(o, "/volumeBindingMode")),
                    json!(o
                        .get("allowVolumeExpansion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)),
                    json!(age(o)),
                ]
            },
        ),
        "PriorityClass" => (
            vec![
                col("Name", "string", 0),
                col("Value", "integer", 0),
                col("Global-Default", "boolean", 0),
                col("Age", "string", 0),
                col("PreemptionPolicy", "string", 0),
            ],
            |o| {
                vec![
                    name(o),
                    json!(n(o, "/value")),
                    json!(o
                        .get("globalDefault")
                        .and_then(Value::as_bool)
                        .unwrap_or(false)),
                    json!(age(o)),
                    json!(s(o, "/preemptionPolicy")),
                ]
            },
        ),
        "Ingress" => (
            vec![
                col("Name", "string", 0),
                col("Class", "string", 0),
                col("Hosts", "string", 0),
                col("Address", "string", 0),
                col("Ports", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let hosts: Vec<&str> = o
                    .pointer("/spec/rules")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|r| s(r, "/host"))
                    .collect();
                let hosts = if hosts.is_empty() {
                    "*".to_string()
                } else {
                    hosts.join(",")
                };
                let ports = if count(o, "/spec/tls") > 0 {
                    "80, 443"
                } else {
                    "80"
                };
                vec![
                    name(o),
                    json!(or_none(s(o, "/spec/ingressClassName"))),
                    json!(hosts),
                    json!(""),
                    json!(ports),
                    json!(age(o)),
                ]
            },
        ),
        "EndpointSlice" => (
            vec![
                col("Name", "string", 0),
                col("AddressType", "string", 0),
                col("Ports", "string", 0),
                col("Endpoints", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                let ports: Vec<String> = o
                    .pointer("/ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|p| n(p, "/port").to_string())
                    .collect();
                let eps: Vec<&str> = o
                    .pointer("/endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                    .filter_map(|a| a.as_str().map(|_| ""))
                    .collect();
                let addrs: Vec<String> = o
                    .pointer("/endpoints")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .flat_map(|e| e["addresses"].as_array().cloned().unwrap_or_default())
                    .filter_map(|a| a.as_str().map(String::from))
                    .collect();
                let _ = eps;
                vec![
                    name(o),
                    json!(s(o, "/addressType")),
                    json!(or_none(&ports.join(","))),
                    json!(or_none(&addrs.join(","))),
                    json!(age(o)),
                ]
            },
        ),
        "HorizontalPodAutoscaler" => (
            vec![
                col("Name", "string", 0),
                col("Reference", "string", 0),
                col("Targets", "string", 0),
                col("MinPods", "string", 0),
                col("MaxPods", "string", 0),
                col("Replicas", "string", 0),
                col("Age", "string", 0),
            ],
            |o| {
                vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        s(o, "/spec/scaleTargetRef/kind"),
                        s(o, "/spec/scaleTargetRef/name")
                    )),
                    json!("<unknown>"),
                    json!(o
                        .pointer("/spec/minReplicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)),
                    json!(n(o, "/spec/maxReplicas")),
                    json!(n(o, "/status/currentReplicas")),
                    json!(age(o)),
                ]
            },
        ),
        "CustomResourceDefinition" => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            |o| {
                vec![
                    name(o),
                    json!(crate::objects::meta_str(o, "creationTimestamp").unwrap_or_default()),
                ]
            },
        ),
        "LimitRange" => (
            vec![col("Name", "string", 0), col("Created At", "date", 0)],
            |o| {
                vec![
                    name(o),
                    json!(crate::objects::meta_str(o, "creationTimestamp").unwrap_or_default()),
                ]
            },
        ),
        _ => (
            vec![col("Name", "string", 0), col("Age", "string", 0)],
            |o| vec![name(o), json!(age(o))],
        ),
    }
}

fn access_modes(o: &Value) -> String {
    o.pointer("/spec/accessModes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|m| match m {
            "ReadWriteOnce" => "RWO",
            "ReadOnlyMany" => "ROX",
            "ReadWriteMany" => "RWX",
            "ReadWriteOncePod" => "RWOP",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn pod(o: &Value) -> Vec<Value> {
    let statuses = o
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = count(o, "/spec/containers");
    let ready = statuses
        .iter()
        .filter(|c| c["ready"] == json!(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut status = s(o, "/status/phase").to_string();
    if let Some(r) = o.pointer("/status/reason").and_then(Value::as_str) {
        status = r.to_string();
    }
    for c in &statuses {
        if let Some(w) = c.pointer("/state/waiting/reason").and_then(Value::as_str) {
            status = w.to_string();
        } else if let Some(t) = c
            .pointer("/state/terminated/reason")
            .and_then(Value::as_str)
        {
            status = t.to_string();
        }
    }
    if crate::objects::is_deleting(o) {
        status = "Terminating".into();
    }
    let gates = count(o, "/spec/readinessGates");
    vec![
        name(o),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts.to_string()),
        json!(age(o)),
        json!(or_none(s(o, "/status/podIP"))),
        json!(or_none(s(o, "/spec/nodeName"))),
        json!(or_none(s(o, "/status/nominatedNodeName"))),
        json!(if gates == 0 {
            "<none>".to_string()
        } else {
            format!("0/{gates}")
        }),
    ]
}

fn service(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|p| {
            let node = p
                .get("nodePort")
                .and_then(Value::as_i64)
                .map(|np| format!(":{np}"))
                .unwrap_or_default();
            format!(
                "{}{node}/{}",
                n(p, "/port"),
                p["protocol"].as_str().unwrap_or("TCP")
            )
        })
        .collect();
    let ty = s(o, "/spec/type");
    let external = match ty {
        "ExternalName" => s(o, "/spec/externalName").to_string(),
        "LoadBalancer" => "<pending>".into(),
        _ => o
            .pointer("/spec/externalIPs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .filter(|x| !x.is_empty())
            .unwrap_or_else(|| "<none>".into()),
    };
    let sel = o
        .pointer("/spec/selector")
        .map(|_| selector(o, "/spec/selector"))
        .unwrap_or_else(|| "<none>".into());
    vec![
        name(o),
        json!(ty),
        json!(or_none(s(o, "/spec/clusterIP"))),
        json!(external),
        json!(or_none(&ports.join(","))),
        json!(age(o)),
        json!(sel),
    ]
}

fn endpoints(o: &Value) -> Vec<Value> {
    let mut eps = Vec::new();
    for subset in o
        .get("subsets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let ports: Vec<i64> = subset["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| n(p, "/port"))
            .collect();
        for a in subset["addresses"].as_array().into_iter().flatten() {
            if ports.is_empty() {
                eps.push(s(a, "/ip").to_string());
            }
            for p in &ports {
                eps.push(format!("{}:{p}", s(a, "/ip")));
            }
        }
    }
    let shown = if eps.len() > 3 {
        format!("{} + {} more...", eps[..3].join(","), eps.len() - 3)
    } else {
        eps.join(",")
    };
    vec![name(o), json!(or_none(&shown)), json!(age(o))]
}

fn node(o: &Value) -> Vec<Value> {
    let conds = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = conds
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| c["status"] == "True");
    let mut status = match ready {
        Some(true) => "Ready".to_string(),
        Some(false) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if o.pointer("/spec/unschedulable") == Some(&json!(true)) {
        status.push_str(",SchedulingDisabled");
    }
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/").map(String::from))
        .collect();
    let addr = |t: &str| {
        o.pointer("/status/addresses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|a| a["type"] == t)
            .map(|a| s(a, "/address").to_string())
            .unwrap_or_else(|| "<none>".into())
    };
    vec![
        name(o),
        json!(status),
        json!(or_none(&roles.join(","))),
        json!(age(o)),
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(addr("InternalIP")),
        json!(addr("ExternalIP")),
        json!(or_none(s(o, "/status/nodeInfo/osImage"))),
        json!(or_none(s(o, "/status/nodeInfo/kernelVersion"))),
        json!(or_none(s(o, "/status/nodeInfo/containerRuntimeVersion"))),
    ]
}

fn job(o: &Value) -> Vec<Value> {
    let (c, i) = containers(o, "/spec/template/spec/containers");
    let conds = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has = |t: &str| {
        conds
            .iter()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    };
    let completions = match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{}/{c}", n(o, "/status/succeeded")),
        None => format!(
            "{}/1 of {}",
            n(o, "/status/succeeded"),
            n(o, "/spec/parallelism")
        ),
    };
    let duration = match (
        o.pointer("/status/startTime").and_then(Value::as_str),
        o.pointer("/status/completionTime").and_then(Value::as_str),
    ) {
        (Some(start), Some(end)) => match (
            chrono::DateTime::parse_from_rfc3339(start),
            chrono::DateTime::parse_from_rfc3339(end),
        ) {
            (Ok(a), Ok(b)) => super::human_duration((b - a).num_seconds()),
            _ => String::new(),
        },
        (Some(start), None) => age_of(start),
        _ => String::new(),
    };
    vec![
        name(o),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(o)),
        json!(c),
        json!(i),
        json!(selector(o, "/spec/selector")),
    ]
}

fn quota(o: &Value) -> Vec<Value> {
    let hard = o
        .pointer("/status/hard")
        .or_else(|| o.pointer("/spec/hard"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let used = o
        .pointer("/status/used")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let (mut req, mut lim) = (Vec::new(), Vec::new());
    for (k, v) in &hard {
        let entry = format!(
            "{k}: {}/{}",
            used.get(k).and_then(Value::as_str).unwrap_or("0"),
            v.as_str().unwrap_or_default()
        );
        if k.starts_with("limits.") {
            lim.push(entry);
        } else {
            req.push(entry);
        }
    }
    vec![
        name(o),
        json!(age(o)),
        json!(req.join(", ")),
        json!(lim.join(", ")),
    ]
}
