//! Controller plugins: calls into the `keelson:plugin/controller` world. The host serves the
//! guest's `cache` import from a [`ControllerCache`] the caller supplies per call (the
//! runner's reflector stores, limited to the kinds the plugin declared), and checks the
//! returned actions (count, sizes, JSON shape) before the caller applies them. Each
//! `reconcile` runs on a fresh instance under the plugin's deadline and memory cap, like
//! the other worlds: a trap, a loop or garbage is an [`Error`], never a host failure.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::bindings::controller as wit;
use crate::loaded::Loaded;
use crate::metrics::MetricsSnapshot;
use crate::store::State;
use crate::{Error, Limits, MAX_MESSAGE_BYTES};

/// Most actions one reconcile may return.
pub const MAX_ACTIONS: usize = 256;
/// Largest object or patch document in one action, in bytes.
pub const MAX_ACTION_BYTES: usize = 1 << 20;
/// Longest `requeue-after`: one day.
pub const MAX_REQUEUE: Duration = Duration::from_secs(24 * 3600);

/// A kind: API group (empty for core), version and kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupVersionKind {
    /// API group; empty for the core group.
    pub group: String,
    /// API version, e.g. `v1`.
    pub version: String,
    /// Kind, e.g. `Namespace`.
    pub kind: String,
}

impl GroupVersionKind {
    /// `apiVersion` as objects spell it (`v1`, `apps/v1`).
    pub fn api_version(&self) -> String {
        match self.group.as_str() {
            "" => self.version.clone(),
            g => format!("{g}/{}", self.version),
        }
    }
}

/// One object: kind, namespace (empty for cluster-scoped kinds) and name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectRef {
    /// Kind of the object.
    pub kind: GroupVersionKind,
    /// Namespace; empty for cluster-scoped kinds.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Why a cache read failed (WIT `cache-error`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheError {
    /// The kind is not among the kinds the plugin declared.
    KindNotAllowed,
    /// The kind is not served by the API server.
    UnknownKind,
    /// The label selector does not parse.
    BadSelector,
}

/// What a controller plugin reads through its `cache` import. Objects are JSON text.
pub trait ControllerCache: Send + Sync {
    /// One object by kind, namespace (empty for cluster-scoped kinds) and name.
    fn get(
        &self,
        kind: &GroupVersionKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, CacheError>;
    /// Objects of a kind in `namespace` (all namespaces for `None`) matching `label_selector`.
    fn list(
        &self,
        kind: &GroupVersionKind,
        namespace: Option<&str>,
        label_selector: &str,
    ) -> Result<Vec<String>, CacheError>;
    /// The plugin's `spec.config` as JSON.
    fn config(&self) -> String;
}

/// The patch formats of a [`ControllerAction::Patch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchType {
    /// RFC 6902 JSON Patch.
    Json,
    /// RFC 7386 JSON Merge Patch.
    Merge,
    /// Kubernetes strategic merge patch.
    Strategic,
}

/// A checked action returned by `reconcile`.
#[derive(Debug, Clone, PartialEq)]
pub enum ControllerAction {
    /// Create this object (a JSON object with `apiVersion`, `kind` and `metadata.name`).
    Create(Value),
    /// Patch an object.
    Patch {
        /// The object.
        target: ObjectRef,
        /// Patch format.
        patch_type: PatchType,
        /// The patch document (an array for JSON Patch, else an object).
        body: Value,
    },
    /// Delete an object (background propagation).
    Delete(ObjectRef),
    /// Replace this object's status (a JSON object with `apiVersion`, `kind`, `metadata.name`).
    UpdateStatus(Value),
    /// Reconcile the same key again after this long (at most [`MAX_REQUEUE`]).
    RequeueAfter(Duration),
}

/// What `reconcile` answered: the actions to apply in order, or the plugin's own error.
pub type Reconciled = Result<Vec<ControllerAction>, String>;

/// One loaded version of a controller plugin. Cheap to share (`Arc`); calls from many tasks
/// run on separate instances.
#[derive(Debug)]
pub struct ControllerPlugin {
    pub(crate) inner: Loaded<wit::ControllerPre<State>>,
}

