//! Request dispatch (after the metrics and authentication [`layers`]): discovery/OpenAPI
//! endpoints or the generic resource handlers (read, write, patch, delete, watch, subresources).

mod delete;
mod layers;
mod operator;
mod patch;
mod pod_exec;
mod pod_log;
pub(crate) use pod_log::kubelet_client;
mod read;
mod review;
mod subresource;
mod watch;
mod write;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::request::{Query, RequestInfo};
use crate::rest::{Scope, WriteOptions, Written};
use crate::{codec, discovery, openapi, ApiServer, UserInfo};

pub(crate) use read::Filter;

/// Largest accepted request body (Kubernetes' limit).
pub(crate) const MAX_BODY: usize = 3 * 1024 * 1024;

/// Everything a resource handler needs about one request: what it acts on (the REST layer's
/// [`Scope`], reachable through `Deref`) plus the HTTP parts (query, headers) and the user.
pub(crate) struct Ctx {
    pub(crate) scope: Scope,
    pub(crate) query: Query,
    pub(crate) headers: HeaderMap,
    pub(crate) user: UserInfo,
    /// The connection upgrade of this request (for `pods/exec`'s WebSocket), if any.
    pub(crate) upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl std::ops::Deref for Ctx {
    type Target = Scope;
    fn deref(&self) -> &Scope {
        &self.scope
    }
}

impl std::ops::DerefMut for Ctx {
    fn deref_mut(&mut self) -> &mut Scope {
        &mut self.scope
    }
}

impl Ctx {
    /// The field manager of a write: `fieldManager`, else derived from the User-Agent like Kubernetes.
    pub(crate) fn field_manager(&self) -> String {
        if let Some(m) = self.query.get("fieldManager") {
            return m.to_string();
        }
        let ua = self
            .headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown");
        ua.split('/').next().unwrap_or("unknown").to_string()
    }
}

/// The router: every path goes through the metrics and authentication layers, then
/// [`dispatch`].
pub(crate) fn router(api: Arc<ApiServer>) -> axum::Router {
    use axum::middleware::from_fn_with_state;
    axum::Router::new()
        .fallback(dispatch)
        .layer(from_fn_with_state(api.clone(), crate::auth::layer::layer))
        .layer(from_fn_with_state(api.clone(), layers::observe))
        .with_state(api)
}

async fn dispatch(State(api): State<Arc<ApiServer>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match handle(api, req).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(%method, %path, code = e.code, reason = %e.reason, "request failed");
            e.into_response()
        }
    }
}

async fn handle(api: Arc<ApiServer>, req: Request) -> ApiResult<Response> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let path = if path.is_empty() {
        "/".to_string()
    } else {
        path
    };
    if crate::auth::layer::is_health(&path) {
        return Ok("ok".into_response());
    }
    // Set by the authentication layer (or by an in-process caller / the plaintext listener).
    let user = req
        .extensions()
        .get::<UserInfo>()
        .cloned()
        .ok_or_else(ApiError::unauthorized)?;
    let query = Query::parse(req.uri().query());
    if path == "/metrics" && req.method() == Method::GET {
        let body = api.metrics.encode();
        return Ok((
            [(
                http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            body,
        )
            .into_response());
    }
    if path.starts_with(operator::PREFIX) {
        return operator::handle(api, req.method(), &path, &query, &user).await;
    }
    if req.method() == Method::GET {
        if let Some((content_type, doc)) = crate::auth::tokens::discovery(&api, &path) {
            let mut r = respond(200, &doc);
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(content_type),
            );
            return Ok(r);
        }
        if let Some(r) = discovery::handle(&api, &path, req.headers()) {
            return Ok(r);
        }
        if let Some(r) = openapi::handle(&api, &path, req.headers()) {
            return r;
        }
    }
    let info = RequestInfo::parse(&path).ok_or_else(|| ApiError::no_route(&path))?;
    let def = api
        .registry
        .lookup(&info.group, &info.version, &info.resource)
        .ok_or_else(|| ApiError::no_route(&path))?;
    if def.namespaced && info.name.is_some() && info.namespace.is_none() {
        return Err(ApiError::no_route(&path));
    }
    let (mut parts, body) = req.into_parts();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    // Unsupported `as=` representations are refused on every verb (406), as in Kubernetes.
    let representation = codec::representation(&parts.headers)?;
    let ctx = Ctx {
        scope: Scope { api, def, info },
        query,
        headers: parts.headers,
        user,
        upgrade,
    };
    if let Some(kind) = crate::computed::kind_of(&ctx.def) {
        return crate::computed::serve(ctx, kind, parts.method).await;
    }
    let writes = parts.method != Method::GET;
    let response = route(ctx, parts.method, body, &path).await?;
    Ok(match representation {
        codec::Representation::Metadata if writes => codec::metadata_only(response).await,
        _ => response,
    })
}

