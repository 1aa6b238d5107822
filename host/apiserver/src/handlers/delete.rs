//! DELETE of one object or a collection: decodes DeleteOptions (query and body) and hands each
//! delete to the REST layer.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{read, respond, Ctx};
use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::rest::{self, DeleteOptions};

fn options(ctx: &Ctx, body: &[u8]) -> ApiResult<DeleteOptions> {
    let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        codec::decode_object(&ctx.headers, body)?
    };
    options_from(ctx, &body)
}

/// Delete options from the query and a DeleteOptions body (also an Eviction's `deleteOptions`).
pub(super) fn options_from(ctx: &Ctx, body: &Value) -> ApiResult<DeleteOptions> {
    let from_body = |k: &str| body.get(k).and_then(Value::as_str).map(String::from);
    let propagation = ctx
        .query
        .get("propagationPolicy")
        .map(String::from)
        .or_else(|| from_body("propagationPolicy"))
        .or_else(|| {
            match (
                ctx.query.get("orphanDependents"),
                body.get("orphanDependents").and_then(Value::as_bool),
            ) {
                (Some("true"), _) | (_, Some(true)) => Some("Orphan".into()),
                (Some("false"), _) | (_, Some(false)) => Some("Background".into()),
                _ => None,
            }
        });
    if let Some(p) = &propagation {
        if !matches!(p.as_str(), "Orphan" | "Background" | "Foreground") {
            return Err(ApiError::bad_request(format!("propagationPolicy: Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\"")));
        }
    }
    let dry_run = ctx.query.dry_run()
        || body
            .get("dryRun")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v == "All"));
    Ok(DeleteOptions {
        propagation,
        uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(String::from),
        resource_version: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(String::from),
        dry_run,
        grace_period: ctx
            .query
            .get("gracePeriodSeconds")
            .and_then(|g| g.parse().ok())
            .or_else(|| body.get("gracePeriodSeconds").and_then(Value::as_i64)),
    })
}

pub(crate) async fn delete(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let opts = options(&ctx, &body)?;
    let (code, obj) = rest::delete(&ctx, &opts, &ctx.user).await?;
    Ok(respond(code, &obj))
}

pub(crate) async fn delete_collection(ctx: Ctx) -> ApiResult<Response> {
    let opts = options(&ctx, b"")?;
    let filter = read::Filter::from_ctx(&ctx)?;
    let keep = |obj: &Value| filter.matches(obj);
    let (deleted, rev) = rest::delete_collection(&ctx, &keep, &opts, &ctx.user).await?;
    let list = json!({
        "kind": objects::list_kind(&ctx.def),
        "apiVersion": ctx.def.api_version(),
        "metadata": {"resourceVersion": rev.to_string()},
        "items": deleted,
    });
    Ok(respond(200, &list))
}
