//! The containerd runtime (handler `runc`, the default for pods without a RuntimeClass):
//! talks gRPC to containerd over its socket (`containerd-client`), in its own namespace.
//! Images are pulled from their registries ([`pull`]) into containerd's image store and
//! unpacked from it ([`image`]); each container run is a
//! containerd container with an OCI spec ([`spec`]) on a fresh overlay snapshot and a runc task
//! whose stdout/stderr FIFOs feed the CRI log ([`io`]); the task's exit status becomes the
//! container's exit code, and a stop is SIGTERM, then SIGKILL once the grace period is over.
//! Each pod gets a network namespace wired by CNI ([`super::network`]) unless `hostNetwork`.
//! What the agent makes in containerd (pulled blobs, unpacked layers, a container's snapshot)
//! is under a lease until what containerd's garbage collector counts holds it (the image record
//! and its `gc.ref` labels, the container record).
//! Containers left by an earlier agent are removed at start (their pods restart them per
//! `restartPolicy`, as for Wasm pods).

mod attach;
mod exec;
mod image;
mod io;
mod pull;
mod spec;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use containerd_client::services::v1::container::Runtime as RuntimeInfo;
use containerd_client::services::v1::leases_client::LeasesClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::{PrepareSnapshotRequest, RemoveSnapshotRequest};
use containerd_client::services::v1::{
    containers_client::ContainersClient, content_client::ContentClient, diff_client::DiffClient,
    images_client::ImagesClient, tasks_client::TasksClient, Container as ContainerSpec,
    CreateContainerRequest, CreateTaskRequest, DeleteContainerRequest, DeleteTaskRequest,
    KillRequest, ListContainersRequest, StartRequest, WaitRequest,
};
use containerd_client::services::v1::{
    CreateRequest as CreateLeaseRequest, DeleteRequest as DeleteLeaseRequest,
};
use tokio::sync::watch;
use tonic::transport::Channel;

pub(crate) use image::rpc;

use super::network::{netns_path, NetworkConfig};
use super::{
    AttachInput, Container, ContainerConfig, ExecRequest, Exited, PodSandbox, RegistryCredential,
    Runtime,
};
use crate::Error;

/// Label marking the containers an agent made, with its node name.
const NODE_LABEL: &str = "keelson.dev/node";

/// How to reach containerd.
#[derive(Debug, Clone)]
pub struct ContainerdConfig {
    /// containerd's gRPC socket.
    pub socket: PathBuf,
    /// containerd namespace of the pods' images and containers (the CRI's is `k8s.io`).
    pub namespace: String,
    /// Snapshotter for container root filesystems.
    pub snapshotter: String,
    /// Pod networks; `None` runs every pod in the node's network.
    pub network: Option<NetworkConfig>,
    /// Where the agent keeps the FIFOs of running tasks.
    pub state_dir: PathBuf,
    /// The node's name (containers are labelled with it).
    pub node_name: String,
    /// Registries (`host:port`) reached over plain HTTP besides `localhost` and loopback ones.
    pub insecure_registries: Vec<String>,
}

/// The containerd runtime (cheap to clone: one gRPC channel).
#[derive(Clone)]
pub struct Containerd {
    channel: Channel,
    config: Arc<ContainerdConfig>,
    images: Arc<Mutex<HashMap<String, image::Image>>>,
    interactive: attach::Attachable,
    registry: Arc<pull::Registry>,
    pulls: pull::Pulls,
}

impl Containerd {
    /// Connects to containerd and removes containers an earlier agent on this node left.
    pub async fn connect(config: ContainerdConfig) -> Result<Self, Error> {
        let channel = containerd_client::connect(&config.socket)
            .await
            .map_err(|e| {
                Error::Runtime(format!(
                    "connecting to containerd at {}: {e}",
                    config.socket.display()
                ))
            })?;
        let runtime = Containerd {
            channel,
            registry: Arc::new(pull::Registry::new(config.insecure_registries.clone())),
            config: Arc::new(config),
            images: Default::default(),
            interactive: Default::default(),
            pulls: Default::default(),
        };
        runtime.remove_leftovers().await?;
        Ok(runtime)
    }

    fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        if let Ok(ns) = self.config.namespace.parse() {
            req.metadata_mut().insert("containerd-namespace", ns);
        }
        req
    }

    /// A request under `lease`: what it makes is safe from containerd's garbage collector
    /// until the lease goes.
    fn leased<T>(&self, message: T, lease: &str) -> tonic::Request<T> {
        let mut req = self.request(message);
        if let Ok(l) = lease.parse() {
            req.metadata_mut().insert("containerd-lease", l);
        }
        req
    }

    /// A lease for one `purpose` (containerd drops it after an hour should the agent die).
    async fn create_lease(&self, purpose: &str) -> Result<String, Error> {
        let id = format!("keelson-{purpose}-{}", image::uuid_like());
        let expire = k8s_openapi::jiff::Timestamp::now() + Duration::from_secs(3600);
        let labels = HashMap::from([("containerd.io/gc.expire".into(), expire.to_string())]);
        LeasesClient::new(self.channel.clone())
            .create(self.request(CreateLeaseRequest {
                id: id.clone(),
                labels,
            }))
            .await
            .map_err(rpc("create lease"))?;
        Ok(id)
    }

    async fn delete_lease(&self, id: &str) {
        let req = DeleteLeaseRequest {
            id: id.into(),
            sync: false,
        };
        if let Err(s) = LeasesClient::new(self.channel.clone())
            .delete(self.request(req))
            .await
        {
            tracing::warn!(lease = id, error = s.message(), "could not delete a lease");
        }
    }

    fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }
    fn images(&self) -> ImagesClient<Channel> {
        ImagesClient::new(self.channel.clone())
    }
    fn snapshots(&self) -> SnapshotsClient<Channel> {
        SnapshotsClient::new(self.channel.clone())
    }
    fn diff(&self) -> DiffClient<Channel> {
        DiffClient::new(self.channel.clone())
    }
    fn containers(&self) -> ContainersClient<Channel> {
        ContainersClient::new(self.channel.clone())
    }
    fn tasks(&self) -> TasksClient<Channel> {
        TasksClient::new(self.channel.clone())
    }

    async fn remove_leftovers(&self) -> Result<(), Error> {
        let filter = format!("labels.\"{NODE_LABEL}\"=={}", self.config.node_name);
        let list = self
            .containers()
            .list(self.request(ListContainersRequest {
                filters: vec![filter],
            }))
            .await
            .map_err(rpc("list containers"))?
            .into_inner();
        for c in list.containers {
            tracing::info!(container.id = %c.id, "removing a container left by an earlier agent");
            self.remove(&c.id, true).await;
        }
        Ok(())
    }

    /// Kills the task (if `kill`), deletes it, the container and its snapshot.
    async fn remove(&self, id: &str, kill: bool) {
        if kill {
            let _ = self
                .tasks()
                .kill(self.request(KillRequest {
                    container_id: id.into(),
                    exec_id: String::new(),
                    signal: libc::SIGKILL as u32,
                    all: true,
                }))
                .await;
            let mut tasks = self.tasks();
            let wait = tasks.wait(self.request(WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            }));
            let _ = tokio::time::timeout(Duration::from_secs(5), wait).await;
        }
        let _ = self
            .tasks()
            .delete(self.request(DeleteTaskRequest {
                container_id: id.into(),
            }))
            .await;
        let _ = self
            .containers()
            .delete(self.request(DeleteContainerRequest { id: id.into() }))
            .await;
        let _ = self
            .snapshots()
            .remove(self.request(RemoveSnapshotRequest {
                snapshotter: self.config.snapshotter.clone(),
                key: id.into(),
            }))
            .await;
    }

    async fn cached_image(&self, reference: &str) -> Result<image::Image, Error> {
        if let Some(i) = self
            .images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(reference)
        {
            return Ok(i.clone());
        }
        let resolved = self.image(reference).await?;
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(reference.to_string(), resolved.clone());
        Ok(resolved)
    }

    /// The container's snapshot on its image and the container record (under `lease`).
    async fn snapshot_and_container(
        &self,
        config: &ContainerConfig,
        image: &image::Image,
        spec_json: Vec<u8>,
        lease: &str,
    ) -> Result<Vec<containerd_client::types::Mount>, Error> {
        let id = config.id.clone();
        let mounts = self
            .snapshots()
            .prepare(self.leased(
                PrepareSnapshotRequest {
                    snapshotter: self.config.snapshotter.clone(),
                    key: id.clone(),
                    parent: image.chain_id.clone(),
                    labels: Default::default(),
                },
                lease,
            ))
            .await
            .map_err(rpc("prepare snapshot"))?
            .into_inner()
            .mounts;
        let container = ContainerSpec {
            id: id.clone(),
            labels: [
                (NODE_LABEL.to_string(), self.config.node_name.clone()),
                ("keelson.dev/pod-uid".to_string(), config.pod_uid.clone()),
            ]
            .into(),
            image: image::normalize(&config.image),
            runtime: Some(RuntimeInfo {
                name: "io.containerd.runc.v2".into(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: spec_json,
            }),
            snapshotter: self.config.snapshotter.clone(),
            snapshot_key: id.clone(),
            ..Default::default()
        };
        self.containers()
            .create(self.leased(
                CreateContainerRequest {
                    container: Some(container),
                },
                lease,
            ))
            .await
            .map_err(rpc("create container"))?;
        Ok(mounts)
    }

    /// Creates the container and starts its task; on failure everything made is removed.
    async fn create(&self, config: &ContainerConfig, fifos: &io::Fifos) -> Result<(), Error> {
        let image = self.cached_image(&config.image).await?;
        let netns = match self.config.network.is_some() && !config.host_network {
            true => Some(netns_path(&config.pod_uid)),
            false => None,
        };
        let spec = spec::build(config, &image, netns)?;
        let spec_json = serde_json::to_vec(&spec).map_err(|e| Error::Runtime(e.to_string()))?;
        let id = config.id.clone();
        // A run with this id from a crashed agent would be in the way.
        self.remove(&id, true).await;
        // Until the container holds its snapshot, a lease keeps it from the collector.
        let lease = self.create_lease("create").await?;
        let made = self
            .snapshot_and_container(config, &image, spec_json, &lease)
            .await;
        self.delete_lease(&lease).await;
        let mounts = made?;
        self.prepare_interactive(config, fifos.stdin.as_ref())?;
        let path = |p: Option<&PathBuf>| p.map(|p| p.display().to_string()).unwrap_or_default();
        self.tasks()
            .create(self.request(CreateTaskRequest {
                container_id: id.clone(),
                rootfs: mounts,
                stdin: path(fifos.stdin.as_ref()),
                stdout: path(Some(&fifos.stdout)),
                // A terminal has one output stream.
                stderr: path(Some(&fifos.stderr).filter(|_| !config.tty)),
                terminal: config.tty,
                ..Default::default()
            }))
            .await
            .map_err(rpc("create task"))?;
        if config.tty {
            fifos.without_stderr();
        }
        self.tasks()
            .start(self.request(StartRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }))
            .await
            .map_err(rpc("start task"))?;
        Ok(())
    }

    async fn wait_task(&self, id: &str, pod_uid: &str) -> Exited {
        let waited = self
            .tasks()
            .wait(self.request(WaitRequest {
                container_id: id.into(),
                exec_id: String::new(),
            }))
            .await;
        match waited {
            Ok(r) => {
                let code = r.into_inner().exit_status as i32;
                let mut exit = Exited::with_code(code);
                if code == 137 && oom_killed(pod_uid, id) {
                    exit.reason = "OOMKilled".into();
                }
                exit
            }
            Err(s) => Exited {
                code: 128,
                reason: "Error".into(),
                message: Some(format!("containerd wait: {}", s.message())),
            },
        }
    }
}

