//! CustomResourceDefinitions: serving their kinds (registry entries per served version), their
//! initial status, their validation, and structural-schema checks and pruning of custom
//! resources against `openAPIV3Schema`.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, ApiResult, FieldError};
use crate::objects;
use crate::registry::ResourceDef;
use crate::validation::{report_unknown, FieldValidation};
use crate::ApiServer;

fn s(v: &Value, p: &str) -> String {
    v.pointer(p)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn strings(v: &Value, p: &str) -> Vec<String> {
    v.pointer(p)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The registry entries a CRD asks for, one per served version.
pub(crate) fn defs_of(crd: &Value) -> Vec<ResourceDef> {
    let kind = s(crd, "/spec/names/kind");
    let singular = Some(s(crd, "/spec/names/singular"))
        .filter(|x| !x.is_empty())
        .unwrap_or_else(|| kind.to_lowercase());
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(true))
        .map(|v| {
            let scale = v.pointer("/subresources/scale").map(|sc| {
                let path = |k: &str| {
                    sc.get(k)
                        .and_then(Value::as_str)
                        .map(|p| p.trim_start_matches('.').to_string())
                };
                (
                    path("specReplicasPath").unwrap_or_else(|| "spec.replicas".into()),
                    path("statusReplicasPath").unwrap_or_else(|| "status.replicas".into()),
                    path("labelSelectorPath"),
                )
            });
            ResourceDef {
                group: s(crd, "/spec/group"),
                version: s(v, "/name"),
                plural: s(crd, "/spec/names/plural"),
                singular: singular.clone(),
                kind: kind.clone(),
                namespaced: s(crd, "/spec/scope") != "Cluster",
                short_names: strings(crd, "/spec/names/shortNames"),
                categories: strings(crd, "/spec/names/categories"),
                status: v.pointer("/subresources/status").is_some(),
                scale,
                typed: None,
                openapi: None,
                schema: Some(v.pointer("/schema/openAPIV3Schema").cloned().unwrap_or(
                    json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
                )),
                printer_columns: v
                    .get("additionalPrinterColumns")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                extra_subresources: vec![],
                review: false,
            }
        })
        .collect()
}

/// Starts, updates or stops serving a CRD's kinds; a deleted CRD takes its objects with it.
pub(crate) fn sync_crd(api: &Arc<ApiServer>, crd: &Value, deleted: bool) {
    let name = objects::name(crd).to_string();
    if !deleted {
        api.registry.set_custom(&name, defs_of(crd));
        return;
    }
    api.registry.set_custom(&name, vec![]);
    let prefix = format!(
        "/registry/{}/{}/",
        s(crd, "/spec/group"),
        s(crd, "/spec/names/plural")
    );
    let store = api.store.clone();
    tokio::spawn(async move {
        if let Ok((items, _)) = store.list(&prefix).await {
            for kv in items {
                let _ = store.delete(&kv.key, 0).await;
            }
        }
    });
}

/// A new CRD is accepted and established at once (names are checked by validation).
pub(crate) fn initial_status(crd: &mut Value) {
    let now = objects::now();
    let mut names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    if names.get("singular").is_none() {
        names["singular"] = json!(s(crd, "/spec/names/kind").to_lowercase());
    }
    let storage: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .map(|v| v["name"].clone())
        .collect();
    crd["status"] = json!({
        "conditions": [
            {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now},
            {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now},
        ],
        "acceptedNames": names,
        "storedVersions": storage,
    });
}

/// CRD validation: name = plural.group, names, scope, exactly one storage version.
pub(crate) fn validate(crd: &Value, old: Option<&Value>, errors: &mut Vec<FieldError>) {
    let (group, plural) = (s(crd, "/spec/group"), s(crd, "/spec/names/plural"));
    let name = objects::name(crd);
    if group.is_empty() {
        errors.push(FieldError::required("spec.group"));
    }
    if plural.is_empty() {
        errors.push(FieldError::required("spec.names.plural"));
    }
    if s(crd, "/spec/names/kind").is_empty() {
        errors.push(FieldError::required("spec.names.kind"));
    }
    if name != format!("{plural}.{group}") {
        errors.push(FieldError::invalid(
            "metadata.name",
            &json!(name),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    if !matches!(s(crd, "/spec/scope").as_str(), "Namespaced" | "Cluster") {
        errors.push(FieldError {
            field: "spec.scope".into(),
            reason: "FieldValueNotSupported",
            message: "Unsupported value: must be \"Cluster\" or \"Namespaced\"".into(),
        });
    }
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        errors.push(FieldError::required("spec.versions"));
    }
    let storage = versions
        .iter()
        .filter(|v| v.get("storage") == Some(&json!(true)))
        .count();
    if !versions.is_empty() && storage != 1 {
        errors.push(FieldError::invalid(
            "spec.versions",
            &json!(storage),
            "must have exactly one version marked as storage version",
        ));
    }
    if let Some(old) = old {
        if s(old, "/spec/scope") != s(crd, "/spec/scope") {
            errors.push(FieldError::invalid(
                "spec.scope",
                &crd["spec"]["scope"],
                "field is immutable",
            ));
        }
    }
}

/// Checks a custom resource against its version's schema: wrong types are 422 Invalid, unknown
/// fields follow `fieldValidation` and are pruned (unless `x-kubernetes-preserve-unknown-fields`).
pub(crate) fn custom_resource_check(
    def: &ResourceDef,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    let Some(schema) = def.schema.clone() else {
        return Ok(Vec::new());
    };
    let mut errors = Vec::new();
    let mut unknown = Vec::new();
    if let Some(top) = obj.as_object_mut() {
        let props = schema.get("properties").and_then(Value::as_object);
        let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
        let keys: Vec<String> = top.keys().cloned().collect();
        for k in keys {
            if matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                continue;
            }
            match props.and_then(|p| p.get(&k)) {
                Some(sub) => walk(
                    sub,
                    top.get_mut(&k).expect("key exists"),
                    &k,
                    &mut errors,
                    &mut unknown,
                ),
                None if preserve => {}
                None => {
                    unknown.push(k.clone());
                    top.remove(&k);
                }
            }
        }
        required(&schema, top, "", &mut errors);
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            &def.group,
            &def.kind,
            objects::name(obj),
            errors,
        ));
    }
    report_unknown(def, unknown, mode)
}

