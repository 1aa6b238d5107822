//! Admission plugins: the request/verdict types and calls into the
//! `keelson:plugin/admission` world, one fresh instance per call.

use std::future::Future;

use crate::bindings::{self, AdmissionPre};
use crate::loaded::Loaded;
use crate::metrics::MetricsSnapshot;
use crate::store::State;
use crate::{output, Error, Limits};

/// What an admission request does to its object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Operation {
    /// The object is being created.
    #[default]
    Create,
    /// The object or a subresource is being replaced or patched.
    Update,
    /// The object is being deleted.
    Delete,
    /// A connect subresource (exec, attach, portforward, proxy) is used.
    Connect,
}

/// The requesting user, as authenticated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserInfo {
    /// User name.
    pub name: String,
    /// User uid; empty when unknown.
    pub uid: String,
    /// Groups of the user.
    pub groups: Vec<String>,
}

/// One admission request, mirroring WIT `admission-types.request`.
/// Optional strings are empty when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AdmissionRequest {
    /// Request uid.
    pub uid: String,
    /// What the request does.
    pub operation: Operation,
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Pod`.
    pub kind: String,
    /// Plural resource, e.g. `pods`.
    pub resource: String,
    /// Subresource, e.g. `status`; empty for the main resource.
    pub subresource: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Object name; may be empty with `generateName`.
    pub name: String,
    /// Requesting user.
    pub user: UserInfo,
    /// The new object as JSON; empty on delete.
    pub object: String,
    /// The old object as JSON; empty on create and connect.
    pub old_object: String,
    /// Dry-run request.
    pub dry_run: bool,
    /// The plugin's `spec.config` as JSON; empty is sent as `{}`.
    pub config: String,
}

/// A checked verdict of a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// Refusal message (at most 4096 bytes); empty when allowed.
    pub message: String,
    /// HTTP status: 200 when allowed, else 400–599 (403 unless the plugin chose).
    pub code: u16,
    /// Warnings for the client (at most 16 of at most 512 bytes).
    pub warnings: Vec<String>,
}

/// A checked answer of a mutating call.
#[derive(Debug, Clone, PartialEq)]
pub struct MutateVerdict {
    /// Whether the request may proceed.
    pub verdict: Verdict,
    /// JSON Patch to apply to the object; always `None` when refused.
    pub patch: Option<json_patch::Patch>,
}

/// One loaded version of an admission plugin. Cheap to share (`Arc`); calls
/// from many threads run on separate instances.
#[derive(Debug)]
pub struct AdmissionPlugin {
    pub(crate) inner: Loaded<AdmissionPre<State>>,
}

impl AdmissionPlugin {
    /// Runs `validate` on a fresh instance. A guest that has run for an epoch
    /// tick yields to the executor at every tick, so a looping plugin holds an
    /// async worker for at most about two ticks at a time, and the call fails
    /// with [`Error::Deadline`] once the timeout has passed. Dropping the
    /// future abandons the call (its store and instance are freed). Needs a
    /// tokio runtime.
    pub async fn validate_async(&self, req: &AdmissionRequest) -> Result<Verdict, Error> {
        let req = to_wit(req);
        let p = &self.inner;
        p.measured(async {
            let (mut store, instance) = p.instantiate().await?;
            let raw = instance
                .call_validate(&mut store, &req)
                .await
                .map_err(|e| p.classify(e, &store))?;
            output::verdict(raw)
        })
        .await
    }

    /// Runs `mutate` on a fresh instance; the patch is parsed and size-checked.
    /// Like [`validate_async`](Self::validate_async).
    pub async fn mutate_async(&self, req: &AdmissionRequest) -> Result<MutateVerdict, Error> {
        let req = to_wit(req);
        let p = &self.inner;
        p.measured(async {
            let (mut store, instance) = p.instantiate().await?;
            let raw = instance
                .call_mutate(&mut store, &req)
                .await
                .map_err(|e| p.classify(e, &store))?;
            output::mutate_verdict(raw)
        })
        .await
    }

    /// Blocking [`validate_async`](Self::validate_async), for tools and tests;
    /// blocks up to the timeout. Not for async code: inside a multi-threaded
    /// tokio runtime it blocks the worker (`block_in_place`), and it panics
    /// inside a current-thread runtime.
    pub fn validate(&self, req: &AdmissionRequest) -> Result<Verdict, Error> {
        block_on(self.validate_async(req))
    }

    /// Blocking [`mutate_async`](Self::mutate_async); see [`validate`](Self::validate).
    pub fn mutate(&self, req: &AdmissionRequest) -> Result<MutateVerdict, Error> {
        block_on(self.mutate_async(req))
    }

    crate::loaded::plugin_accessors!();

    /// True when the compiled code came from the on-disk cache.
    pub fn from_cache(&self) -> bool {
        self.inner.cache_hit()
    }
}

/// Runs `fut` to completion from synchronous code: on the current runtime when
/// there is one (multi-threaded: via `block_in_place`), else on a
/// current-thread runtime kept per thread.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    thread_local! {
        static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("cannot build a current-thread tokio runtime");
    }
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(fut)),
        Err(_) => RUNTIME.with(|rt| rt.block_on(fut)),
    }
}

/// Converts to the generated WIT type.
pub(crate) fn to_wit(req: &AdmissionRequest) -> bindings::Request {
    bindings::Request {
        uid: req.uid.clone(),
        operation: match req.operation {
            Operation::Create => bindings::Operation::Create,
            Operation::Update => bindings::Operation::Update,
            Operation::Delete => bindings::Operation::Delete,
            Operation::Connect => bindings::Operation::Connect,
        },
        group: req.group.clone(),
        version: req.version.clone(),
        kind: req.kind.clone(),
        resource: req.resource.clone(),
        subresource: req.subresource.clone(),
        namespace: req.namespace.clone(),
        name: req.name.clone(),
        user: bindings::UserInfo {
            name: req.user.name.clone(),
            uid: req.user.uid.clone(),
            groups: req.user.groups.clone(),
        },
        object: req.object.clone(),
        old_object: req.old_object.clone(),
        dry_run: req.dry_run,
        config: if req.config.is_empty() {
            "{}".to_string()
        } else {
            req.config.clone()
        },
    }
}
