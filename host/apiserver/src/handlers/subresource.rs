//! Subresources other than `status`: `scale` (autoscaling/v1 Scale over the owner's replica
//! paths), `pods/binding` (what a scheduler posts), `pods/eviction` and
//! `serviceaccounts/token` (TokenRequest).

use axum::response::Response;
use bytes::Bytes;
use http::Method;
use serde_json::{json, Value};

use super::{respond, Ctx};
use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::objects::{self, from_store};
use crate::registry::ResourceDef;
use crate::rest::{update_object, WriteOptions};

/// Does this kind serve subresource `s` through this module?
pub(crate) fn serves(def: &ResourceDef, s: &str) -> bool {
    (s == "scale" && def.scale.is_some())
        || (def.kind == "Pod" && matches!(s, "binding" | "eviction"))
        || (def.kind == "ServiceAccount" && def.group.is_empty() && s == "token")
}

pub(crate) async fn handle(
    ctx: Ctx,
    method: Method,
    sub: &str,
    body: Bytes,
) -> ApiResult<Response> {
    match (sub, method) {
        ("scale", Method::GET) => {
            let kv = ctx.stored().await?;
            Ok(respond(
                200,
                &to_scale(&ctx.def, &from_store(&ctx.def, &kv)?),
            ))
        }
        ("scale", Method::PUT) | ("scale", Method::PATCH) => scale_write(ctx, body).await,
        ("binding", Method::POST) => bind(ctx, body).await,
        ("eviction", Method::POST) => evict(ctx, body).await,
        ("token", Method::POST) => {
            let req = codec::decode_object(&ctx.headers, &body)?;
            let ns = ctx.namespace().unwrap_or_default().to_string();
            let out = crate::auth::tokens::request(&ctx.api, &ns, ctx.name(), req).await?;
            Ok(respond(201, &out))
        }
        (s, m) => Err(ApiError::method_not_allowed(
            m.as_str(),
            &format!("{}/{s}", ctx.def.plural),
        )),
    }
}

fn pointer(path: &str) -> String {
    format!("/{}", path.trim_start_matches('.').replace('.', "/"))
}

/// The autoscaling/v1 Scale view of an object.
fn to_scale(def: &ResourceDef, obj: &Value) -> Value {
    let (spec, status, selector) = def.scale.clone().unwrap_or_default();
    let replicas = obj.pointer(&pointer(&spec)).cloned().unwrap_or(json!(0));
    let current = obj.pointer(&pointer(&status)).cloned().unwrap_or(json!(0));
    let mut sel = selector
        .as_deref()
        .and_then(|p| obj.pointer(&pointer(p)))
        .and_then(Value::as_str)
        .map(String::from);
    if sel.is_none() {
        if let Some(labels) = obj
            .pointer("/spec/selector/matchLabels")
            .and_then(Value::as_object)
        {
            sel = Some(
                labels
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        } else if let Some(labels) = obj.pointer("/spec/selector").and_then(Value::as_object) {
            sel = Some(
                labels
                    .iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| format!("{k}={v}")))
                    .collect::<Vec<_>>()
                    .join(","),
            );
        }
    }
    let m = obj.get("metadata").cloned().unwrap_or(json!({}));
    let mut meta = json!({});
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = m.get(k) {
            meta[k] = v.clone();
        }
    }
    let mut status_obj = json!({"replicas": current});
    if let Some(s) = sel {
        status_obj["selector"] = json!(s);
    }
    json!({"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": meta, "spec": {"replicas": replicas}, "status": status_obj})
}

async fn scale_write(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let opts = WriteOptions::from_ctx(&ctx)?;
    let ct = codec::content_type(&ctx.headers);
    for _ in 0..crate::rest::RETRIES {
        let kv = ctx.stored().await?;
        let obj = from_store(&ctx.def, &kv)?;
        let current = to_scale(&ctx.def, &obj);
        let wanted = match ct.as_str() {
            "application/json-patch+json" => {
                let ops: json_patch::Patch = serde_json::from_slice(&body)
                    .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
                let mut doc = current.clone();
                json_patch::patch(&mut doc, &ops)
                    .map_err(|e| ApiError::bad_request(e.to_string()))?;
                doc
            }
            "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                let mut doc = current.clone();
                json_patch::merge(&mut doc, &codec::decode_json(&body)?);
                doc
            }
            _ => {
                let sent = codec::decode_object(&ctx.headers, &body)?;
                let rv = objects::sent_rv(&sent)?;
                if rv != 0 && rv != kv.mod_revision {
                    return Err(ctx.conflict());
                }
                sent
            }
        };
        let replicas = wanted
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if replicas < 0 {
            return Err(ApiError::invalid(
                "autoscaling",
                "Scale",
                ctx.name(),
                vec![crate::error::FieldError::invalid(
                    "spec.replicas",
                    &json!(replicas),
                    "must be greater than or equal to 0",
                )],
            ));
        }
        let mut updated = obj.clone();
        let (spec_path, _, _) = ctx.def.scale.clone().unwrap_or_default();
        set_path(&mut updated, &spec_path, json!(replicas));
        match update_object(&ctx, &kv, updated, &opts, true).await {
            Ok(w) => return Ok(respond(200, &to_scale(&ctx.def, &w.object))),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ctx.conflict())
}

fn set_path(obj: &mut Value, path: &str, v: Value) {
    let mut cur = obj;
    let parts: Vec<&str> = path.trim_start_matches('.').split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            cur[*p] = v;
            return;
        }
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = json!({});
        }
        cur = &mut cur[*p];
    }
}

fn success() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201})
}

