//! `pods/{name}/exec`, `pods/{name}/attach` and `pods/{name}/portforward`: proxied to the agent
//! of the pod's node, as kube-apiserver proxies them to the kubelet. The client's upgrade is
//! forwarded to the agent's `/exec/{ns}/{pod}/{container}` (or `/attach/…`) with the query as
//! sent (repeated `command` parameters), or to `/portForward/{ns}/{pod}`: a WebSocket
//! (`v5.channel.k8s.io` for exec and attach, `SPDY/3.1+portforward.k8s.io` for port-forward)
//! or, for port-forward, `Upgrade: SPDY/3.1`. Once the agent answers 101 Switching Protocols,
//! the client gets the agent's 101 (subprotocol, `Sec-WebSocket-Accept`,
//! `X-Stream-Protocol-Version`) and the two upgraded connections are spliced byte for byte, so
//! the protocol runs end to end between kubectl and the agent. A refusal by the agent (Wasm
//! container, not running, SPDY exec, tty) becomes a `Status`.

use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;

use super::pod_log::{agent_base, container_name, not_streamed};
use super::Ctx;
use crate::error::{ApiError, ApiResult};
use crate::objects::from_store;

/// Request headers the agent needs for the upgrade.
const FORWARDED: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Response headers the client needs from the agent's 101.
const RETURNED: &[&str] = &[
    "connection",
    "upgrade",
    "sec-websocket-accept",
    "sec-websocket-protocol",
    "sec-websocket-extensions",
    "x-stream-protocol-version",
];

/// Serves `pods/exec`, `pods/attach` and `pods/portforward` (`verb`). Wasm containers can be
/// attached to (their output), not exec'd into nor forwarded to.
pub(crate) async fn exec(mut ctx: Ctx, verb: &str) -> ApiResult<Response> {
    let pod = from_store(&ctx.def, &ctx.stored().await?)?;
    if verb != "attach" && pod["spec"]["runtimeClassName"] == "wasm" {
        return Err(not_streamed(ctx.name(), verb));
    }
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let (ns, name) = (enc(ctx.namespace().unwrap_or_default()), enc(ctx.name()));
    let (container, path) = match verb {
        "portforward" => {
            let first = pod["spec"]["containers"][0]["name"].as_str();
            (
                first.unwrap_or_default().to_string(),
                format!("portForward/{ns}/{name}"),
            )
        }
        _ => {
            let container = container_name(&pod, ctx.query.get("container"))?;
            let path = format!("{verb}/{ns}/{name}/{}", enc(&container));
            (container, path)
        }
    };
    let (base, node_name) = agent_base(&ctx, &pod, &container).await?;
    let url = format!("{base}/{path}?{}", ctx.query.raw());
    let client = ctx
        .api
        .kubelet_client
        .get()
        .ok_or_else(|| ApiError::unavailable("this server has no client for agents"))?;
    let mut request = client.get(&url);
    for name in FORWARDED {
        for value in ctx.headers.get_all(*name) {
            request = request.header(*name, value);
        }
    }
    let answer = request.send().await.map_err(|e| {
        tracing::warn!(node = %node_name, error = %e, "cannot reach the agent");
        ApiError::unavailable(format!(
            "cannot reach the agent of node \"{node_name}\": {e}"
        ))
    })?;
    let status = answer.status();
    if status != http::StatusCode::SWITCHING_PROTOCOLS {
        let message = answer.text().await.unwrap_or_default();
        return Err(match status.as_u16() {
            400 => ApiError::bad_request(message),
            404 => ApiError::not_found("", "pods", ctx.name()),
            _ => ApiError::unavailable(format!("agent answered {status}: {message}")),
        });
    }
    let Some(client_upgrade) = ctx.upgrade.take() else {
        return Err(ApiError::bad_request(format!(
            "{verb} needs a connection upgrade (WebSocket or SPDY/3.1)"
        )));
    };
    let mut response = http::StatusCode::SWITCHING_PROTOCOLS.into_response();
    for name in RETURNED {
        for value in answer.headers().get_all(*name) {
            response.headers_mut().append(*name, value.clone());
        }
    }
    let pod_name = ctx.name().to_string();
    tokio::spawn(async move {
        let agent = match answer.upgrade().await {
            Ok(a) => a,
            Err(e) => return tracing::warn!(error = %e, "agent upgrade failed"),
        };
        let client = match client_upgrade.await {
            Ok(c) => c,
            Err(e) => return tracing::warn!(error = %e, "client upgrade failed"),
        };
        let (mut agent, mut client) = (agent, TokioIo::new(client));
        match tokio::io::copy_bidirectional(&mut client, &mut agent).await {
            Ok((up, down)) => tracing::debug!(pod = %pod_name, up, down, "stream ended"),
            Err(e) => tracing::debug!(pod = %pod_name, error = %e, "stream ended"),
        }
    });
    Ok(response)
}
