//! WASI command components (`wasi:cli/command`, built for wasm32-wasip2) run to completion on
//! the shared engine, as the kubelet's `wasm` runtime needs: arguments, environment, stdout and
//! stderr handed to an [`OutputSink`], preopened host directories, a memory cap, a CPU share (the guest is paused after each
//! epoch tick it runs, so it uses at most `cpu_millis` per second), and the exit code
//! (`wasi:cli/exit#exit-with-code`, stable since WASI 0.2.12, lets guests end with any code).
//! A run ends when the guest returns or exits; dropping the future kills it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use wasmtime::component::Linker;
use wasmtime::{Store, StoreLimitsBuilder, Trap, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::host::Shared;
use crate::store::MemoryCap;
use crate::Error;

/// Which output stream the guest wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Receives what a command writes; called from the executor, so it must not block for long.
pub trait OutputSink: Send + Sync + 'static {
    /// The guest wrote `bytes` to `stream`.
    fn write(&self, stream: Stream, bytes: &[u8]);
}

/// What a running command uses, readable while it runs (e.g. for `kubectl top`).
#[derive(Debug, Default)]
pub struct Usage {
    cpu_nanos: AtomicU64,
    memory_bytes: AtomicU64,
}

impl Usage {
    /// CPU time the guest has run so far (in epoch ticks, so rounded to the tick).
    pub fn cpu_time(&self) -> Duration {
        Duration::from_nanos(self.cpu_nanos.load(Ordering::Relaxed))
    }

    /// Bytes of linear memory the guest holds.
    pub fn memory_bytes(&self) -> u64 {
        self.memory_bytes.load(Ordering::Relaxed)
    }

    pub(crate) fn grew(&self, bytes: usize) {
        self.memory_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn ran(&self, tick: Duration) {
        self.cpu_nanos
            .fetch_add(tick.as_nanos() as u64, Ordering::Relaxed);
    }
}

/// One run of a command.
#[derive(Clone)]
pub struct CommandRun {
    /// `argv[0]` and the arguments.
    pub args: Vec<String>,
    /// Environment variables, in order.
    pub env: Vec<(String, String)>,
    /// Where stdout and stderr go.
    pub output: Arc<dyn OutputSink>,
    /// Cap on linear memory, in bytes (at most [`HostConfig::max_memory_bytes`](crate::HostConfig)).
    pub memory_bytes: usize,
    /// CPU share in millicores (1000 = one core); `None` = unthrottled.
    pub cpu_millis: Option<u64>,
    /// Total CPU time the guest may use before it is stopped; `None` = unbounded.
    pub cpu_time: Option<Duration>,
    /// Host directories the guest sees, as (host path, guest path, read-only).
    pub preopens: Vec<Preopen>,
    /// Where the run publishes its CPU time and memory while it runs; `None`: nowhere.
    pub usage: Option<Arc<Usage>>,
}

/// A host directory made visible to a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preopen {
    /// The directory on the host.
    pub host: std::path::PathBuf,
    /// Where the guest finds it, e.g. `/data`.
    pub guest: String,
    /// The guest may only read.
    pub read_only: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    /// The guest returned or called exit: its code (0 = success, 1 = `exit(err)`).
    Code(i32),
    /// The guest could not go on; `reason` is a Kubernetes-style reason
    /// (`OOMKilled`, `DeadlineExceeded`, `Error`) and `message` says why.
    Failed {
        /// Short reason, e.g. `OOMKilled`.
        reason: &'static str,
        /// What happened.
        message: String,
    },
}

impl Exit {
    /// The exit code a container status shows: the guest's, 137 for OOM, 1 otherwise.
    pub fn code(&self) -> i32 {
        match self {
            Exit::Code(c) => *c,
            Exit::Failed { reason, .. } if *reason == "OOMKilled" => 137,
            Exit::Failed { .. } => 1,
        }
    }
}

/// A compiled, pre-linked WASI command; cheap to run many times.
pub struct Command {
    pre: CommandPre<CommandState>,
    shared: Arc<Shared>,
    /// Content digest (`sha256:<hex>`).
    pub digest: String,
}

/// The store data of one command run.
pub(crate) struct CommandState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
}

impl WasiView for CommandState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The linker for commands: WASI p2 (0.2.12, so `exit-with-code` is there).
pub(crate) fn command_linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<CommandState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

impl Command {
    pub(crate) fn new(pre: CommandPre<CommandState>, shared: Arc<Shared>, digest: String) -> Self {
        Command {
            pre,
            shared,
            digest,
        }
    }

