//! `kubectl port-forward` on the agent: `GET|POST /portForward/{ns}/{pod}` (the kubelet's
//! path), reached through the API server's `pods/{name}/portforward`, which splices the
//! upgraded connection through as it does for exec. Two upgrades are served:
//! - a WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io` (kubectl ≥ 1.31 tries it
//!   first), whose binary messages carry the SPDY byte stream in pieces of any size;
//! - `Upgrade: SPDY/3.1` with `X-Stream-Protocol-Version: portforward.k8s.io` (kubectl's
//!   fallback, and all that 1.30 and older speak).
//!
//! Either way [`session`] speaks SPDY/3.1 ([`crate::spdy`]) and connects each forwarded
//! connection to `localhost:port` inside the pod's network namespace (a dedicated thread
//! enters it, so no runtime worker changes namespace), or on the node for `hostNetwork` pods
//! and pods without a namespace of their own. Wasm pods have no network and get a 400, as do
//! pods that are not running here.

mod session;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, Request, State};
use axum::response::{IntoResponse, Response};
use futures::{SinkExt, StreamExt};
use http::{header, HeaderValue, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::pods::Agent;

/// The port-forward protocol, as `X-Stream-Protocol-Version` names it.
const PROTOCOL: &str = "portforward.k8s.io";
/// The WebSocket subprotocol tunnelling it.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
/// How long connecting to the pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the ports of a pod are.
pub(crate) struct Target {
    /// The pod's uid, for messages (the kubelet names the pod by its sandbox).
    pub(crate) pod: String,
    /// Its network namespace; `None`: the node's network.
    pub(crate) netns: Option<PathBuf>,
}

impl Target {
    /// A connection to `port` on the pod's localhost, or the error text for the client.
    pub(crate) async fn connect(&self, port: u16) -> Result<tokio::net::TcpStream, String> {
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let connected = match &self.netns {
            None => tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
                .await
                .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into())),
            Some(netns) => connect_in(netns.clone(), address).await,
        };
        connected.map_err(|e| {
            let place = match &self.netns {
                Some(netns) => format!(" inside namespace \"{}\"", netns.display()),
                None => String::new(),
            };
            // The kubelet's and containerd's words, with the OS error as Go prints it.
            let os = e.to_string();
            let os = os.split(" (os error").next().unwrap_or_default().to_lowercase();
            format!(
                "error forwarding port {port} to pod {}, uid : failed to connect to localhost:{port}{place}, IPv4: dial tcp4 {address}: connect: {os}",
                self.pod
            )
        })
    }
}

/// Connects to `address` from inside the network namespace at `netns`, on a thread of its own.
async fn connect_in(netns: PathBuf, address: SocketAddr) -> std::io::Result<tokio::net::TcpStream> {
    use std::os::fd::AsRawFd;
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let connected = (|| {
            let ns = std::fs::File::open(&netns)?;
            // SAFETY: setns on this short-lived thread only, with a descriptor we hold open.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let stream = std::net::TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
            stream.set_nonblocking(true)?;
            Ok(stream)
        })();
        let _ = tx.send(connected);
    });
    let stream = rx
        .await
        .map_err(|_| std::io::Error::other("the connecting thread died"))??;
    tokio::net::TcpStream::from_std(stream)
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, message).into_response()
}

/// Where pod `ns/name`'s ports are, or why they cannot be reached from here.
async fn resolve(agent: &Agent, ns: &str, name: &str) -> Result<Target, String> {
    let pods: Api<Pod> = Api::namespaced(agent.client.clone(), ns);
    let pod = match pods.get_opt(name).await {
        Ok(Some(pod)) => pod,
        Ok(None) => return Err(format!("pod \"{name}\" not found")),
        Err(e) => return Err(format!("cannot read pod \"{name}\": {e}")),
    };
    let running = agent.running_in(ns, name);
    if running.is_empty() {
        return Err(format!(
            "pod \"{name}\" has no running containers on node \"{}\"; cannot forward ports to it",
            agent.config.node_name
        ));
    }
    if running.iter().any(|r| r.runtime.handler() == "wasmtime") {
        return Err(format!(
            "pod \"{name}\" runs WebAssembly components (RuntimeClass wasm), which have no network of their own to forward ports to"
        ));
    }
    let uid = pod.metadata.uid.unwrap_or_default();
    let host_network = pod.spec.and_then(|s| s.host_network).unwrap_or(false);
    let netns = crate::runtime::network::netns_path(&uid);
    Ok(Target {
        netns: (!host_network && netns.exists()).then_some(netns),
        pod: uid,
    })
}

