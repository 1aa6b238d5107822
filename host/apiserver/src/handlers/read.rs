//! GET of one object and of lists: selectors, `limit`/`continue` paging, and the Table and
//! PartialObjectMetadata representations.

use std::sync::Arc;

use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::{respond, Ctx};
use crate::codec::{representation, Representation};
use crate::decoded::Decoded;
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store};
use crate::selector::{FieldSelector, LabelSelector};
use crate::table;

pub(crate) async fn get(ctx: Ctx) -> ApiResult<Response> {
    let rep = representation(&ctx.headers)?;
    let kv = ctx.stored().await?;
    let obj = from_store(&ctx.def, &kv)?;
    let out = match rep {
        Representation::Object => return Ok(crate::codec::json_response_as_stored(200, &obj)),
        Representation::Table => table::to_table(
            &ctx.def,
            &[obj],
            &kv.mod_revision.to_string(),
            ctx.query.get("includeObject"),
        ),
        Representation::Metadata => objects::partial_metadata(&obj),
    };
    Ok(respond(200, &out))
}

/// Selectors of a list or watch request.
pub(crate) struct Filter {
    labels: LabelSelector,
    fields: FieldSelector,
}

impl Filter {
    pub(crate) fn from_ctx(ctx: &Ctx) -> ApiResult<Self> {
        let labels = LabelSelector::parse(ctx.query.get("labelSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse labelSelector: {e}")))?;
        let fields = FieldSelector::parse(ctx.query.get("fieldSelector").unwrap_or_default())
            .map_err(|e| ApiError::bad_request(format!("unable to parse fieldSelector: {e}")))?;
        Ok(Self { labels, fields })
    }
    pub(crate) fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches(obj)
    }
}

/// Reads every matching object of the request's scope, with the list revision: from the watch
/// cache, as Kubernetes 1.33 serves lists ([`list_revision`] says how fresh).
pub(crate) async fn list_objects(ctx: &Ctx) -> ApiResult<(Vec<(String, Arc<Decoded>)>, i64)> {
    let filter = Filter::from_ctx(ctx)?;
    crate::rest::list(ctx, list_revision(ctx), &|obj| filter.matches(obj)).await
}

/// How fresh a list must be: `resourceVersion` unset (or a `continue` token) is a consistent
/// read, `0` any state the cache holds, `n` at least revision `n` (NotOlderThan).
fn list_revision(ctx: &Ctx) -> Option<i64> {
    if ctx.query.get("continue").is_some_and(|t| !t.is_empty()) {
        return None;
    }
    match ctx.query.get("resourceVersion").unwrap_or_default() {
        "" => None,
        rv => rv.parse::<i64>().ok().filter(|n| *n >= 0),
    }
}

pub(crate) async fn list(ctx: Ctx) -> ApiResult<Response> {
    let rep = representation(&ctx.headers)?;
    let (mut items, rev) = list_objects(&ctx).await?;
    let mut list_rv = rev.to_string();
    if let Some(token) = ctx.query.get("continue").filter(|t| !t.is_empty()) {
        let (token_rv, start) = decode_continue(token)?;
        items.retain(|(k, _)| k.as_str() >= start.as_str());
        list_rv = token_rv;
    }
    let mut metadata = json!({"resourceVersion": list_rv});
    if let Some(limit) = ctx.query.number("limit").filter(|l| *l > 0) {
        let limit = limit as usize;
        if items.len() > limit {
            let next = items[limit].0.clone();
            let remaining = items.len() - limit;
            items.truncate(limit);
            metadata["continue"] = json!(encode_continue(&list_rv, &next));
            metadata["remainingItemCount"] = json!(remaining);
        }
    }
    let objs: Vec<Arc<Decoded>> = items.into_iter().map(|(_, o)| o).collect();
    let out = match rep {
        Representation::Table => {
            let values: Vec<Value> = objs.iter().map(|o| o.value.clone()).collect();
            let mut t =
                table::to_table(&ctx.def, &values, &list_rv, ctx.query.get("includeObject"));
            t["metadata"] = metadata;
            t
        }
        Representation::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": objs.iter().map(|o| objects::partial_metadata(&o.value)).collect::<Vec<_>>(),
        }),
        Representation::Object => {
            let body = list_json(
                &objects::list_kind(&ctx.def),
                &ctx.def.api_version(),
                &metadata,
                &objs,
            );
            return Ok(crate::codec::json_bytes_response(200, body));
        }
    };
    Ok(respond(200, &out))
}

/// A list in JSON, its items spliced in from their shared encodings: the bytes
/// `serde_json` writes for `{"kind","apiVersion","metadata","items"}`, without re-encoding
/// any item.
fn list_json(kind: &str, api_version: &str, metadata: &Value, items: &[Arc<Decoded>]) -> Vec<u8> {
    let size: usize = items.iter().map(|o| o.json.len() + 1).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(b"{\"kind\":");
    let _ = serde_json::to_writer(&mut body, kind);
    body.extend_from_slice(b",\"apiVersion\":");
    let _ = serde_json::to_writer(&mut body, api_version);
    body.extend_from_slice(b",\"metadata\":");
    let _ = serde_json::to_writer(&mut body, metadata);
    body.extend_from_slice(b",\"items\":[");
    for (i, o) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(&o.json);
    }
    body.extend_from_slice(b"]}\n");
    body
}

fn encode_continue(rv: &str, start: &str) -> String {
    let raw = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": start}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<(String, String)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_str).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    Ok((rv.to_string(), start.to_string()))
}
