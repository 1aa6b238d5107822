//! The per-kind printer columns of `kubectl get`, following Kubernetes' internal printers.

use serde_json::{json, Value};

use super::{age, age_of, Column};

type Cells = fn(&Value) -> Vec<Value>;

/// Columns from a compact spec: `"Name,Ready,Age|IP,Node"` — names after `|` are `-o wide` only
/// (priority 1). Dates are typed `date`, everything else `string`.
fn cols(spec: &str) -> Vec<Column> {
    let (always, wide) = spec.split_once('|').unwrap_or((spec, ""));
    let named = |names: &str, priority: u8| -> Vec<Column> {
        names
            .split(',')
            .filter(|n| !n.is_empty())
            .map(|name| Column {
                name: name.to_string(),
                ty: if name == "Created At" {
                    "date"
                } else {
                    "string"
                },
                priority,
            })
            .collect()
    };
    let mut out = named(always, 0);
    out.extend(named(wide, 1));
    out
}

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
/// Appends the `-o wide` tail of workload rows: container names, images and (if given) the
/// selector.
fn wide(
    mut row: Vec<Value>,
    o: &Value,
    containers_path: &str,
    selector_path: Option<&str>,
) -> Vec<Value> {
    let (names, images) = containers(o, containers_path);
    row.push(json!(names));
    row.push(json!(images));
    if let Some(p) = selector_path {
        row.push(json!(selector(o, p)));
    }
    row
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
            cols("Name,Status,Age"),
            |o| vec![name(o), json!(s(o, "/status/phase")), json!(age(o))],
        ),
        "Pod" => (
            cols("Name,Ready,Status,Restarts,Age|IP,Node,Nominated Node,Readiness Gates"),
            pod,
        ),
        "ConfigMap" => (
            cols("Name,Data,Age"),
            |o| {
                vec![
                    name(o),
                    json!(count(o, "/data") + count(o, "/binaryData")),
                    json!(age(o)),
                ]
            },
        ),
        "Secret" => (
            cols("Name,Type,Data,Age"),
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
            cols("Name,Secrets,Age"),
            |o| vec![name(o), json!(count(o, "/secrets")), json!(age(o))],
        ),
        "Service" => (
            cols("Name,Type,Cluster-IP,External-IP,Port(s),Age|Selector"),
            service,
        ),
        "Endpoints" => (
            cols("Name,Endpoints,Age"),
            endpoints,
        ),
        "CertificateSigningRequest" => (cols("Name,Age,SignerName,Requestor,RequestedDuration,Condition"), csr),
        "Node" => (
            cols("Name,Status,Roles,Age,Version|Internal-IP,External-IP,OS-Image,Kernel-Version,Container-Runtime"),
            node,
        ),
        "Deployment" => (
            cols("Name,Ready,Up-to-date,Available,Age|Containers,Images,Selector"),
            |o| {
                wide(vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        n(o, "/spec/replicas")
                    )),
                    json!(n(o, "/status/updatedReplicas")),
                    json!(n(o, "/status/availableReplicas")),
                    json!(age(o)),
                    ], o, "/spec/template/spec/containers", Some("/spec/selector"))
            },
        ),
        "ReplicaSet" | "ReplicationController" => (
            cols("Name,Desired,Current,Ready,Age|Containers,Images,Selector"),
            |o| {
                wide(vec![
                    name(o),
                    json!(n(o, "/spec/replicas")),
                    json!(n(o, "/status/replicas")),
                    json!(n(o, "/status/readyReplicas")),
                    json!(age(o)),
                    ], o, "/spec/template/spec/containers", Some("/spec/selector"))
            },
        ),
        "StatefulSet" => (
            cols("Name,Ready,Age|Containers,Images"),
            |o| {
                wide(vec![
                    name(o),
                    json!(format!(
                        "{}/{}",
                        n(o, "/status/readyReplicas"),
                        n(o, "/spec/replicas")
                    )),
                    json!(age(o)),
                    ], o, "/spec/template/spec/containers", None)
            },
        ),
        "DaemonSet" => (
            cols("Name,Desired,Current,Ready,Up-to-date,Available,Node Selector,Age|Containers,Images,Selector"),
            |o| {
                let ns = selector(o, "/spec/template/spec/nodeSelector");
                wide(vec![
                    name(o),
                    json!(n(o, "/status/desiredNumberScheduled")),
                    json!(n(o, "/status/currentNumberScheduled")),
                    json!(n(o, "/status/numberReady")),
                    json!(n(o, "/status/updatedNumberScheduled")),
                    json!(n(o, "/status/numberAvailable")),
                    json!(ns),
                    json!(age(o)),
                    ], o, "/spec/template/spec/containers", Some("/spec/selector"))
            },
        ),
        "Job" => (
            cols("Name,Status,Completions,Duration,Age|Containers,Images,Selector"),
            job,
        ),
        "CronJob" => (
            cols("Name,Schedule,Timezone,Suspend,Active,Last Schedule,Age|Containers,Images,Selector"),
            |o| {
                let last = o
                    .pointer("/status/lastScheduleTime")
                    .and_then(Value::as_str)
                    .map(age_of)
                    .unwrap_or_else(|| "<none>".into());
                wide(vec![
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
                    ], o, "/spec/jobTemplate/spec/template/spec/containers", Some("/spec/jobTemplate/spec/selector"))
            },
        ),
        "Event" => (
            cols("Last Seen,Type,Reason,Object,Message"),
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
            cols("Name,Status,Volume,Capacity,Access Modes,StorageClass,VolumeAttributesClass,Age"),
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
            cols("Name,Capacity,Access Modes,Reclaim Policy,Status,Claim,StorageClass,VolumeAttributesClass,Reason,Age"),
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
            cols("Name,Age,Request,Limit"),
            quota,
        ),
        "Lease" => (
            cols("Name,Holder,Age"),
            |o| vec![name(o), json!(s(o, "/spec/holderIdentity")), json!(age(o))],
        ),
        "StorageClass" => (
            cols("Name,Provisioner,ReclaimPolicy,VolumeBindingMode,AllowVolumeExpansion,Age"),
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
            cols("Name,Value,Global-Default,Age,PreemptionPolicy"),
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
            cols("Name,Class,Hosts,Address,Ports,Age"),
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
            cols("Name,AddressType,Ports,Endpoints,Age"),
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
            cols("Name,Reference,Targets,MinPods,MaxPods,Replicas,Age"),
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
            cols("Name,Created At"),
            |o| {
                vec![
                    name(o),
                    json!(crate::objects::meta_str(o, "creationTimestamp").unwrap_or_default()),
                ]
            },
        ),
        "APIService" => (
            cols("Name,Service,Available,Age"),
            crate::computed::apiservice_cells,
        ),
        "ComponentStatus" => (
            cols("Name,Status,Message,Error"),
            crate::computed::componentstatus_cells,
        ),
        "LimitRange" => (
            cols("Name,Created At"),
            |o| {
                vec![
                    name(o),
                    json!(crate::objects::meta_str(o, "creationTimestamp").unwrap_or_default()),
                ]
            },
        ),
        _ => (
            cols("Name,Age"),
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

fn csr(o: &Value) -> Vec<Value> {
    let duration = match o.pointer("/spec/expirationSeconds").and_then(Value::as_i64) {
        Some(secs) if secs % 3600 == 0 => format!("{}h", secs / 3600),
        Some(secs) if secs % 60 == 0 => format!("{}m", secs / 60),
        Some(secs) => format!("{secs}s"),
        None => "<none>".into(),
    };
    let mut conditions: Vec<&str> = o
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| s(c, "/status") == "True")
        .map(|c| s(c, "/type"))
        .collect();
    if !o.pointer("/status/certificate").is_none_or(Value::is_null) {
        conditions.push("Issued");
    }
    let condition = match conditions.is_empty() {
        true => "Pending".to_string(),
        false => conditions.join(","),
    };
    vec![
        name(o),
        json!(age(o)),
        json!(s(o, "/spec/signerName")),
        json!(s(o, "/spec/username")),
        json!(duration),
        json!(condition),
    ]
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
    wide(
        vec![
            name(o),
            json!(status),
            json!(completions),
            json!(duration),
            json!(age(o)),
        ],
        o,
        "/spec/template/spec/containers",
        Some("/spec/selector"),
    )
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
