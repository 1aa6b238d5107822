//! Commands run inside a running container (`kubectl exec`, exec probes): a containerd exec
//! process with the container's own process settings (environment, working directory, user)
//! and the requested command line, stdout/stderr through FIFOs to the caller's sink, stdin
//! pumped into a FIFO and closed (containerd `CloseIO`) when the caller's stream ends. With a
//! terminal (`kubectl exec -t`) the shim makes a pty: its output comes as stdout and each size
//! the caller sends resizes it (`ResizePty`).

use std::time::Duration;

use containerd_client::services::v1::{
    CloseIoRequest, DeleteProcessRequest, ExecProcessRequest, GetContainerRequest,
    ResizePtyRequest, StartRequest, WaitRequest,
};
use oci_spec::runtime::Spec;
use tokio::io::AsyncWriteExt;

use super::io::Fifos;
use super::{rpc, Containerd};
use crate::runtime::ExecRequest;
use crate::Error;

static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl Containerd {
    /// Runs `request` in container `id`; returns the exit code.
    pub(crate) async fn exec_in(&self, id: &str, mut request: ExecRequest) -> Result<i32, Error> {
        if request.command.is_empty() {
            return Err(Error::Config("exec needs a command".into()));
        }
        let container = self
            .containers()
            .get(self.request(GetContainerRequest { id: id.into() }))
            .await
            .map_err(|s| match s.code() {
                tonic::Code::NotFound => Error::Config(format!("container {id} is not running")),
                _ => rpc("get container")(s),
            })?
            .into_inner()
            .container
            .ok_or_else(|| Error::Config(format!("container {id} is not running")))?;
        let spec: Spec = container
            .spec
            .as_ref()
            .and_then(|a| serde_json::from_slice(&a.value).ok())
            .ok_or_else(|| Error::Runtime(format!("container {id} has no readable spec")))?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(request.command.clone()));
        process.set_terminal(Some(request.tty.is_some()));
        if let Some(sizes) = request.tty.as_mut() {
            // The client sends its size as soon as it connects: the terminal starts at that
            // size (a command that asks at once sees it), later sizes resize it.
            let first = tokio::time::timeout(Duration::from_secs(1), sizes.recv()).await;
            if let Ok(Some(size)) = first {
                let console = oci_spec::runtime::BoxBuilder::default()
                    .width(size.width)
                    .height(size.height)
                    .build()
                    .map_err(|e| Error::Runtime(e.to_string()))?;
                process.set_console_size(Some(console));
            }
        }
        let process = serde_json::to_vec(&process).map_err(|e| Error::Runtime(e.to_string()))?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let exec_id = format!("exec-{}-{n}", std::process::id());
        let dir = self.config.state_dir.join(format!("{id}.{exec_id}"));
        let fifos = Fifos::open_with_stdin(dir, request.output.clone(), request.stdin.is_some())?;
        let result = self.run_exec(id, &exec_id, process, &fifos, request).await;
        if result.is_err() {
            let f = tokio::task::spawn_blocking(move || {
                fifos.abandon();
                fifos
            })
            .await
            .map_err(|e| Error::Runtime(e.to_string()))?;
            f.finish(Duration::from_millis(100)).await;
        } else {
            fifos.finish(Duration::from_secs(2)).await;
        }
        let _ = self
            .tasks()
            .delete_process(self.request(DeleteProcessRequest {
                container_id: id.into(),
                exec_id: exec_id.clone(),
            }))
            .await;
        result
    }

    async fn run_exec(
        &self,
        id: &str,
        exec_id: &str,
        process: Vec<u8>,
        fifos: &Fifos,
        mut request: ExecRequest,
    ) -> Result<i32, Error> {
        let terminal = request.tty.take();
        let req = ExecProcessRequest {
            container_id: id.into(),
            stdin: fifos
                .stdin
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            stdout: fifos.stdout.display().to_string(),
            // A terminal has one output stream.
            stderr: match terminal {
                Some(_) => String::new(),
                None => fifos.stderr.display().to_string(),
            },
            terminal: terminal.is_some(),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: process,
            }),
            exec_id: exec_id.into(),
        };
        self.tasks()
            .exec(self.request(req))
            .await
            .map_err(rpc("exec"))?;
        self.tasks()
            .start(self.request(StartRequest {
                container_id: id.into(),
                exec_id: exec_id.into(),
            }))
            .await
            .map_err(rpc("start exec"))?;
        if let Some(mut sizes) = terminal {
            fifos.without_stderr();
            let this = self.clone();
            let (id, exec_id) = (id.to_string(), exec_id.to_string());
            tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    let resize = ResizePtyRequest {
                        container_id: id.clone(),
                        exec_id: exec_id.clone(),
                        width: size.width.into(),
                        height: size.height.into(),
                    };
                    if let Err(e) = this.tasks().resize_pty(this.request(resize)).await {
                        tracing::debug!(error = %e, "resizing the terminal");
                    }
                }
            });
        }
        if let (Some(path), Some(mut input)) = (fifos.stdin.clone(), request.stdin) {
            let this = self.clone();
            let (id, exec_id) = (id.to_string(), exec_id.to_string());
            tokio::spawn(async move {
                // Read-write: opening never waits for the shim, and its reads see EOF once
                // this end closes.
                let pipe = tokio::net::unix::pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(&path);
                if let Ok(mut pipe) = pipe {
                    while let Some(chunk) = input.recv().await {
                        if pipe.write_all(&chunk).await.is_err() {
                            break;
                        }
                    }
                }
                let _ = this
                    .tasks()
                    .close_io(this.request(CloseIoRequest {
                        container_id: id,
                        exec_id,
                        stdin: true,
                    }))
                    .await;
            });
        }
        let waited = self
            .tasks()
            .wait(self.request(WaitRequest {
                container_id: id.into(),
                exec_id: exec_id.into(),
            }))
            .await
            .map_err(rpc("wait exec"))?;
        Ok(waited.into_inner().exit_status as i32)
    }
}
