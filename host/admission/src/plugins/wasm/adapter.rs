//! A loaded WasmPlugin as a link of the admission chain: rules and selectors decide whether it
//! sees a request; calls are awaited on the request's task behind a semaphore; errors (trap,
//! deadline, memory limit, bad output) follow the plugin's failurePolicy.

use std::sync::Arc;

use crate::{Api, Attributes, Denied, Plugin};
use keelson_plugin_host::{AdmissionPlugin, AdmissionRequest, Operation, UserInfo};
use serde_json::Value;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// What a plugin does in the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `admission-validate`.
    Validate,
    /// `admission-mutate`.
    Mutate,
}

/// One running WasmPlugin version, with what the chain needs from its spec precomputed.
pub(super) struct WasmAdmission {
    pub(super) name: String,
    pub(super) role: Role,
    pub(super) plugin: Arc<AdmissionPlugin>,
    /// `spec.order`: plugins of a role run in ascending order, then by name.
    pub(super) order: i64,
    /// `rules`, `namespaceSelector`, `objectSelector` (rules default to everything).
    matcher: Value,
    /// `spec.config` as JSON text.
    config: String,
    /// `failurePolicy: Ignore`.
    fail_open: bool,
    /// `includeManagedFields: true`: the objects keep `metadata.managedFields` (left out by
    /// default: no plugin needs them on the hot path and they are often half the object).
    managed_fields: bool,
    permits: Arc<Semaphore>,
}

impl WasmAdmission {
    pub(super) fn new(
        name: String,
        role: Role,
        plugin: Arc<AdmissionPlugin>,
        spec: &Value,
        permits: Arc<Semaphore>,
    ) -> Self {
        let mut matcher = serde_json::json!({});
        for k in ["rules", "namespaceSelector", "objectSelector"] {
            if let Some(v) = spec.get(k) {
                matcher[k] = v.clone();
            }
        }
        if matcher
            .get("rules")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty)
        {
            matcher["rules"] = serde_json::json!([{"operations": ["*"], "apiGroups": ["*"], "apiVersions": ["*"], "resources": ["*", "*/*"]}]);
        }
        Self {
            name,
            role,
            plugin,
            order: spec.get("order").and_then(Value::as_i64).unwrap_or(0),
            matcher,
            config: spec.get("config").map(Value::to_string).unwrap_or_default(),
            fail_open: spec.get("failurePolicy").and_then(Value::as_str) == Some("Ignore"),
            managed_fields: spec.get("includeManagedFields").and_then(Value::as_bool) == Some(true),
            permits,
        }
    }

    /// Rules and selectors, as for webhooks; a plugin without rules sees every request.
    async fn applies(&self, a: &Attributes, api: &dyn Api) -> bool {
        crate::matching::hook_matches(&self.matcher, a, api)
            .await
            .unwrap_or(false)
    }

    /// The request for one call. The objects' JSON is encoded once per admission pass and
    /// shared by every plugin ([`crate::Encoded`]).
    fn request(&self, a: &Attributes) -> AdmissionRequest {
        AdmissionRequest {
            uid: uuid::Uuid::new_v4().to_string(),
            operation: match a.operation {
                crate::Operation::Create => Operation::Create,
                crate::Operation::Update => Operation::Update,
                crate::Operation::Delete => Operation::Delete,
                crate::Operation::Connect => Operation::Connect,
            },
            group: a.group.clone(),
            version: a.version.clone(),
            kind: a.kind.clone(),
            resource: a.resource.clone(),
            subresource: a.subresource.clone(),
            namespace: a.namespace.clone(),
            name: a.name.clone(),
            user: UserInfo {
                name: a.user.name.clone(),
                uid: String::new(),
                groups: a.user.groups.clone(),
            },
            object: a.encoded.object(a, self.managed_fields).to_string(),
            old_object: a.encoded.old_object(a, self.managed_fields).to_string(),
            dry_run: a.dry_run,
            config: self.config.clone(),
        }
    }

    /// A plugin failure under its failurePolicy: `Ok` when ignored.
    fn failed(&self, why: String) -> Result<(), Denied> {
        if self.fail_open {
            tracing::warn!(plugin.name = %self.name, error = %why, "plugin failed; failurePolicy Ignore");
            return Ok(());
        }
        Err(Denied {
            code: 500,
            reason: crate::Reason::InternalError,
            message: format!(
                "Internal error occurred: failed calling plugin \"{}\": {why}",
                self.name
            ),
        })
    }

    fn refused(&self, code: u16, message: &str) -> Denied {
        Denied {
            code: if code == 0 { 403 } else { code },
            reason: crate::Reason::Forbidden,
            message: format!(
                "admission plugin \"{}\" denied the request: {message}",
                self.name
            ),
        }
    }

    /// Awaits a plugin call on this task behind the instance semaphore. A long-running guest
    /// yields at epoch ticks and fails with a deadline error after its timeout, so it never holds
    /// a worker for more than about two ticks at a time.
    async fn call<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, keelson_plugin_host::Error>>,
    ) -> Result<T, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        call.instrument(tracing::info_span!("plugin", "plugin.name" = %self.name))
            .await
            .map_err(|e| e.to_string())
    }
}

#[async_trait::async_trait]
impl Plugin for WasmAdmission {
    fn name(&self) -> &str {
        &self.name
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        if self.role != Role::Mutate || a.object.is_none() || !self.applies(a, api).await {
            return Ok(());
        }
        let req = self.request(a);
        let verdict = match self.call(self.plugin.mutate_async(&req)).await {
            Ok(v) => v,
            Err(e) => return self.failed(e),
        };
        if !verdict.verdict.allowed {
            return Err(self.refused(verdict.verdict.code, &verdict.verdict.message));
        }
        if let (Some(patch), Some(obj)) = (verdict.patch, a.object.as_mut()) {
            let mut patched = obj.clone();
            if let Err(e) = json_patch::patch(&mut patched, &patch) {
                return self.failed(format!("its patch does not apply: {e}"));
            }
            *obj = patched;
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        if self.role != Role::Validate || !self.applies(a, api).await {
            return Ok(());
        }
        let req = self.request(a);
        match self.call(self.plugin.validate_async(&req)).await {
            Ok(v) if v.allowed => Ok(()),
            Ok(v) => Err(self.refused(v.code, &v.message)),
            Err(e) => self.failed(e),
        }
    }
}
