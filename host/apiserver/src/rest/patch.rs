//! Patch: JSON patch, JSON merge patch, strategic merge patch and server-side apply (which
//! creates the object when it is absent), each ending in an update of the stored object.
//! Retries on write conflicts like Kubernetes unless the patch pins a resourceVersion.

use keelson_store::KeyValue;
use serde_json::Value;

use super::{create_object, update_object, Scope, WriteOptions, Written, RETRIES};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store};
use crate::patch;

/// A decoded patch document.
pub(crate) enum Patch {
    /// `application/json-patch+json` (RFC 6902).
    Json(json_patch::Patch),
    /// `application/merge-patch+json` (RFC 7386).
    Merge(Value),
    /// `application/strategic-merge-patch+json`.
    Strategic(Value),
    /// `application/apply-patch+yaml`: server-side apply.
    Apply(Apply),
}

/// A server-side apply request.
pub(crate) struct Apply {
    /// The applied configuration.
    pub(crate) config: Value,
    /// `fieldManager`.
    pub(crate) manager: String,
    /// `force`: take over fields other managers own.
    pub(crate) force: bool,
}

/// Patches the named object; returns the HTTP code (201 when apply created it) and the result.
pub(crate) async fn patch(
    ctx: &Scope,
    doc: &Patch,
    opts: &WriteOptions,
) -> ApiResult<(u16, Written)> {
    if let Patch::Apply(a) = doc {
        return apply(ctx, a, opts).await;
    }
    for _ in 0..RETRIES {
        let old_kv = ctx.stored().await?;
        let current = from_store(&ctx.def, &old_kv)?;
        let patched = apply_patch(ctx, doc, &current)?;
        if let Some(done) = write_patched(ctx, &old_kv, &current, patched, opts, true).await? {
            return Ok((200, done));
        }
    }
    Err(ctx.conflict())
}

/// Applies a JSON, merge or strategic merge patch to the current object.
fn apply_patch(ctx: &Scope, doc: &Patch, current: &Value) -> ApiResult<Value> {
    match doc {
        Patch::Json(ops) => {
            let mut doc = current.clone();
            json_patch::patch(&mut doc, ops).map_err(|e| {
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
        Patch::Merge(p) => {
            let mut doc = current.clone();
            json_patch::merge(&mut doc, p);
            Ok(doc)
        }
        Patch::Strategic(p) => {
            if ctx.def.typed.is_none() {
                return Err(ApiError::unsupported_media_type(
                    "application/strategic-merge-patch+json (not supported for custom resources)",
                ));
            }
            patch::strategic_merge(current, p, &ctx.def.group, &ctx.def.kind)
                .map_err(ApiError::bad_request)
        }
        Patch::Apply(_) => unreachable!("server-side apply is handled by `apply`"),
    }
}

/// Writes a patched object; `None` = lost a race, retry.
async fn write_patched(
    ctx: &Scope,
    old_kv: &KeyValue,
    current: &Value,
    patched: Value,
    opts: &WriteOptions,
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
async fn apply(ctx: &Scope, a: &Apply, opts: &WriteOptions) -> ApiResult<(u16, Written)> {
    let applied = &a.config;
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
    let (manager, force) = (&a.manager, a.force);
    for _ in 0..RETRIES {
        let now = objects::now();
        let merge = |current: Option<&Value>, force: bool| {
            patch::apply(
                current,
                applied,
                manager,
                force,
                &ctx.def.group,
                &ctx.def.kind,
                &now,
            )
        };
        let Some(old_kv) = ctx.api.store.get(&ctx.key()).await? else {
            let created = merge(None, force).map_err(|c| conflicts(ctx, c))?;
            let mut opts = opts.clone();
            opts.manager = manager.clone();
            opts.managed_fields = created.pointer("/metadata/managedFields").cloned();
            match create_object(&ctx.api, &ctx.def, ctx.namespace(), created, &opts).await {
                Ok(w) => return Ok((201, w)),
                Err(e) if e.reason == "AlreadyExists" => continue,
                Err(e) => return Err(e),
            }
        };
        let current = from_store(&ctx.def, &old_kv)?;
        // Malformed configuration is a 400, whoever owns the fields it touches.
        if !force {
            if let Ok(mut forced) = merge(Some(&current), true) {
                crate::validation::check_fields(
                    &ctx.def,
                    &mut forced,
                    crate::validation::FieldValidation::Ignore,
                )?;
            }
        }
        let merged = merge(Some(&current), force).map_err(|c| conflicts(ctx, c))?;
        if let Some(done) = write_patched(ctx, &old_kv, &current, merged, opts, false).await? {
            return Ok((200, done));
        }
    }
    Err(ctx.conflict())
}

/// The 409 that `kubectl apply --server-side` prints on ownership conflicts.
fn conflicts(ctx: &Scope, list: Vec<patch::ApplyConflict>) -> ApiError {
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
