//! ServiceAccount tokens through the API: the TokenRequest subresource
//! (`serviceaccounts/<name>/token`, what `kubectl create token` posts), TokenReview, the
//! issuer's discovery documents, and the check that a token's bound objects (its
//! ServiceAccount, Pod or Secret, by uid) still exist — a token dies with its pod.

use std::sync::Arc;

use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestStatus, TokenReview, TokenReviewStatus, UserInfo as ReviewUser,
};
use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use keelson_auth::authn::serviceaccount::{BoundClaims, ObjectRef};
use kube::api::Api;
use kube::Resource;

use crate::error::{ApiError, ApiResult, FieldError};
use crate::ApiServer;

fn loopback(api: &ApiServer) -> Result<kube::Client, String> {
    api.loopback
        .get()
        .cloned()
        .ok_or_else(|| "the server is still starting".to_string())
}

/// Fetches `name` in `namespace` and checks its uid and that it is not being deleted.
async fn live<K>(client: &kube::Client, namespace: &str, r: &ObjectRef) -> Result<K, String>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&());
    let obj = Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(&r.name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{kind} {namespace}/{} has been deleted", r.name))?;
    let meta = obj.meta();
    if meta.uid.as_deref() != Some(r.uid.as_str()) {
        return Err(format!(
            "{kind} UID ({}) does not match claim ({})",
            meta.uid.as_deref().unwrap_or_default(),
            r.uid
        ));
    }
    if meta.deletion_timestamp.is_some() {
        return Err(format!("{kind} {namespace}/{} is being deleted", r.name));
    }
    Ok(obj)
}

/// Whether the objects a token is bound to still exist, with the uids it names.
pub(crate) async fn check_bound(api: &ApiServer, bound: &BoundClaims) -> Result<(), String> {
    let client = loopback(api)?;
    let ns = &bound.namespace;
    live::<ServiceAccount>(&client, ns, &bound.serviceaccount).await?;
    if let Some(pod) = &bound.pod {
        live::<Pod>(&client, ns, pod).await?;
    }
    if let Some(secret) = &bound.secret {
        live::<Secret>(&client, ns, secret).await?;
    }
    Ok(())
}

fn uid_of(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> String {
    meta.uid.clone().unwrap_or_default()
}

/// A metav1.Time from a chrono time (through its RFC 3339 form).
fn time(t: chrono::DateTime<chrono::Utc>) -> ApiResult<Time> {
    let text = t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    serde_json::from_value(serde_json::Value::String(text)).map_err(internal)
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// `POST serviceaccounts/<name>/token`: signs a token for the ServiceAccount, optionally
/// bound to a Pod or Secret of its namespace.
pub(crate) async fn request(
    api: &Arc<ApiServer>,
    namespace: &str,
    name: &str,
    body: serde_json::Value,
) -> ApiResult<serde_json::Value> {
    // The status is the server's to fill: decode only what the client may send.
    let mut req = TokenRequest {
        metadata: serde_json::from_value(body.get("metadata").cloned().unwrap_or_default())
            .unwrap_or_default(),
        spec: serde_json::from_value(
            body.get("spec")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
        )
        .map_err(|e| ApiError::bad_request(format!("decoding TokenRequest: {e}")))?,
        status: None,
    };
    let seconds = req.spec.expiration_seconds.unwrap_or(3600);
    if seconds < 600 {
        return Err(ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![FieldError::invalid(
                "spec.expirationSeconds",
                &serde_json::json!(seconds),
                "may not specify a duration less than 10 minutes",
            )],
        ));
    }
    let seconds = seconds.min(48 * 3600);
    let client = loopback(api).map_err(ApiError::unavailable)?;
    let sa = Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", name))?;
    let mut bound = BoundClaims {
        namespace: namespace.into(),
        serviceaccount: ObjectRef {
            name: name.into(),
            uid: uid_of(&sa.metadata),
        },
        pod: None,
        secret: None,
        node: None,
    };
    if let Some(r) = &req.spec.bound_object_ref {
        let wanted = r.name.clone().unwrap_or_default();
        let (uid, node) = match r.kind.as_deref() {
            Some("Pod") => {
                let pod = Api::<Pod>::namespaced(client.clone(), namespace)
                    .get_opt(&wanted)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::not_found("", "pods", &wanted))?;
                (uid_of(&pod.metadata), pod.spec.and_then(|s| s.node_name))
            }
            Some("Secret") => {
                let secret = Api::<Secret>::namespaced(client.clone(), namespace)
                    .get_opt(&wanted)
                    .await
                    .map_err(internal)?
                    .ok_or_else(|| ApiError::not_found("", "secrets", &wanted))?;
                (uid_of(&secret.metadata), None)
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of kind {:?}: only Pod and Secret",
                    other.unwrap_or_default()
                )))
            }
        };
        if r.uid.as_deref().is_some_and(|u| !u.is_empty() && u != uid) {
            return Err(ApiError::conflict_message(
                format!("the UID in the bound object reference ({}) does not match the UID in record ({uid}). The object might have been deleted and then recreated", r.uid.as_deref().unwrap_or_default()),
                serde_json::json!({}),
            ));
        }
        let reference = ObjectRef { name: wanted, uid };
        match r.kind.as_deref() {
            Some("Pod") => bound.pod = Some(reference),
            _ => bound.secret = Some(reference),
        }
        bound.node = node.map(|n| ObjectRef {
            name: n,
            uid: String::new(),
        });
    }
    let issued = keelson_auth::authn::TokenRequest {
        audiences: req.spec.audiences.clone(),
        expiration_seconds: seconds,
        bound,
    };
    let (token, exp) = api.auth.service_accounts.issue(&issued).map_err(internal)?;
    if req.spec.audiences.is_empty() {
        req.spec.audiences = api.auth.service_accounts.api_audiences().to_vec();
    }
    req.spec.expiration_seconds = Some(seconds);
    let expires = chrono::DateTime::from_timestamp(exp, 0).unwrap_or_default();
    req.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: time(expires)?,
    });
    req.metadata.name = Some(name.into());
    req.metadata.namespace = Some(namespace.into());
    req.metadata.creation_timestamp = Some(time(chrono::Utc::now())?);
    let mut out = serde_json::to_value(&req).map_err(internal)?;
    out["apiVersion"] = "authentication.k8s.io/v1".into();
    out["kind"] = "TokenRequest".into();
    Ok(out)
}

