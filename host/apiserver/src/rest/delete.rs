//! Delete of one object: preconditions, propagationPolicy (the `orphan` and
//! `foregroundDeletion` finalizers the garbage collector acts on), finalizers and
//! deletionTimestamp, namespaces' spec finalizers, dryRun, graceful pod deletion (a pod
//! running on an existing node is marked with `deletionTimestamp` and
//! `deletionGracePeriodSeconds`; the node's agent removes the object), and validating
//! admission of the delete.

use keelson_admission::Operation;
use keelson_store::KeyValue;
use serde_json::{json, Value};

use super::{conflict, Scope, RETRIES};
use crate::admission::{self, StoreApi};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store, meta_mut};
use crate::{strategy, UserInfo};

/// Kubernetes' finalizer for orphaning dependents.
const ORPHAN: &str = "orphan";
/// Kubernetes' finalizer for foreground cascading deletion.
const FOREGROUND: &str = "foregroundDeletion";

/// What a DELETE asks for (query and DeleteOptions body).
pub(crate) struct DeleteOptions {
    /// `propagationPolicy` (or the older `orphanDependents`).
    pub(crate) propagation: Option<String>,
    /// `preconditions.uid`.
    pub(crate) uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub(crate) resource_version: Option<String>,
    /// `dryRun=All`.
    pub(crate) dry_run: bool,
    /// `gracePeriodSeconds`.
    pub(crate) grace_period: Option<i64>,
}

