//! Create (POST) and update (PUT), and the create/update pipelines that patch, apply, the
//! subresources and in-process bootstrap share: decode checks, defaults, validation,
//! admission, managedFields, then a conditional store write.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use keelson_store::{Error as StoreError, KeyValue};
use serde_json::{json, Value};

use super::{respond, Ctx};
use crate::admission::{self, StoreApi};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store, meta_mut, meta_str, to_store};
use crate::registry::ResourceDef;
use crate::validation::FieldValidation;
use crate::{codec, patch, strategy, validation, ApiServer, UserInfo};
use keelson_admission::Operation;

/// Per-request write options.
#[derive(Clone)]
pub(crate) struct CreateOptions {
    pub(crate) dry_run: bool,
    pub(crate) validation: FieldValidation,
    pub(crate) manager: String,
    pub(crate) user: UserInfo,
    /// managedFields to store instead of tracking this write as an update (server-side apply).
    pub(crate) managed_fields: Option<Value>,
}

impl CreateOptions {
    pub(crate) fn from_ctx(ctx: &Ctx) -> ApiResult<Self> {
        Ok(Self {
            dry_run: ctx.query.dry_run(),
            validation: FieldValidation::parse(ctx.query.get("fieldValidation"))?,
            manager: ctx.field_manager(),
            user: ctx.user.clone(),
            managed_fields: None,
        })
    }
}

/// A write's result plus the warnings to send back.
pub(crate) struct Written {
    pub(crate) object: Value,
    pub(crate) warnings: Vec<String>,
}

impl Written {
    pub(crate) fn respond(self, code: u16) -> Response {
        let mut r = respond(code, &self.object);
        for w in self.warnings {
            if let Ok(v) =
                http::HeaderValue::from_str(&format!("299 - \"{}\"", w.replace('"', "'")))
            {
                r.headers_mut().append(http::header::WARNING, v);
            }
        }
        r
    }
}

/// Fills and checks `apiVersion`/`kind` and the namespace against the request.
pub(crate) fn check_identity(
    def: &ResourceDef,
    ns: Option<&str>,
    obj: &mut Value,
) -> ApiResult<()> {
    for field in ["kind", "apiVersion"] {
        if obj
            .get(field)
            .is_some_and(|v| !v.is_string() && !v.is_null())
        {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {field} must be a string",
                def.kind, def.version, def.kind
            )));
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        Some(k) if !k.is_empty() && k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind of the object ({k}) does not match the kind of the request ({})",
                def.kind
            )))
        }
        _ => obj["kind"] = json!(def.kind),
    }
    match obj.get("apiVersion").and_then(Value::as_str) {
        Some(v) if !v.is_empty() && v != def.api_version() => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({})",
                def.api_version()
            )))
        }
        _ => obj["apiVersion"] = json!(def.api_version()),
    }
    let sent_ns = meta_str(obj, "namespace").map(String::from);
    let meta = meta_mut(obj);
    match (def.namespaced, ns, sent_ns.as_deref()) {
        (true, Some(ns), Some(sent)) if !sent.is_empty() && sent != ns => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ))
        }
        (true, Some(ns), _) => {
            meta.insert("namespace".into(), json!(ns));
        }
        (true, None, _) => return Err(ApiError::bad_request("a namespace is required for a namespaced resource")),
        (false, _, _) => {
            meta.remove("namespace");
        }
    }
    Ok(())
}

/// The create pipeline; `ns` is the request's namespace.
pub(crate) async fn create_object(
    api: &Arc<ApiServer>,
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    opts: &CreateOptions,
) -> ApiResult<Written> {
    check_identity(def, ns, &mut obj)?;
    let meta = meta_mut(&mut obj);
    let has_name = meta
        .get("name")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    if !has_name {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(prefix) if !prefix.is_empty() => {
                let name = format!("{prefix}{}", objects::name_suffix());
                meta.insert("name".into(), json!(name));
            }
            _ => {
                return Err(ApiError::invalid(
                    &def.group,
                    &def.kind,
                    "",
                    vec![crate::error::FieldError::required("metadata.name")],
                ))
            }
        }
    }
    let warnings = validation::check_fields(def, &mut obj, opts.validation)?;
    strategy::prepare_create(api, def, &mut obj, &opts.user).await?;
    let mut obj = admit(api, def, Operation::Create, None, obj, None, opts).await?;
    let now = objects::now();
    let managed = match &opts.managed_fields {
        Some(m) => m.clone(),
        None => patch::track_update(None, &obj, &opts.manager, &def.api_version(), &now),
    };
    meta_mut(&mut obj).insert("managedFields".into(), managed);
    let name = objects::name(&obj).to_string();
    if opts.dry_run {
        return Ok(Written {
            object: obj,
            warnings,
        });
    }
    let key = def.key(meta_str(&obj, "namespace"), &name);
    let kv = api
        .store
        .create(&key, to_store(&obj))
        .await
        .map_err(|e| match e {
            StoreError::AlreadyExists(_) => {
                ApiError::already_exists(&def.group, &def.plural, &name)
            }
            other => other.into(),
        })?;
    objects::set_rv(&mut obj, kv.mod_revision);
    strategy::after_write(api, def, &obj, false).await;
    Ok(Written {
        object: obj,
        warnings,
    })
}

