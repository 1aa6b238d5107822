//! API errors and their Kubernetes `Status` bodies: one place maps every failure to the code,
//! `reason` and message that clients (kubectl, client-go) act on.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
pub use keelson_apimachinery::Reason;
use serde_json::{json, Map, Value};

/// A failed API request, rendered as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status code.
    pub code: u16,
    /// Machine-readable reason (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, …).
    pub reason: Reason,
    /// Human-readable message.
    pub message: String,
    /// `details` of the Status (name, group, kind, causes), if any.
    pub details: Option<Value>,
}

/// Result type of the API server.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    fn new(code: u16, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, Reason::BadRequest, message)
    }
    /// 401 Unauthorized.
    pub fn unauthorized() -> Self {
        Self::new(401, Reason::Unauthorized, "Unauthorized")
    }
    /// 403 Forbidden.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(403, Reason::Forbidden, message)
    }
    /// 403 Forbidden for a request on a resource, as Kubernetes' `NewForbidden`:
    /// `pods "x" is forbidden: <why>`, with the group, resource and name in `details`.
    pub fn forbidden_resource(group: &str, resource: &str, name: &str, why: &str) -> Self {
        let message = match (name.is_empty(), resource.is_empty()) {
            (false, _) => format!(
                "{} {name:?} is forbidden: {why}",
                qualified(group, resource)
            ),
            (true, false) => format!("{} is forbidden: {why}", qualified(group, resource)),
            (true, true) => format!("forbidden: {why}"),
        };
        Self::new(403, Reason::Forbidden, message)
            .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 404 NotFound for a named object: `configmaps "x" not found`.
    pub fn not_found(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::new(
            404,
            Reason::NotFound,
            format!("{qualified} \"{name}\" not found"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 404 for a path that names no resource.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            404,
            Reason::NotFound,
            format!("the server could not find the requested resource ({path})"),
        )
        .with_details(json!({}))
    }
    /// 405 MethodNotAllowed.
    pub fn method_not_allowed(verb: &str, resource: &str) -> Self {
        Self::new(405, Reason::MethodNotAllowed, format!("the server does not allow this method on the requested resource ({verb} {resource})"))
    }
    /// 406 NotAcceptable.
    pub fn not_acceptable(message: impl Into<String>) -> Self {
        Self::new(406, Reason::NotAcceptable, message)
    }
    /// 409 AlreadyExists.
    pub fn already_exists(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::new(
            409,
            Reason::AlreadyExists,
            format!("{qualified} \"{name}\" already exists"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 409 Conflict on a stale resourceVersion.
    pub fn conflict(group: &str, resource: &str, name: &str) -> Self {
        let qualified = qualified(group, resource);
        Self::new(
            409,
            Reason::Conflict,
            format!("Operation cannot be fulfilled on {qualified} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
        )
        .with_details(json!({"name": name, "group": group, "kind": resource}))
    }
    /// 409 Conflict with a custom message (apply conflicts, …).
    pub fn conflict_message(message: impl Into<String>, details: Value) -> Self {
        Self::new(409, Reason::Conflict, message).with_details(details)
    }
    /// 410 Expired (resourceVersion too old).
    pub fn expired(message: impl Into<String>) -> Self {
        Self::new(410, Reason::Expired, message)
    }
    /// 413 RequestEntityTooLarge.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(413, Reason::RequestEntityTooLarge, message)
    }
    /// 415 UnsupportedMediaType.
    pub fn unsupported_media_type(ct: &str) -> Self {
        Self::new(415, Reason::UnsupportedMediaType, format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {ct:?})"))
    }
    /// 422 Invalid with field causes: `ConfigMap "x" is invalid: data: Too long: …`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<FieldError>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let summary: Vec<String> = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        let message = if summary.len() == 1 {
            format!("{qualified} \"{name}\" is invalid: {}", summary[0])
        } else {
            format!(
                "{qualified} \"{name}\" is invalid: [{}]",
                summary.join(", ")
            )
        };
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
            .collect();
        Self::new(422, Reason::Invalid, message)
            .with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }
    /// 500 InternalError: says little; the cause is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            500,
            Reason::InternalError,
            "Internal error occurred: something went wrong; see the server log",
        )
    }
    /// 503 ServiceUnavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, Reason::ServiceUnavailable, message)
    }

    fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The `Status` object, its fields in the order of Kubernetes' `metav1.Status` (kind,
    /// apiVersion, metadata, status, message, reason, details, code) and, as its encoder's
    /// `omitempty` does, without empty `details` fields (`group` of the core group).
    pub fn status(&self) -> Value {
        let mut s = Map::new();
        s.insert("kind".into(), json!("Status"));
        s.insert("apiVersion".into(), json!("v1"));
        s.insert("metadata".into(), json!({}));
        s.insert("status".into(), json!("Failure"));
        if !self.message.is_empty() {
            s.insert("message".into(), json!(self.message));
        }
        s.insert("reason".into(), json!(self.reason.as_str()));
        if let Some(Value::Object(d)) = &self.details {
            let details: Map<String, Value> = d
                .iter()
                .filter(|(_, v)| !matches!(v, Value::String(x) if x.is_empty()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            s.insert("details".into(), Value::Object(details));
        }
        s.insert("code".into(), json!(self.code));
        Value::Object(s)
    }
}

/// One invalid field, for [`ApiError::invalid`].
#[derive(Debug, Clone)]
pub struct FieldError {
    /// Field path, e.g. `metadata.name`.
    pub field: String,
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, `FieldValueTooLong`, …
    pub reason: &'static str,
    /// What is wrong.
    pub message: String,
}

impl FieldError {
    /// An invalid value: `Invalid value: "X": why`.
    pub fn invalid(field: impl Into<String>, value: &Value, why: impl std::fmt::Display) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Self {
            field: field.into(),
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {shown}: {why}"),
        }
    }
    /// A missing value: `Required value`.
    pub fn required(field: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueRequired",
            message: "Required value".into(),
        }
    }
    /// A forbidden change or value.
    pub fn forbidden(field: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {why}"),
        }
    }
    /// A value that is too long.
    pub fn too_long(field: impl Into<String>, why: impl std::fmt::Display) -> Self {
        Self {
            field: field.into(),
            reason: "FieldValueTooLong",
            message: format!("Too long: {why}"),
        }
    }
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_string()
    } else {
        format!("{resource}.{group}")
    }
}