/// The grace period a pod delete gets, or None when the pod goes at once: grace 0, not bound,
/// finished, or bound to a node that no longer exists (Kubernetes' pod GC removes those).
async fn pod_grace(ctx: &Scope, pod: &Value, opts: &DeleteOptions) -> ApiResult<Option<i64>> {
    let spec_grace = pod
        .pointer("/spec/terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    let grace = opts.grace_period.or(spec_grace).unwrap_or(30);
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    let (true, Some(node), false) = (
        grace > 0,
        node,
        matches!(phase, Some("Succeeded" | "Failed")),
    ) else {
        return Ok(None);
    };
    let node_exists = ctx
        .api
        .store
        .get(&format!("/registry/core/nodes/{node}"))
        .await?
        .is_some();
    Ok(node_exists.then_some(grace))
}

/// Marks a pod for graceful deletion (or shortens a running grace period).
async fn delete_pod_gracefully(
    ctx: &Scope,
    kv: &KeyValue,
    mut obj: Value,
    grace: i64,
    opts: &DeleteOptions,
) -> ApiResult<(u16, Value)> {
    let current = obj
        .pointer("/metadata/deletionGracePeriodSeconds")
        .and_then(Value::as_i64);
    if objects::is_deleting(&obj) && current.is_some_and(|c| c <= grace) {
        return Ok((202, obj));
    }
    let at = chrono::Utc::now() + chrono::Duration::seconds(grace);
    let meta = meta_mut(&mut obj);
    meta.insert(
        "deletionTimestamp".into(),
        json!(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
    );
    meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    mark_deleting(ctx, kv, obj, opts).await
}

/// Deletes (or starts deleting) one stored object; returns the response code and body.
pub(crate) async fn delete_one(
    ctx: &Scope,
    kv: KeyValue,
    opts: &DeleteOptions,
) -> ApiResult<(u16, Value)> {
    let mut obj = from_store(&ctx.def, &kv)?;
    if let Some(uid) = &opts.uid {
        if objects::meta_str(&obj, "uid") != Some(uid.as_str()) {
            return Err(ApiError::conflict_message(
                format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    objects::meta_str(&obj, "uid").unwrap_or_default()
                ),
                json!({"name": ctx.name(), "kind": ctx.def.plural}),
            ));
        }
    }
    if let Some(rv) = &opts.resource_version {
        if *rv != kv.mod_revision.to_string() {
            return Err(ApiError::conflict_message(
                format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}", kv.mod_revision),
                json!({"name": ctx.name(), "kind": ctx.def.plural}),
            ));
        }
    }
    if ctx.def.kind == "Pod" {
        if let Some(grace) = pod_grace(ctx, &obj, opts).await? {
            return delete_pod_gracefully(ctx, &kv, obj, grace, opts).await;
        }
    }
    let mut finalizers = objects::finalizers(&obj);
    match opts.propagation.as_deref() {
        Some("Orphan") if !finalizers.iter().any(|f| f == ORPHAN) => finalizers.push(ORPHAN.into()),
        Some("Foreground") if !finalizers.iter().any(|f| f == FOREGROUND) => {
            finalizers.push(FOREGROUND.into())
        }
        _ => {}
    }
    let spec_finalizers = obj
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if finalizers.is_empty() && !spec_finalizers {
        if opts.dry_run {
            return Ok((200, obj));
        }
        let gone = ctx
            .api
            .store
            .delete(&kv.key, kv.mod_revision)
            .await
            .map_err(|e| conflict(ctx, e))?;
        objects::set_rv(&mut obj, gone.mod_revision);
        strategy::after_write(&ctx.api, &ctx.def, &obj, true).await;
        return Ok((200, obj));
    }
    // Graceful: mark the object; controllers and finalizers finish the job.
    let already = objects::is_deleting(&obj);
    let meta = meta_mut(&mut obj);
    if !already {
        meta.insert("deletionTimestamp".into(), json!(objects::now()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    meta.insert("finalizers".into(), json!(finalizers));
    if ctx.def.kind == "Namespace" {
        obj["status"]["phase"] = json!("Terminating");
    }
    mark_deleting(ctx, &kv, obj, opts).await
}

/// Stores `obj` (the stored `kv` with deletionTimestamp set) unless dry-run: 202 Accepted, the
/// deletion has begun.
async fn mark_deleting(
    ctx: &Scope,
    kv: &KeyValue,
    mut obj: Value,
    opts: &DeleteOptions,
) -> ApiResult<(u16, Value)> {
    if opts.dry_run {
        return Ok((202, obj));
    }
    let rev = ctx
        .api
        .store
        .update(&kv.key, objects::to_store(&obj), kv.mod_revision)
        .await
        .map_err(|e| conflict(ctx, e))?;
    objects::set_rv(&mut obj, rev.mod_revision);
    strategy::after_write(&ctx.api, &ctx.def, &obj, false).await;
    Ok((202, obj))
}

/// Validating admission for deleting the stored `kv`, then the delete; no retry.
pub(crate) async fn delete_object(
    ctx: &Scope,
    kv: KeyValue,
    opts: &DeleteOptions,
    user: &UserInfo,
) -> ApiResult<(u16, Value)> {
    let old = from_store(&ctx.def, &kv)?;
    let attrs = admission::attributes(
        &ctx.def,
        Operation::Delete,
        None,
        None,
        Some(old),
        user,
        opts.dry_run,
    );
    ctx.api
        .admission
        .validate(&attrs, &StoreApi(ctx.api.clone()))
        .await
        .map_err(admission::denied)?;
    delete_one(ctx, kv, opts).await
}

/// Deletes the named object, retrying races unless the request set preconditions; returns
/// the HTTP code (200 deleted, 202 deletion started) and the body.
pub(crate) async fn delete(
    ctx: &Scope,
    opts: &DeleteOptions,
    user: &UserInfo,
) -> ApiResult<(u16, Value)> {
    for _ in 0..RETRIES {
        let kv = ctx.stored().await?;
        match delete_object(ctx, kv, opts, user).await {
            Err(e)
                if e.reason == "Conflict"
                    && opts.resource_version.is_none()
                    && opts.uid.is_none() =>
            {
                continue
            }
            done => return done,
        }
    }
    Err(ctx.conflict())
}

/// Deletes every object of the scope that `keep` selects (each through admission; objects
/// that vanish or change meanwhile are skipped); returns them and the list revision.
pub(crate) async fn delete_collection(
    ctx: &Scope,
    keep: &(dyn Fn(&Value) -> bool + Sync),
    opts: &DeleteOptions,
    user: &UserInfo,
) -> ApiResult<(Vec<Value>, i64)> {
    let (items, rev) = super::list(ctx, None, keep).await?;
    let mut deleted = Vec::new();
    for (key, _) in items {
        let Some(kv) = ctx.api.store.get(&key).await? else {
            continue;
        };
        match delete_object(ctx, kv, opts, user).await {
            Ok((_, obj)) => deleted.push(obj),
            Err(e) if e.code == 404 || e.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
    Ok((deleted, rev))
}
