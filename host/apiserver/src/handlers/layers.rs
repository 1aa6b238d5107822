//! Request metrics, the outermost tower layer (so 401s and 403s are counted too); the
//! authentication and authorization layer inside it lives in `crate::auth::layer`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use crate::request::RequestInfo;
use crate::ApiServer;

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
