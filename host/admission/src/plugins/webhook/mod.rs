//! MutatingAdmissionWebhook and ValidatingAdmissionWebhook: call the HTTPS webhooks registered
//! by `admissionregistration.k8s.io/v1` Mutating/ValidatingWebhookConfigurations with an
//! AdmissionReview, like Kubernetes.
//!
//! - Configurations are read through [`Api::list`] and cached for [`CACHE_TTL`]; a write to
//!   a configuration seen by the chain turns the cache off for [`SETTLE`] so a new webhook
//!   applies to the next request. Webhooks run in configuration-name order, then list order.
//! - Mutating webhooks run one after another, each seeing the previous one's patch
//!   (`patchType: JSONPatch`); validating webhooks run concurrently. A denial is a 403 (or the
//!   webhook's status code) `admission webhook "<name>" denied the request: <message>`; a call
//!   failure is a 500 under `failurePolicy: Fail` (the default) and skipped under `Ignore`.
//! - Requests on admissionregistration.k8s.io objects are never sent to webhooks (as
//!   Kubernetes, so a broken webhook cannot lock out its own fix).
//! - Not done: `reinvocationPolicy` (a mutating webhook is called once), `matchPolicy:
//!   Equivalent` (only the request's own group/version/resource is matched), `matchConditions`
//!   (CEL; ignored, so such webhooks are called for every request their rules match), response
//!   `warnings` and audit annotations. Without `caBundle` no CA is trusted.

mod client;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Api, Attributes, Denied, Operation, Plugin};

/// How long a read of the configurations is reused.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// After a configuration write, how long every request re-reads them.
const SETTLE: Duration = Duration::from_secs(3);
const GROUP: &str = "admissionregistration.k8s.io";

/// Mutating or validating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// MutatingAdmissionWebhook.
    Mutating,
    /// ValidatingAdmissionWebhook.
    Validating,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Mutating => "mutatingwebhookconfigurations",
            Kind::Validating => "validatingwebhookconfigurations",
        }
    }
}

#[derive(Default)]
struct Cache {
    read_at: Option<Instant>,
    no_cache_until: Option<Instant>,
    hooks: Arc<Vec<Value>>,
}

/// One of the two webhook plugins.
pub(crate) struct Webhooks {
    kind: Kind,
    cache: Mutex<Cache>,
    clients: client::Clients,
}

impl Webhooks {
    /// The plugin of the given kind.
    pub(crate) fn new(kind: Kind) -> Self {
        Self {
            kind,
            cache: Mutex::new(Cache::default()),
            clients: client::Clients::default(),
        }
    }

    /// A write to this kind's configurations: stop caching for a moment.
    fn observe(&self, a: &Attributes) {
        if a.group == GROUP && a.resource == self.kind.resource() {
            let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            c.no_cache_until = Some(Instant::now() + SETTLE);
            c.read_at = None;
        }
    }

