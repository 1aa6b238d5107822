//! The `wasmtime` runtime (RuntimeClass `wasm`): a container's image resolves to a WASI command
//! component in the local OCI image layout, compiled once per image on the shared plugin-host
//! engine and run in-process: `argv` and `env` from the pod spec, stdout/stderr to the
//! container log, `resources.limits.memory` as the memory cap (default 128 MiB, at most the
//! host's slot size), volume mounts as preopened directories, `resources.limits.cpu` as its
//! CPU share, and the guest's exit code as the container's. Its linear memory and CPU time
//! are what `kubectl top` reports for it. Wasm guests have no signals:
//! SIGTERM's default action applies, so a stop ends the guest at once (exit code 143).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use keelson_plugin_host::{Command, CommandRun, Exit, PluginHost, Usage};
use tokio::task::JoinHandle;

use super::{Container, ContainerConfig, ExecRequest, Exited, Runtime};
use crate::images::ImageStore;
use crate::Error;

/// Memory cap of a Wasm container without `resources.limits.memory`.
pub const DEFAULT_MEMORY: u64 = 128 << 20;

/// Runs WASI command components.
pub struct WasmRuntime {
    host: PluginHost,
    images: ImageStore,
    compiled: Mutex<HashMap<String, Arc<Command>>>,
    /// Live usage of the running guests, by container id.
    usage: Arc<Mutex<HashMap<String, Arc<Usage>>>>,
}

impl WasmRuntime {
    /// A runtime on `host`'s engine, with images from `images`.
    pub fn new(host: PluginHost, images: ImageStore) -> Self {
        WasmRuntime {
            host,
            images,
            compiled: Mutex::new(HashMap::new()),
            usage: Default::default(),
        }
    }

    async fn command(&self, image: &str) -> Result<(Arc<Command>, String), Error> {
        let resolved = self.images.resolve(image)?;
        if let Some(c) = self
            .compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&resolved.image_id)
        {
            return Ok((c.clone(), resolved.image_id));
        }
        let host = self.host.clone();
        let name = image.to_string();
        let command = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&resolved.wasm)?;
            host.load_command(&name, &bytes)
                .map_err(|e| Error::Runtime(e.to_string()))
        })
        .await
        .map_err(|e| Error::Runtime(e.to_string()))??;
        let id = self.images.resolve(image)?.image_id;
        self.compiled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), command.clone());
        Ok((command, id))
    }
}

#[async_trait::async_trait]
impl Runtime for WasmRuntime {
    fn handler(&self) -> &'static str {
        "wasmtime"
    }

    fn scheme(&self) -> &'static str {
        "wasm"
    }

    fn usage(&self, _pod_uid: &str, container_id: &str) -> Option<(u64, u64)> {
        let map = self.usage.lock().unwrap_or_else(|e| e.into_inner());
        let u = map.get(container_id)?;
        Some((u.cpu_time().as_nanos() as u64, u.memory_bytes()))
    }

    async fn exec(&self, _container_id: &str, _request: ExecRequest) -> Result<i32, Error> {
        Err(Error::Unsupported(
            "a Wasm container is one WASI command with no processes to exec into".into(),
        ))
    }

    async fn prepare(&self, image: &str) -> Result<String, Error> {
        Ok(self.command(image).await?.1)
    }

    async fn start(&self, config: ContainerConfig) -> Result<Box<dyn Container>, Error> {
        let (command, _) = self.command(&config.image).await?;
        let max = self.host.config().max_memory_bytes as u64;
        let memory = config.memory_limit.unwrap_or(DEFAULT_MEMORY).min(max);
        // A component is its own entrypoint: `command` only names argv[0] (default: the image).
        let mut argv = config.command.clone();
        if argv.is_empty() {
            argv.push(config.image.clone());
        }
        argv.extend(config.args.iter().cloned());
        let usage = Arc::new(Usage::default());
        let run = CommandRun {
            args: argv,
            env: config.env.clone(),
            output: config.output.clone(),
            memory_bytes: memory as usize,
            cpu_millis: config.cpu_limit_millis,
            cpu_time: None,
            preopens: config
                .mounts
                .iter()
                .map(|m| keelson_plugin_host::Preopen {
                    host: m.host.clone(),
                    guest: m.guest.clone(),
                    read_only: m.read_only,
                })
                .collect(),
            usage: Some(usage.clone()),
        };
        let (usage_map, id) = (self.usage.clone(), config.id.clone());
        usage_map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), usage);
        let task = tokio::spawn(async move {
            let _forget = Forget(usage_map, id);
            match command.run(run).await {
                Ok((Exit::Code(code), _)) => Exited::with_code(code),
                Ok((exit @ Exit::Failed { .. }, _)) => {
                    let code = exit.code();
                    let Exit::Failed { reason, message } = exit else {
                        unreachable!()
                    };
                    Exited {
                        code,
                        reason: reason.into(),
                        message: Some(message),
                    }
                }
                Err(e) => Exited {
                    code: 128,
                    reason: "StartError".into(),
                    message: Some(e.to_string()),
                },
            }
        });
        Ok(Box::new(WasmContainer { task: Some(task) }))
    }
}

/// Drops a guest's usage entry when its task ends (or is aborted).
struct Forget(Arc<Mutex<HashMap<String, Arc<Usage>>>>, String);

impl Drop for Forget {
    fn drop(&mut self) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.1);
    }
}

struct WasmContainer {
    task: Option<JoinHandle<Exited>>,
}

#[async_trait::async_trait]
impl Container for WasmContainer {
    async fn wait(&mut self) -> Exited {
        match self.task.as_mut() {
            Some(task) => {
                let exit = task.await.unwrap_or_else(|e| Exited {
                    code: 137,
                    reason: "Error".into(),
                    message: Some(format!("guest task ended: {e}")),
                });
                self.task = None;
                exit
            }
            None => std::future::pending().await,
        }
    }

    async fn stop(&mut self, _grace: Duration) -> Exited {
        match self.task.take() {
            Some(task) if task.is_finished() => task.await.unwrap_or(Exited::with_code(137)),
            Some(task) => {
                task.abort();
                let _ = task.await;
                Exited {
                    code: 143,
                    reason: "Error".into(),
                    message: Some("terminated (Wasm guests cannot handle SIGTERM)".into()),
                }
            }
            None => Exited::with_code(143),
        }
    }
}
