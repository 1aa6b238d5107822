//! The in-process API client that controllers use: real HTTP requests through the same router
//! (authentication, admission and validation all apply), without a socket. Seed 003's rule
//! "only the API server touches the store" holds for every component built on it.

use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use http::{Method, Request};
use serde_json::Value;
use tower::ServiceExt;

use crate::error::ApiError;

/// A client of this server's API.
#[derive(Clone)]
pub struct ApiClient {
    router: axum::Router,
    token: String,
}

/// One watch event.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    /// ADDED, MODIFIED, DELETED, BOOKMARK or ERROR.
    pub kind: String,
    /// The object (or Status for ERROR).
    pub object: Value,
}

impl ApiClient {
    pub(crate) fn new(router: axum::Router, token: String) -> Self {
        Self { router, token }
    }

    /// Sends a request; a non-2xx answer becomes an [`ApiError`] carrying the Status.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        content_type: &str,
    ) -> Result<Value, ApiError> {
        let body = match body {
            Some(b) => Body::from(serde_json::to_vec(b).unwrap_or_default()),
            None => Body::empty(),
        };
        let resp = self.send(method, path, content_type, body).await?;
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .map_err(ApiError::internal)?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(ApiError {
            code: status,
            reason: status_reason(&value),
            message: value["message"]
                .as_str()
                .unwrap_or("request failed")
                .to_string(),
            details: value.get("details").cloned(),
        })
    }

    /// Sends one request through the router as this client's user.
    async fn send(
        &self,
        method: Method,
        uri: &str,
        content_type: &str,
        body: Body,
    ) -> Result<axum::response::Response, ApiError> {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(
                http::header::AUTHORIZATION,
                format!("Bearer {}", self.token),
            )
            .header(http::header::CONTENT_TYPE, content_type)
            .header(http::header::USER_AGENT, "keelson-controller-manager/v1")
            .body(body)
            .map_err(ApiError::internal)?;
        self.router
            .clone()
            .oneshot(req)
            .await
            .map_err(ApiError::internal)
    }

    /// GET.
    pub async fn get(&self, path: &str) -> Result<Value, ApiError> {
        self.request(Method::GET, path, None, "application/json")
            .await
    }
    /// POST (create).
    pub async fn create(&self, path: &str, obj: &Value) -> Result<Value, ApiError> {
        self.request(Method::POST, path, Some(obj), "application/json")
            .await
    }
    /// PUT (update).
    pub async fn update(&self, path: &str, obj: &Value) -> Result<Value, ApiError> {
        self.request(Method::PUT, path, Some(obj), "application/json")
            .await
    }
    /// PATCH with a JSON merge patch.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, ApiError> {
        self.request(
            Method::PATCH,
            path,
            Some(patch),
            "application/merge-patch+json",
        )
        .await
    }
    /// DELETE with optional DeleteOptions.
    pub async fn delete(&self, path: &str, options: Option<&Value>) -> Result<Value, ApiError> {
        self.request(Method::DELETE, path, options, "application/json")
            .await
    }

    /// Watches a list path from `resource_version` (empty = current state first); events arrive
    /// on the returned channel until the server ends the watch or the receiver is dropped.
    pub async fn watch(
        &self,
        path: &str,
        resource_version: &str,
    ) -> Result<tokio::sync::mpsc::Receiver<WatchEvent>, ApiError> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let uri = format!(
            "{path}{sep}watch=true&allowWatchBookmarks=true&resourceVersion={resource_version}"
        );
        let resp = self
            .send(Method::GET, &uri, "application/json", Body::empty())
            .await?;
        if !resp.status().is_success() {
            return Err(ApiError::internal(format!(
                "watch {path}: HTTP {}",
                resp.status()
            )));
        }
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let mut stream = resp.into_body().into_data_stream();
        tokio::spawn(async move {
            let mut buf = Vec::new();
            while let Some(Ok(chunk)) = stream.next().await {
                buf.extend_from_slice(&chunk);
                while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=pos).collect();
                    let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                        continue;
                    };
                    let ev = WatchEvent {
                        kind: v["type"].as_str().unwrap_or_default().to_string(),
                        object: v["object"].clone(),
                    };
                    if tx.send(ev).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    /// Lists a path, returning the items and the list's resourceVersion.
    pub async fn list(&self, path: &str) -> Result<(Vec<Value>, String), ApiError> {
        let list = self.get(path).await?;
        let rv = list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Ok((list["items"].as_array().cloned().unwrap_or_default(), rv))
    }

    /// Waits a little (used by controllers between retries).
    pub async fn backoff() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn status_reason(v: &Value) -> &'static str {
    match v["reason"].as_str().unwrap_or_default() {
        "NotFound" => "NotFound",
        "AlreadyExists" => "AlreadyExists",
        "Conflict" => "Conflict",
        "Invalid" => "Invalid",
        "Forbidden" => "Forbidden",
        "BadRequest" => "BadRequest",
        "Expired" => "Expired",
        _ => "Unknown",
    }
}