impl From<keelson_store::Error> for ApiError {
    fn from(e: keelson_store::Error) -> Self {
        match e {
            keelson_store::Error::Expired { requested, oldest } => {
                ApiError::expired(format!("too old resource version: {requested} ({oldest})"))
            }
            keelson_store::Error::Closed => ApiError::unavailable("the store is shutting down"),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = crate::codec::json_bytes(&self.status());
        (
            code,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_bytes_match_kubernetes_encoder() {
        let body = ApiError::not_found("", "configmaps", "x").into_response();
        let bytes =
            futures::executor::block_on(axum::body::to_bytes(body.into_body(), 4096)).unwrap();
        assert_eq!(
            std::str::from_utf8(&bytes).unwrap(),
            "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{},\"status\":\"Failure\",\"message\":\"configmaps \\\"x\\\" not found\",\"reason\":\"NotFound\",\"details\":{\"name\":\"x\",\"kind\":\"configmaps\"},\"code\":404}\n"
        );
        let apps = ApiError::conflict("apps", "deployments", "d").status();
        assert_eq!(apps["details"]["group"], "apps");
        let keys: Vec<&String> = apps.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "kind",
                "apiVersion",
                "metadata",
                "status",
                "message",
                "reason",
                "details",
                "code"
            ]
        );
    }
}
