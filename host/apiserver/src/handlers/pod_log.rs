//! `GET pods/{name}/log`: proxies to the agent of the pod's node, as kube-apiserver does to the
//! kubelet. The agent's address is the Node's InternalIP and `status.daemonEndpoints.
//! kubeletEndpoint.Port`; the request goes over HTTPS to `/containerLogs/{ns}/{pod}/{container}`
//! with the API server's own certificate (signed by the cluster CA) as its client certificate,
//! which is what the agent accepts. Like kube-apiserver without
//! `--kubelet-certificate-authority`, the agent's self-signed serving certificate is not
//! verified. The body streams through, so `follow=true` works. `exec`, `attach` and
//! `portforward` upgrade the connection: [`super::pod_exec`].

use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::objects::from_store;

/// Query parameters passed on to the agent.
const PASSED: &[&str] = &[
    "follow",
    "previous",
    "tailLines",
    "sinceSeconds",
    "sinceTime",
    "timestamps",
    "limitBytes",
];

/// The client that talks to agents; made once from the serving certificate.
pub(crate) fn kubelet_client(cert_pem: &str, key_pem: &str) -> Result<reqwest::Client, String> {
    let identity = reqwest::Identity::from_pem(format!("{cert_pem}\n{key_pem}").as_bytes())
        .map_err(|e| e.to_string())?;
    reqwest::Client::builder()
        .use_rustls_tls()
        .identity(identity)
        .danger_accept_invalid_certs(true)
        // HTTP/1.1: `pods/exec` upgrades the connection to a WebSocket.
        .http1_only()
        .connect_timeout(std::time::Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn container_name(pod: &Value, requested: Option<&str>) -> ApiResult<String> {
    let name = pod["metadata"]["name"].as_str().unwrap_or_default();
    let names: Vec<&str> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|list| pod["spec"][list].as_array().into_iter().flatten())
        .filter_map(|c| c["name"].as_str())
        .collect();
    match requested {
        Some(c) if names.contains(&c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {name}"
        ))),
        None => {
            let main: Vec<&str> = pod["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| c["name"].as_str())
                .collect();
            match main.as_slice() {
                [only] => Ok(only.to_string()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    main.join(" ")
                ))),
            }
        }
    }
}

/// The answer to `exec` into a Wasm pod, or `portforward` to one: a clear 400 (Wasm
/// containers have no processes, and no network of their own).
pub(crate) fn not_streamed(name: &str, what: &str) -> ApiError {
    let lacking = match what {
        "portforward" => "no network of their own to forward ports to",
        _ => "no processes to exec",
    };
    ApiError::bad_request(format!(
        "pod \"{name}\" runs WebAssembly components (RuntimeClass wasm), which have {lacking}"
    ))
}

/// The agent of the pod's node as `https://host:port`, and the node's name.
pub(crate) async fn agent_base(
    ctx: &Ctx,
    pod: &Value,
    container: &str,
) -> ApiResult<(String, String)> {
    let name = ctx.name().to_string();
    let node_name = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if node_name.is_empty() {
        return Err(ApiError::bad_request(format!(
            "container \"{container}\" in pod \"{name}\" is waiting to start: ContainerCreating"
        )));
    }
    let nodes = ctx
        .api
        .registry
        .lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::internal("nodes are not served"))?;
    let node = match ctx.api.store.get(&nodes.key(None, &node_name)).await? {
        Some(kv) => from_store(&nodes, &kv)?,
        None => {
            return Err(ApiError::bad_request(format!(
                "node \"{node_name}\" of pod \"{name}\" does not exist"
            )))
        }
    };
    let address = node["status"]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .map(String::from);
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"].as_u64();
    let (Some(address), Some(port)) = (address, port.filter(|p| *p > 0)) else {
        return Err(ApiError::bad_request(format!(
            "node \"{node_name}\" has no agent endpoint (is it a simulated node?)"
        )));
    };
    let host = match address.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
        _ => address,
    };
    Ok((format!("https://{host}:{port}"), node_name))
}

/// Serves `pods/log`.
pub(crate) async fn log(ctx: Ctx) -> ApiResult<Response> {
    let pod = from_store(&ctx.def, &ctx.stored().await?)?;
    let container = container_name(&pod, ctx.query.get("container"))?;
    let name = ctx.name().to_string();
    let (base, node_name) = agent_base(&ctx, &pod, &container).await?;
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut url = format!(
        "{base}/containerLogs/{}/{}/{}",
        enc(ctx.namespace().unwrap_or_default()),
        enc(&name),
        enc(&container)
    );
    let query: Vec<String> = PASSED
        .iter()
        .filter_map(|k| ctx.query.get(k).map(|v| format!("{k}={}", enc(v))))
        .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let client = ctx
        .api
        .kubelet_client
        .get()
        .ok_or_else(|| ApiError::unavailable("this server has no client for agents"))?;
    let answer = client.get(&url).send().await.map_err(|e| {
        tracing::warn!(node = %node_name, error = %e, "cannot reach the agent");
        ApiError::unavailable(format!(
            "cannot reach the agent of node \"{node_name}\": {e}"
        ))
    })?;
    let status = answer.status();
    if !status.is_success() {
        let message = answer.text().await.unwrap_or_default();
        return Err(match status.as_u16() {
            404 => ApiError::not_found("", "pods", &name),
            400 => ApiError::bad_request(message),
            _ => ApiError::unavailable(format!("agent answered {status}: {message}")),
        });
    }
    let body = axum::body::Body::from_stream(answer.bytes_stream());
    Ok(([(http::header::CONTENT_TYPE, "text/plain")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_the_container() {
        let one = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}], "initContainers": [{"name": "i"}]}});
        assert_eq!(container_name(&one, None).unwrap(), "a");
        assert_eq!(container_name(&one, Some("i")).unwrap(), "i");
        assert!(container_name(&one, Some("x")).is_err());
        let two = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        let err = container_name(&two, None).unwrap_err();
        assert!(
            err.message.contains("choose one of: [a b]"),
            "{}",
            err.message
        );
    }
}
