//! Container runtimes behind one trait ([`Runtime`]), chosen per pod by its RuntimeClass
//! handler ([`Runtimes`]). A runtime resolves images and starts containers; a started
//! [`Container`] is waited on, or stopped with a grace period (SIGTERM, then SIGKILL once the
//! grace period is over, for runtimes that have signals). Handlers: `wasmtime` ([`wasm`],
//! RuntimeClass `wasm`) and `runc` ([`containerd`], pods without a RuntimeClass). A runtime may
//! give each pod a sandbox (its network) before its first container starts.

pub mod containerd;
pub mod network;
pub mod wasm;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub use keelson_plugin_host::{OutputSink, Stream};

use crate::Error;

/// What a runtime needs to start one container.
#[derive(Clone)]
pub struct ContainerConfig {
    /// Unique id, `<pod uid>-<container>-<restart count>`.
    pub id: String,
    /// The pod's uid (its sandbox).
    pub pod_uid: String,
    /// The pod's hostname (its name).
    pub hostname: String,
    /// `hostNetwork`: the container shares the node's network.
    pub host_network: bool,
    /// The image reference from the pod spec.
    pub image: String,
    /// The expanded `command` (empty: the image's entrypoint).
    pub command: Vec<String>,
    /// The expanded `args`.
    pub args: Vec<String>,
    /// Environment, in order.
    pub env: Vec<(String, String)>,
    /// `resources.limits.memory` in bytes.
    pub memory_limit: Option<u64>,
    /// `resources.limits.cpu` in millicores.
    pub cpu_limit_millis: Option<u64>,
    /// Where stdout and stderr go.
    pub output: Arc<dyn OutputSink>,
    /// Volume mounts.
    pub mounts: Vec<Mount>,
    /// `stdin`: the process keeps a stdin that attached clients write to.
    pub stdin: bool,
    /// `stdinOnce`: that stdin closes when the first attached client closes it.
    pub stdin_once: bool,
    /// `tty`: the process runs in a terminal (its output arrives as stdout).
    pub tty: bool,
}

/// A user name and password for one registry (from a pod's `imagePullSecrets`).
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredential {
    /// The registry host (`host[:port]`; Docker Hub is `docker.io`).
    pub registry: String,
    /// User name.
    pub username: String,
    /// Password or token.
    pub password: String,
}

impl std::fmt::Debug for RegistryCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "RegistryCredential({}, {})",
            self.registry, self.username
        )
    }
}

/// A pod volume mounted into a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The volume's directory on the node.
    pub host: std::path::PathBuf,
    /// `mountPath`.
    pub guest: String,
    /// `readOnly`.
    pub read_only: bool,
}

/// How a container ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exited {
    /// Exit code (137 killed, 143 terminated).
    pub code: i32,
    /// Kubernetes' reason: `Completed`, `Error`, `OOMKilled`, `DeadlineExceeded`.
    pub reason: String,
    /// Why, when the runtime knows more than the code.
    pub message: Option<String>,
}

impl Exited {
    /// An exit with `code` and the usual reason for it.
    pub fn with_code(code: i32) -> Self {
        Exited {
            code,
            reason: if code == 0 { "Completed" } else { "Error" }.into(),
            message: None,
        }
    }
}

/// A started container.
#[async_trait::async_trait]
pub trait Container: Send {
    /// Waits until it ends.
    async fn wait(&mut self) -> Exited;
    /// Asks it to stop and kills it after `grace`; returns how it ended.
    async fn stop(&mut self, grace: Duration) -> Exited;
}

/// A command to run inside a running container (`kubectl exec`, exec probes).
pub struct ExecRequest {
    /// The command line.
    pub command: Vec<String>,
    /// The process' stdin, chunk by chunk (closed when the sender is dropped); `None`: none.
    pub stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    /// Where its stdout and stderr go (with a terminal, everything arrives as stdout).
    pub output: Arc<dyn OutputSink>,
    /// A terminal for the process (`kubectl exec -t`), resized to each size received; `None`:
    /// plain pipes.
    pub tty: Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
}

/// A terminal's size in characters (the `resize` channel's `{"Width":…,"Height":…}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TerminalSize {
    /// Columns.
    pub width: u16,
    /// Rows.
    pub height: u16,
}

/// What an attached client (`kubectl attach`) sends to a running container.
pub struct AttachInput {
    /// Its stdin, for a container with `stdin: true`; `None`: the client sends none.
    pub stdin: Option<tokio::sync::mpsc::Receiver<bytes::Bytes>>,
    /// Sizes of its terminal, for a container with `tty: true`.
    pub resize: Option<tokio::sync::mpsc::Receiver<TerminalSize>>,
}

/// The pod a sandbox is made for.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    /// The pod's uid.
    pub uid: String,
    /// `hostNetwork`.
    pub host_network: bool,
    /// The `hostPort`s of its containers' ports (those with one), as the kubelet hands them to
    /// the CRI's port mappings.
    pub port_mappings: Vec<PortMapping>,
}

