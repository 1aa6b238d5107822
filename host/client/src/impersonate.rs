//! A client acting as another user through an existing one: every request carries
//! `Impersonate-User` (and `Impersonate-Group` per group), which the API server checks
//! against the caller's `impersonate` rights before it runs the request as that user. A remote
//! controller manager uses it to act as a Wasm controller's ServiceAccount.

use http::{HeaderName, HeaderValue, Request};
use keelson_apimachinery::UserInfo;

/// A client sending every request through `client` as `user`. Groups implied by
/// authentication (`system:authenticated`) are added by the server and not sent.
pub fn impersonating(client: kube::Client, user: &UserInfo) -> kube::Client {
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    let mut push = |name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.push((HeaderName::from_static(name), v));
        }
    };
    push("impersonate-user", &user.name);
    for g in user
        .groups
        .iter()
        .filter(|g| *g != keelson_apimachinery::user::AUTHENTICATED)
    {
        push("impersonate-group", g);
    }
    let service = tower::service_fn(move |mut req: Request<kube::client::Body>| {
        let client = client.clone();
        for (name, value) in &headers {
            req.headers_mut().append(name.clone(), value.clone());
        }
        async move { client.send(req).await }
    });
    kube::Client::new(service, "default")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::Request as AxumRequest;

    #[tokio::test]
    async fn requests_carry_impersonation_headers() {
        let router = axum::Router::new().fallback(|req: AxumRequest| async move {
            let all = |n: &str| {
                req.headers()
                    .get_all(n)
                    .iter()
                    .map(|v| v.to_str().unwrap().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            serde_json::json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "message": format!("{}|{}", all("impersonate-user"), all("impersonate-group")),
            })
            .to_string()
        });
        let admin = crate::in_process(router, UserInfo::admin());
        let client = impersonating(admin, &UserInfo::service_account("team", "bot"));
        let status: k8s_openapi::apimachinery::pkg::apis::meta::v1::Status = client
            .request(http::Request::get("/version").body(vec![]).unwrap())
            .await
            .unwrap();
        assert_eq!(
            status.message.as_deref(),
            Some(
                "system:serviceaccount:team:bot|system:serviceaccounts,system:serviceaccounts:team"
            )
        );
    }
}
