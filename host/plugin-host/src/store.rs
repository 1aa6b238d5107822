//! Per-call store: WASI context without preopens, memory limiter, deadline,
//! captured guest output, and the mapping of wasmtime failures to [`Error`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use wasmtime::{
    Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline,
};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use crate::{Error, HostConfig, Limits};

/// Data of one call's `Store`.
pub(crate) struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    output: CapturedOutput,
    /// What a controller's `cache` import reads; `None` outside controller calls.
    pub(crate) cache: Option<std::sync::Arc<dyn crate::controller::ControllerCache>>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// [`StoreLimits`] that also remembers whether the memory cap refused growth,
/// so the trap that follows (allocation failure → abort) reads as `MemoryLimit`.
pub(crate) struct MemoryCap {
    inner: StoreLimits,
    cap: usize,
    pub(crate) hit: bool,
    /// Where the linear memory in use (all memories, bytes) is published, if anywhere.
    pub(crate) usage: Option<std::sync::Arc<crate::command::Usage>>,
}

impl MemoryCap {
    /// Limits with a cap of `cap` bytes on any one memory.
    pub(crate) fn new(inner: StoreLimits, cap: usize) -> Self {
        MemoryCap {
            inner,
            cap,
            hit: false,
            usage: None,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.inner.memory_growing(current, desired, maximum)?;
        self.hit |= !ok && desired > self.cap;
        if let (true, Some(usage)) = (ok, &self.usage) {
            usage.grew(desired.saturating_sub(current));
        }
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A fresh store for one call, with limits, deadline (wall clock, checked every
/// epoch tick, when a long-running guest also yields) and fuel set. Use only
/// with `*_async` calls.
pub(crate) fn new_store(
    engine: &Engine,
    config: &HostConfig,
    limits: &Limits,
) -> Result<Store<State>, Error> {
    let output = CapturedOutput::new(config.captured_output_bytes);
    let wasi = WasiCtx::builder()
        .stdout(output.clone())
        .stderr(output.clone())
        .build();
    let limiter = MemoryCap {
        inner: StoreLimitsBuilder::new()
            .memory_size(limits.memory_bytes)
            .instances(16)
            .tables(64)
            .memories(8)
            .build(),
        cap: limits.memory_bytes,
        hit: false,
        usage: None,
    };
    let mut store = Store::new(
        engine,
        State {
            wasi,
            table: ResourceTable::new(),
            limiter,
            output,
            cache: None,
        },
    );
    store.limiter(|state| &mut state.limiter);
    // The guest checks in every epoch tick. Once it has run for a tick (normal
    // calls take microseconds and never get there) it yields to the executor
    // at each tick, so a looping guest holds an async worker for at most about
    // two ticks at a time; after the wall-clock deadline, instantiation
    // included, it traps. Calls caught by a tick early just continue: a yield
    // defers the task behind other work, which would show in tail latency.
    let start = Instant::now();
    let deadline = start + limits.timeout;
    let tick = config.epoch_tick;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        let now = Instant::now();
        Ok(if now >= deadline {
            UpdateDeadline::Interrupt
        } else if now - start >= tick {
            UpdateDeadline::YieldCustom(1, Box::pin(tokio::task::yield_now()))
        } else {
            UpdateDeadline::Continue(1)
        })
    });
    if let Some(fuel) = limits.fuel {
        store
            .set_fuel(fuel)
            .map_err(|e| Error::Limits(format!("{e:#}")))?;
    } else if config.fuel {
        store
            .set_fuel(u64::MAX)
            .map_err(|e| Error::Limits(format!("{e:#}")))?;
    }
    Ok(store)
}

/// Classifies a failed instantiation or call.
pub(crate) fn classify(err: wasmtime::Error, store: &Store<State>, limits: &Limits) -> Error {
    let state = store.data();
    if state.limiter.hit {
        return Error::MemoryLimit(limits.memory_bytes);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) | Some(Trap::OutOfFuel) => Error::Deadline(limits.timeout),
        _ => {
            let output = state.output.text();
            if output.is_empty() {
                Error::Trap(format!("{err:#}"))
            } else {
                Error::Trap(format!("{err:#}; guest output: {output}"))
            }
        }
    }
}

/// Guest stdout/stderr: keeps the first `cap` bytes, drops the rest without
/// failing the guest.
#[derive(Clone)]
struct CapturedOutput {
    buf: Arc<Mutex<Vec<u8>>>,
    cap: usize,
}

impl CapturedOutput {
    fn new(cap: usize) -> Self {
        CapturedOutput {
            buf: Arc::new(Mutex::new(Vec::new())),
            cap,
        }
    }

    fn push(&self, bytes: &[u8]) {
        let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(buf.len());
        buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// The captured text, lossily decoded and trimmed.
    fn text(&self) -> String {
        let buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&buf).trim().to_string()
    }
}

impl wasmtime_wasi::cli::IsTerminal for CapturedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl wasmtime_wasi::cli::StdoutStream for CapturedOutput {
    fn p2_stream(&self) -> Box<dyn wasmtime_wasi::p2::OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::Pollable for CapturedOutput {
    async fn ready(&mut self) {}
}

#[wasmtime_wasi::async_trait]
impl wasmtime_wasi::p2::OutputStream for CapturedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), wasmtime_wasi::p2::StreamError> {
        self.push(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), wasmtime_wasi::p2::StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, wasmtime_wasi::p2::StreamError> {
        Ok(64 * 1024)
    }
}

impl tokio::io::AsyncWrite for CapturedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_output_is_capped() {
        let out = CapturedOutput::new(4);
        out.push(b"ab");
        out.push(b"cdef");
        assert_eq!(out.text(), "abcd");
    }
}