/// A container port published on the node (`hostPort`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    /// The port on the node.
    pub host_port: i32,
    /// The port in the pod.
    pub container_port: i32,
    /// `tcp`, `udp` or `sctp`, lower-case as the CNI `portmap` plugin takes it.
    pub protocol: String,
    /// The node address it is bound to; empty: all of them.
    #[serde(rename = "hostIP")]
    pub host_ip: String,
}

impl PortMapping {
    /// The mappings of a pod's containers' ports that set `hostPort`.
    pub fn of(spec: &k8s_openapi::api::core::v1::PodSpec) -> Vec<PortMapping> {
        spec.containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter_map(|p| {
                let host_port = p.host_port.filter(|&h| h > 0)?;
                Some(PortMapping {
                    host_port,
                    container_port: p.container_port,
                    protocol: p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
                    host_ip: p.host_ip.clone().unwrap_or_default(),
                })
            })
            .collect()
    }
}

/// A container runtime.
#[async_trait::async_trait]
pub trait Runtime: Send + Sync {
    /// The RuntimeClass handler it serves, e.g. `wasmtime`.
    fn handler(&self) -> &'static str;
    /// The scheme of its container ids in the pod status, e.g. `containerd`.
    fn scheme(&self) -> &'static str;
    /// Makes the pod's sandbox; returns its own IP (`None`: the pod uses the node's).
    async fn create_sandbox(&self, _pod: &PodSandbox) -> Result<Option<String>, Error> {
        Ok(None)
    }
    /// Removes the pod's sandbox (after its containers stopped).
    async fn remove_sandbox(&self, _pod: &PodSandbox) {}
    /// Cumulative CPU nanoseconds and memory working set bytes of a running container.
    fn usage(&self, _pod_uid: &str, _container_id: &str) -> Option<(u64, u64)> {
        None
    }
    /// Runs a command in the running container `container_id` and returns its exit code.
    async fn exec(&self, _container_id: &str, _request: ExecRequest) -> Result<i32, Error> {
        Err(Error::Unsupported(format!(
            "the {} runtime cannot run commands in a container",
            self.handler()
        )))
    }
    /// Connects an attached client's stdin and terminal size to the running container
    /// `container_id` (its output reaches the client through the container's log writer).
    async fn attach(&self, _container_id: &str, _input: AttachInput) -> Result<(), Error> {
        Err(Error::Unsupported(format!(
            "the {} runtime cannot pass input to a container",
            self.handler()
        )))
    }
    /// Whether this runtime pulls images from registries (else its images are imported and
    /// [`Runtime::prepare`] tells when one is missing).
    fn pulls(&self) -> bool {
        false
    }
    /// Whether `image` is in the runtime's image store.
    async fn has_image(&self, _image: &str) -> Result<bool, Error> {
        Ok(true)
    }
    /// Pulls `image` from its registry (with the first of `credentials` for that registry,
    /// else anonymously) and returns its size in bytes. Concurrent pulls of one image are one.
    async fn pull(&self, image: &str, _credentials: &[RegistryCredential]) -> Result<u64, Error> {
        Err(Error::Unsupported(format!(
            "the {} runtime cannot pull {image}",
            self.handler()
        )))
    }
    /// Makes `image` ready to run (resolve, compile) and returns its image id.
    async fn prepare(&self, image: &str) -> Result<String, Error>;
    /// Starts a container.
    async fn start(&self, config: ContainerConfig) -> Result<Box<dyn Container>, Error>;
}

/// The runtimes of this agent, by handler.
#[derive(Clone)]
pub struct Runtimes {
    by_handler: HashMap<&'static str, Arc<dyn Runtime>>,
}

impl Runtimes {
    /// The given runtimes.
    pub fn new(runtimes: Vec<Arc<dyn Runtime>>) -> Self {
        Runtimes {
            by_handler: runtimes.into_iter().map(|r| (r.handler(), r)).collect(),
        }
    }

    /// The runtime serving `handler`.
    pub fn get(&self, handler: &str) -> Option<Arc<dyn Runtime>> {
        self.by_handler.get(handler).cloned()
    }

    /// The handlers served, sorted.
    pub fn handlers(&self) -> Vec<&'static str> {
        let mut h: Vec<_> = self.by_handler.keys().copied().collect();
        h.sort();
        h
    }
}

#[cfg(test)]
mod tests {
    use super::PortMapping;

    #[test]
    fn only_ports_with_a_host_port_are_mapped_with_lower_case_protocols() {
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "ports": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 53, "hostPort": 5353, "protocol": "UDP", "hostIP": "10.0.0.1"},
                    {"containerPort": 9090},
                ]},
                {"name": "b"},
            ]
        }))
        .unwrap();
        let got = PortMapping::of(&spec);
        assert_eq!(got.len(), 2, "{got:?}");
        assert_eq!((got[0].host_port, got[0].container_port), (8080, 80));
        assert_eq!(got[0].protocol, "tcp");
        assert_eq!(
            (got[1].protocol.as_str(), got[1].host_ip.as_str()),
            ("udp", "10.0.0.1")
        );
        let wire = serde_json::to_value(&got[1]).unwrap();
        assert_eq!(wire["hostIP"], "10.0.0.1", "{wire}");
        assert_eq!(wire["containerPort"], 53, "{wire}");
    }
}
