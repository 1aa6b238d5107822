//! Review kinds, answered and never stored: SelfSubjectAccessReview, SubjectAccessReview and
//! LocalSubjectAccessReview (`kubectl auth can-i`) from the same authorizers that guard every
//! request; SelfSubjectRulesReview (`kubectl auth can-i --list`) from the RBAC rules the user
//! holds; SelfSubjectReview (`kubectl auth whoami`); TokenReview.

use axum::response::Response;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{respond, Ctx};
use crate::codec;
use crate::error::{ApiError, ApiResult};
use crate::UserInfo;
use keelson_auth::Attributes;

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The attributes a review's spec asks about.
fn asked(spec: &Value) -> ApiResult<Attributes> {
    if let Some(r) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let mut a = Attributes::resource(
            &text(r, "verb"),
            &text(r, "namespace"),
            &text(r, "group"),
            &text(r, "resource"),
            &text(r, "name"),
        );
        a.subresource = text(r, "subresource");
        return Ok(a);
    }
    if let Some(n) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes::path(&text(n, "verb"), &text(n, "path")));
    }
    Err(ApiError::invalid(
        "authorization.k8s.io",
        "SubjectAccessReview",
        "",
        vec![crate::error::FieldError::required(
            "spec.resourceAttributes",
        )],
    ))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn decide(ctx: &Ctx, user: &UserInfo, a: &Attributes) -> Value {
    let decision = ctx.api.auth.authorize(user, a);
    let mut status = json!({"allowed": decision.allowed()});
    if !decision.reason().is_empty() {
        status["reason"] = json!(decision.reason());
    }
    if matches!(decision, keelson_auth::Decision::Deny(_)) {
        status["denied"] = json!(true);
    }
    status
}

fn rules_review(ctx: &Ctx, namespace: &str) -> Value {
    let rules = ctx.api.auth.rbac.rules_for(&ctx.user, namespace);
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    for r in rules {
        if let Some(urls) = r.non_resource_urls.filter(|u| !u.is_empty()) {
            non_resource_rules.push(json!({"verbs": r.verbs, "nonResourceURLs": urls}));
        }
        if r.resources.as_ref().is_some_and(|v| !v.is_empty()) {
            let mut rule = json!({"verbs": r.verbs, "apiGroups": r.api_groups.unwrap_or_default(), "resources": r.resources});
            if let Some(names) = r.resource_names.filter(|n| !n.is_empty()) {
                rule["resourceNames"] = json!(names);
            }
            resource_rules.push(rule);
        }
    }
    json!({"resourceRules": resource_rules, "nonResourceRules": non_resource_rules, "incomplete": false})
}

pub(crate) async fn review(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let mut obj = codec::decode_object(&ctx.headers, &body)?;
    crate::rest::check_identity(&ctx.def, ctx.namespace(), &mut obj)?;
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    match ctx.def.kind.as_str() {
        "SelfSubjectReview" => {
            obj["status"] =
                json!({"userInfo": {"username": ctx.user.name, "groups": ctx.user.groups}})
        }
        "SelfSubjectRulesReview" => {
            obj["status"] = rules_review(&ctx, &text(&spec, "namespace"));
        }
        "SelfSubjectAccessReview" => {
            let a = asked(&spec)?;
            obj["status"] = decide(&ctx, &ctx.user, &a);
        }
        "SubjectAccessReview" | "LocalSubjectAccessReview" => {
            let a = asked(&spec)?;
            if ctx.def.kind == "LocalSubjectAccessReview"
                && a.resource_request
                && Some(a.namespace.as_str()) != ctx.namespace()
            {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {}",
                    ctx.namespace().unwrap_or_default()
                )));
            }
            let user = UserInfo {
                name: text(&spec, "user"),
                groups: strings(spec.get("groups")),
            };
            obj["status"] = decide(&ctx, &user, &a);
        }
        "TokenReview" => obj = crate::auth::tokens::review(&ctx.api, obj).await?,
        other => return Err(ApiError::internal(format!("no review for {other}"))),
    }
    Ok(respond(201, &obj))
}
