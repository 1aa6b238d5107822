//! The admission chain (seed 002): after authentication and before storage, every write passes
//! mutating plugins (which may change the object) and then validating plugins (which may only
//! refuse it). Kubernetes' built-in plugins live one per file under [`plugins`]; webhooks and
//! Wasm plugins plug into the same [`Plugin`] trait.
//!
//! Order, as in the issue and Kubernetes: mutating built-ins → mutating webhooks → mutating Wasm
//! → (the API server's schema validation) → validating built-ins → validating webhooks →
//! validating Wasm → ResourceQuota last.

mod attributes;
mod chain;
pub mod matching;
pub mod plugins;
pub use keelson_apimachinery::quantity;
pub use keelson_apimachinery::Reason;

pub use attributes::{Attributes, Encoded, Operation, UserInfo};
pub use chain::{Chain, ChainConfig, Stage, UnknownPlugin};

use serde_json::Value;

/// Why a request was refused: becomes a `Status` with this code (403 Forbidden by default).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Denied {
    /// HTTP code (403 for policy denials, 404 for a missing namespace, 500 for plugin failures
    /// under failurePolicy Fail).
    pub code: u16,
    /// `Status.reason`.
    pub reason: Reason,
    /// The full message shown to the user.
    pub message: String,
}

impl Denied {
    /// A 403 Forbidden in Kubernetes' wording: `pods "x" is forbidden: <why>`.
    pub fn forbidden(a: &Attributes, why: impl std::fmt::Display) -> Self {
        let what = if a.group.is_empty() {
            a.resource.clone()
        } else {
            format!("{}.{}", a.resource, a.group)
        };
        Self {
            code: 403,
            reason: crate::Reason::Forbidden,
            message: format!("{what} \"{}\" is forbidden: {why}", a.name),
        }
    }
}

/// A read or write through [`Api`] failed (store error, conflict, undecodable object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ApiAccessError(pub String);

impl From<String> for ApiAccessError {
    fn from(message: String) -> Self {
        Self(message)
    }
}

/// Read and write access to the API for plugins that need other objects (namespaces, quotas,
/// limit ranges, …). Paths are API paths such as `/api/v1/namespaces/default`.
#[async_trait::async_trait]
pub trait Api: Send + Sync {
    /// GETs an object; `Ok(None)` when it does not exist.
    async fn get(&self, path: &str) -> Result<Option<Value>, ApiAccessError>;
    /// Lists a collection's items.
    async fn list(&self, path: &str) -> Result<Vec<Value>, ApiAccessError>;
    /// Replaces an object (PUT, with its resourceVersion: conflicts are errors).
    async fn update(&self, path: &str, obj: &Value) -> Result<Value, ApiAccessError>;
}

/// One admission plugin. Mutating plugins implement [`Plugin::admit`], validating ones
/// [`Plugin::validate`]; a plugin may do both.
#[async_trait::async_trait]
pub trait Plugin: Send + Sync {
    /// The name used by `--enable-admission-plugins` (Kubernetes' name, e.g. `LimitRanger`).
    fn name(&self) -> &str;
    /// Mutating phase: may change `a.object`.
    async fn admit(&self, _a: &mut Attributes, _api: &dyn Api) -> Result<(), Denied> {
        Ok(())
    }
    /// Validating phase: may only refuse.
    async fn validate(&self, _a: &Attributes, _api: &dyn Api) -> Result<(), Denied> {
        Ok(())
    }
}
