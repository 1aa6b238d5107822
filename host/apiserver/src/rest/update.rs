//! Update: a whole new object over the stored one (PUT, status, finalize, and every patch and
//! subresource write in the end): validation, admission, managedFields, then a store write
//! conditional on the revision read — or the delete, when a terminating object lost its last
//! finalizer. Unconditional updates are retried on races like Kubernetes' GuaranteedUpdate.

use keelson_admission::Operation;
use keelson_store::{Error as StoreError, KeyValue};
use serde_json::Value;

use super::{admit, check_identity, Scope, WriteOptions, Written, RETRIES};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store, meta_mut, to_store};
use crate::{patch, strategy, validation};

/// Writes `new` over the stored `old`: managedFields, validation, admission, then a store update
/// conditional on `old`'s revision, or a delete when a terminating object lost its last finalizer.
pub(crate) async fn update_object(
    ctx: &Scope,
    old_kv: &KeyValue,
    mut new: Value,
    opts: &WriteOptions,
    track_fields: bool,
) -> ApiResult<Written> {
    let def = &ctx.def;
    let old = from_store(def, old_kv)?;
    check_identity(def, ctx.namespace(), &mut new)?;
    let warnings = validation::check_fields(def, &mut new, opts.validation)?;
    strategy::prepare_update(def, ctx.info.subresource.as_deref(), &old, &mut new);
    let sub = ctx.info.subresource.as_deref();
    let allocation = match strategy::is_service(def) && sub.is_none() {
        true => strategy::service::allocate(&ctx.api, &mut new, Some(&old)).await?,
        false => strategy::service::Allocation::none(),
    };
    let mut new = admit(&ctx.api, def, Operation::Update, sub, new, Some(&old), opts).await?;
    if track_fields {
        let managed = patch::track_update(
            Some(&old),
            &new,
            &opts.manager,
            &def.api_version(),
            &objects::now(),
        );
        meta_mut(&mut new).insert("managedFields".into(), managed);
    }
    if opts.dry_run {
        objects::set_rv(&mut new, old_kv.mod_revision);
        return Ok(Written {
            object: new,
            warnings,
        });
    }
    let spec_finalizers = new
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if objects::is_deleting(&new)
        && objects::finalizers(&new).is_empty()
        && !(def.kind == "Namespace" && spec_finalizers)
    {
        let kv = ctx
            .api
            .store
            .delete(&old_kv.key, old_kv.mod_revision)
            .await
            .map_err(|e| conflict(ctx, e))?;
        objects::set_rv(&mut new, kv.mod_revision);
        strategy::after_write(&ctx.api, def, &new, true).await;
        return Ok(Written {
            object: new,
            warnings,
        });
    }
    if to_store(&new) == old_kv.value {
        objects::set_rv(&mut new, old_kv.mod_revision);
        return Ok(Written {
            object: new,
            warnings,
        });
    }
    let kv = ctx
        .api
        .store
        .update(&old_kv.key, to_store(&new), old_kv.mod_revision)
        .await
        .map_err(|e| conflict(ctx, e))?;
    objects::set_rv(&mut new, kv.mod_revision);
    allocation.commit();
    if strategy::is_service(def) {
        strategy::service::release_dropped(&ctx.api, &old, &new).await;
    }
    strategy::after_write(&ctx.api, def, &new, false).await;
    Ok(Written {
        object: new,
        warnings,
    })
}

/// Maps store errors of a conditional write on the request's object.
pub(crate) fn conflict(ctx: &Scope, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ctx.conflict(),
        StoreError::NotFound(_) => ctx.not_found(),
        other => other.into(),
    }
}

/// Replaces the object with `new` (PUT); without a resourceVersion in `new` the write is
/// unconditional and retried on races.
pub(crate) async fn update(ctx: &Scope, new: Value, opts: &WriteOptions) -> ApiResult<Written> {
    let sent_name = objects::meta_str(&new, "name").unwrap_or_default();
    if sent_name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let sent_rv = objects::sent_rv(&new)?;
    for _ in 0..RETRIES {
        let Some(old_kv) = ctx.api.store.get(&ctx.key()).await? else {
            return Err(ctx.not_found());
        };
        if sent_rv != 0 && sent_rv != old_kv.mod_revision {
            break;
        }
        match update_object(ctx, &old_kv, new.clone(), opts, true).await {
            Ok(written) => return Ok(written),
            Err(e) if sent_rv == 0 && e.reason == "Conflict" && e.details.is_some() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ctx.conflict())
}
