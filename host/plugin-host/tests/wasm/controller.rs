//! Controller components: the `namespace-defaults` example reads the cache the host serves
//! and answers the right actions, idempotently; an admission component is not a
//! controller; the hostile fixture fails each call with the right error, within its
//! deadline, and the plugin answers the next call.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keelson_plugin_host::controller::{
    CacheError, ControllerAction, ControllerCache, GroupVersionKind, ObjectRef,
};
use keelson_plugin_host::{ControllerPlugin, Error};
use serde_json::{json, Value};

use crate::support::{host, test_limits, wasm};

/// A cache over a map keyed by (kind, namespace, name), allowing the kinds given.
struct MapCache {
    allowed: Vec<&'static str>,
    objects: Mutex<BTreeMap<(String, String, String), Value>>,
    config: String,
}

impl MapCache {
    fn new(config: Value) -> Arc<Self> {
        Arc::new(MapCache {
            allowed: vec!["Namespace", "ConfigMap", "ResourceQuota"],
            objects: Mutex::new(BTreeMap::new()),
            config: config.to_string(),
        })
    }

    fn put(&self, kind: &str, ns: &str, name: &str, obj: Value) {
        self.objects
            .lock()
            .unwrap()
            .insert((kind.into(), ns.into(), name.into()), obj);
    }
}

impl ControllerCache for MapCache {
    fn get(
        &self,
        kind: &GroupVersionKind,
        namespace: &str,
        name: &str,
    ) -> Result<Option<String>, CacheError> {
        if !self.allowed.contains(&kind.kind.as_str()) {
            return Err(CacheError::KindNotAllowed);
        }
        let key = (kind.kind.clone(), namespace.to_string(), name.to_string());
        Ok(self.objects.lock().unwrap().get(&key).map(Value::to_string))
    }

    fn list(
        &self,
        kind: &GroupVersionKind,
        _namespace: Option<&str>,
        _label_selector: &str,
    ) -> Result<Vec<String>, CacheError> {
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|((k, _, _), _)| *k == kind.kind)
            .map(|(_, v)| v.to_string())
            .collect())
    }

    fn config(&self) -> String {
        self.config.clone()
    }
}

fn load(name: &str) -> Arc<ControllerPlugin> {
    host()
        .load_controller(name, &wasm(name), test_limits())
        .unwrap_or_else(|e| panic!("load {name}: {e}"))
}

fn namespace_key(name: &str) -> ObjectRef {
    ObjectRef {
        kind: GroupVersionKind {
            group: String::new(),
            version: "v1".into(),
            kind: "Namespace".into(),
        },
        namespace: String::new(),
        name: name.into(),
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn namespace_defaults_creates_what_is_missing() {
    let plugin = load("namespace-defaults");
    let cache = MapCache::new(json!({"hard": {"pods": "7"}}));
    cache.put(
        "Namespace",
        "",
        "team-a",
        json!({"metadata": {"name": "team-a"}}),
    );
    let actions = block_on(plugin.reconcile_async(&namespace_key("team-a"), cache.clone()))
        .unwrap()
        .unwrap();
    assert_eq!(actions.len(), 2, "{actions:?}");
    let ControllerAction::Create(quota) = &actions[1] else {
        panic!("{actions:?}")
    };
    assert_eq!(quota["kind"], "ResourceQuota");
    assert_eq!(quota["metadata"]["namespace"], "team-a");
    assert_eq!(quota["spec"]["hard"], json!({"pods": "7"}));
    // Once both exist, nothing more to do.
    cache.put("ConfigMap", "team-a", "namespace-defaults", json!({}));
    cache.put("ResourceQuota", "team-a", "default-quota", json!({}));
    let again = block_on(plugin.reconcile_async(&namespace_key("team-a"), cache.clone()));
    assert_eq!(again.unwrap(), Ok(vec![]));
    // kube-system is skipped by default.
    cache.put(
        "Namespace",
        "",
        "kube-system",
        json!({"metadata": {"name": "kube-system"}}),
    );
    let skipped = block_on(plugin.reconcile_async(&namespace_key("kube-system"), cache));
    assert_eq!(skipped.unwrap(), Ok(vec![]));
}

#[test]
fn a_denied_kind_is_the_plugins_error() {
    let plugin = load("namespace-defaults");
    let mut cache = MapCache::new(json!({}));
    Arc::get_mut(&mut cache).unwrap().allowed = vec!["Namespace"];
    cache.put(
        "Namespace",
        "",
        "team-b",
        json!({"metadata": {"name": "team-b"}}),
    );
    let answer = block_on(plugin.reconcile_async(&namespace_key("team-b"), cache)).unwrap();
    let message = answer.unwrap_err();
    assert!(message.contains("ConfigMap"), "{message}");
}

#[test]
fn an_admission_component_is_not_a_controller() {
    let err = host()
        .load_controller("require-labels", &wasm("require-labels"), test_limits())
        .unwrap_err();
    assert!(matches!(err, Error::Compile(_)), "{err:?}");
}

#[test]
fn hostile_controllers_fail_cleanly() {
    let plugin = load("controller-hostile");
    let call = |mode: &str| {
        let start = Instant::now();
        let out = block_on(
            plugin.reconcile_async(&namespace_key("x"), MapCache::new(json!({"mode": mode}))),
        );
        (out, start.elapsed())
    };
    let (out, took) = call("loop");
    assert!(matches!(out, Err(Error::Deadline(_))), "{out:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    let (out, _) = call("trap");
    assert!(
        matches!(&out, Err(Error::Trap(m)) if m.contains("trap on purpose")),
        "{out:?}"
    );
    let (out, _) = call("memory");
    assert!(matches!(out, Err(Error::MemoryLimit(_))), "{out:?}");
    let (out, _) = call("garbage");
    assert!(matches!(out, Err(Error::BadOutput(_))), "{out:?}");
    let (out, _) = call("error");
    assert_eq!(
        out.unwrap(),
        Err("controller-hostile: error on purpose".to_string())
    );
    let (out, _) = call("behave");
    assert_eq!(out.unwrap(), Ok(vec![]));
    let m = plugin.metrics();
    assert_eq!((m.calls, m.errors, m.timeouts), (6, 4, 1));
}