    /// Runs the command to its end. The returned CPU time is how long the guest ran (counted
    /// in epoch ticks, so it is rounded to [`HostConfig::epoch_tick`](crate::HostConfig)).
    pub async fn run(&self, run: CommandRun) -> Result<(Exit, Duration), Error> {
        let config = &self.shared.config;
        if run.memory_bytes > config.max_memory_bytes {
            return Err(Error::Limits(format!(
                "memory limit {} bytes exceeds the host maximum {}",
                run.memory_bytes, config.max_memory_bytes
            )));
        }
        let mut wasi = WasiCtx::builder();
        wasi.args(&run.args)
            .envs(&run.env)
            .stdout(Sink::new(run.output.clone(), Stream::Stdout))
            .stderr(Sink::new(run.output.clone(), Stream::Stderr));
        for p in &run.preopens {
            let perms = match p.read_only {
                true => wasmtime_wasi::FsPerms::ReadOnly,
                false => wasmtime_wasi::FsPerms::ReadWrite,
            };
            wasi.preopened_dir(&p.host, &p.guest, perms).map_err(|e| {
                Error::Limits(format!(
                    "cannot open {} for the guest: {e:#}",
                    p.host.display()
                ))
            })?;
        }
        let mut limiter = MemoryCap::new(
            StoreLimitsBuilder::new()
                .memory_size(run.memory_bytes)
                .instances(32)
                .tables(64)
                .memories(8)
                .build(),
            run.memory_bytes,
        );
        limiter.usage = run.usage.clone();
        let usage = run.usage.clone();
        let mut store = Store::new(
            &self.shared.engine,
            CommandState {
                wasi: wasi.build(),
                table: ResourceTable::new(),
                limiter,
            },
        );
        store.limiter(|s| &mut s.limiter);
        let ticks = Arc::new(AtomicU64::new(0));
        let tick = config.epoch_tick;
        let counted = ticks.clone();
        let budget = run
            .cpu_time
            .map(|t| (t.as_nanos() / tick.as_nanos().max(1)) as u64);
        // Each callback means the guest ran for about one tick: pause it so its share stays at
        // `cpu_millis`, and yield to the executor either way.
        let pause = run
            .cpu_millis
            .filter(|m| *m < 1000)
            .map(|m| tick.mul_f64((1000.0 - m.max(1) as f64) / m.max(1) as f64));
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let used = counted.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(u) = &usage {
                u.ran(tick);
            }
            if budget.is_some_and(|b| used > b) {
                return Ok(UpdateDeadline::Interrupt);
            }
            Ok(match pause {
                Some(p) => UpdateDeadline::YieldCustom(1, Box::pin(tokio::time::sleep(p))),
                None => UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now())),
            })
        });
        if config.fuel {
            store
                .set_fuel(u64::MAX)
                .map_err(|e| Error::Limits(format!("{e:#}")))?;
        }
        let started = Instant::now();
        let result = match self.pre.instantiate_async(&mut store).await {
            Ok(command) => command.wasi_cli_run().call_run(&mut store).await,
            Err(e) => Err(e),
        };
        let cpu = tick * ticks.load(Ordering::Relaxed) as u32;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            cpu_ms = cpu.as_millis() as u64,
            "command ended"
        );
        let exit = match result {
            Ok(Ok(())) => Exit::Code(0),
            Ok(Err(())) => Exit::Code(1),
            Err(e) => {
                if let Some(code) = e.downcast_ref::<I32Exit>() {
                    Exit::Code(code.0)
                } else if store.data().limiter.hit {
                    Exit::Failed {
                        reason: "OOMKilled",
                        message: format!("memory limit of {} bytes exceeded", run.memory_bytes),
                    }
                } else if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
                    Exit::Failed {
                        reason: "DeadlineExceeded",
                        message: format!(
                            "CPU time limit of {:?} exceeded",
                            run.cpu_time.unwrap_or_default()
                        ),
                    }
                } else {
                    Exit::Failed {
                        reason: "Error",
                        message: format!("{e:#}"),
                    }
                }
            }
        };
        Ok((exit, cpu))
    }
}

/// A guest output stream feeding an [`OutputSink`].
#[derive(Clone)]
struct Sink {
    sink: Arc<dyn OutputSink>,
    stream: Stream,
}

impl Sink {
    fn new(sink: Arc<dyn OutputSink>, stream: Stream) -> Self {
        Sink { sink, stream }
    }
}

impl wasmtime_wasi::cli::IsTerminal for Sink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for Sink {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for Sink {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::OutputStream for Sink {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), wasmtime_wasi::p2::StreamError> {
        self.sink.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), wasmtime_wasi::p2::StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, wasmtime_wasi::p2::StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for Sink {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.sink.write(self.stream, buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
