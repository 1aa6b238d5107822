//! The tower layers every request passes before dispatch: request metrics (outermost, so 401s
//! are counted too) and authentication, which resolves the caller to a [`UserInfo`] request
//! extension — from an in-process identity (keelson-client, or the loopback-only plaintext
//! listener), else from the bearer token — or answers 401.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use crate::error::ApiError;
use crate::request::RequestInfo;
use crate::{ApiServer, UserInfo};

/// Health endpoints answer without credentials.
pub(super) fn is_health(path: &str) -> bool {
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

/// Authentication: sets the [`UserInfo`] extension, or answers 401 Unauthorized.
pub(super) async fn authenticate(
    State(api): State<Arc<ApiServer>>,
    mut req: Request,
    next: Next,
) -> Response {
    if is_health(req.uri().path()) || req.extensions().get::<UserInfo>().is_some() {
        return next.run(req).await;
    }
    match bearer(req.headers()).and_then(|t| api.authenticate(t)) {
        Some(user) => {
            req.extensions_mut().insert(user);
            next.run(req).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}

/// Request metrics: count and latency by verb, resource and code.
pub(super) async fn observe(
    State(api): State<Arc<ApiServer>>,
    req: Request,
    next: Next,
) -> Response {
    let method = req.method().clone();
    let started = std::time::Instant::now();
    let resource = RequestInfo::parse(req.uri().path())
        .map(|i| i.resource)
        .unwrap_or_else(|| "nonresource".into());
    let response = next.run(req).await;
    api.metrics.observe(
        method.as_str(),
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
