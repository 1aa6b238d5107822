//! Review kinds, answered and never stored: SelfSubjectAccessReview / SubjectAccessReview (until
//! RBAC exists every authenticated user may do everything, so access is allowed),
//! SelfSubjectRulesReview, and SelfSubjectReview (`kubectl auth whoami`).

use axum::response::Response;
use bytes::Bytes;
use serde_json::json;

use super::{respond, Ctx};
use crate::codec;
use crate::error::ApiResult;

pub(crate) fn review(ctx: Ctx, body: Bytes) -> ApiResult<Response> {
    let mut obj = codec::decode_object(&ctx.headers, &body)?;
    crate::rest::check_identity(&ctx.def, None, &mut obj)?;
    let user = json!({"username": ctx.user.name, "groups": ctx.user.groups});
    match ctx.def.kind.as_str() {
        "SelfSubjectReview" => obj["status"] = json!({"userInfo": user}),
        "SelfSubjectRulesReview" => {
            obj["status"] = json!({
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
                "incomplete": false,
            })
        }
        _ => {
            obj["status"] = json!({"allowed": true, "reason": "Keelson allows every authenticated request until RBAC is enforced"})
        }
    }
    Ok(respond(201, &obj))
}
