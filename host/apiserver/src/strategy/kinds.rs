//! Kind-specific create hooks and validation: Pod, workload templates and selectors, Service,
//! ConfigMap/Secret size and immutability, Namespace, CRD (Service allocations: `service.rs`).

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::error::FieldError;
use crate::objects::{self};
use crate::registry::ResourceDef;
use crate::selector::LabelSelector;

/// ConfigMap and Secret payloads are limited to 1 MiB (seed 001).
pub(crate) const MAX_DATA: usize = 1024 * 1024;

/// The status a new object of some kinds starts with.
pub(super) fn on_create(def: &ResourceDef, obj: &mut Value) {
    match def.kind.as_str() {
        "Pod" => {
            obj["status"] = json!({"phase": "Pending", "qosClass": qos_class(&obj["spec"])});
        }
        "Namespace" => obj["status"] = json!({"phase": "Active"}),
        "PersistentVolume" | "PersistentVolumeClaim" => obj["status"] = json!({"phase": "Pending"}),
        "CustomResourceDefinition" => super::crd::initial_status(obj),
        _ => {}
    }
}

fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = spec
        .get("containers")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|r| !r.is_empty()) || lim.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for r in ["cpu", "memory"] {
            let l = lim.and_then(|l| l.get(r));
            let q = req.and_then(|q| q.get(r)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if guaranteed {
        "Guaranteed"
    } else if any {
        "Burstable"
    } else {
        "BestEffort"
    }
}

/// Kind-specific validation.
pub(super) fn validate(
    def: &ResourceDef,
    obj: &Value,
    old: Option<&Value>,
    errors: &mut Vec<FieldError>,
) {
    if def.is_custom() {
        return;
    }
    match def.kind.as_str() {
        "ConfigMap" | "Secret" => data_objects(def, obj, old, errors),
        "Pod" => {
            pod_spec(&obj["spec"], "spec", errors);
            if let Some(old) = old {
                pod_update(old, obj, errors);
            }
        }
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
            workload(obj, old, errors);
        }
        "ReplicationController" => {
            pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                errors,
            );
        }
        "Job" => {
            let rp = obj
                .pointer("/spec/template/spec/restartPolicy")
                .and_then(Value::as_str)
                .unwrap_or("Always");
            if !matches!(rp, "Never" | "OnFailure") {
                errors.push(FieldError {
                    field: "spec.template.spec.restartPolicy".into(),
                    reason: "FieldValueNotSupported",
                    message: format!(
                        "Unsupported value: {rp:?}: supported values: \"OnFailure\", \"Never\""
                    ),
                });
            }
            pod_spec(
                &obj["spec"]["template"]["spec"],
                "spec.template.spec",
                errors,
            );
            if let Some(old) = old {
                if old.pointer("/spec/template") != obj.pointer("/spec/template") {
                    errors.push(FieldError::invalid(
                        "spec.template",
                        &json!("..."),
                        "field is immutable",
                    ));
                }
            }
        }
        "CronJob"
            if obj
                .pointer("/spec/schedule")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty) =>
        {
            errors.push(FieldError::required("spec.schedule"));
        }
        "Service" => service(obj, old, errors),
        "CustomResourceDefinition" => super::crd::validate(obj, old, errors),
        _ => {}
    }
}

