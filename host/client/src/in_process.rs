//! The in-process client: a [`kube::Client`] over the API server's router. Each request
//! carries the caller's [`UserInfo`] as a request extension, which only an in-process caller
//! can set (a request read from a socket never has it); the server authenticates it like a
//! token and everything after authentication — admission, validation, metrics — is the same
//! as for a remote request.

use http::{HeaderValue, Request, Response};
use keelson_apimachinery::UserInfo;
use tower::{BoxError, Service, ServiceExt};

/// A client that calls `service` (the API server's router) as `identity`.
pub fn in_process<S, B>(service: S, identity: UserInfo) -> kube::Client
where
    S: Service<Request<kube::client::Body>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let agent = HeaderValue::from_str(&identity.user_agent())
        .unwrap_or_else(|_| HeaderValue::from_static("keelson"));
    let service = service.map_request(move |mut req: Request<kube::client::Body>| {
        req.extensions_mut().insert(identity.clone());
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert_with(|| agent.clone());
        req
    });
    kube::Client::new(service, "default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request as AxumRequest;

    /// The identity and user agent reach the service; paths stay relative (no host).
    #[tokio::test]
    async fn requests_carry_identity() {
        let router = axum::Router::new().fallback(|req: AxumRequest| async move {
            let user = req.extensions().get::<UserInfo>().cloned();
            let agent = req.headers()[http::header::USER_AGENT].to_str().unwrap().to_string();
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "message": format!("{}|{}|{}", user.map(|u| u.name).unwrap_or_default(), agent, req.uri()),
            })
            .to_string()
        });
        let client = in_process(router, UserInfo::scheduler());
        let status: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status = client
            .request(http::Request::get("/version").body(vec![]).unwrap())
            .await
            .unwrap();
        assert_eq!(
            status.message.as_deref(),
            Some("system:kube-scheduler|kube-scheduler/keelson|/version")
        );
    }
}
