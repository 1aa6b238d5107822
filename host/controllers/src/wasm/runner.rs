//! One running Wasm controller: reflectors for its declared kinds (as its ServiceAccount, so
//! it reads only what RBAC lets it), a queue fed by their changes and by resyncs, and a
//! worker calling `reconcile(key)` one key at a time and applying the returned actions
//! through the API as that ServiceAccount. A failure — the plugin's error, a trap, a
//! deadline, bad output, or an action the API refuses (403, a rejected object) — requeues
//! the key with exponential back-off; other keys and other plugins go on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use keelson_plugin_host::controller::{ControllerAction, GroupVersionKind, ObjectRef, PatchType};
use keelson_plugin_host::ControllerPlugin;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::Scope;
use kube::runtime::reflector::store::Writer;
use kube::runtime::{watcher, WatchStreamExt};
use serde_json::Value;
use tracing::Instrument;

use super::cache::{Kind, Stores};
use super::queue::Queue;
use super::spec::ControllerSpec;

/// What the runner reports for the WasmPlugin's status.
#[derive(Default)]
pub(super) struct Counters {
    /// Reconciles that failed.
    pub(super) failures: AtomicU64,
    /// Reconciles that succeeded.
    pub(super) successes: AtomicU64,
    /// The last failure's message; cleared by a success.
    pub(super) last_error: Mutex<String>,
}