/// Whether the memory cgroup of container `id` saw the OOM killer (cgroup v2 or v1).
fn oom_killed(pod_uid: &str, id: &str) -> bool {
    let paths = [
        format!("/sys/fs/cgroup/keelson/{pod_uid}/{id}/memory.events"),
        format!("/sys/fs/cgroup/memory/keelson/{pod_uid}/{id}/memory.oom_control"),
    ];
    paths.iter().any(|p| {
        std::fs::read_to_string(p).is_ok_and(|text| {
            text.lines().any(|l| {
                let mut parts = l.split_whitespace();
                matches!(parts.next(), Some("oom_kill")) && parts.next().is_some_and(|n| n != "0")
            })
        })
    })
}

#[async_trait::async_trait]
impl Runtime for Containerd {
    fn handler(&self) -> &'static str {
        "runc"
    }

    fn scheme(&self) -> &'static str {
        "containerd"
    }

    fn pulls(&self) -> bool {
        true
    }

    async fn has_image(&self, image: &str) -> Result<bool, Error> {
        self.has(image).await
    }

    async fn pull(&self, image: &str, credentials: &[RegistryCredential]) -> Result<u64, Error> {
        self.pull_image(image, credentials).await
    }

    async fn prepare(&self, image: &str) -> Result<String, Error> {
        // Images can be re-imported under the same name: resolve afresh at each start.
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(image);
        Ok(self.cached_image(image).await?.id)
    }

    async fn create_sandbox(&self, pod: &PodSandbox) -> Result<Option<String>, Error> {
        match (&self.config.network, pod.host_network) {
            (Some(net), false) => net.setup(pod).await.map(Some),
            _ => Ok(None),
        }
    }

    async fn remove_sandbox(&self, pod: &PodSandbox) {
        if let (Some(net), false) = (&self.config.network, pod.host_network) {
            net.teardown(pod).await;
        }
        // runc removes each container's cgroup; the pod's parent stays behind otherwise.
        let mut dirs = vec![format!("/sys/fs/cgroup/keelson/{}", pod.uid)];
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for c in controllers.flatten() {
                dirs.push(format!("{}/keelson/{}", c.path().display(), pod.uid));
            }
        }
        for dir in dirs {
            let _ = std::fs::remove_dir(dir);
        }
    }

    async fn exec(&self, container_id: &str, request: ExecRequest) -> Result<i32, Error> {
        self.exec_in(container_id, request).await
    }

    async fn attach(&self, container_id: &str, input: AttachInput) -> Result<(), Error> {
        self.attach_to(container_id, input).await
    }

    fn usage(&self, pod_uid: &str, container_id: &str) -> Option<(u64, u64)> {
        crate::stats::cgroup_usage(pod_uid, container_id)
    }

    async fn start(&self, config: ContainerConfig) -> Result<Box<dyn Container>, Error> {
        let dir = self.config.state_dir.join(&config.id);
        let fifos = io::Fifos::open_with_stdin(dir, config.output.clone(), config.stdin)?;
        if let Err(e) = self.create(&config, &fifos).await {
            self.remove(&config.id, true).await;
            self.forget_interactive(&config.id);
            let _ = tokio::task::spawn_blocking(move || {
                fifos.abandon();
                fifos
            })
            .await
            .map(|f| tokio::spawn(f.finish(Duration::from_secs(1))));
            return Err(e);
        }
        let (tx, rx) = watch::channel(None);
        let this = self.clone();
        let (id, pod_uid) = (config.id.clone(), config.pod_uid.clone());
        tokio::spawn(async move {
            let exited = this.wait_task(&id, &pod_uid).await;
            // Output written just before the exit is still in the FIFOs: drain it first.
            fifos.finish(Duration::from_secs(2)).await;
            this.forget_interactive(&id);
            this.remove(&id, false).await;
            let _ = tx.send(Some(exited));
        });
        Ok(Box::new(TaskContainer {
            runtime: self.clone(),
            id: config.id,
            exit: rx,
        }))
    }
}