/// TokenReview: authenticates `spec.token` for `spec.audiences` and reports the user.
pub(crate) async fn review(
    api: &Arc<ApiServer>,
    body: serde_json::Value,
) -> ApiResult<serde_json::Value> {
    let mut review = TokenReview {
        metadata: serde_json::from_value(body.get("metadata").cloned().unwrap_or_default())
            .unwrap_or_default(),
        spec: serde_json::from_value(
            body.get("spec")
                .cloned()
                .unwrap_or_else(|| serde_json::json!({})),
        )
        .map_err(|e| ApiError::bad_request(format!("decoding TokenReview: {e}")))?,
        status: None,
    };
    let token = review.spec.token.clone().unwrap_or_default();
    let audiences = review.spec.audiences.clone().unwrap_or_default();
    let status = match super::layer::authenticate_token(api, &token, &audiences).await {
        Ok(Some(user)) => TokenReviewStatus {
            authenticated: Some(true),
            user: Some(ReviewUser {
                username: Some(user.name),
                groups: Some(user.groups),
                ..Default::default()
            }),
            audiences: Some(match audiences.is_empty() {
                true => api.auth.service_accounts.api_audiences().to_vec(),
                false => audiences,
            }),
            error: None,
        },
        Ok(None) => TokenReviewStatus {
            authenticated: Some(false),
            error: Some("invalid bearer token".into()),
            ..Default::default()
        },
        Err(why) => TokenReviewStatus {
            authenticated: Some(false),
            error: Some(format!("invalid bearer token, {why}")),
            ..Default::default()
        },
    };
    review.status = Some(status);
    let mut out = serde_json::to_value(&review).map_err(internal)?;
    out["apiVersion"] = "authentication.k8s.io/v1".into();
    out["kind"] = "TokenReview".into();
    Ok(out)
}

/// `/.well-known/openid-configuration` and `/openid/v1/jwks`.
pub(crate) fn discovery(api: &ApiServer, path: &str) -> Option<(&'static str, serde_json::Value)> {
    let sa = &api.auth.service_accounts;
    match path {
        "/.well-known/openid-configuration" => {
            Some(("application/json", sa.openid_configuration()))
        }
        "/openid/v1/jwks" => Some(("application/jwk-set+json", sa.jwks())),
        _ => None,
    }
}
