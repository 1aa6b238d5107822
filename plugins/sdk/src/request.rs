//! Typed access to a [`Request`]'s object, old object and configuration.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Request;

impl Request {
    /// The object after the request, parsed; `None` on delete or if it is not JSON.
    pub fn object(&self) -> Option<Value> {
        parse(&self.object)
    }

    /// The object before the request, parsed; `None` on create.
    pub fn old_object(&self) -> Option<Value> {
        parse(&self.old_object)
    }

    /// The object deserialized into your own type (only the fields you declare).
    pub fn object_as<T: DeserializeOwned>(&self) -> Result<Option<T>, String> {
        if self.object.is_empty() {
            return Ok(None);
        }
        serde_json::from_str(&self.object)
            .map(Some)
            .map_err(|e| format!("object: {e}"))
    }

    /// The plugin's configuration (`spec.config` of its WasmPlugin); an empty
    /// or `{}` config with all-optional fields gives `T::default()`-like values.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, String> {
        let text = if self.config.trim().is_empty() {
            "{}"
        } else {
            &self.config
        };
        serde_json::from_str(text).map_err(|e| format!("plugin config: {e}"))
    }

    /// `group/version` of the object (`v1` for the core group).
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn parse(text: &str) -> Option<Value> {
    if text.is_empty() {
        None
    } else {
        serde_json::from_str(text).ok()
    }
}
