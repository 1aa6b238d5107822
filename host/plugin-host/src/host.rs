//! [`PluginHost`]: the wasmtime engine, its epoch ticker, the WASI linker and
//! the precompiled cache; loads components into ready-to-call plugins.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::admission::AdmissionPlugin;
use crate::cache::{self, Cache};
use crate::command::{Command, CommandState};
use crate::controller::ControllerPlugin;
use crate::loaded::{Loaded, World};
use crate::metrics::Metrics;
use crate::scheduler::SchedulerPlugin;
use crate::store::State;
use crate::{Error, HostConfig, Limits};

/// Owns one wasmtime `Engine` (component model, pooling allocator, epoch
/// interruption) and one ticker thread that advances its epoch every
/// [`HostConfig::epoch_tick`]. Plugins keep the engine alive; the ticker
/// stops once the host and all its plugins are dropped.
#[derive(Clone)]
pub struct PluginHost {
    shared: Arc<Shared>,
}

/// State shared by the host and its plugins.
pub(crate) struct Shared {
    pub(crate) engine: Engine,
    pub(crate) config: HostConfig,
    linker: Linker<State>,
    /// WASI and the `cache` import: only controller components may read the cache.
    controller_linker: Linker<State>,
    command_linker: Linker<CommandState>,
    cache: Cache,
    /// Dropped with the last plugin; the ticker watches it through a `Weak`.
    _alive: Arc<()>,
}

impl PluginHost {
    /// A host with [`HostConfig::default`], caching precompiled components
    /// under `cache_dir` (created with mode 0700).
    pub fn new(cache_dir: impl AsRef<Path>) -> Result<Self, Error> {
        Self::with_config(cache_dir, HostConfig::default())
    }

