//! Builds RFC 6902 JSON Patch documents.

use serde_json::{json, Value};

/// A JSON Patch under construction: a list of operations applied in order.
///
/// Paths are JSON Pointers (`/spec/containers/0/resources`); build them from
/// keys with [`escape_pointer_token`] when keys may contain `/` or `~`
/// (label keys often do).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    ops: Vec<Value>,
}

impl Patch {
    /// An empty patch.
    pub fn new() -> Self {
        Patch::default()
    }

    /// Adds `value` at `path` (creates the member or inserts into an array;
    /// the parent must exist).
    pub fn add(&mut self, path: impl Into<String>, value: Value) -> &mut Self {
        self.ops
            .push(json!({"op": "add", "path": path.into(), "value": value}));
        self
    }

    /// Replaces the existing value at `path`.
    pub fn replace(&mut self, path: impl Into<String>, value: Value) -> &mut Self {
        self.ops
            .push(json!({"op": "replace", "path": path.into(), "value": value}));
        self
    }

    /// Removes the value at `path`.
    pub fn remove(&mut self, path: impl Into<String>) -> &mut Self {
        self.ops.push(json!({"op": "remove", "path": path.into()}));
        self
    }

    /// Fails the whole patch unless `path` holds `value`.
    pub fn test(&mut self, path: impl Into<String>, value: Value) -> &mut Self {
        self.ops
            .push(json!({"op": "test", "path": path.into(), "value": value}));
        self
    }

    /// Sets label `key` to `value` on `object`, creating `metadata.labels` if
    /// needed.
    pub fn set_label(&mut self, object: &Value, key: &str, value: &str) -> &mut Self {
        self.set_in_map(object, "/metadata/labels", key, value)
    }

    /// Sets annotation `key` to `value` on `object`, creating
    /// `metadata.annotations` if needed.
    pub fn set_annotation(&mut self, object: &Value, key: &str, value: &str) -> &mut Self {
        self.set_in_map(object, "/metadata/annotations", key, value)
    }

    fn set_in_map(&mut self, object: &Value, map: &str, key: &str, value: &str) -> &mut Self {
        if object.pointer(map).is_some_and(Value::is_object) {
            self.add(format!("{map}/{}", escape_pointer_token(key)), json!(value))
        } else {
            if object.pointer("/metadata").is_none() {
                self.add("/metadata", json!({}));
            }
            self.add(map, json!({ key: value }))
        }
    }

    /// True when no operation was added.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations added so far.
    pub fn ops(&self) -> &[Value] {
        &self.ops
    }

    /// The patch as JSON text, as [`crate::MutateVerdict::patch`] expects.
    pub fn to_json(&self) -> String {
        Value::Array(self.ops.clone()).to_string()
    }
}

/// Escapes one JSON Pointer reference token: `~` → `~0`, `/` → `~1`.
pub fn escape_pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