struct TaskContainer {
    runtime: Containerd,
    id: String,
    exit: watch::Receiver<Option<Exited>>,
}

impl TaskContainer {
    async fn kill(&self, signal: i32) {
        let req = KillRequest {
            container_id: self.id.clone(),
            exec_id: String::new(),
            signal: signal as u32,
            all: signal == libc::SIGKILL,
        };
        if let Err(s) = self.runtime.tasks().kill(self.runtime.request(req)).await {
            tracing::debug!(container.id = %self.id, error = %s.message(), "kill");
        }
    }
}

#[async_trait::async_trait]
impl Container for TaskContainer {
    async fn wait(&mut self) -> Exited {
        let exited = self.exit.wait_for(Option::is_some).await.map(|e| e.clone());
        match exited {
            Ok(e) => e.unwrap_or_else(|| Exited::with_code(137)),
            Err(_) => std::future::pending().await,
        }
    }

    async fn stop(&mut self, grace: Duration) -> Exited {
        if let Some(e) = self.exit.borrow().clone() {
            return e;
        }
        self.kill(libc::SIGTERM).await;
        if let Ok(e) = tokio::time::timeout(grace, self.wait()).await {
            return e;
        }
        self.kill(libc::SIGKILL).await;
        self.wait().await
    }
}