    /// A host with explicit settings.
    pub fn with_config(cache_dir: impl AsRef<Path>, config: HostConfig) -> Result<Self, Error> {
        let engine = Engine::new(&engine_config(&config))
            .map_err(|e| Error::Limits(format!("cannot create engine: {e:#}")))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| Error::Limits(format!("cannot link WASI: {e:#}")))?;
        let mut controller_linker = linker.clone();
        crate::controller::add_cache_to_linker(&mut controller_linker)
            .map_err(|e| Error::Limits(format!("cannot link the cache import: {e:#}")))?;
        let command_linker = crate::command::command_linker(&engine)
            .map_err(|e| Error::Limits(format!("cannot link WASI: {e:#}")))?;
        let cache = Cache::open(cache_dir.as_ref(), &engine)?;
        let alive = Arc::new(());
        spawn_ticker(engine.clone(), config.epoch_tick, Arc::downgrade(&alive))?;
        Ok(PluginHost {
            shared: Arc::new(Shared {
                engine,
                config,
                linker,
                controller_linker,
                command_linker,
                cache,
                _alive: alive,
            }),
        })
    }

    /// Compiles (or loads from the cache) an admission component and checks it
    /// implements world `keelson:plugin/admission` with only WASI p2 imports.
    /// On error nothing changes: the caller keeps running the previous version.
    pub fn load(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Arc<AdmissionPlugin>, Error> {
        Ok(Arc::new(AdmissionPlugin {
            inner: self.prepare(name, wasm, limits)?,
        }))
    }

    /// Like [`load`](Self::load), for a component of world `keelson:plugin/scheduler`.
    pub fn load_scheduler(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Arc<SchedulerPlugin>, Error> {
        Ok(Arc::new(SchedulerPlugin {
            inner: self.prepare(name, wasm, limits)?,
        }))
    }

    /// Like [`load`](Self::load), for a component of world `keelson:plugin/controller`;
    /// its `cache` import is served per call (see [`ControllerPlugin::reconcile_async`]).
    pub fn load_controller(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Arc<ControllerPlugin>, Error> {
        Ok(Arc::new(ControllerPlugin {
            inner: self.prepare_with(&self.shared.controller_linker, name, wasm, limits)?,
        }))
    }

    /// The world-independent part of loading: limits checked, compiled or
    /// cached code, WASI linked, exports checked against world `W`.
    fn prepare<W: World>(
        &self,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Loaded<W>, Error> {
        self.prepare_with(&self.shared.linker, name, wasm, limits)
    }

    /// [`prepare`](Self::prepare) with the imports of `linker`.
    fn prepare_with<W: World>(
        &self,
        linker: &Linker<State>,
        name: &str,
        wasm: &[u8],
        limits: Limits,
    ) -> Result<Loaded<W>, Error> {
        self.check_limits(&limits)?;
        let digest = cache::sha256_hex(wasm);
        let (component, outcome) =
            self.shared
                .cache
                .component(&self.shared.engine, wasm, &digest)?;
        let instance_pre = linker
            .instantiate_pre(&component)
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        let pre = W::new(instance_pre)
            .map_err(|e| Error::Compile(format!("not a {} plugin: {e:#}", W::NAME)))?;
        tracing::info!(plugin.name = %name, plugin.world = W::NAME, plugin.digest = %digest, cache = ?outcome, "plugin loaded");
        Ok(Loaded {
            name: name.to_string(),
            digest,
            limits,
            cache: outcome,
            pre,
            shared: self.shared.clone(),
            metrics: Metrics::default(),
        })
    }

    /// Compiles (or loads from the cache) a WASI command component (`wasi:cli/command`,
    /// e.g. a wasm32-wasip2 binary) for [`Command::run`].
    pub fn load_command(&self, name: &str, wasm: &[u8]) -> Result<Arc<Command>, Error> {
        let digest = cache::sha256_hex(wasm);
        let (component, outcome) =
            self.shared
                .cache
                .component(&self.shared.engine, wasm, &digest)?;
        let instance_pre = self
            .shared
            .command_linker
            .instantiate_pre(&component)
            .map_err(|e| Error::Compile(format!("{e:#}")))?;
        let pre = wasmtime_wasi::p2::bindings::CommandPre::new(instance_pre)
            .map_err(|e| Error::Compile(format!("not a WASI command: {e:#}")))?;
        tracing::info!(command = %name, digest = %digest, cache = ?outcome, "command loaded");
        Ok(Arc::new(Command::new(
            pre,
            self.shared.clone(),
            format!("sha256:{digest}"),
        )))
    }

    /// The host's settings.
    pub fn config(&self) -> &HostConfig {
        &self.shared.config
    }

    fn check_limits(&self, limits: &Limits) -> Result<(), Error> {
        let config = &self.shared.config;
        if limits.memory_bytes > config.max_memory_bytes {
            return Err(Error::Limits(format!(
                "memory cap {} bytes exceeds the host maximum {}",
                limits.memory_bytes, config.max_memory_bytes
            )));
        }
        if limits.fuel.is_some() && !config.fuel {
            return Err(Error::Limits(
                "fuel limit needs a host with HostConfig::fuel".into(),
            ));
        }
        Ok(())
    }
}

fn engine_config(config: &HostConfig) -> Config {
    let n = config.max_instances.max(1);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(8))
        .total_memories(n.saturating_mul(2))
        .total_tables(n.saturating_mul(8))
        .total_stacks(n)
        .max_memory_size(config.max_memory_bytes)
        .max_memories_per_component(4)
        .max_core_instances_per_component(16)
        .max_tables_per_component(16);
    let mut cfg = Config::new();
    cfg.wasm_component_model(true)
        .epoch_interruption(true)
        .consume_fuel(config.fuel)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    cfg
}

fn spawn_ticker(engine: Engine, tick: Duration, alive: Weak<()>) -> Result<(), Error> {
    std::thread::Builder::new()
        .name("wasm-epoch".into())
        .spawn(move || {
            while alive.strong_count() > 0 {
                std::thread::sleep(tick);
                engine.increment_epoch();
            }
        })?;
    Ok(())
}