async fn bind(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let binding = codec::decode_object(&ctx.headers, &body)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let Some(node) = node.map(String::from) else {
        return Err(ApiError::invalid(
            "",
            "Binding",
            ctx.name(),
            vec![crate::error::FieldError::required("target.name")],
        ));
    };
    let opts = WriteOptions::from_ctx(&ctx)?;
    for _ in 0..crate::rest::RETRIES {
        let kv = ctx.stored().await?;
        let mut pod = from_store(&ctx.def, &kv)?;
        if objects::is_deleting(&pod) {
            return Err(ApiError::conflict_message(
                format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    ctx.name()
                ),
                json!({"name": ctx.name(), "kind": "pods"}),
            ));
        }
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(ApiError::conflict_message(
                format!(
                    "pod {} is already assigned to node \"{existing}\"",
                    ctx.name()
                ),
                json!({"name": ctx.name(), "kind": "pods"}),
            ));
        }
        pod["spec"]["nodeName"] = json!(node);
        let cond = json!({"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": objects::now()});
        let conds = pod["status"]["conditions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mut conds: Vec<Value> = conds
            .into_iter()
            .filter(|c| c["type"] != "PodScheduled")
            .collect();
        conds.push(cond);
        pod["status"]["conditions"] = json!(conds);
        let mut bctx = crate::rest::Scope {
            api: ctx.api.clone(),
            def: ctx.def.clone(),
            info: ctx.info.clone(),
        };
        bctx.info.subresource = Some("binding".into());
        match update_object(&bctx, &kv, pod, &opts, true).await {
            Ok(_) => return Ok(respond(201, &success())),
            Err(e) if e.reason == "Conflict" => continue,
            Err(e) => return Err(e),
        }
    }
    Err(ctx.conflict())
}

/// The PodDisruptionBudgets in the pod's namespace whose selector matches it.
async fn matching_pdbs(ctx: &Ctx, pod: &Value) -> ApiResult<Vec<keelson_store::KeyValue>> {
    let ns = ctx.namespace().unwrap_or("default");
    let (items, _) = ctx
        .api
        .store
        .list(&format!("/registry/policy/poddisruptionbudgets/{ns}/"))
        .await?;
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    Ok(items
        .into_iter()
        .filter(|kv| {
            let Ok(pdb) = serde_json::from_slice::<Value>(&kv.value) else {
                return false;
            };
            let selector = pdb.pointer("/spec/selector");
            let has = |field: &str| {
                selector.and_then(|s| s.get(field)).is_some_and(|v| {
                    v.as_object().is_some_and(|m| !m.is_empty())
                        || v.as_array().is_some_and(|a| !a.is_empty())
                })
            };
            // As Kubernetes' eviction REST: an empty selector matches no pod.
            (has("matchLabels") || has("matchExpressions"))
                && keelson_apimachinery::selector::LabelSelector::from_object(selector)
                    .is_ok_and(|sel| sel.matches(labels))
        })
        .collect())
}

/// Takes one disruption from the pod's budget, or refuses with 429 when none is left.
async fn take_disruption(ctx: &Ctx, pod: &Value) -> ApiResult<()> {
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    if objects::is_deleting(pod) || matches!(phase, Some("Succeeded" | "Failed" | "Pending")) {
        return Ok(());
    }
    for _ in 0..crate::rest::RETRIES {
        let pdbs = matching_pdbs(ctx, pod).await?;
        let [kv] = pdbs.as_slice() else {
            if pdbs.len() > 1 {
                return Err(ApiError { code: 500, reason: crate::error::Reason::InternalError, message: "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.".into(), details: None });
            }
            return Ok(());
        };
        let mut pdb: Value =
            serde_json::from_slice(&kv.value).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let allowed = pdb
            .pointer("/status/disruptionsAllowed")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        if allowed <= 0 {
            return Err(ApiError {
                code: 429,
                reason: crate::error::Reason::TooManyRequests,
                message: "Cannot evict pod as it would violate the pod's disruption budget.".into(),
                details: Some(
                    json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
                    "The disruption budget {} needs {} healthy pods and has {} currently",
                    objects::name(&pdb),
                    pdb.pointer("/status/desiredHealthy").and_then(Value::as_i64).unwrap_or(0),
                    pdb.pointer("/status/currentHealthy").and_then(Value::as_i64).unwrap_or(0))}]}),
                ),
            });
        }
        if ctx.query.dry_run() {
            return Ok(());
        }
        pdb["status"]["disruptionsAllowed"] = json!(allowed - 1);
        pdb["status"]["disruptedPods"][ctx.name()] = json!(objects::now());
        match ctx
            .api
            .store
            .update(&kv.key, objects::to_store(&pdb), kv.mod_revision)
            .await
        {
            Ok(_) => return Ok(()),
            Err(keelson_store::Error::Conflict(_)) => continue,
            Err(e) => return Err(crate::rest::conflict(ctx, e)),
        }
    }
    Err(ctx.conflict())
}

/// `pods/eviction`: checks the pod's PodDisruptionBudget (429 when its budget is used up),
/// then deletes the pod as DELETE would, gracefully when it runs on a node.
async fn evict(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let eviction = codec::decode_object(&ctx.headers, &body)?;
    if objects::name(&eviction) != ctx.name() {
        return Err(ApiError::bad_request(format!(
            "name in URL ({}) does not match name in Eviction object ({})",
            ctx.name(),
            objects::name(&eviction)
        )));
    }
    let opts =
        super::delete::options_from(&ctx, eviction.get("deleteOptions").unwrap_or(&json!({})))?;
    let kv = ctx.stored().await?;
    let pod = from_store(&ctx.def, &kv)?;
    take_disruption(&ctx, &pod).await?;
    crate::rest::delete_one(&ctx, kv, &opts).await?;
    Ok(respond(201, &success()))
}
