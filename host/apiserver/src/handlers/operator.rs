//! Keelson's own operator endpoints under `/keelson/v1/` (not Kubernetes resources), for
//! `system:masters` only: `POST /keelson/v1/snapshots[?name=N]` takes a consistent snapshot of
//! the running store into `<data-dir>/snapshots/`; `GET /keelson/v1/status` reports the store
//! backend, its size and revision, the last snapshot and the certificates' expiry.

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::Method;
use serde_json::json;

use crate::error::{ApiError, ApiResult};
use crate::request::Query;
use crate::{ApiServer, UserInfo};

/// The path prefix of these endpoints.
pub(crate) const PREFIX: &str = "/keelson/v1/";

fn json_response(code: http::StatusCode, body: serde_json::Value) -> Response {
    (
        code,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn store_error(e: keelson_store::Error) -> ApiError {
    match e {
        keelson_store::Error::Config(m) | keelson_store::Error::Unsupported(m) => {
            ApiError::bad_request(m)
        }
        keelson_store::Error::Snapshot { .. } => ApiError::bad_request(e.to_string()),
        e => ApiError::internal(e),
    }
}

/// Serves `/keelson/v1/…`.
pub(crate) async fn handle(
    api: Arc<ApiServer>,
    method: &Method,
    path: &str,
    query: &Query,
    user: &UserInfo,
) -> ApiResult<Response> {
    if !user.groups.iter().any(|g| g == "system:masters") {
        return Err(ApiError::forbidden(format!(
            "user {:?} cannot use {path}: it is for system:masters",
            user.name
        )));
    }
    let snapshots = api.data_dir.join("snapshots");
    match (method, path.trim_start_matches(PREFIX)) {
        (&Method::POST, "snapshots") => {
            let started = std::time::Instant::now();
            let info = api
                .store
                .snapshot(&snapshots, query.get("name"))
                .await
                .map_err(store_error)?;
            tracing::info!(
                snapshot = %info.path.display(),
                revision = info.revision,
                bytes = info.size,
                took_ms = started.elapsed().as_millis() as u64,
                "snapshot taken"
            );
            let mut body = serde_json::to_value(&info).map_err(ApiError::internal)?;
            body["path"] = json!(info.path.display().to_string());
            body["tookMillis"] = json!(started.elapsed().as_millis() as u64);
            Ok(json_response(http::StatusCode::CREATED, body))
        }
        (&Method::GET, "status") => {
            let backend = api.store.backend();
            let size = backend.size().await.map_err(store_error)?;
            let revision = backend.current_revision().await.map_err(store_error)?;
            let (dir, data_dir) = (snapshots.clone(), api.data_dir.clone());
            let (last, certs) = tokio::task::spawn_blocking(move || {
                (
                    keelson_store::snapshot::list(&dir)
                        .ok()
                        .and_then(|mut l| l.pop()),
                    crate::certs::check(&data_dir).unwrap_or_default(),
                )
            })
            .await
            .map_err(ApiError::internal)?;
            let last = last.map(|s| {
                let mut v = serde_json::to_value(&s).unwrap_or_default();
                v["path"] = json!(s.path.display().to_string());
                v
            });
            Ok(json_response(
                http::StatusCode::OK,
                json!({
                    "store": {"backend": backend.kind(), "sizeBytes": size, "revision": revision},
                    "lastSnapshot": last,
                    "snapshotDir": snapshots.display().to_string(),
                    "certificates": certs,
                }),
            ))
        }
        _ => Err(ApiError::no_route(path)),
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use tower::ServiceExt;

    use crate::UserInfo;

    async fn call(
        router: &axum::Router,
        method: &str,
        path: &str,
        user: UserInfo,
    ) -> (u16, serde_json::Value) {
        let mut req = http::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .unwrap();
        req.extensions_mut().insert(user);
        let resp = router.clone().oneshot(req).await.unwrap();
        let code = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (code, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn only_system_masters_take_snapshots_and_read_status() {
        let dir = tempfile::tempdir().unwrap();
        let config = crate::Config {
            data_dir: dir.path().to_path_buf(),
            secure_port: 0,
            bind_address: "127.0.0.1".into(),
            ..Default::default()
        };
        let host = keelson_plugin_host::PluginHost::new(dir.path().join("plugin-cache")).unwrap();
        let running = crate::start(config, host).await.unwrap();
        let router = crate::router(running.api.clone());
        let bob = UserInfo::new("bob", &[]);
        let (code, _) = call(&router, "POST", "/keelson/v1/snapshots", bob.clone()).await;
        assert_eq!(code, 403);
        let (code, _) = call(&router, "GET", "/keelson/v1/status", bob).await;
        assert_eq!(code, 403);
        assert!(!dir.path().join("snapshots").exists());

        let admin = UserInfo::admin();
        let (code, body) = call(
            &router,
            "POST",
            "/keelson/v1/snapshots?name=a",
            admin.clone(),
        )
        .await;
        assert_eq!(code, 201, "{body}");
        assert!(dir.path().join("snapshots/a.ksnap").exists());
        let (code, body) = call(
            &router,
            "POST",
            "/keelson/v1/snapshots?name=../x",
            admin.clone(),
        )
        .await;
        assert_eq!(code, 400, "{body}");
        let (code, body) = call(&router, "GET", "/keelson/v1/status", admin).await;
        assert_eq!(code, 200, "{body}");
        assert_eq!(body["store"]["backend"], "embedded");
        assert_eq!(body["lastSnapshot"]["name"], "a");
        assert_eq!(body["certificates"].as_array().unwrap().len(), 2);
    }
}
