//! PATCH: JSON patch, JSON merge patch, strategic merge patch and server-side apply (which
//! creates the object when it is absent). Retries on write conflicts like Kubernetes unless the
//! patch pins a resourceVersion.

use axum::response::Response;
use bytes::Bytes;
use keelson_store::KeyValue;
use serde_json::Value;

use super::write::{create_object, update_object, CreateOptions, Written};
use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store};
use crate::{codec, patch};

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

/// Applies a non-apply patch to the current object.
fn apply_patch(ctx: &Ctx, kind: PatchType, current: &Value, body: &[u8]) -> ApiResult<Value> {
    let bad = |e: String| ApiError::bad_request(e);
    match kind {
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| bad(format!("invalid JSON patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| {
                ApiError::invalid(
                    &ctx.def.group,
                    &ctx.def.kind,
                    ctx.name(),
                    vec![crate::error::FieldError {
                        field: "patch".into(),
                        reason: "FieldValueInvalid",
                        message: e.to_string(),
                    }],
                )
            })?;
            Ok(doc)
        }
        PatchType::Merge => {
            let p: Value = codec::decode_json(body)?;
            if !p.is_object() {
                return Err(bad("a merge patch must be a JSON object".into()));
            }
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &p);
            Ok(doc)
        }
        PatchType::Strategic => {
            let p: Value = codec::decode_json(body)?;
            if ctx.def.typed.is_none() {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json (not supported for custom resources)",
                ));
            }
            patch::strategic_merge(current, &p, &ctx.def.group, &ctx.def.kind).map_err(bad)
        }
        PatchType::Apply => unreachable!("apply is handled separately"),
    }
}

pub(crate) async fn patch(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let kind = patch_type(&codec::content_type(&ctx.headers))?;
    let opts = CreateOptions::from_ctx(&ctx)?;
    if kind == PatchType::Apply {
        return apply(ctx, body, opts).await;
    }
    for _ in 0..super::write::RETRIES {
        let old_kv = ctx.stored().await?;
        let current = from_store(&ctx.def, &old_kv)?;
        let patched = apply_patch(&ctx, kind, &current, &body)?;
        if let Some(done) = write_patched(&ctx, &old_kv, &current, patched, &opts, true).await? {
            return Ok(done.respond(200));
        }
    }
    Err(ctx.conflict())
}

/// Writes a patched object; `None` = lost a race, retry.
async fn write_patched(
    ctx: &Ctx,
    old_kv: &KeyValue,
    current: &Value,
    patched: Value,
    opts: &CreateOptions,
    track_fields: bool,
) -> ApiResult<Option<Written>> {
    let pinned = objects::meta_str(&patched, "resourceVersion")
        .filter(|rv| *rv != objects::meta_str(current, "resourceVersion").unwrap_or_default())
        .map(String::from);
    if pinned.is_some() {
        return Err(ctx.conflict());
    }
    if objects::name(&patched) != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({})",
            objects::name(&patched),
            ctx.name()
        )));
    }
    match update_object(ctx, old_kv, patched, opts, track_fields).await {
        Ok(w) => Ok(Some(w)),
        Err(e)
            if e.code == 409
                && e.reason == "Conflict"
                && !e.message.starts_with("Apply failed") =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Server-side apply: create when absent, else merge with field ownership.
async fn apply(ctx: Ctx, body: Bytes, opts: CreateOptions) -> ApiResult<Response> {
    let applied = codec::decode_yaml(&body)?;
    if !applied.is_object() {
        return Err(ApiError::bad_request("an apply patch must be an object"));
    }
    for field in ["apiVersion", "kind"] {
        if applied
            .get(field)
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            return Err(ApiError::bad_request(format!(
                "invalid object type: {field} must be set in an apply configuration"
            )));
        }
    }
    let manager = ctx
        .query
        .get("fieldManager")
        .ok_or_else(|| {
            ApiError::bad_request("PATCH with an apply patch requires the fieldManager parameter")
        })?
        .to_string();
    let force = ctx.query.flag("force");
    for _ in 0..super::write::RETRIES {
        let now = objects::now();
        let Some(old_kv) = ctx.api.store.get(&ctx.key()).await? else {
            let created = patch::apply(
                None,
                &applied,
                &manager,
                force,
                &ctx.def.group,
                &ctx.def.kind,
                &now,
            )
            .map_err(|c| conflicts(&ctx, c))?;
            let mut opts = opts.clone();
            opts.manager = manager.clone();
            opts.managed_fields = created.pointer("/metadata/managedFields").cloned();
            match create_object(&ctx.api, &ctx.def, ctx.namespace(), created, &opts).await {
                Ok(w) => return Ok(w.respond(201)),
                Err(e) if e.reason == "AlreadyExists" => continue,
                Err(e) => return Err(e),
            }
        };
        let current = from_store(&ctx.def, &old_kv)?;
        // Malformed configuration is a 400, whoever owns the fields it touches.
        if !force {
            if let Ok(mut forced) = patch::apply(
                Some(&current),
                &applied,
                &manager,
                true,
                &ctx.def.group,
                &ctx.def.kind,
                &now,
            ) {
                crate::validation::check_fields(
                    &ctx.def,
                    &mut forced,
                    crate::validation::FieldValidation::Ignore,
                )?;
            }
        }
        let merged = patch::apply(
            Some(&current),
            &applied,
            &manager,
            force,
            &ctx.def.group,
            &ctx.def.kind,
            &now,
        )
        .map_err(|c| conflicts(&ctx, c))?;
        if let Some(done) = write_patched(&ctx, &old_kv, &current, merged, &opts, false).await? {
            return Ok(done.respond(200));
        }
    }
    Err(ctx.conflict())
}

/// The 409 that `kubectl apply --server-side` prints on ownership conflicts.
fn conflicts(ctx: &Ctx, list: Vec<patch::ApplyConflict>) -> ApiError {
    let lines: Vec<String> = list
        .iter()
        .map(|c| format!("conflict with \"{}\": {}", c.manager, c.field))
        .collect();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let causes: Vec<Value> = list
        .iter()
        .map(|c| serde_json::json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": c.field}))
        .collect();
    ApiError::conflict_message(
        message,
        serde_json::json!({"name": ctx.name(), "group": ctx.def.group, "kind": ctx.def.plural, "causes": causes}),
    )
}