/// Mutating admission, schema and strategy validation of the result, then validating
/// admission; returns the object to store.
pub(crate) async fn admit(
    api: &Arc<ApiServer>,
    def: &ResourceDef,
    operation: Operation,
    subresource: Option<&str>,
    obj: Value,
    old: Option<&Value>,
    opts: &CreateOptions,
) -> ApiResult<Value> {
    let store_api = StoreApi(api.clone());
    let mut attrs = admission::attributes(
        def,
        operation,
        subresource,
        Some(obj),
        old.cloned(),
        &opts.user,
        opts.dry_run,
    );
    api.admission
        .admit(&mut attrs, &store_api)
        .await
        .map_err(admission::denied)?;
    let mut obj = attrs.object.take().unwrap_or_default();
    // What mutating plugins added is decoded (and pruned) like the client's input.
    validation::check_fields(def, &mut obj, FieldValidation::Ignore)?;
    let errors = strategy::validate(def, &obj, old);
    if !errors.is_empty() {
        return Err(ApiError::invalid(
            &def.group,
            &def.kind,
            objects::name(&obj),
            errors,
        ));
    }
    attrs.object = Some(obj);
    api.admission
        .validate(&attrs, &store_api)
        .await
        .map_err(admission::denied)?;
    Ok(attrs.object.unwrap_or_default())
}

pub(crate) async fn create(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let obj = codec::decode_object(&ctx.headers, &body)?;
    let opts = CreateOptions::from_ctx(&ctx)?;
    let written = create_object(&ctx.api, &ctx.def, ctx.namespace(), obj, &opts).await?;
    Ok(written.respond(201))
}

/// Writes `new` over the stored `old`: managedFields, validation, admission, then a store update
/// conditional on `old`'s revision, or a delete when a terminating object lost its last finalizer.
pub(crate) async fn update_object(
    ctx: &Ctx,
    old_kv: &KeyValue,
    mut new: Value,
    opts: &CreateOptions,
    track_fields: bool,
) -> ApiResult<Written> {
    let def = &ctx.def;
    let old = from_store(def, old_kv)?;
    check_identity(def, ctx.namespace(), &mut new)?;
    let warnings = validation::check_fields(def, &mut new, opts.validation)?;
    strategy::prepare_update(def, ctx.info.subresource.as_deref(), &old, &mut new);
    let sub = ctx.info.subresource.as_deref();
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
    strategy::after_write(&ctx.api, def, &new, false).await;
    Ok(Written {
        object: new,
        warnings,
    })
}

/// Maps store errors of a conditional write on the request's object.
pub(crate) fn conflict(ctx: &Ctx, e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(_) => ctx.conflict(),
        StoreError::NotFound(_) => ctx.not_found(),
        other => other.into(),
    }
}

pub(crate) async fn update(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let new = codec::decode_object(&ctx.headers, &body)?;
    let sent_name = meta_str(&new, "name").unwrap_or_default();
    if sent_name != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent_name}) does not match the name on the URL ({})",
            ctx.name()
        )));
    }
    let sent_rv = objects::sent_rv(&new)?;
    let opts = CreateOptions::from_ctx(&ctx)?;
    // An unconditional update (no resourceVersion) is retried on races, like Kubernetes'
    // GuaranteedUpdate; a conditional one reports the conflict.
    for _ in 0..RETRIES {
        let Some(old_kv) = ctx.api.store.get(&ctx.key()).await? else {
            return Err(ctx.not_found());
        };
        if sent_rv != 0 && sent_rv != old_kv.mod_revision {
            break;
        }
        match update_object(&ctx, &old_kv, new.clone(), &opts, true).await {
            Ok(written) => return Ok(written.respond(200).into_response()),
            Err(e) if sent_rv == 0 && e.reason == "Conflict" && e.details.is_some() => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ctx.conflict())
}

/// How often a write that lost a race is retried before reporting the conflict.
pub(crate) const RETRIES: usize = 16;