    /// Every webhook of this kind, in call order.
    async fn hooks(&self, api: &dyn Api) -> Result<Arc<Vec<Value>>, Denied> {
        let now = Instant::now();
        {
            let c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            let settled = c.no_cache_until.is_none_or(|t| now >= t);
            if settled && c.read_at.is_some_and(|t| now.duration_since(t) < CACHE_TTL) {
                return Ok(c.hooks.clone());
            }
        }
        let mut configs = api
            .list(&format!("/apis/{GROUP}/v1/{}", self.kind.resource()))
            .await
            .map_err(|e| Denied {
                code: 500,
                reason: crate::Reason::InternalError,
                message: format!("Internal error occurred: reading webhook configurations: {e}"),
            })?;
        let name = |c: &Value| {
            c.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        configs.sort_by_key(name);
        let hooks: Vec<Value> = configs
            .iter()
            .flat_map(|c| {
                c.get("webhooks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        let hooks = Arc::new(hooks);
        let mut c = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        c.hooks = hooks.clone();
        c.read_at = Some(now);
        Ok(hooks)
    }

    /// The webhooks called for this request.
    async fn matching(&self, a: &Attributes, api: &dyn Api) -> Result<Vec<Value>, Denied> {
        if a.group == GROUP || a.operation == Operation::Connect {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for hook in self.hooks(api).await?.iter() {
            match crate::matching::hook_matches(hook, a, api).await {
                Ok(true) => out.push(hook.clone()),
                Ok(false) => {}
                Err(e) => out.push(failed_lookup(hook, e.0)),
            }
        }
        Ok(out)
    }

    /// Calls one webhook: `Ok(None)` when it failed and its policy is Ignore.
    async fn call(
        &self,
        hook: &Value,
        a: &Attributes,
        api: &dyn Api,
    ) -> Result<Option<client::Verdict>, Denied> {
        let name = hook_name(hook);
        if a.dry_run
            && !matches!(
                hook.get("sideEffects").and_then(Value::as_str),
                Some("None" | "NoneOnDryRun")
            )
        {
            return Err(Denied {
                code: 400,
                reason: crate::Reason::BadRequest,
                message: format!("admission webhook {name:?} does not support dry run"),
            });
        }
        let result = match hook.get(LOOKUP_ERROR).and_then(Value::as_str) {
            Some(e) => Err(e.to_string()),
            None => client::call(&self.clients, hook, a, api).await,
        };
        match result {
            Ok(v) if v.allowed => Ok(Some(v)),
            Ok(v) => Err(denied(&name, v.status.as_ref())),
            Err(e) if hook.get("failurePolicy").and_then(Value::as_str) == Some("Ignore") => {
                tracing::warn!(webhook = %name, error = %e, "admission webhook failed; failurePolicy Ignore");
                Ok(None)
            }
            Err(e) => Err(Denied {
                code: 500,
                reason: crate::Reason::InternalError,
                message: format!("Internal error occurred: failed calling webhook {name:?}: {e}"),
            }),
        }
    }
}

/// Marks a webhook whose namespace lookup failed, so the failure goes through its policy.
const LOOKUP_ERROR: &str = "keelson.lookupError";

fn failed_lookup(hook: &Value, e: String) -> Value {
    let mut h = hook.clone();
    h[LOOKUP_ERROR] = Value::String(format!(
        "failed to get namespace for the webhook's namespaceSelector: {e}"
    ));
    h
}

fn hook_name(hook: &Value) -> String {
    hook.get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// A denial in Kubernetes' words (`webhookerrors.ToStatusErr`).
fn denied(name: &str, status: Option<&Value>) -> Denied {
    let by = format!("admission webhook {name:?} denied the request");
    let get = |k: &str| {
        status
            .and_then(|s| s.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let code = status
        .and_then(|s| s.get("code"))
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| *c >= 400)
        .unwrap_or(403);
    let message = match (get("message"), get("reason")) {
        (Some(m), _) => format!("{by}: {m}"),
        (None, Some(r)) => format!("{by}: {r}"),
        (None, None) => format!("{by} without explanation"),
    };
    Denied {
        code,
        reason: reason(get("reason"), code),
        message,
    }
}

/// The webhook's `Status.reason` when it is one Kubernetes defines, else the one that goes
/// with the code (403 Forbidden for codes without one).
fn reason(given: Option<&str>, code: u16) -> crate::Reason {
    given
        .and_then(crate::Reason::parse)
        .filter(|r| *r != crate::Reason::Unknown)
        .unwrap_or(match crate::Reason::for_code(code) {
            crate::Reason::Unknown => crate::Reason::Forbidden,
            r => r,
        })
}

/// Applies a mutating webhook's JSONPatch to the object.
fn apply_patch(name: &str, a: &mut Attributes, v: &client::Verdict) -> Result<(), Denied> {
    let Some(patch) = &v.patch else { return Ok(()) };
    let internal = |m: String| Denied {
        code: 500,
        reason: crate::Reason::InternalError,
        message: format!("Internal error occurred: {m}"),
    };
    if v.patch_type.as_deref() != Some("JSONPatch") {
        return Err(internal(format!(
            "failed calling webhook {name:?}: unsupported patch type {:?}",
            v.patch_type
        )));
    }
    let ops: json_patch::Patch = serde_json::from_slice(patch).map_err(|e| {
        internal(format!(
            "webhook {name:?} returned an invalid JSONPatch: {e}"
        ))
    })?;
    let Some(obj) = a.object.as_mut() else {
        return Ok(());
    };
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &ops)
        .map_err(|e| internal(format!("applying the patch of webhook {name:?}: {e}")))?;
    *obj = patched;
    Ok(())
}

#[async_trait::async_trait]
impl Plugin for Webhooks {
    fn name(&self) -> &str {
        match self.kind {
            Kind::Mutating => "MutatingAdmissionWebhook",
            Kind::Validating => "ValidatingAdmissionWebhook",
        }
    }

    async fn admit(&self, a: &mut Attributes, api: &dyn Api) -> Result<(), Denied> {
        self.observe(a);
        if self.kind != Kind::Mutating {
            return Ok(());
        }
        for hook in self.matching(a, api).await? {
            if let Some(v) = self.call(&hook, a, api).await? {
                apply_patch(&hook_name(&hook), a, &v)?;
            }
        }
        Ok(())
    }

    async fn validate(&self, a: &Attributes, api: &dyn Api) -> Result<(), Denied> {
        self.observe(a);
        if self.kind != Kind::Validating {
            return Ok(());
        }
        let hooks = self.matching(a, api).await?;
        let calls = hooks.iter().map(|h| self.call(h, a, api));
        for result in futures::future::join_all(calls).await {
            result?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
