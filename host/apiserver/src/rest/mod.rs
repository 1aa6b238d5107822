//! The REST layer, like Kubernetes' generic registry store: below the HTTP handlers, above the
//! store, it owns the write pipeline every create, update, patch and subresource write shares —
//! identity checks → defaults → mutating admission → schema and strategy validation →
//! validating admission → managedFields → conditional store write → after-write hooks.
//! Handlers only decode the request into a [`Scope`], [`WriteOptions`] and an object or patch,
//! and encode the [`Written`] result; bootstrap writes through here too. Only this layer (and
//! the store) knows store keys; reads ([`list`], [`watch`]) come through here too.

mod create;
mod delete;
mod patch;
mod read;
mod update;

use std::sync::Arc;

use serde_json::Value;

use crate::error::{ApiError, ApiResult};
use crate::registry::ResourceDef;
use crate::request::RequestInfo;
use crate::validation::FieldValidation;
use crate::{ApiServer, UserInfo};

pub(crate) use create::{admit, check_identity, create_object};
pub(crate) use delete::{delete, delete_collection, delete_one, DeleteOptions};
pub(crate) use patch::{patch, Apply, Patch};
pub(crate) use read::{list, watch};
pub(crate) use update::{conflict, update, update_object};

/// How often a write that lost a race is retried before reporting the conflict.
pub(crate) const RETRIES: usize = 16;

/// What a request acts on: the server, the resource, and the parsed path (namespace, name,
/// subresource).
pub(crate) struct Scope {
    pub(crate) api: Arc<ApiServer>,
    pub(crate) def: Arc<ResourceDef>,
    pub(crate) info: RequestInfo,
}

impl Scope {
    /// The namespace, for namespaced resources.
    pub(crate) fn namespace(&self) -> Option<&str> {
        if self.def.namespaced {
            self.info.namespace.as_deref()
        } else {
            None
        }
    }
    /// The object's name (empty for collections).
    pub(crate) fn name(&self) -> &str {
        self.info.name.as_deref().unwrap_or_default()
    }
    /// The store key of the named object.
    pub(crate) fn key(&self) -> String {
        self.def.key(self.namespace(), self.name())
    }
    /// 409 Conflict on the named object.
    pub(crate) fn conflict(&self) -> ApiError {
        ApiError::conflict(&self.def.group, &self.def.plural, self.name())
    }
    /// The stored object the request names; 404 when absent.
    pub(crate) async fn stored(&self) -> ApiResult<keelson_store::KeyValue> {
        self.api
            .store
            .get(&self.key())
            .await?
            .ok_or_else(|| self.not_found())
    }
    /// 404 NotFound on the named object.
    pub(crate) fn not_found(&self) -> ApiError {
        ApiError::not_found(&self.def.group, &self.def.plural, self.name())
    }
}

/// Per-request write options (`dryRun`, `fieldValidation`, the field manager, the user).
#[derive(Clone)]
pub(crate) struct WriteOptions {
    pub(crate) dry_run: bool,
    pub(crate) validation: FieldValidation,
    pub(crate) manager: String,
    pub(crate) user: UserInfo,
    /// managedFields to store instead of tracking this write as an update (server-side apply).
    pub(crate) managed_fields: Option<Value>,
}

/// A write's result plus the warnings to send back.
pub(crate) struct Written {
    pub(crate) object: Value,
    pub(crate) warnings: Vec<String>,
}
