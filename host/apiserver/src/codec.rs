//! Wire formats: request bodies in JSON, YAML or Kubernetes protobuf; responses in JSON, as a
//! `Table` or as `PartialObjectMetadata` when the Accept header asks for it.

use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use serde_json::Value;

use crate::error::{ApiError, ApiResult};

/// What representation the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Representation {
    /// The objects themselves.
    Object,
    /// `as=Table` (meta.k8s.io/v1 or v1beta1).
    Table,
    /// `as=PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// Reads the Accept header: the first acceptable option wins, as in Kubernetes.
pub(crate) fn representation(headers: &HeaderMap) -> ApiResult<Representation> {
    let Some(accept) = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Representation::Object);
    };
    let mut saw_unusable = false;
    for option in accept.split(',') {
        let mut parts = option.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let as_ = params.iter().find(|(k, _)| *k == "as").map(|(_, v)| *v);
        let usable_media = matches!(
            media,
            "application/json"
                | "*/*"
                | "application/*"
                | "application/yaml"
                | "application/vnd.kubernetes.protobuf"
                | ""
        );
        if !usable_media {
            saw_unusable = true;
            continue;
        }
        match as_ {
            None => return Ok(Representation::Object),
            Some("Table") => return Ok(Representation::Table),
            Some("PartialObjectMetadata") | Some("PartialObjectMetadataList") => {
                return Ok(Representation::Metadata)
            }
            Some(_) => saw_unusable = true,
        }
    }
    if saw_unusable {
        return Err(ApiError::not_acceptable(format!("only the following media types are accepted: application/json, application/yaml, application/vnd.kubernetes.protobuf (asked for {accept:?})")));
    }
    Ok(Representation::Object)
}

/// The media type of a request body.
pub(crate) fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default()
}

/// Decodes an object body (create/update) by its content type; missing = JSON.
pub(crate) fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    let value = match ct.as_str() {
        "" | "application/json" | "*/*" => decode_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" => decode_yaml(body)?,
        "application/vnd.kubernetes.protobuf" => crate::protobuf_body(body)?,
        other => return Err(ApiError::unsupported_media_type(other)),
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(value)
}

/// Parses JSON, with a 400 on malformed input.
pub(crate) fn decode_json(body: &[u8]) -> ApiResult<Value> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))
}

/// Parses YAML (one document), with a 400 on malformed input.
pub(crate) fn decode_yaml(body: &[u8]) -> ApiResult<Value> {
    let text =
        std::str::from_utf8(body).map_err(|_| ApiError::bad_request("YAML body is not UTF-8"))?;
    let v: Value = serde_saphyr::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
    Ok(v)
}

/// JSON bytes as Kubernetes' encoder writes them: compact, API objects in Kubernetes' field
/// order ([`crate::protobuf::kubernetes_order`]), with a trailing newline.
pub(crate) fn json_bytes(value: &Value) -> Vec<u8> {
    let mut body = if value.get("kind").is_some() && value.get("apiVersion").is_some() {
        let mut ordered = value.clone();
        crate::protobuf::kubernetes_order(&mut ordered);
        serde_json::to_vec(&ordered)
    } else {
        serde_json::to_vec(value)
    }
    .unwrap_or_default();
    body.push(b'\n');
    body
}

/// A JSON response for objects read from the store, which are stored in Kubernetes' field
/// order already ([`crate::objects::to_store`]): serialised as they are, without the deep copy
/// and reordering of [`json_response`] (the hot path of gets and lists).
pub(crate) fn json_response_as_stored(code: u16, value: &Value) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    let mut body = serde_json::to_vec(value).unwrap_or_default();
    body.push(b'\n');
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A response of JSON bytes encoded by the caller (newline included).
pub(crate) fn json_bytes_response(code: u16, body: Vec<u8>) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// A JSON response.
pub(crate) fn json_response(code: u16, value: &Value) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    let body = json_bytes(value);
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// The metadata-only form of an object (`PartialObjectMetadata`) or list
/// (`PartialObjectMetadataList`); a `Status` (or any value without `metadata`) is unchanged.
pub(crate) fn to_metadata(value: Value) -> Value {
    if value.get("kind").and_then(Value::as_str) == Some("Status")
        || value.get("metadata").is_none()
    {
        return value;
    }
    match value.get("items").and_then(Value::as_array) {
        Some(items) => serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": value["metadata"],
            "items": items.iter().map(crate::objects::partial_metadata).collect::<Vec<_>>(),
        }),
        None => crate::objects::partial_metadata(&value),
    }
}

/// Re-encodes a handler's JSON response in its metadata-only form (writes and deletes asked for
/// `as=PartialObjectMetadata`); status code and headers other than the length are kept.
pub(crate) async fn metadata_only(response: Response) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, usize::MAX).await else {
        return ApiError::internal("reading a response body failed").into_response();
    };
    let body = match serde_json::from_slice::<Value>(&bytes) {
        Ok(value) => json_bytes(&to_metadata(value)).into(),
        Err(_) => bytes,
    };
    parts.headers.remove(http::header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> ApiResult<Representation> {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, v.parse().unwrap());
        representation(&h)
    }

    #[test]
    fn negotiates() {
        assert_eq!(accept("application/json").unwrap(), Representation::Object);
        assert_eq!(
            accept("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json").unwrap(),
            Representation::Table
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1").unwrap(),
            Representation::Metadata
        );
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, */*").unwrap(),
            Representation::Object
        );
        assert_eq!(accept("text/html").unwrap_err().code, 406);
    }

    #[test]
    fn metadata_only_forms() {
        let pod = serde_json::json!({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": "p"}, "spec": {}});
        let m = to_metadata(pod.clone());
        assert_eq!(m["kind"], "PartialObjectMetadata");
        assert_eq!(m["metadata"]["name"], "p");
        assert!(m.get("spec").is_none());
        let list = serde_json::json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "3"}, "items": [pod]});
        let ml = to_metadata(list);
        assert_eq!(ml["kind"], "PartialObjectMetadataList");
        assert_eq!(ml["items"][0]["kind"], "PartialObjectMetadata");
        let status = serde_json::json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"});
        assert_eq!(to_metadata(status.clone()), status);
    }

    #[test]
    fn decodes_bodies() {
        let mut h = HeaderMap::new();
        assert!(decode_object(&h, br#"{"a":1}"#).is_ok());
        assert_eq!(decode_object(&h, b"{").unwrap_err().code, 400);
        assert_eq!(decode_object(&h, b"[1]").unwrap_err().code, 400);
        h.insert(
            http::header::CONTENT_TYPE,
            "application/yaml".parse().unwrap(),
        );
        assert_eq!(decode_object(&h, b"a: 1\nb: [x]").unwrap()["b"][0], "x");
        h.insert(http::header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert_eq!(decode_object(&h, b"a").unwrap_err().code, 415);
    }
}