/// Runs the resource handler of one request.
async fn route(ctx: Ctx, method: Method, body: Body, path: &str) -> ApiResult<Response> {
    if ctx.def.review {
        return match (method, ctx.info.name.is_none()) {
            (Method::POST, true) => review::review(ctx, read_body(body).await?).await,
            (method, _) => Err(ApiError::method_not_allowed(
                method.as_str(),
                &ctx.def.plural,
            )),
        };
    }
    let watching = ctx.info.legacy_watch || ctx.query.flag("watch");
    // `pods/ephemeralcontainers` is routed like `status`: it reads and writes the whole Pod, and
    // the strategy (which sees the real subresource name) keeps all but `spec.ephemeralContainers`.
    let ephemeral = ctx.info.subresource.as_deref() == Some("ephemeralcontainers")
        && ctx.def.group.is_empty()
        && ctx.def.kind == "Pod";
    let sub = match ephemeral {
        true => Some("status".to_string()),
        false => ctx.info.subresource.clone(),
    };
    match (method, ctx.info.name.is_some(), sub.as_deref()) {
        (Method::GET, false, None) if watching => watch::watch(ctx).await,
        (Method::GET, false, None) => read::list(ctx).await,
        (Method::GET, true, None) if watching => watch::watch(ctx).await,
        (Method::GET, true, None | Some("status") | Some("approval")) => read::get(ctx).await,
        (Method::POST, false, None) => {
            let body = read_body(body).await?;
            write::create(ctx, body).await
        }
        (Method::PUT, true, None | Some("status") | Some("finalize") | Some("approval")) => {
            let body = read_body(body).await?;
            write::update(ctx, body).await
        }
        (Method::PATCH, true, None | Some("status") | Some("approval")) => {
            let body = read_body(body).await?;
            patch::patch(ctx, body).await
        }
        (Method::DELETE, true, None) => {
            let body = read_body(body).await?;
            delete::delete(ctx, body).await
        }
        (Method::DELETE, false, None) => delete::delete_collection(ctx).await,
        (Method::GET, true, Some("log")) if ctx.def.group.is_empty() && ctx.def.kind == "Pod" => {
            pod_log::log(ctx).await
        }
        (Method::GET | Method::POST, true, Some(s @ ("exec" | "attach" | "portforward")))
            if ctx.def.group.is_empty() && ctx.def.kind == "Pod" =>
        {
            pod_exec::exec(ctx, s).await
        }
        (method, true, Some(s)) if subresource::serves(&ctx.def, s) => {
            let body = read_body(body).await?;
            subresource::handle(ctx, method, s, body).await
        }
        (_, _, Some(_)) => Err(ApiError::no_route(path)),
        (method, _, None) => Err(ApiError::method_not_allowed(
            method.as_str(),
            &ctx.def.plural,
        )),
    }
}

/// Reads a request body, refusing more than [`MAX_BODY`] bytes.
async fn read_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::too_large(format!(
            "the request body is larger than the limit of {MAX_BODY} bytes"
        ))
    })
}

impl WriteOptions {
    /// The write options a request asks for.
    pub(crate) fn from_ctx(ctx: &Ctx) -> ApiResult<Self> {
        Ok(Self {
            dry_run: ctx.query.dry_run(),
            validation: crate::validation::FieldValidation::parse(
                ctx.query.get("fieldValidation"),
            )?,
            manager: ctx.field_manager(),
            user: ctx.user.clone(),
            managed_fields: None,
        })
    }
}

impl Written {
    /// The response: the object, and each warning as a `Warning: 299` header.
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

/// Serialises a JSON response with a status code.
pub(crate) fn respond(code: u16, value: &Value) -> Response {
    codec::json_response(code, value)
}
