//! One probe attempt, as the kubelet makes it: `exec` (a command in the container through its
//! runtime; exit 0 passes), `httpGet` (HTTP/1.1 GET from the node to the pod IP, or `host`;
//! 200–399 passes), `tcpSocket` (a connection opens) — each bounded by `timeoutSeconds`. A
//! failure carries Kubernetes' message (`HTTP probe failed with statuscode: 500`, `dial tcp
//! 10.42.0.5:80: connect: connection refused`, the command's output). gRPC and HTTPS probes
//! fail with a message saying they are not supported.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::runtime::{ExecRequest, OutputSink, Runtime, Stream};

/// Where a probe attempt goes.
pub(crate) struct Target {
    pub(crate) runtime: Arc<dyn Runtime>,
    pub(crate) container_id: String,
    pub(crate) pod_ip: String,
}

/// The probe's timeout (`timeoutSeconds`, default 1).
pub(crate) fn timeout(p: &Probe) -> Duration {
    Duration::from_secs(p.timeout_seconds.unwrap_or(1).max(1) as u64)
}

#[derive(Default)]
struct Collect(Mutex<Vec<u8>>);

impl OutputSink for Collect {
    fn write(&self, _: Stream, bytes: &[u8]) {
        let mut out = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if out.len() < 10 * 1024 {
            out.extend_from_slice(bytes);
        }
    }
}

fn port(port: &IntOrString, container: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).map_err(|_| format!("invalid port {p}")),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("port {name:?} not found in the container's ports")),
    }
}

fn dial_error(addr: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            format!("dial tcp {addr}: connect: connection refused")
        }
        _ => format!("dial tcp {addr}: {e}"),
    }
}

/// Runs one attempt of `probe`; `Err` holds the failure message.
pub(crate) async fn run(
    probe: &Probe,
    container: &Container,
    target: &Target,
) -> Result<(), String> {
    let limit = timeout(probe);
    if let Some(exec) = &probe.exec {
        let command = exec.command.clone().unwrap_or_default();
        let sink = Arc::new(Collect::default());
        let request = ExecRequest {
            tty: None,
            command: command.clone(),
            stdin: None,
            output: sink.clone(),
        };
        let run = target.runtime.exec(&target.container_id, request);
        let code = match tokio::time::timeout(limit, run).await {
            Err(_) => return Err(format!("command {command:?} timed out")),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(code)) => code,
        };
        let out = sink.0.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let out = String::from_utf8_lossy(&out).trim_end().to_string();
        return match code {
            0 => Ok(()),
            _ if out.is_empty() => Err(format!("command {command:?} exited with {code}")),
            _ => Err(out),
        };
    }
    if let Some(tcp) = &probe.tcp_socket {
        let host = tcp.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let addr = format!("{host}:{}", port(&tcp.port, container)?);
        return match tokio::time::timeout(limit, tokio::net::TcpStream::connect(&addr)).await {
            Err(_) => Err(format!("dial tcp {addr}: i/o timeout")),
            Ok(Err(e)) => Err(dial_error(&addr, &e)),
            Ok(Ok(_)) => Ok(()),
        };
    }
    if let Some(http) = &probe.http_get {
        if http.scheme.as_deref() == Some("HTTPS") {
            return Err("HTTPS probes are not supported by this node".into());
        }
        let host = http.host.clone().unwrap_or_else(|| target.pod_ip.clone());
        let addr = format!("{host}:{}", port(&http.port, container)?);
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        let url = format!("http://{addr}{path}");
        let mut request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\nConnection: close\r\n"
        );
        for h in http.http_headers.iter().flatten() {
            request.push_str(&format!("{}: {}\r\n", h.name, h.value));
        }
        request.push_str("\r\n");
        let attempt = async {
            let mut s = tokio::net::TcpStream::connect(&addr)
                .await
                .map_err(|e| format!("Get {url:?}: {}", dial_error(&addr, &e)))?;
            s.write_all(request.as_bytes())
                .await
                .map_err(|e| format!("Get {url:?}: {e}"))?;
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.windows(2).any(|w| w == b"\r\n") && head.len() < 8192 {
                let n = s
                    .read(&mut buf)
                    .await
                    .map_err(|e| format!("Get {url:?}: {e}"))?;
                if n == 0 {
                    break;
                }
                head.extend_from_slice(&buf[..n]);
            }
            let line = String::from_utf8_lossy(&head);
            let code: u16 = line
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("Get {url:?}: malformed HTTP response"))?;
            match code {
                200..=399 => Ok(()),
                _ => Err(format!("HTTP probe failed with statuscode: {code}")),
            }
        };
        return match tokio::time::timeout(limit, attempt).await {
            Err(_) => Err(format!(
                "Get {url:?}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
            )),
            Ok(r) => r,
        };
    }
    if probe.grpc.is_some() {
        return Err("gRPC probes are not supported by this node".into());
    }
    Err("the probe has no handler (exec, httpGet, tcpSocket)".into())
}
