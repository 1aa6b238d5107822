//! Input validation shared by every kind: typed decoding against the k8s-openapi definitions,
//! unknown-field detection for `fieldValidation` (Strict | Warn | Ignore), DNS names, and data
//! size limits.

use serde_json::Value;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::registry::ResourceDef;

/// The `fieldValidation` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldValidation {
    /// Unknown or duplicate fields fail the request.
    Strict,
    /// They are dropped with a warning header (the server default).
    Warn,
    /// They are dropped silently.
    Ignore,
}

impl FieldValidation {
    pub(crate) fn parse(v: Option<&str>) -> ApiResult<Self> {
        match v {
            None | Some("") | Some("Warn") => Ok(Self::Warn),
            Some("Strict") => Ok(Self::Strict),
            Some("Ignore") => Ok(Self::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is invalid: must be one of Ignore, Warn, Strict"
            ))),
        }
    }
}

/// Decodes `obj` as its typed definition: type errors are a 400; unknown fields are handled per
/// `mode` and then dropped, as decoding into Kubernetes' Go types drops them. Returns the
/// warnings to send.
pub(crate) fn check_fields(
    def: &ResourceDef,
    obj: &mut Value,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    let Some(typed) = def.typed else {
        return crate::strategy::custom_resource_check(def, obj, mode);
    };
    let known = typed(obj).map_err(|e| {
        ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: {e}",
            def.kind, def.version, def.kind
        ))
    })?;
    let mut unknown = Vec::new();
    unknown_fields(obj, &known, "", &mut unknown);
    let warnings = report_unknown(def, unknown, mode)?;
    *obj = known;
    Ok(warnings)
}

/// Turns a list of unknown field paths into an error (Strict) or warnings.
pub(crate) fn report_unknown(
    def: &ResourceDef,
    unknown: Vec<String>,
    mode: FieldValidation,
) -> ApiResult<Vec<String>> {
    if unknown.is_empty() || mode == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    let msgs: Vec<String> = unknown
        .iter()
        .map(|f| format!("unknown field \"{f}\""))
        .collect();
    if mode == FieldValidation::Strict {
        return Err(ApiError::bad_request(format!(
            "{} in version \"{}\" cannot be handled as a {}: strict decoding error: {}",
            def.kind,
            def.version,
            def.kind,
            msgs.join(", ")
        )));
    }
    Ok(msgs)
}

/// Collects paths present (non-null) in `sent` but absent from `known`.
fn unknown_fields(sent: &Value, known: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, known) {
        (Value::Object(s), Value::Object(k)) => {
            for (key, v) in s {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(v, kv, &p, out),
                    None if v.is_null() => {}
                    None if is_empty_container(v) => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(s), Value::Array(k)) => {
            for (i, (sv, kv)) in s.iter().zip(k.iter()).enumerate() {
                unknown_fields(sv, kv, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// k8s-openapi drops some empty optional containers on re-serialisation; they are not unknown.
fn is_empty_container(v: &Value) -> bool {
    matches!(v, Value::Object(m) if m.is_empty()) || matches!(v, Value::Array(a) if a.is_empty())
}

/// RFC 1123 subdomain: what most object names must be.
pub(crate) fn dns_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    (!ok).then(|| "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
}

/// RFC 1123 label: namespaces, services and other names used in DNS labels.
pub(crate) fn dns_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
}

/// Label keys and values as Kubernetes checks them.
pub(crate) fn labels(obj: &Value, errors: &mut Vec<FieldError>) {
    let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) else {
        return;
    };
    for (k, v) in labels {
        let name = k.rsplit('/').next().unwrap_or_default();
        let prefix_ok = k
            .rsplit_once('/')
            .is_none_or(|(p, _)| dns_subdomain(p).is_none());
        if name.is_empty() || name.len() > 63 || !qualified_ok(name) || !prefix_ok {
            errors.push(FieldError::invalid("metadata.labels", &Value::String(k.clone()), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
        }
        match v.as_str() {
            Some(s) if s.is_empty() || (s.len() <= 63 && qualified_ok(s)) => {}
            _ => errors.push(FieldError::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character")),
        }
    }
}

fn qualified_ok(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_subdomain("a.b-c").is_none());
        assert!(dns_subdomain("A").is_some());
        assert!(dns_subdomain("-a").is_some());
        assert!(dns_subdomain("").is_some());
        assert!(dns_label("a.b").is_some());
        assert!(dns_label(&"a".repeat(64)).is_some());
    }

    #[test]
    fn finds_unknown_fields() {
        let sent = serde_json::json!({"a": 1, "b": {"c": 2, "x": 3}, "l": [{"y": 1}], "n": null});
        let known = serde_json::json!({"a": 1, "b": {"c": 2}, "l": [{}]});
        let mut out = Vec::new();
        unknown_fields(&sent, &known, "", &mut out);
        assert_eq!(out, vec!["b.x", "l[0].y"]);
    }
}
