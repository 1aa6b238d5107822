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

/// A JSON response.
pub(crate) fn json_response(code: u16, value: &Value) -> Response {
    let code = http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::OK);
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
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
