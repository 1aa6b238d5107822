//! GET of one object and of lists: selectors, `limit`/`continue` paging, and the Table and
//! PartialObjectMetadata representations.

use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};

use super::{respond, Ctx};
use crate::codec::{representation, Representation};
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

/// Reads every matching object of the request's scope, with the list revision.
pub(crate) async fn list_objects(ctx: &Ctx) -> ApiResult<(Vec<(String, Value)>, i64)> {
    let filter = Filter::from_ctx(ctx)?;
    crate::rest::list(ctx, &|obj| filter.matches(obj)).await
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
    let objs: Vec<Value> = items.into_iter().map(|(_, o)| o).collect();
    let out = match rep {
        Representation::Table => {
            let mut t = table::to_table(&ctx.def, &objs, &list_rv, ctx.query.get("includeObject"));
            t["metadata"] = metadata;
            t
        }
        Representation::Metadata => json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": metadata,
            "items": objs.iter().map(objects::partial_metadata).collect::<Vec<_>>(),
        }),
        Representation::Object => {
            let list = json!({
                "kind": objects::list_kind(&ctx.def),
                "apiVersion": ctx.def.api_version(),
                "metadata": metadata,
                "items": objs,
            });
            return Ok(crate::codec::json_response_as_stored(200, &list));
        }
    };
    Ok(respond(200, &out))
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
