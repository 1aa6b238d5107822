//! PATCH: decodes the patch document by its media type (JSON patch, JSON merge patch,
//! strategic merge patch, server-side apply with `fieldManager` and `force`) and hands it to
//! the REST layer.

use axum::response::Response;
use bytes::Bytes;
use serde_json::Value;

use super::Ctx;
use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::rest::{self, Apply, Patch, WriteOptions};

/// The four patch media types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PatchType {
    Json,
    Merge,
    Strategic,
    Apply,
}

fn patch_type(ct: &str) -> ApiResult<PatchType> {
    Ok(match ct {
        "application/json-patch+json" => PatchType::Json,
        "application/merge-patch+json" => PatchType::Merge,
        "application/strategic-merge-patch+json" => PatchType::Strategic,
        "application/apply-patch+yaml"
        | "application/apply-patch+json"
        | "application/apply-patch+cbor" => PatchType::Apply,
        other => return Err(ApiError::unsupported_media_type(other)),
    })
}

/// Decodes a patch body.
fn decode(ctx: &Ctx, kind: PatchType, body: &[u8]) -> ApiResult<Patch> {
    let bad = |e: String| ApiError::bad_request(e);
    Ok(match kind {
        PatchType::Json => Patch::Json(
            serde_json::from_slice(body).map_err(|e| bad(format!("invalid JSON patch: {e}")))?,
        ),
        PatchType::Merge => {
            let p: Value = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(bad("a merge patch must be a JSON object".into()));
            }
            Patch::Merge(p)
        }
        PatchType::Strategic => Patch::Strategic(codec::decode_json(body)?),
        PatchType::Apply => {
            let config = codec::decode_yaml(body)?;
            let manager = ctx
                .query
                .get("fieldManager")
                .ok_or_else(|| {
                    bad("PATCH with an apply patch requires the fieldManager parameter".into())
                })?
                .to_string();
            Patch::Apply(Apply {
                config,
                manager,
                force: ctx.query.flag("force"),
            })
        }
    })
}

pub(crate) async fn patch(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let kind = patch_type(&codec::content_type(&ctx.headers))?;
    let opts = WriteOptions::from_ctx(&ctx)?;
    let doc = decode(&ctx, kind, &body)?;
    let (code, written) = rest::patch(&ctx, &doc, &opts).await?;
    Ok(written.respond(code))
}
