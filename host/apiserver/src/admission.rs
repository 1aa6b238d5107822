//! Glue between the write pipelines and the admission chain: request attributes from a
//! request, and the [`keelson_admission::Api`] that plugins read and write through.

use std::sync::Arc;

use keelson_admission::{ApiAccessError, Attributes, Denied, Operation};
use serde_json::Value;

use crate::error::ApiError;
use crate::objects::{self, from_store};
use crate::registry::ResourceDef;
use crate::request::RequestInfo;
use crate::{ApiServer, UserInfo};

/// Plugins' view of the API: reads and conditional writes on this server's store (admission
/// runs inside the API server, so it does not go through admission again).
pub(crate) struct StoreApi(pub(crate) Arc<ApiServer>);

impl StoreApi {
    fn resolve(&self, path: &str) -> Result<(Arc<ResourceDef>, RequestInfo), String> {
        let info =
            RequestInfo::parse(path).ok_or_else(|| format!("not a resource path: {path}"))?;
        let def = self
            .0
            .registry
            .lookup(&info.group, &info.version, &info.resource)
            .ok_or_else(|| format!("no resource at {path}"))?;
        Ok((def, info))
    }
}

#[async_trait::async_trait]
impl keelson_admission::Api for StoreApi {
    async fn get(&self, path: &str) -> Result<Option<Value>, ApiAccessError> {
        let (def, info) = self.resolve(path)?;
        let name = info.name.as_deref().unwrap_or_default();
        let key = def.key(info.namespace.as_deref(), name);
        match self.0.store.get(&key).await.map_err(|e| e.to_string())? {
            Some(kv) => Ok(Some(from_store(&def, &kv).map_err(|e| e.message)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, path: &str) -> Result<Vec<Value>, ApiAccessError> {
        let (def, info) = self.resolve(path)?;
        let (kvs, _) = self
            .0
            .store
            .list(&def.prefix_in(info.namespace.as_deref()))
            .await
            .map_err(|e| e.to_string())?;
        kvs.iter()
            .map(|kv| from_store(&def, kv).map_err(|e| ApiAccessError(e.message)))
            .collect()
    }

    async fn update(&self, path: &str, obj: &Value) -> Result<Value, ApiAccessError> {
        let (def, info) = self.resolve(path)?;
        let key = def.key(
            info.namespace.as_deref(),
            info.name.as_deref().unwrap_or_default(),
        );
        let rv = objects::sent_rv(obj).map_err(|e| e.message)?;
        let kv = self
            .0
            .store
            .update(&key, objects::to_store(obj), rv)
            .await
            .map_err(|e| e.to_string())?;
        let mut out = obj.clone();
        objects::set_rv(&mut out, kv.mod_revision);
        Ok(out)
    }
}

/// Attributes of a write to `def`.
pub(crate) fn attributes(
    def: &ResourceDef,
    operation: Operation,
    subresource: Option<&str>,
    object: Option<Value>,
    old: Option<Value>,
    user: &UserInfo,
    dry_run: bool,
) -> Attributes {
    let any = object.as_ref().or(old.as_ref());
    Attributes {
        encoded: Default::default(),
        operation,
        group: def.group.clone(),
        version: def.version.clone(),
        kind: def.kind.clone(),
        resource: def.plural.clone(),
        subresource: subresource.unwrap_or_default().to_string(),
        namespace: any
            .and_then(|o| objects::meta_str(o, "namespace"))
            .unwrap_or_default()
            .to_string(),
        name: any.map(objects::name).unwrap_or_default().to_string(),
        object,
        old_object: old,
        user: user.clone(),
        dry_run,
    }
}

/// A refusal as the API error clients expect.
pub(crate) fn denied(d: Denied) -> ApiError {
    ApiError {
        code: d.code,
        reason: d.reason,
        message: d.message,
        details: None,
    }
}