impl Counters {
    fn failed(&self, message: String) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = message;
    }

    fn succeeded(&self) {
        self.successes.fetch_add(1, Ordering::Relaxed);
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// The last failure's message, empty after a success.
    pub(super) fn last_error(&self) -> String {
        self.last_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Runs the controller until its task is aborted.
pub(super) async fn run(
    plugin: Arc<ControllerPlugin>,
    spec: ControllerSpec,
    config: String,
    client: kube::Client,
    counters: Arc<Counters>,
) {
    let resolver = Resolver::new(client.clone());
    let mut kinds = Vec::new();
    for w in &spec.watches {
        let (resource, scope) = resolver.resolve_retrying(&w.kind, &counters).await;
        kinds.push((w.clone(), resource, scope));
    }
    let queue = Arc::new(Queue::default());
    let mut tasks = tokio::task::JoinSet::new();
    let mut stores = Vec::new();
    for (w, resource, scope) in kinds {
        let writer = Writer::<DynamicObject>::new(resource.clone());
        let store = writer.as_reader();
        let api: Api<DynamicObject> = match (&w.namespace, scope) {
            (Some(ns), Scope::Namespaced) => Api::namespaced_with(client.clone(), ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        tasks.spawn(feed(
            api,
            writer,
            w.kind.clone(),
            queue.clone(),
            counters.clone(),
        ));
        stores.push(Kind {
            gvk: w.kind,
            resource,
            store,
        });
    }
    for k in &stores {
        let _ = k.store.wait_until_ready().await;
    }
    let stores = Arc::new(Stores {
        kinds: stores,
        config,
    });
    tracing::info!(plugin.name = plugin.name(), "wasm controller caches synced");
    if let Some(period) = spec.resync {
        tasks.spawn(resync(stores.clone(), queue.clone(), period));
    }
    loop {
        let key = queue.next().await;
        let span = tracing::info_span!("reconcile", controller = "wasm", plugin.name = plugin.name(), kind = %key.kind.kind, namespace = %key.namespace, name = %key.name);
        reconcile(&plugin, &stores, &resolver, &queue, &counters, key)
            .instrument(span)
            .await;
    }
}

/// Feeds one kind's store and queues the keys of objects that change.
async fn feed(
    api: Api<DynamicObject>,
    writer: Writer<DynamicObject>,
    gvk: GroupVersionKind,
    queue: Arc<Queue>,
    counters: Arc<Counters>,
) {
    let store = writer.as_reader();
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => queue.add(key(&gvk, &o)),
            // Listed objects enter the store at InitDone: queue them then.
            Ok(watcher::Event::InitDone) => {
                for o in store.state() {
                    queue.add(key(&gvk, &o));
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(kind = %gvk.kind, error = %e, "wasm controller watch failed; retrying");
                counters.failed(format!("watching {}: {e}", gvk.kind));
            }
        }
    }
}

/// Queues every cached object every `period`.
async fn resync(stores: Arc<Stores>, queue: Arc<Queue>, period: Duration) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tick.tick().await;
        for k in &stores.kinds {
            for o in k.store.state() {
                queue.add(key(&k.gvk, &o));
            }
        }
    }
}

fn key(gvk: &GroupVersionKind, o: &DynamicObject) -> ObjectRef {
    ObjectRef {
        kind: gvk.clone(),
        namespace: o.metadata.namespace.clone().unwrap_or_default(),
        name: o.metadata.name.clone().unwrap_or_default(),
    }
}

async fn reconcile(
    plugin: &ControllerPlugin,
    stores: &Arc<Stores>,
    resolver: &Resolver,
    queue: &Queue,
    counters: &Counters,
    key: ObjectRef,
) {
    let outcome = match plugin.reconcile_async(&key, stores.clone()).await {
        Err(e) => Err(e.to_string()),
        Ok(Err(message)) => Err(format!("reconcile failed: {message}")),
        Ok(Ok(actions)) => apply(resolver, plugin.name(), actions).await,
    };
    match outcome {
        Ok(requeue) => {
            counters.succeeded();
            queue.forget(&key);
            if let Some(after) = requeue {
                queue.add_after(key, after);
            }
        }
        Err(message) => {
            let delay = queue.retry(key);
            tracing::warn!(error = %message, retry_in = ?delay, "wasm controller reconcile failed");
            counters.failed(message);
        }
    }
}

/// Applies `actions` in order; stops at the first the API refuses. Returns the requeue the
/// plugin asked for, if any.
async fn apply(
    resolver: &Resolver,
    plugin: &str,
    actions: Vec<ControllerAction>,
) -> Result<Option<Duration>, String> {
    let manager = format!("wasm-controller-{plugin}");
    let mut requeue = None;
    for action in actions {
        match action {
            ControllerAction::RequeueAfter(d) => requeue = Some(d),
            ControllerAction::Create(obj) => {
                let (api, name) = resolver.api_for_object(&obj).await?;
                let obj: DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
                let params = PostParams {
                    field_manager: Some(manager.clone()),
                    ..Default::default()
                };
                match api.create(&params, &obj).await {
                    Ok(_) => tracing::info!(object = %name, "created"),
                    Err(kube::Error::Api(s)) if s.code == 409 && s.reason == "AlreadyExists" => {}
                    Err(e) => return Err(format!("creating {name}: {e}")),
                }
            }
            ControllerAction::UpdateStatus(obj) => {
                let (api, name) = resolver.api_for_object(&obj).await?;
                let obj: DynamicObject = serde_json::from_value(obj).map_err(|e| e.to_string())?;
                api.replace_status(&name, &PostParams::default(), &obj)
                    .await
                    .map_err(|e| format!("updating the status of {name}: {e}"))?;
            }
            ControllerAction::Delete(target) => {
                let api = resolver.api_for_ref(&target).await?;
                match api.delete(&target.name, &DeleteParams::background()).await {
                    Ok(_) => tracing::info!(object = %target.name, "deleted"),
                    Err(kube::Error::Api(s)) if s.code == 404 => {}
                    Err(e) => return Err(format!("deleting {}: {e}", target.name)),
                }
            }
            ControllerAction::Patch {
                target,
                patch_type,
                body,
            } => {
                let api = resolver.api_for_ref(&target).await?;
                let patch = match patch_type {
                    PatchType::Merge => Patch::Merge(body),
                    PatchType::Strategic => Patch::Strategic(body),
                    PatchType::Json => Patch::Json(
                        serde_json::from_value(body).map_err(|e| format!("JSON Patch: {e}"))?,
                    ),
                };
                let params = PatchParams {
                    field_manager: Some(manager.clone()),
                    ..Default::default()
                };
                api.patch(&target.name, &params, &patch)
                    .await
                    .map_err(|e| format!("patching {}: {e}", target.name))?;
            }
        }
    }
    Ok(requeue)
}

/// Kinds to resources through discovery, remembered.
struct Resolver {
    client: kube::Client,
    known: Mutex<HashMap<GroupVersionKind, (ApiResource, Scope)>>,
}

impl Resolver {
    fn new(client: kube::Client) -> Self {
        Resolver {
            client,
            known: Mutex::new(HashMap::new()),
        }
    }

    async fn resolve(&self, gvk: &GroupVersionKind) -> Result<(ApiResource, Scope), String> {
        if let Some(hit) = self
            .known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(gvk)
        {
            return Ok(hit.clone());
        }
        let k = kube::api::GroupVersionKind::gvk(&gvk.group, &gvk.version, &gvk.kind);
        let (resource, caps) = kube::discovery::pinned_kind(&self.client, &k)
            .await
            .map_err(|e| format!("{} {}: {e}", gvk.api_version(), gvk.kind))?;
        let found = (resource, caps.scope);
        self.known
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(gvk.clone(), found.clone());
        Ok(found)
    }

    /// [`resolve`](Self::resolve), retried every few seconds until it works.
    async fn resolve_retrying(
        &self,
        gvk: &GroupVersionKind,
        counters: &Counters,
    ) -> (ApiResource, Scope) {
        let mut delay = Duration::from_millis(200);
        loop {
            match self.resolve(gvk).await {
                Ok(found) => return found,
                Err(e) => {
                    tracing::warn!(error = %e, "wasm controller cannot resolve a watched kind; retrying");
                    counters.failed(format!("watched kind {e}"));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(30));
        }
    }

    fn api(
        &self,
        resource: &ApiResource,
        scope: &Scope,
        namespace: &str,
    ) -> Result<Api<DynamicObject>, String> {
        match (scope, namespace) {
            (Scope::Namespaced, "") => Err(format!("a {} needs a namespace", resource.kind)),
            (Scope::Namespaced, ns) => Ok(Api::namespaced_with(self.client.clone(), ns, resource)),
            (Scope::Cluster, _) => Ok(Api::all_with(self.client.clone(), resource)),
        }
    }

    async fn api_for_ref(&self, target: &ObjectRef) -> Result<Api<DynamicObject>, String> {
        let (resource, scope) = self.resolve(&target.kind).await?;
        self.api(&resource, &scope, &target.namespace)
    }

    /// The API of an object given as JSON, and its name.
    async fn api_for_object(&self, obj: &Value) -> Result<(Api<DynamicObject>, String), String> {
        let s = |p: &str| obj.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let api_version = s("/apiVersion");
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let gvk = GroupVersionKind {
            group: group.into(),
            version: version.into(),
            kind: s("/kind").into(),
        };
        let (resource, scope) = self.resolve(&gvk).await?;
        let api = self.api(&resource, &scope, s("/metadata/namespace"))?;
        Ok((api, s("/metadata/name").to_string()))
    }
}