fn required(schema: &Value, obj: &Map<String, Value>, path: &str, errors: &mut Vec<FieldError>) {
    for r in schema
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !obj.contains_key(r) {
            errors.push(FieldError::required(if path.is_empty() {
                r.to_string()
            } else {
                format!("{path}.{r}")
            }));
        }
    }
}

/// `minimum`/`maximum`, `minLength`/`maxLength` and `minItems`/`maxItems`, with Kubernetes'
/// messages.
fn bounds(schema: &Value, v: &Value, path: &str, errors: &mut Vec<FieldError>) {
    let bound = |key: &str| schema.get(key).and_then(Value::as_f64);
    let mut fail = |reason: &'static str, message: String| {
        errors.push(FieldError {
            field: path.into(),
            reason,
            message,
        })
    };
    if let Some(n) = v.as_f64() {
        if let Some(min) = bound("minimum").filter(|m| n < *m) {
            fail(
                "FieldValueInvalid",
                format!(
                    "Invalid value: {v}: {path} in body should be greater than or equal to {min}"
                ),
            );
        }
        if let Some(max) = bound("maximum").filter(|m| n > *m) {
            fail(
                "FieldValueInvalid",
                format!("Invalid value: {v}: {path} in body should be less than or equal to {max}"),
            );
        }
    }
    let len = match v {
        Value::String(s) => Some((s.chars().count() as f64, "Length", "chars long")),
        Value::Array(a) => Some((a.len() as f64, "Items", "items")),
        _ => None,
    };
    if let Some((n, key, unit)) = len {
        if let Some(min) = bound(&format!("min{key}")).filter(|m| n < *m) {
            fail(
                "FieldValueInvalid",
                format!("Invalid value: {v}: {path} in body should be at least {min} {unit}"),
            );
        }
        if let Some(max) = bound(&format!("max{key}")).filter(|m| n > *m) {
            fail(
                "FieldValueTooLong",
                format!("Too long: {path} in body should be at most {max} {unit}"),
            );
        }
    }
}

fn walk(
    schema: &Value,
    v: &mut Value,
    path: &str,
    errors: &mut Vec<FieldError>,
    unknown: &mut Vec<String>,
) {
    if v.is_null() && schema.get("nullable") == Some(&json!(true)) {
        return;
    }
    let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let ty = schema.get("type").and_then(Value::as_str);
    let ok = match (ty, &*v) {
        _ if int_or_string => v.is_i64() || v.is_u64() || v.is_string(),
        (None, _) => true,
        (Some("object"), Value::Object(_))
        | (Some("array"), Value::Array(_))
        | (Some("string"), Value::String(_))
        | (Some("boolean"), Value::Bool(_)) => true,
        (Some("integer"), Value::Number(n)) => n.is_i64() || n.is_u64(),
        (Some("number"), Value::Number(_)) => true,
        _ => false,
    };
    if !ok {
        let got = match v {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        errors.push(FieldError {
            field: path.into(),
            reason: "FieldValueTypeInvalid",
            message: format!(
                "Invalid value: \"{got}\": {path} in body must be of type {}: \"{got}\"",
                ty.unwrap_or("int-or-string")
            ),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            errors.push(FieldError {
                field: path.into(),
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {v}: supported values: {}",
                    allowed
                        .iter()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
    }
    bounds(schema, v, path, errors);
    match v {
        Value::Object(map) => {
            let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keys: Vec<String> = map.keys().cloned().collect();
            for k in keys {
                let sub_path = format!("{path}.{k}");
                match props.and_then(|p| p.get(&k)).or(additional) {
                    Some(sub) => walk(
                        sub,
                        map.get_mut(&k).expect("key exists"),
                        &sub_path,
                        errors,
                        unknown,
                    ),
                    None if preserve
                        || (props.is_none()
                            && schema.get("additionalProperties").is_none()
                            && ty.is_none()) => {}
                    None => {
                        unknown.push(sub_path);
                        map.remove(&k);
                    }
                }
            }
            required(schema, map, path, errors);
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item_schema, item, &format!("{path}[{i}]"), errors, unknown);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let mut errors = Vec::new();
        let schema =
            json!({"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 0}});
        walk(
            &schema,
            &mut json!([]),
            "spec.w",
            &mut errors,
            &mut Vec::new(),
        );
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].message.contains("at least 1 items"),
            "{}",
            errors[0].message
        );
        errors.clear();
        walk(
            &schema,
            &mut json!([3, -1]),
            "spec.w",
            &mut errors,
            &mut Vec::new(),
        );
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "spec.w[1]");
        errors.clear();
        let name = json!({"type": "string", "minLength": 1, "maxLength": 3});
        walk(&name, &mut json!("abcd"), "n", &mut errors, &mut Vec::new());
        walk(&name, &mut json!("ab"), "n", &mut errors, &mut Vec::new());
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].reason, "FieldValueTooLong");
    }
}
