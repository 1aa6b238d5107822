//! What every world's plugin shares: a pre-linked component of one world, its
//! limits and metrics, fresh instances per call under those limits, and timed
//! calls. The world bindings ([`crate::admission`], [`crate::scheduler`],
//! [`crate::controller`]) are
//! thin layers over [`Loaded`].

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use wasmtime::component::InstancePre;
use wasmtime::Store;

use crate::cache::CacheOutcome;
use crate::host::Shared;
use crate::metrics::{Metrics, MetricsSnapshot};
use crate::store::{classify, new_store, State};
use crate::{Error, Limits};

/// A WIT world's generated `*Pre` type: typed exports over an `InstancePre`.
pub(crate) trait World: Sized + Send + Sync + 'static {
    /// The instantiated world (generated bindings with `call_*` methods).
    type Instance: Send;
    /// The world's name, for errors (`admission`).
    const NAME: &'static str;
    /// Checks the component's exports against the world.
    fn new(pre: InstancePre<State>) -> wasmtime::Result<Self>;
    /// A fresh instance in `store`.
    fn instantiate<'a>(
        &'a self,
        store: &'a mut Store<State>,
    ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send + 'a;
}

/// Implements [`World`] for a generated `*Pre` type.
macro_rules! world {
    ($pre:ty, $instance:ty, $name:literal) => {
        impl World for $pre {
            type Instance = $instance;
            const NAME: &'static str = $name;
            fn new(pre: InstancePre<State>) -> wasmtime::Result<Self> {
                Self::new(pre)
            }
            fn instantiate<'a>(
                &'a self,
                store: &'a mut Store<State>,
            ) -> impl Future<Output = wasmtime::Result<Self::Instance>> + Send + 'a {
                self.instantiate_async(store)
            }
        }
    };
}

world!(
    crate::bindings::AdmissionPre<State>,
    crate::bindings::Admission,
    "admission"
);
world!(
    crate::bindings::scheduler::SchedulerPre<State>,
    crate::bindings::scheduler::Scheduler,
    "scheduler"
);
world!(
    crate::bindings::controller::ControllerPre<State>,
    crate::bindings::controller::Controller,
    "controller"
);

/// The accessors every world's plugin type has over its `inner: Arc<Loaded<_>>`: name,
/// digest, limits and metrics.
macro_rules! plugin_accessors {
    () => {
        /// Name given at load.
        pub fn name(&self) -> &str {
            &self.inner.name
        }

        /// Lowercase hex sha256 of the component bytes.
        pub fn digest(&self) -> &str {
            &self.inner.digest
        }

        /// Limits applied to each call.
        pub fn limits(&self) -> Limits {
            self.inner.limits
        }

        /// Counters and latency histogram since load.
        pub fn metrics(&self) -> MetricsSnapshot {
            self.inner.metrics()
        }
    };
}
pub(crate) use plugin_accessors;

/// One loaded version of a component of world `W`.
pub(crate) struct Loaded<W> {
    pub(crate) name: String,
    pub(crate) digest: String,
    pub(crate) limits: Limits,
    pub(crate) cache: CacheOutcome,
    pub(crate) pre: W,
    pub(crate) shared: Arc<Shared>,
    pub(crate) metrics: Metrics,
}

impl<W: World> Loaded<W> {
    /// A fresh store and instance; a failure is classified like a call failure.
    pub(crate) async fn instantiate(&self) -> Result<(Store<State>, W::Instance), Error> {
        let mut store = new_store(&self.shared.engine, &self.shared.config, &self.limits)?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .await
            .map_err(|e| classify(e, &store, &self.limits))?;
        Ok((store, instance))
    }

    /// Times `call` into the metrics and logs its failure.
    pub(crate) async fn measured<T>(
        &self,
        call: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Error> {
        let start = Instant::now();
        let result = call.await;
        self.metrics.record(start.elapsed(), &result);
        if let Err(err) = &result {
            tracing::debug!(plugin.name = %self.name, plugin.world = W::NAME, error = %err, "plugin call failed");
        }
        result
    }

    /// Maps a failed call with the store's limits.
    pub(crate) fn classify(&self, err: wasmtime::Error, store: &Store<State>) -> Error {
        classify(err, store, &self.limits)
    }

    /// Counters and latency histogram since load.
    pub(crate) fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// True when the compiled code came from the on-disk cache.
    pub(crate) fn cache_hit(&self) -> bool {
        self.cache == CacheOutcome::Hit
    }
}

impl<W> std::fmt::Debug for Loaded<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("name", &self.name)
            .field("digest", &self.digest)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}
