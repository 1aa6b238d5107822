//! `kubectl attach` to containerd containers. A container with `stdin: true` gets a stdin
//! FIFO when its task is made, held open by the agent, so the process sees EOF only when
//! Kubernetes says so: never, or with `stdinOnce` once the first attached client closes its
//! stdin. Attached clients write into that FIFO. A container with `tty: true` runs in the
//! shim's pty, and each attached client's terminal size resizes it (`ResizePty`). Output
//! reaches attached clients through the container's log writer, not from here.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use containerd_client::services::v1::{CloseIoRequest, ResizePtyRequest};
use tokio::io::AsyncWriteExt;
use tokio::net::unix::pipe;

use super::Containerd;
use crate::runtime::{AttachInput, ContainerConfig};
use crate::Error;

/// The input side of one interactive container.
pub(crate) struct Interactive {
    /// Its stdin FIFO, when `stdin: true`.
    stdin: Option<PathBuf>,
    /// The agent's own writer, which keeps the FIFO from reaching EOF.
    keeper: Mutex<Option<pipe::Sender>>,
    /// `stdinOnce`.
    once: bool,
    /// `tty`.
    tty: bool,
}

/// Interactive containers by container id.
pub(crate) type Attachable = Arc<Mutex<HashMap<String, Arc<Interactive>>>>;

fn lock(map: &Attachable) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Interactive>>> {
    map.lock().unwrap_or_else(|e| e.into_inner())
}

impl Containerd {
    /// Before the task of `config` is made: holds its stdin FIFO open and remembers how
    /// clients may attach. Containers without `stdin` or `tty` are not recorded.
    pub(crate) fn prepare_interactive(
        &self,
        config: &ContainerConfig,
        stdin: Option<&PathBuf>,
    ) -> Result<(), Error> {
        if !(config.stdin || config.tty) {
            return Ok(());
        }
        let keeper = match stdin {
            // Read-write: opening never waits for the shim.
            Some(path) => Some(
                pipe::OpenOptions::new()
                    .read_write(true)
                    .open_sender(path)
                    .map_err(|e| Error::Runtime(format!("stdin of {}: {e}", config.id)))?,
            ),
            None => None,
        };
        let state = Interactive {
            stdin: stdin.cloned(),
            keeper: Mutex::new(keeper),
            once: config.stdin_once,
            tty: config.tty,
        };
        lock(&self.interactive).insert(config.id.clone(), Arc::new(state));
        Ok(())
    }

    /// After the task of `id` ended.
    pub(crate) fn forget_interactive(&self, id: &str) {
        lock(&self.interactive).remove(id);
    }

    /// Connects a client's stdin and terminal size to container `id`. Input the container
    /// did not ask for (`stdin`, `tty` unset) is dropped, as the kubelet drops it.
    pub(crate) async fn attach_to(&self, id: &str, input: AttachInput) -> Result<(), Error> {
        let Some(state) = lock(&self.interactive).get(id).cloned() else {
            return Ok(());
        };
        if let (true, Some(mut sizes)) = (state.tty, input.resize) {
            let (this, id) = (self.clone(), id.to_string());
            tokio::spawn(async move {
                while let Some(size) = sizes.recv().await {
                    let resize = ResizePtyRequest {
                        container_id: id.clone(),
                        exec_id: String::new(),
                        width: size.width.into(),
                        height: size.height.into(),
                    };
                    if let Err(e) = this.tasks().resize_pty(this.request(resize)).await {
                        tracing::debug!(error = %e, "resizing the terminal");
                    }
                }
            });
        }
        let (Some(path), Some(mut stdin)) = (state.stdin.clone(), input.stdin) else {
            return Ok(());
        };
        let mut writer = pipe::OpenOptions::new()
            .read_write(true)
            .open_sender(&path)
            .map_err(|e| Error::Runtime(format!("stdin of {id}: {e}")))?;
        let (this, id) = (self.clone(), id.to_string());
        tokio::spawn(async move {
            while let Some(chunk) = stdin.recv().await {
                if writer.write_all(&chunk).await.is_err() {
                    break;
                }
            }
            drop(writer);
            if state.once {
                // The first client's end of stdin is the container's.
                state
                    .keeper
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take();
                let close = CloseIoRequest {
                    container_id: id,
                    exec_id: String::new(),
                    stdin: true,
                };
                let _ = this.tasks().close_io(this.request(close)).await;
            }
        });
        Ok(())
    }
}