/// Whether a comma-separated header lists `wanted`.
fn lists(headers: &http::HeaderMap, name: header::HeaderName, wanted: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == wanted)
}

/// Serves `/portForward/{ns}/{pod}`.
pub(crate) async fn handle(
    State(agent): State<Arc<Agent>>,
    Path((ns, pod)): Path<(String, String)>,
    mut request: Request,
) -> Response {
    let upgrade = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_string();
    let websocket = upgrade.eq_ignore_ascii_case("websocket");
    if !websocket && !upgrade.eq_ignore_ascii_case("SPDY/3.1") {
        return bad_request(format!(
            "port-forward needs an upgrade to SPDY/3.1 or to a WebSocket with subprotocol {TUNNEL_PROTOCOL} (got upgrade {upgrade:?})"
        ));
    }
    let target = match resolve(&agent, &ns, &pod).await {
        Ok(t) => Arc::new(t),
        Err(message) => return bad_request(message),
    };
    let span = tracing::info_span!("port_forward", pod = %pod, namespace = %ns, websocket);
    if websocket {
        if !lists(
            request.headers(),
            header::SEC_WEBSOCKET_PROTOCOL,
            TUNNEL_PROTOCOL,
        ) {
            return bad_request(format!(
                "port-forward over a WebSocket needs subprotocol {TUNNEL_PROTOCOL}"
            ));
        }
        let (mut parts, _) = request.into_parts();
        let ws = match WebSocketUpgrade::from_request_parts(&mut parts, &agent).await {
            Ok(ws) => ws,
            Err(rejection) => return rejection.into_response(),
        };
        span.in_scope(|| tracing::info!("session"));
        return ws.protocols([TUNNEL_PROTOCOL]).on_upgrade(move |socket| {
            tracing::Instrument::instrument(tunnel(socket, target), span)
        });
    }
    // Kubernetes' handshake: a client naming protocols must name this one.
    if request.headers().contains_key("x-stream-protocol-version")
        && !lists(
            request.headers(),
            "x-stream-protocol-version".parse().expect("a header name"),
            PROTOCOL,
        )
    {
        return (
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: server supports [{PROTOCOL}]"
            ),
        )
            .into_response();
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    span.in_scope(|| tracing::info!("session"));
    tokio::spawn(tracing::Instrument::instrument(
        async move {
            match on_upgrade.await {
                Ok(upgraded) => session::serve(TokioIo::new(upgraded), target).await,
                Err(e) => tracing::warn!(error = %e, "port-forward upgrade failed"),
            }
        },
        span,
    ));
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(
        "x-stream-protocol-version",
        HeaderValue::from_static(PROTOCOL),
    );
    response
}

/// Runs a session on the bytes of a WebSocket's binary messages (kubectl's tunnel).
async fn tunnel(socket: WebSocket, target: Arc<Target>) {
    let (mut sink, mut incoming) = socket.split();
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let (mut from_session, mut to_session) = tokio::io::split(ours);
    let session = tokio::spawn(session::serve(theirs, target));
    let up = async move {
        while let Some(Ok(message)) = incoming.next().await {
            let written = match message {
                Message::Binary(bytes) => to_session.write_all(&bytes).await,
                Message::Close(_) => break,
                _ => Ok(()),
            };
            if written.is_err() {
                break;
            }
        }
        let _ = to_session.shutdown().await;
    };
    let down = async move {
        let mut buf = vec![0u8; 32 * 1024];
        while let Ok(n @ 1..) = from_session.read(&mut buf).await {
            let message = Message::Binary(bytes::Bytes::copy_from_slice(&buf[..n]));
            if sink.send(message).await.is_err() {
                return;
            }
        }
        // A normal closure (1000), which kubectl reads as the end of the stream.
        let close = CloseFrame {
            code: 1000,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(close))).await;
    };
    tokio::join!(up, down);
    let _ = session.await;
}
