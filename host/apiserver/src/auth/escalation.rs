//! RBAC's escalation prevention: a user may create or update a Role or ClusterRole only with
//! rules it already holds (unless it may `escalate` roles), and a RoleBinding or
//! ClusterRoleBinding only to a role whose rules it holds (unless it may `bind` that role) —
//! Kubernetes' message and 403 included.

use serde_json::Value;

use k8s_openapi::api::rbac::v1::PolicyRule;
use keelson_auth::Attributes;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::{ApiServer, UserInfo};

const GROUP: &str = "rbac.authorization.k8s.io";

fn allowed(api: &ApiServer, user: &UserInfo, a: &Attributes) -> bool {
    api.auth.authorize(user, a).allowed()
}

/// Refuses a write of a role or binding that would grant `user` more than it holds.
pub(crate) fn check(
    api: &ApiServer,
    def: &ResourceDef,
    obj: &Value,
    user: &UserInfo,
) -> ApiResult<()> {
    if def.group != GROUP || keelson_auth::is_master(user) {
        return Ok(());
    }
    let namespace = obj
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let forbid = |message: String| ApiError::forbidden_resource(GROUP, &def.plural, name, &message);
    match def.kind.as_str() {
        "Role" | "ClusterRole" => {
            if allowed(
                api,
                user,
                &Attributes::resource("escalate", namespace, GROUP, &def.plural, name),
            ) {
                return Ok(());
            }
            let rules: Vec<PolicyRule> = match obj.get("rules") {
                Some(r) if !r.is_null() => serde_json::from_value(r.clone())
                    .map_err(|e| ApiError::bad_request(format!("decoding rules: {e}")))?,
                _ => vec![],
            };
            match api.auth.rbac.uncovered(user, namespace, &rules) {
                None => Ok(()),
                Some(rule) => Err(forbid(format!(
                    "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{rule}",
                    user.name, user.groups
                ))),
            }
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let kind = obj
                .pointer("/roleRef/kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = obj
                .pointer("/roleRef/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = if kind == "ClusterRole" {
                "clusterroles"
            } else {
                "roles"
            };
            let role_ns = if kind == "ClusterRole" { "" } else { namespace };
            if allowed(
                api,
                user,
                &Attributes::resource("bind", namespace, GROUP, plural, role),
            ) || (kind == "ClusterRole"
                && allowed(
                    api,
                    user,
                    &Attributes::resource("bind", "", GROUP, plural, role),
                ))
            {
                return Ok(());
            }
            let rules = api
                .auth
                .rbac
                .role_rules(role_ns, kind, role)
                .ok_or_else(|| forbid(format!("{kind} {role:?} not found")))?;
            match api.auth.rbac.uncovered(user, namespace, &rules) {
                None => Ok(()),
                Some(rule) => Err(forbid(format!(
                    "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{rule}",
                    user.name, user.groups
                ))),
            }
        }
        _ => Ok(()),
    }
}
