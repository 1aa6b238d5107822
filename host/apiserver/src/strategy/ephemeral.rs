//! `pods/ephemeralcontainers`: the only way to change `spec.ephemeralContainers` (what `kubectl
//! debug` patches), and the validation Kubernetes applies to them: no ports, probes, lifecycle
//! or resources; names unique across all of the Pod's containers; once added, an ephemeral
//! container may be neither changed nor removed.

use serde_json::{json, Value};

use crate::error::FieldError;

/// The subresource's name.
pub(crate) const SUBRESOURCE: &str = "ephemeralcontainers";

/// Fields an ephemeral container may not set (Kubernetes' `validateEphemeralContainers`).
const FORBIDDEN: [&str; 6] = [
    "ports",
    "livenessProbe",
    "readinessProbe",
    "startupProbe",
    "lifecycle",
    "resources",
];

/// An update of a Pod through `subresource`: through `ephemeralcontainers` only the ephemeral
/// containers change; through any other path they stay as stored.
pub(crate) fn prepare_update(subresource: Option<&str>, old: &Value, new: &mut Value) {
    let sent = new.pointer("/spec/ephemeralContainers").cloned();
    if subresource == Some(SUBRESOURCE) {
        *new = old.clone();
        set(new, sent);
    } else {
        set(new, old.pointer("/spec/ephemeralContainers").cloned());
    }
}

fn set(pod: &mut Value, containers: Option<Value>) {
    match (
        containers,
        pod.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        (Some(c), Some(spec)) => {
            spec.insert("ephemeralContainers".into(), c);
        }
        (None, Some(spec)) => {
            spec.remove("ephemeralContainers");
        }
        (_, None) => {}
    }
}

fn names<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
}

/// Validates a Pod's ephemeral containers against the stored Pod (`old`, on updates).
pub(crate) fn validate(pod: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let Some(list) = pod
        .pointer("/spec/ephemeralContainers")
        .and_then(Value::as_array)
    else {
        if let Some(first) = old.and_then(|o| names(o, "ephemeralContainers").next()) {
            errors.push(removed(first));
        }
        return;
    };
    if old.is_none() && !list.is_empty() {
        errors.push(FieldError::forbidden(
            "spec.ephemeralContainers",
            "cannot be set on create",
        ));
    }
    let mut seen: Vec<&str> = names(pod, "containers")
        .chain(names(pod, "initContainers"))
        .collect();
    for (i, c) in list.iter().enumerate() {
        let path = format!("spec.ephemeralContainers[{i}]");
        let name = c.get("name").and_then(Value::as_str).unwrap_or_default();
        if name.is_empty() {
            errors.push(FieldError::required(format!("{path}.name")));
        } else if seen.contains(&name) {
            errors.push(FieldError {
                field: format!("{path}.name"),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {name:?}"),
            });
        }
        seen.push(name);
        if c.get("image")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .is_empty()
        {
            errors.push(FieldError::required(format!("{path}.image")));
        }
        for field in FORBIDDEN {
            if c.get(field).is_some_and(|v| !is_empty(v)) {
                errors.push(FieldError::forbidden(
                    format!("{path}.{field}"),
                    "cannot be set for an Ephemeral Container",
                ));
            }
        }
    }
    for (i, before) in old
        .and_then(|o| o.pointer("/spec/ephemeralContainers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let name = before
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match list.iter().find(|c| c.get("name") == before.get("name")) {
            None => errors.push(removed(name)),
            Some(now) if now != before => errors.push(FieldError::forbidden(
                format!("spec.ephemeralContainers[{i}]"),
                format!("existing ephemeral containers {name:?} may not be changed"),
            )),
            Some(_) => {}
        }
    }
}

fn removed(name: &str) -> FieldError {
    FieldError::forbidden(
        "spec.ephemeralContainers",
        format!("existing ephemeral containers {name:?} may not be removed"),
    )
}

fn is_empty(v: &Value) -> bool {
    v.is_null() || *v == json!({}) || *v == json!([])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ephemeral: Value) -> Value {
        json!({"spec": {"containers": [{"name": "app", "image": "i"}], "ephemeralContainers": ephemeral}})
    }

    fn check(new: &Value, old: Option<&Value>) -> Vec<String> {
        let mut errors = Vec::new();
        validate(new, old, &mut errors);
        errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn validates_ephemeral_containers() {
        let ok = pod(json!([{"name": "debugger", "image": "busybox"}]));
        let before = pod(json!([]));
        assert!(check(&ok, Some(&before)).is_empty());
        assert!(check(&ok, None)[0].contains("cannot be set on create"));
        let cases = [
            (json!([{"name": "app", "image": "busybox"}]), "spec.ephemeralContainers[0].name: Duplicate value: \"app\""),
            (json!([{"name": "d", "image": "b", "ports": [{"containerPort": 80}]}]), "spec.ephemeralContainers[0].ports: Forbidden: cannot be set for an Ephemeral Container"),
            (json!([{"name": "d", "image": "b", "readinessProbe": {"exec": {}}}]), "spec.ephemeralContainers[0].readinessProbe: Forbidden"),
            (json!([{"name": "d", "image": "b", "resources": {"limits": {"cpu": "1"}}}]), "spec.ephemeralContainers[0].resources: Forbidden"),
            (json!([{"name": "d"}]), "spec.ephemeralContainers[0].image: Required value"),
        ];
        for (containers, want) in cases {
            let got = check(&pod(containers), Some(&before));
            assert!(got.iter().any(|e| e.starts_with(want)), "{want}: {got:?}");
        }
        let changed = pod(json!([{"name": "debugger", "image": "other"}]));
        assert!(check(&changed, Some(&ok))[0].contains("may not be changed"));
        assert!(check(&pod(json!([])), Some(&ok))[0].contains("may not be removed"));
    }

    #[test]
    fn only_the_subresource_changes_them() {
        let old = pod(json!([{"name": "a", "image": "i"}]));
        let mut new = pod(json!([{"name": "a", "image": "i"}, {"name": "b", "image": "i"}]));
        new["spec"]["containers"][0]["image"] = json!("changed");
        let mut through_sub = new.clone();
        prepare_update(Some(SUBRESOURCE), &old, &mut through_sub);
        assert_eq!(through_sub["spec"]["ephemeralContainers"][1]["name"], "b");
        assert_eq!(through_sub["spec"]["containers"][0]["image"], "i");
        prepare_update(None, &old, &mut new);
        assert_eq!(
            new["spec"]["ephemeralContainers"],
            old["spec"]["ephemeralContainers"]
        );
    }
}
