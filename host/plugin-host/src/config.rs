//! Host-wide settings ([`HostConfig`]) and per-plugin limits ([`Limits`]).

use std::time::Duration;

/// Settings of one [`PluginHost`](crate::PluginHost) and its wasmtime `Engine`.
///
/// They are part of the engine configuration, so changing them invalidates the
/// precompiled cache (entries are keyed by the engine's compatibility hash).
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// Largest memory cap any plugin may ask for, in bytes; also the size of a
    /// pooling-allocator memory slot. Default 256 MiB.
    pub max_memory_bytes: usize,
    /// Instances that may exist at once across all plugins (concurrent calls).
    /// Keep it at or above the caller's concurrency limit. Default 64.
    pub max_instances: u32,
    /// Whether fuel metering is compiled in (costs 10–25% per call); required
    /// for [`Limits::fuel`]. Default false.
    pub fuel: bool,
    /// Epoch tick period: deadlines are rounded up to whole ticks. Default 5 ms.
    pub epoch_tick: Duration,
    /// Bytes of guest stdout/stderr kept per call (shown in trap errors); the
    /// rest is discarded. Default 4 KiB.
    pub captured_output_bytes: usize,
}

impl Default for HostConfig {
    fn default() -> Self {
        HostConfig {
            max_memory_bytes: 256 << 20,
            max_instances: 64,
            fuel: false,
            epoch_tick: Duration::from_millis(5),
            captured_output_bytes: 4096,
        }
    }
}

/// Per-plugin limits, applied to every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Cap on the guest's linear memory, in bytes. Growth beyond it fails in the
    /// guest and a resulting trap is reported as [`Error::MemoryLimit`](crate::Error::MemoryLimit).
    pub memory_bytes: usize,
    /// Wall-clock budget of one call, instantiation included; reported as
    /// [`Error::Deadline`](crate::Error::Deadline). Rounded up to epoch ticks.
    pub timeout: Duration,
    /// Optional fuel (roughly, wasm instructions) per call; needs [`HostConfig::fuel`].
    pub fuel: Option<u64>,
}

impl Default for Limits {
    /// 64 MiB, 1 s (the WasmPlugin `timeoutMillis` default), no fuel.
    fn default() -> Self {
        Limits {
            memory_bytes: 64 << 20,
            timeout: Duration::from_millis(1000),
            fuel: None,
        }
    }
}
