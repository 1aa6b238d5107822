//! Defaulting: the values Kubernetes fills in when a client leaves them out (Pod restartPolicy,
//! container imagePullPolicy, Deployment strategy, Service port protocol, …). Idempotent: it runs
//! on create and on every update.

use serde_json::{json, Value};

use crate::registry::ResourceDef;

/// Sets `obj[key]` to `v` when missing or null.
fn default(obj: &mut Value, key: &str, v: Value) {
    if obj.is_object() && obj.get(key).is_none_or(Value::is_null) {
        obj[key] = v;
    }
}

/// Applies the defaults of the object's kind.
pub(super) fn apply(def: &ResourceDef, obj: &mut Value) {
    if def.is_custom() {
        return;
    }
    match def.kind.as_str() {
        "Pod" => pod_spec(&mut obj["spec"]),
        "PodTemplate" => pod_template(obj.get_mut("template")),
        "ReplicationController" | "ReplicaSet" => {
            default(&mut obj["spec"], "replicas", json!(1));
            if def.kind == "ReplicationController" && obj["spec"].get("selector").is_none() {
                if let Some(labels) = obj.pointer("/spec/template/metadata/labels").cloned() {
                    obj["spec"]["selector"] = labels;
                }
            }
            pod_template(obj.pointer_mut("/spec/template"));
        }
        "Deployment" => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "progressDeadlineSeconds", json!(600));
            default(spec, "strategy", json!({"type": "RollingUpdate"}));
            if spec["strategy"]["type"] == "RollingUpdate" {
                default(&mut spec["strategy"], "rollingUpdate", json!({}));
                default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxUnavailable",
                    json!("25%"),
                );
                default(
                    &mut spec["strategy"]["rollingUpdate"],
                    "maxSurge",
                    json!("25%"),
                );
            }
            pod_template(obj.pointer_mut("/spec/template"));
        }
        "StatefulSet" => {
            let spec = &mut obj["spec"];
            default(spec, "replicas", json!(1));
            default(spec, "revisionHistoryLimit", json!(10));
            default(spec, "podManagementPolicy", json!("OrderedReady"));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}),
            );
            default(
                spec,
                "persistentVolumeClaimRetentionPolicy",
                json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
            );
            pod_template(obj.pointer_mut("/spec/template"));
        }
        "DaemonSet" => {
            let spec = &mut obj["spec"];
            default(spec, "revisionHistoryLimit", json!(10));
            default(
                spec,
                "updateStrategy",
                json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}),
            );
            pod_template(obj.pointer_mut("/spec/template"));
        }
        "Job" => {
            let spec = &mut obj["spec"];
            default(spec, "parallelism", json!(1));
            default(spec, "backoffLimit", json!(6));
            default(spec, "completionMode", json!("NonIndexed"));
            default(spec, "suspend", json!(false));
            default(spec, "podReplacementPolicy", json!("TerminatingOrFailed"));
            if spec.get("completions").is_none() && spec["parallelism"] == json!(1) {
                spec["completions"] = json!(1);
            }
            pod_template(obj.pointer_mut("/spec/template"));
        }
        "CronJob" => {
            let spec = &mut obj["spec"];
            default(spec, "concurrencyPolicy", json!("Allow"));
            default(spec, "suspend", json!(false));
            default(spec, "successfulJobsHistoryLimit", json!(3));
            default(spec, "failedJobsHistoryLimit", json!(1));
            pod_template(obj.pointer_mut("/spec/jobTemplate/spec/template"));
        }
        "Service" => service(obj),
        "Secret" => {
            default(obj, "type", json!("Opaque"));
            string_data_into_data(obj);
        }
        "Namespace" => {
            default(obj, "spec", json!({}));
            default(&mut obj["spec"], "finalizers", json!(["kubernetes"]));
        }
        "PersistentVolumeClaim" => default(&mut obj["spec"], "volumeMode", json!("Filesystem")),
        "PersistentVolume" => {
            default(
                &mut obj["spec"],
                "persistentVolumeReclaimPolicy",
                json!("Retain"),
            );
            default(&mut obj["spec"], "volumeMode", json!("Filesystem"));
        }
        "StorageClass" => {
            default(obj, "reclaimPolicy", json!("Delete"));
            default(obj, "volumeBindingMode", json!("Immediate"));
        }
        "PriorityClass" => default(obj, "preemptionPolicy", json!("PreemptLowerPriority")),
        _ => {}
    }
}

/// Secret `stringData` is write-only: it is merged into `data` (base64) and dropped.
fn string_data_into_data(obj: &mut Value) {
    use base64::Engine;
    let Some(sd) = obj.as_object_mut().and_then(|o| o.remove("stringData")) else {
        return;
    };
    let Some(sd) = sd.as_object() else { return };
    if !obj.get("data").is_some_and(Value::is_object) {
        obj["data"] = json!({});
    }
    for (k, v) in sd {
        let raw = v.as_str().unwrap_or_default();
        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(raw));
    }
}

fn pod_template(t: Option<&mut Value>) {
    if let Some(t) = t {
        if t.is_object() {
            pod_spec(&mut t["spec"]);
        }
    }
}

fn pod_spec(spec: &mut Value) {
    if !spec.is_object() {
        return;
    }
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "securityContext", json!({}));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "enableServiceLinks", json!(true));
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                container(c);
            }
        }
    }
}

fn container(c: &mut Value) {
    if !c.is_object() {
        return;
    }
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    let image = c.get("image").and_then(Value::as_str).unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or_default();
    let tag = if last.contains('@') {
        Some("digest")
    } else {
        last.split_once(':').map(|(_, t)| t)
    };
    let policy = if tag.is_none() || tag == Some("latest") {
        "Always"
    } else {
        "IfNotPresent"
    };
    default(c, "imagePullPolicy", json!(policy));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
        }
    }
}

fn service(obj: &mut Value) {
    let spec = &mut obj["spec"];
    if !spec.is_object() {
        return;
    }
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec["type"] != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
        default(spec, "ipFamilyPolicy", json!("SingleStack"));
        default(spec, "ipFamilies", json!(["IPv4"]));
    }
    if matches!(
        spec["type"].as_str(),
        Some("NodePort") | Some("LoadBalancer")
    ) {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports {
            default(p, "protocol", json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                default(p, "targetPort", port);
            }
        }
    }
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({"loadBalancer": {}});
    }
}