fn data_objects(def: &ResourceDef, obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let mut total = 0usize;
    let mut seen = HashSet::new();
    for field in ["data", "binaryData"] {
        for (k, v) in obj
            .get(field)
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let key_ok = !k.is_empty()
                && k.len() <= 253
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
                && k != "."
                && k != "..";
            if !key_ok {
                errors.push(FieldError::invalid(format!("{field}[{k}]"), &json!(k), "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
            }
            if !seen.insert(k.clone()) {
                errors.push(FieldError::invalid(
                    format!("{field}[{k}]"),
                    &json!(k),
                    "duplicate of key present in data",
                ));
            }
            total += k.len()
                + v.as_str()
                    .map(|s| {
                        if def.kind == "Secret" || field == "binaryData" {
                            s.len() / 4 * 3
                        } else {
                            s.len()
                        }
                    })
                    .unwrap_or(0);
        }
    }
    if total > MAX_DATA {
        let field = if def.kind == "Secret" { "data" } else { "[]" };
        errors.push(FieldError::too_long(
            field,
            format!("must have at most {MAX_DATA} bytes"),
        ));
    }
    if let Some(old) = old {
        if old.get("immutable") == Some(&json!(true)) {
            if obj.get("immutable") != Some(&json!(true)) {
                errors.push(FieldError::forbidden(
                    "immutable",
                    "field is immutable when `immutable` is set",
                ));
            }
            for f in ["data", "binaryData"] {
                if old.get(f) != obj.get(f) {
                    errors.push(FieldError::forbidden(
                        f,
                        "field is immutable when `immutable` is set",
                    ));
                }
            }
        }
        if def.kind == "Secret" && old.get("type") != obj.get("type") {
            errors.push(FieldError::invalid(
                "type",
                obj.get("type").unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

/// A value that must be one of a fixed set (Kubernetes' `FieldValueNotSupported`).
fn one_of(value: Option<&Value>, field: &str, allowed: &[&str], errors: &mut Vec<FieldError>) {
    if let Some(v) = value.and_then(Value::as_str) {
        if !allowed.contains(&v) {
            let list: Vec<String> = allowed.iter().map(|a| format!("{a:?}")).collect();
            errors.push(FieldError {
                field: field.into(),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {v:?}: supported values: {}",
                    list.join(", ")
                ),
            });
        }
    }
}

/// Container resources: every quantity parses, none is negative, no request exceeds its limit.
fn resources(r: Option<&Value>, path: &str, errors: &mut Vec<FieldError>) {
    use keelson_apimachinery::quantity;
    let mut parsed = |kind: &str| -> Vec<(String, quantity::Milli)> {
        let mut out = Vec::new();
        for (name, v) in r
            .and_then(|r| r.get(kind))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let field = format!("{path}.{kind}[{name}]");
            match v.as_str().map(quantity::parse) {
                Some(Ok(q)) if q < 0 => errors.push(FieldError::invalid(field, v, "must be greater than or equal to 0")),
                Some(Ok(q)) => out.push((name.clone(), q)),
                _ => errors.push(FieldError::invalid(
                    field,
                    v,
                    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
                )),
            }
        }
        out
    };
    let requests = parsed("requests");
    let limits = parsed("limits");
    for (name, req) in &requests {
        if limits.iter().any(|(n, limit)| n == name && req > limit) {
            let shown = r
                .and_then(|r| r.pointer(&format!("/requests/{name}")))
                .cloned()
                .unwrap_or(Value::Null);
            errors.push(FieldError::invalid(
                format!("{path}.requests"),
                &shown,
                format!("must be less than or equal to {name} limit"),
            ));
        }
    }
}

/// A port number field that must be 1–65535.
fn port(value: Option<&Value>, field: &str, errors: &mut Vec<FieldError>) {
    if let Some(p) = value.and_then(Value::as_i64) {
        if !(1..=65535).contains(&p) {
            errors.push(FieldError::invalid(
                field,
                &json!(p),
                "must be between 1 and 65535, inclusive",
            ));
        }
    }
}

fn pod_spec(spec: &Value, path: &str, errors: &mut Vec<FieldError>) {
    one_of(
        spec.get("restartPolicy"),
        &format!("{path}.restartPolicy"),
        &["Always", "OnFailure", "Never"],
        errors,
    );
    one_of(
        spec.get("dnsPolicy"),
        &format!("{path}.dnsPolicy"),
        &["ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"],
        errors,
    );
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        errors.push(FieldError::required(format!("{path}.containers")));
        return;
    }
    let mut names = HashSet::new();
    for list in ["initContainers", "containers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
            if name.is_empty() {
                errors.push(FieldError::required(format!("{path}.{list}[{i}].name")));
            } else if let Some(why) = crate::validation::dns_label(name) {
                errors.push(FieldError::invalid(
                    format!("{path}.{list}[{i}].name"),
                    &json!(name),
                    why,
                ));
            } else if !names.insert(name.to_string()) {
                errors.push(FieldError {
                    field: format!("{path}.{list}[{i}].name"),
                    reason: "FieldValueDuplicate",
                    message: format!("Duplicate value: {name:?}"),
                });
            }
            for (j, p) in c
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                let at = format!("{path}.{list}[{i}].ports[{j}]");
                port(
                    p.get("containerPort"),
                    &format!("{at}.containerPort"),
                    errors,
                );
                port(p.get("hostPort"), &format!("{at}.hostPort"), errors);
                one_of(
                    p.get("protocol"),
                    &format!("{at}.protocol"),
                    &["TCP", "UDP", "SCTP"],
                    errors,
                );
            }
            resources(
                c.get("resources"),
                &format!("{path}.{list}[{i}].resources"),
                errors,
            );
            let policies = ["Always", "IfNotPresent", "Never"];
            one_of(
                c.get("imagePullPolicy"),
                &format!("{path}.{list}[{i}].imagePullPolicy"),
                &policies,
                errors,
            );
            if c.get("image")
                .and_then(Value::as_str)
                .is_none_or(|s| s.trim().is_empty())
            {
                errors.push(FieldError::required(format!("{path}.{list}[{i}].image")));
            }
        }
    }
}

/// Pod specs are immutable but for images, activeDeadlineSeconds, added tolerations and removed
/// scheduling gates.
fn pod_update(old: &Value, new: &Value, errors: &mut Vec<FieldError>) {
    let mut a = old["spec"].clone();
    let mut b = new["spec"].clone();
    for spec in [&mut a, &mut b] {
        for list in ["containers", "initContainers"] {
            if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for c in cs {
                    c["image"] = json!("");
                }
            }
        }
        if let Some(o) = spec.as_object_mut() {
            for k in [
                "activeDeadlineSeconds",
                "tolerations",
                "schedulingGates",
                "terminationGracePeriodSeconds",
                // Validated on their own (strategy::ephemeral); only their subresource changes them.
                "ephemeralContainers",
            ] {
                o.remove(k);
            }
        }
    }
    let old_node = old
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if old_node.is_empty() {
        if let Some(o) = b.as_object_mut() {
            o.remove("nodeName");
        }
        if let Some(o) = a.as_object_mut() {
            o.remove("nodeName");
        }
    }
    if a != b {
        errors.push(FieldError::forbidden("spec", "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
    }
}

fn workload(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let strategies = ["Recreate", "RollingUpdate"];
    one_of(
        obj.pointer("/spec/strategy/type"),
        "spec.strategy.type",
        &strategies,
        errors,
    );
    let updates = ["RollingUpdate", "OnDelete"];
    one_of(
        obj.pointer("/spec/updateStrategy/type"),
        "spec.updateStrategy.type",
        &updates,
        errors,
    );
    let selector = obj.pointer("/spec/selector");
    match selector {
        None | Some(Value::Null) => errors.push(FieldError::required("spec.selector")),
        Some(sel) => match LabelSelector::from_object(Some(sel)) {
            Err(e) => errors.push(FieldError::invalid("spec.selector", sel, e)),
            Ok(s) if s.is_empty() => errors.push(FieldError::invalid(
                "spec.selector",
                sel,
                "empty selector is invalid for deployment",
            )),
            Ok(s) => {
                let labels = obj
                    .pointer("/spec/template/metadata/labels")
                    .and_then(Value::as_object);
                if !s.matches(labels) {
                    errors.push(FieldError::invalid(
                        "spec.template.metadata.labels",
                        &json!(labels),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
        },
    }
    if obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .is_some_and(|r| r < 0)
    {
        errors.push(FieldError::invalid(
            "spec.replicas",
            &obj["spec"]["replicas"],
            "must be greater than or equal to 0",
        ));
    }
    pod_spec(
        &obj["spec"]["template"]["spec"],
        "spec.template.spec",
        errors,
    );
    if let Some(old) = old {
        if old.pointer("/spec/selector") != selector {
            errors.push(FieldError::invalid(
                "spec.selector",
                selector.unwrap_or(&Value::Null),
                "field is immutable",
            ));
        }
    }
}

fn service(obj: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let spec = &obj["spec"];
    let ty = spec["type"].as_str().unwrap_or("ClusterIP");
    if !matches!(
        ty,
        "ClusterIP" | "NodePort" | "LoadBalancer" | "ExternalName"
    ) {
        errors.push(FieldError { field: "spec.type".into(), reason: "FieldValueNotSupported", message: format!("Unsupported value: {ty:?}: supported values: \"ClusterIP\", \"ExternalName\", \"LoadBalancer\", \"NodePort\"") });
    }
    let headless = spec["clusterIP"] == "None";
    let ports = spec.get("ports").and_then(Value::as_array);
    if ty != "ExternalName" && !headless && ports.is_none_or(|p| p.is_empty()) {
        errors.push(FieldError::required("spec.ports"));
    }
    for (i, p) in ports.into_iter().flatten().enumerate() {
        let number = p.get("port").and_then(Value::as_i64).unwrap_or(0);
        if !(1..=65535).contains(&number) {
            errors.push(FieldError::invalid(
                format!("spec.ports[{i}].port"),
                &json!(number),
                "must be between 1 and 65535, inclusive",
            ));
        }
        one_of(
            p.get("protocol"),
            &format!("spec.ports[{i}].protocol"),
            &["TCP", "UDP", "SCTP"],
            errors,
        );
        if let Some(t) = p.get("targetPort").filter(|t| t.is_i64()) {
            port(Some(t), &format!("spec.ports[{i}].targetPort"), errors);
        }
    }
    if let Some(old) = old {
        let (o, n) = (old.pointer("/spec/clusterIP"), spec.get("clusterIP"));
        if o.is_some() && n.is_some() && o != n {
            errors.push(FieldError::invalid(
                "spec.clusterIPs[0]",
                n.unwrap_or(&Value::Null),
                "may not change once set",
            ));
        }
    }
    let _ = objects::name(obj);
}