impl ControllerPlugin {
    /// Runs `reconcile(key)` on a fresh instance whose `cache` import reads `cache`, under
    /// the plugin's deadline and memory cap. `Ok(Err(message))` is the plugin's own error
    /// (message at most [`MAX_MESSAGE_BYTES`]); `Err` is a trap, deadline, memory cap or
    /// output the host refuses.
    pub async fn reconcile_async(
        &self,
        key: &ObjectRef,
        cache: Arc<dyn ControllerCache>,
    ) -> Result<Reconciled, Error> {
        let key = wit::ReconcileKey {
            kind: gvk_to_wit(&key.kind),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
        };
        let p = &self.inner;
        p.measured(async {
            let (mut store, instance) = p.instantiate().await?;
            store.data_mut().cache = Some(cache);
            let raw = instance
                .call_reconcile(&mut store, &key)
                .await
                .map_err(|e| p.classify(e, &store))?;
            check(raw)
        })
        .await
    }

    crate::loaded::plugin_accessors!();
}

fn bad(msg: String) -> Error {
    Error::BadOutput(msg)
}

/// Checks and converts what the guest returned.
fn check(raw: Result<Vec<wit::Action>, String>) -> Result<Reconciled, Error> {
    let actions = match raw {
        Err(message) if message.len() > MAX_MESSAGE_BYTES => {
            return Err(bad(format!(
                "the error message is {} bytes, more than {MAX_MESSAGE_BYTES}",
                message.len()
            )))
        }
        Err(message) => return Ok(Err(message)),
        Ok(actions) => actions,
    };
    if actions.len() > MAX_ACTIONS {
        return Err(bad(format!(
            "{} actions, more than {MAX_ACTIONS}",
            actions.len()
        )));
    }
    actions
        .into_iter()
        .map(action)
        .collect::<Result<_, _>>()
        .map(Ok)
}

fn action(a: wit::Action) -> Result<ControllerAction, Error> {
    Ok(match a {
        wit::Action::Create(json) => ControllerAction::Create(object(&json, "create")?),
        wit::Action::UpdateStatus(json) => {
            ControllerAction::UpdateStatus(object(&json, "update-status")?)
        }
        wit::Action::Delete(target) => ControllerAction::Delete(object_ref(target)?),
        wit::Action::Patch(p) => {
            let body = document(&p.body, "patch")?;
            let patch_type = match p.patch_type {
                wit::PatchType::JsonPatch => PatchType::Json,
                wit::PatchType::MergePatch => PatchType::Merge,
                wit::PatchType::StrategicMergePatch => PatchType::Strategic,
            };
            let shape_ok = match patch_type {
                PatchType::Json => body.is_array(),
                _ => body.is_object(),
            };
            if !shape_ok {
                return Err(bad(format!(
                    "a {patch_type:?} patch body has the wrong JSON shape"
                )));
            }
            ControllerAction::Patch {
                target: object_ref(p.target)?,
                patch_type,
                body,
            }
        }
        wit::Action::RequeueAfter(ms) => {
            let after = Duration::from_millis(ms);
            if after > MAX_REQUEUE {
                return Err(bad(format!("requeue-after {ms} ms is more than a day")));
            }
            ControllerAction::RequeueAfter(after)
        }
    })
}

/// Parses a bounded JSON document.
fn document(json: &str, what: &str) -> Result<Value, Error> {
    if json.len() > MAX_ACTION_BYTES {
        return Err(bad(format!(
            "a {what} document is {} bytes, more than {MAX_ACTION_BYTES}",
            json.len()
        )));
    }
    serde_json::from_str(json).map_err(|e| bad(format!("a {what} document is not JSON: {e}")))
}

/// A JSON object naming its `apiVersion`, `kind` and `metadata.name`.
fn object(json: &str, what: &str) -> Result<Value, Error> {
    let v = document(json, what)?;
    let named = ["/apiVersion", "/kind", "/metadata/name"].iter().all(|p| {
        v.pointer(p)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    });
    if !named {
        return Err(bad(format!(
            "a {what} object needs apiVersion, kind and metadata.name"
        )));
    }
    Ok(v)
}

fn object_ref(r: wit::ObjectRef) -> Result<ObjectRef, Error> {
    if r.name.is_empty() || r.kind.kind.is_empty() || r.kind.version.is_empty() {
        return Err(bad(
            "an object reference needs a kind, version and name".into()
        ));
    }
    Ok(ObjectRef {
        kind: gvk_from_wit(r.kind),
        namespace: r.namespace,
        name: r.name,
    })
}

