//! Create: identity checks (kind, apiVersion, namespace), generated names, field validation,
//! defaults, mutating admission, validation, validating admission, managedFields, then the
//! store write — and the admission half ([`admit`]) that every write shares.

use std::sync::Arc;

use keelson_admission::Operation;
use keelson_store::Error as StoreError;
use serde_json::{json, Value};

use super::{WriteOptions, Written};
use crate::admission::{self, StoreApi};
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, meta_mut, meta_str, to_store};
use crate::registry::ResourceDef;
use crate::validation::FieldValidation;
use crate::{patch, strategy, validation, ApiServer};

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
    opts: &WriteOptions,
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
    strategy::prepare_create(def, &mut obj, &opts.user);
    let allocation = match strategy::is_service(def) {
        true => strategy::service::allocate(api, &mut obj, None).await?,
        false => strategy::service::Allocation::none(),
    };
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
    allocation.commit();
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
    opts: &WriteOptions,
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
    crate::auth::escalation::check(api, def, &obj, &opts.user)?;
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
