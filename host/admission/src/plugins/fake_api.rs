//! An in-memory [`Api`] for plugin unit tests: objects keyed by API path, lists by collection
//! path, and conditional updates on `metadata.resourceVersion` like the server's store.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde_json::{json, Value};

use crate::{Api, ApiAccessError};

/// Objects by path (`/api/v1/namespaces/ns/pods/p`), each with a resourceVersion.
#[derive(Default)]
pub(crate) struct FakeApi {
    objects: Mutex<BTreeMap<String, Value>>,
    revision: AtomicUsize,
    /// How many of the next updates fail with a conflict (after bumping the stored object's
    /// resourceVersion, as a concurrent writer would).
    pub(crate) conflicts: AtomicUsize,
    /// Updates that succeeded.
    pub(crate) updates: AtomicUsize,
}

impl FakeApi {
    /// An empty API.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Stores (or replaces) an object at `path`, giving it a fresh resourceVersion.
    pub(crate) fn put(&self, path: &str, mut obj: Value) {
        let rv = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        if !obj["metadata"].is_object() {
            obj["metadata"] = json!({});
        }
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.lock().unwrap().insert(path.to_string(), obj);
    }

    /// The object at `path`.
    pub(crate) fn object(&self, path: &str) -> Option<Value> {
        self.objects.lock().unwrap().get(path).cloned()
    }

    /// Removes the object at `path`.
    pub(crate) fn remove(&self, path: &str) {
        self.objects.lock().unwrap().remove(path);
    }
}

#[async_trait::async_trait]
impl Api for FakeApi {
    async fn get(&self, path: &str) -> Result<Option<Value>, ApiAccessError> {
        Ok(self.object(path))
    }

    async fn list(&self, path: &str) -> Result<Vec<Value>, ApiAccessError> {
        tokio::task::yield_now().await;
        let prefix = format!("{}/", path.trim_end_matches('/'));
        let objects = self.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix(&prefix)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            })
            .map(|(_, v)| v.clone())
            .collect())
    }

    async fn update(&self, path: &str, obj: &Value) -> Result<Value, ApiAccessError> {
        tokio::task::yield_now().await;
        // Check and write under one lock, as the store's conditional update is atomic.
        let mut objects = self.objects.lock().unwrap();
        let stored = objects
            .get_mut(path)
            .ok_or_else(|| format!("{path} not found"))?;
        let conflict = format!("{path} was modified; re-read and retry");
        let rv = self.revision.fetch_add(1, Ordering::SeqCst) + 1;
        if self.conflicts.load(Ordering::SeqCst) > 0 {
            // A concurrent writer got there first.
            self.conflicts.fetch_sub(1, Ordering::SeqCst);
            stored["metadata"]["resourceVersion"] = json!(rv.to_string());
            return Err(conflict.into());
        }
        if obj["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
            return Err(conflict.into());
        }
        let mut obj = obj.clone();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        *stored = obj.clone();
        self.updates.fetch_add(1, Ordering::SeqCst);
        Ok(obj)
    }
}