fn gvk_to_wit(k: &GroupVersionKind) -> wit::GroupVersionKind {
    wit::GroupVersionKind {
        group: k.group.clone(),
        version: k.version.clone(),
        kind: k.kind.clone(),
    }
}

fn gvk_from_wit(k: wit::GroupVersionKind) -> GroupVersionKind {
    GroupVersionKind {
        group: k.group,
        version: k.version,
        kind: k.kind,
    }
}

fn cache_error(e: CacheError) -> wit::CacheError {
    match e {
        CacheError::KindNotAllowed => wit::CacheError::KindNotAllowed,
        CacheError::UnknownKind => wit::CacheError::UnknownKind,
        CacheError::BadSelector => wit::CacheError::BadSelector,
    }
}

impl wit::keelson::plugin::types::Host for State {}

impl wit::keelson::plugin::cache::Host for State {
    async fn get(
        &mut self,
        kind: wit::GroupVersionKind,
        namespace: String,
        name: String,
    ) -> Result<Option<String>, wit::CacheError> {
        let cache = self.cache.as_ref().ok_or(wit::CacheError::KindNotAllowed)?;
        cache
            .get(&gvk_from_wit(kind), &namespace, &name)
            .map_err(cache_error)
    }

    async fn list(
        &mut self,
        kind: wit::GroupVersionKind,
        namespace: Option<String>,
        label_selector: String,
    ) -> Result<Vec<String>, wit::CacheError> {
        let cache = self.cache.as_ref().ok_or(wit::CacheError::KindNotAllowed)?;
        cache
            .list(&gvk_from_wit(kind), namespace.as_deref(), &label_selector)
            .map_err(cache_error)
    }

    async fn config(&mut self) -> String {
        self.cache
            .as_ref()
            .map(|c| c.config())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| "{}".into())
    }
}

/// Adds the `cache` import to a linker that already has WASI.
pub(crate) fn add_cache_to_linker(
    linker: &mut wasmtime::component::Linker<State>,
) -> wasmtime::Result<()> {
    wit::keelson::plugin::cache::add_to_linker::<State, wasmtime::component::HasSelf<State>>(
        linker,
        |s| s,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gvk() -> wit::GroupVersionKind {
        wit::GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
        }
    }

    #[test]
    fn actions_are_checked() {
        let cm =
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"n"}}"#;
        let ok = check(Ok(vec![
            wit::Action::Create(cm.into()),
            wit::Action::RequeueAfter(1500),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            ok[1],
            ControllerAction::RequeueAfter(Duration::from_millis(1500))
        );
        assert_eq!(check(Ok(vec![])).unwrap(), Ok(vec![]));
        assert_eq!(check(Err("nope".into())).unwrap(), Err("nope".to_string()));
        let refused = [
            vec![wit::Action::Create("not json".into())],
            vec![wit::Action::Create(r#"{"kind":"ConfigMap"}"#.into())],
            vec![wit::Action::RequeueAfter(u64::MAX)],
            vec![wit::Action::Create(cm.into()); MAX_ACTIONS + 1],
            vec![wit::Action::Delete(wit::ObjectRef {
                kind: gvk(),
                namespace: "n".into(),
                name: String::new(),
            })],
            vec![wit::Action::Patch(
                wit::keelson::plugin::controller_types::Patch {
                    target: wit::ObjectRef {
                        kind: gvk(),
                        namespace: "n".into(),
                        name: "a".into(),
                    },
                    patch_type: wit::PatchType::JsonPatch,
                    body: "{}".into(),
                },
            )],
        ];
        for actions in refused {
            assert!(matches!(check(Ok(actions)), Err(Error::BadOutput(_))));
        }
        assert!(matches!(
            check(Err("x".repeat(MAX_MESSAGE_BYTES + 1))),
            Err(Error::BadOutput(_))
        ));
    }

    #[test]
    fn api_version_spelling() {
        let mut k = GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
        };
        assert_eq!(k.api_version(), "v1");
        k.group = "apps".into();
        assert_eq!(k.api_version(), "apps/v1");
    }
}
