//! The request layer in front of dispatch: authentication in Kubernetes' order (an
//! in-process identity, then a verified client certificate, then a bearer token — the token
//! file, then ServiceAccount JWTs — else `system:anonymous`), impersonation
//! (`Impersonate-User`/`-Group`/`-Uid`/`-Extra-*`, each checked against the `impersonate`
//! verb), then authorization, answering 401 or a 403 `Status` in Kubernetes' words.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;
use keelson_auth::{Attributes, Decision};

use crate::auth::client_cert::PeerCertificate;
use crate::error::ApiError;
use crate::request::Query;
use crate::{ApiServer, UserInfo};

/// Health endpoints answer without credentials.
pub(crate) fn is_health(path: &str) -> bool {
    let path = path.trim_end_matches('/');
    ["/healthz", "/livez", "/readyz"].iter().any(|h| {
        path == *h
            || path
                .strip_prefix(h)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// `system:anonymous` in `system:unauthenticated`.
pub(crate) fn anonymous() -> UserInfo {
    UserInfo {
        name: "system:anonymous".into(),
        groups: vec!["system:unauthenticated".into()],
    }
}

/// Who a bearer token belongs to: `Ok(None)` when no authenticator knows it.
pub(crate) async fn authenticate_token(
    api: &Arc<ApiServer>,
    token: &str,
    audiences: &[String],
) -> Result<Option<UserInfo>, String> {
    if audiences.is_empty() {
        if let Some(user) = api.auth.tokens.authenticate(token) {
            return Ok(Some(user));
        }
        if let Some(user) = api.authenticate_node_token(token) {
            return Ok(Some(user));
        }
    }
    match api.auth.service_accounts.verify(token, audiences) {
        Ok(Some((user, bound))) => {
            super::tokens::check_bound(api, &bound).await?;
            Ok(Some(user))
        }
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn authenticate(
    api: &Arc<ApiServer>,
    req: &Request,
) -> impl std::future::Future<Output = Result<UserInfo, ApiError>> + Send + 'static {
    let known = req.extensions().get::<UserInfo>().cloned();
    let cert = req.extensions().get::<PeerCertificate>().cloned();
    let token = bearer(req.headers()).map(String::from);
    let api = api.clone();
    async move {
        match (known, cert) {
            (Some(user), _) | (None, Some(PeerCertificate::User(user))) => Ok(user),
            // A certificate that does not verify fails the request unless a token succeeds
            // (never anonymous), as Kubernetes' union authenticator does.
            (None, Some(PeerCertificate::Invalid)) if token.is_none() => {
                Err(ApiError::unauthorized())
            }
            _ => by_token(&api, token).await,
        }
    }
}

async fn by_token(api: &Arc<ApiServer>, token: Option<String>) -> Result<UserInfo, ApiError> {
    match token {
        Some(token) => match authenticate_token(api, &token, &[]).await {
            Ok(Some(user)) => Ok(user),
            Ok(None) => Err(ApiError::unauthorized()),
            Err(why) => {
                tracing::debug!(%why, "bearer token refused");
                Err(ApiError::unauthorized())
            }
        },
        None if api.auth.anonymous => Ok(anonymous()),
        None => Err(ApiError::unauthorized()),
    }
}

/// A 403 for `a`, in Kubernetes' words (`pods "x" is forbidden: User "u" cannot get …`).
pub(crate) fn forbidden(user: &UserInfo, a: &Attributes, reason: &str) -> ApiError {
    let mut why = a.forbidden_message(&user.name);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    ApiError::forbidden_resource(&a.group, &a.resource, &a.name, &why)
}

fn impersonation(
    api: &Arc<ApiServer>,
    user: &UserInfo,
    headers: &HeaderMap,
) -> Result<Option<UserInfo>, ApiError> {
    let values = |name: &str| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok().map(String::from))
            .collect()
    };
    let target = values("impersonate-user").into_iter().next();
    let groups = values("impersonate-group");
    let uid = values("impersonate-uid").into_iter().next();
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix("impersonate-extra-")?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(target) = target else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::bad_request(
            "requested impersonation of groups, uid or extra without impersonating a user",
        ));
    };
    let mut checks = Vec::new();
    let mut impersonated = match target.strip_prefix("system:serviceaccount:") {
        Some(sa) => {
            let (ns, name) = sa.split_once(':').unwrap_or((sa, ""));
            checks.push(Attributes::resource(
                "impersonate",
                ns,
                "",
                "serviceaccounts",
                name,
            ));
            UserInfo::service_account(ns, name)
        }
        None => {
            checks.push(Attributes::resource(
                "impersonate",
                "",
                "",
                "users",
                &target,
            ));
            UserInfo {
                name: target.clone(),
                groups: vec![],
            }
        }
    };
    for g in &groups {
        checks.push(Attributes::resource("impersonate", "", "", "groups", g));
        if !impersonated.groups.contains(g) {
            impersonated.groups.push(g.clone());
        }
    }
    if let Some(uid) = &uid {
        checks.push(Attributes::resource(
            "impersonate",
            "",
            "authentication.k8s.io",
            "uids",
            uid,
        ));
    }
    for (key, value) in &extras {
        checks.push(Attributes::resource(
            "impersonate",
            "",
            "authentication.k8s.io",
            &format!("userextras/{key}"),
            value,
        ));
    }
    for check in &checks {
        let decision = api.auth.authorize(user, check);
        if !decision.allowed() {
            return Err(forbidden(user, check, decision.reason()));
        }
    }
    // As Kubernetes: an impersonated user is authenticated, except system:anonymous.
    let implied = match target.as_str() {
        "system:anonymous" => "system:unauthenticated",
        _ => keelson_apimachinery::user::AUTHENTICATED,
    };
    if !impersonated.groups.iter().any(|g| g == implied) {
        impersonated.groups.push(implied.into());
    }
    Ok(Some(impersonated))
}

/// Authentication, impersonation and authorization; sets the [`UserInfo`] extension.
pub(crate) async fn layer(
    State(api): State<Arc<ApiServer>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_health(req.uri().path()) {
        return next.run(req).await;
    }
    let mut user = match authenticate(&api, &req).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    match impersonation(&api, &user, req.headers()) {
        Ok(Some(impersonated)) => user = impersonated,
        Ok(None) => {}
        Err(e) => return e.into_response(),
    }
    let query = Query::parse(req.uri().query());
    let attrs = super::of_request(req.method(), req.uri().path(), &query);
    let decision = api.auth.authorize(&user, &attrs);
    let record = api.audit.get().and_then(|audit| {
        let agent = req
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let uri = req.uri().path_and_query().map_or("/", |p| p.as_str());
        audit.begin(&user, &attrs, uri, agent, &decision)
    });
    if let Decision::Allow(_) = decision {
        req.extensions_mut().insert(user);
        return match (api.audit.get(), record) {
            (Some(audit), Some(record)) => {
                crate::audit::around(audit, record, req, next, attrs.verb == "watch").await
            }
            _ => next.run(req).await,
        };
    }
    tracing::debug!(user = %user.name, verb = %attrs.verb, resource = %attrs.qualified_resource(), path = %attrs.path, "forbidden");
    if let (Some(audit), Some(record)) = (api.audit.get(), record) {
        audit.finish(record, 403, None, None);
    }
    forbidden(&user, &attrs, decision.reason()).into_response()
}
